//! Rows (10) and (11): outbound sync (docs/reference.md §10). The benchmark is the
//! application: it commits `group_assignees` changes of issues OUT-<N>
//! (`bench/seed_reconcile.sql`, the organization pushing its assignments) and one
//! `jirasync worker` captures, relays and pushes them to the fake Jira
//! (`fake_jira.rs`), which records when each `PUT …/assignee` arrived.
//!
//! (10) At a steady rate, open-loop (each change at its own time, whether or not
//! the ones before were committed): for each change, from sending its committing
//! statement to the fake Jira receiving the PUT that writes its user.
//! (11) A backlog: the changes committed while no worker runs, then one worker
//! started; the clock stops when Jira holds every issue's user and nothing is
//! pending or captured any more.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use jirasync::integration::Provider;

use super::fake_jira::{FakeJira, Put};
use super::procs::{peak_rss_mib, worker_scrape};
use super::{Bench, link_issues, lone_worker, percentiles, unlink_issues};

/// The application's write: the group's assignee becomes the user (as the tests'
/// `host_assigns`), no `jirasync.origin`, committed on its own.
const ASSIGN: &str = "INSERT INTO group_assignees (group_id, project_id, user_id)
  SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[])
  ON CONFLICT (group_id) DO UPDATE SET user_id = EXCLUDED.user_id, team_id = NULL";

/// Connections the steady row commits its changes on, in turn.
const CONNECTIONS: usize = 4;

/// Changes per transaction when the backlog is committed.
const BACKLOG_BATCH: usize = 100;

/// What row (10) measured at one rate; latencies in ms.
pub struct Latency {
    /// The rate asked for, changes per second.
    pub asked: usize,
    /// Changes committed.
    pub sent: usize,
    /// The rate they were sent at (from the first send to the last).
    pub rate: f64,
    /// Sending the committing statement → the fake Jira receiving the PUT: p50, p99.
    pub to_put: (f64, f64),
    /// The slowest of them.
    pub max: f64,
    /// The committing statement itself (sent → acknowledged): p50, p99.
    pub commit: (f64, f64),
    /// Changes whose user no PUT wrote (a newer change of the issue overtook it).
    pub unmatched: usize,
    /// Where the CPU went, per 1,000 changes.
    pub cpu: String,
}

/// What row (11) measured.
pub struct Backlog {
    /// Changes committed while no worker ran, one per issue.
    pub changes: usize,
    /// From starting the worker until Jira held every change and nothing was pending.
    pub seconds: f64,
    /// PUTs the fake Jira took meanwhile.
    pub puts: usize,
    /// The worker's peak RSS.
    pub worker_rss_mib: f64,
    /// Where the CPU went, per 1,000 pushes.
    pub cpu: String,
    /// How long a push took from its delivery to its answer, on average
    /// (`jirasync_message_duration_seconds`), in milliseconds.
    pub push_ms: Option<f64>,
    /// How many pushes a batch settled, on average (`jirasync_outbound_batch_size`).
    pub batch: Option<f64>,
}

/// Rows (10) and (11), and the requests the fake Jira answered for them.
pub struct Outbound {
    /// Row (10), one per rate.
    pub latency: Vec<Latency>,
    /// Row (11), unless skipped.
    pub backlog: Option<Backlog>,
    /// Issue reads, assignable searches, PUTs, unauthorized requests.
    pub requests: (usize, usize, usize, usize),
}

/// One issue of the seed: its key, group and project.
struct Issue {
    key: String,
    group_id: i64,
    project_id: i64,
}

/// The issues OUT-<N> and the users, and whom each issue was last given.
struct Scene {
    issues: Vec<Issue>,
    /// User id by benchmark user number (`bench<N>`), 1-based.
    users: HashMap<usize, i64>,
    /// The user number each issue (by index) was last given.
    held: HashMap<usize, usize>,
    user_count: usize,
}

impl Scene {
    /// The next change of the issue at `index`: its key, group, project, the user
    /// id and the Jira user name it gives the issue (the user after the last one).
    fn next(&mut self, index: usize) -> (String, i64, i64, i64, String) {
        let index = index % self.issues.len();
        let user = self
            .held
            .get(&index)
            .map_or(1, |held| held % self.user_count + 1);
        self.held.insert(index, user);
        let issue = &self.issues[index];
        (
            issue.key.clone(),
            issue.group_id,
            issue.project_id,
            self.users[&user],
            format!("bench{user}"),
        )
    }
}

/// Seeds `issues` issues, runs row (10) at each of `rates` for `seconds` and row
/// (11) with a backlog of `backlog` changes (0 skips it), and takes the seed away.
pub async fn run(
    bench: &Bench<'_>,
    rates: &[usize],
    seconds: usize,
    backlog: usize,
) -> anyhow::Result<Outbound> {
    if bench.args.users < 2 {
        bail!("the outbound rows need --users 2 or more: every change gives another user");
    }
    let steady_changes: usize = rates.iter().map(|rate| rate * seconds).sum();
    let issues = backlog.max(steady_changes).max(1);
    let jira = link_issues(bench, Provider::Server, "OUT", issues).await?;
    bench
        .db
        .execute(
            "UPDATE organization_integrations SET config = config || '{\"sync_forward_assignment\": true}'
              WHERE organization_id IN (SELECT id FROM organizations WHERE slug = 'bench')",
            &[],
        )
        .await?;
    let mut scene = scene(bench, issues).await?;
    let result = rows(bench, &jira, &mut scene, rates, seconds, backlog).await;
    jira.stop();
    unlink_issues(bench.db, Provider::Server, "OUT").await?;
    let (latency, backlog) = result?;
    let counts = &jira.counts;
    let load = |n: &std::sync::atomic::AtomicUsize| n.load(std::sync::atomic::Ordering::Relaxed);
    Ok(Outbound {
        latency,
        backlog,
        requests: (
            load(&counts.issue_reads),
            load(&counts.assignable),
            jira.writes.count(),
            load(&counts.unauthorized),
        ),
    })
}

async fn scene(bench: &Bench<'_>, issues: usize) -> anyhow::Result<Scene> {
    let rows = bench
        .db
        .query(
            "SELECT g.title, g.id, g.project_id FROM groups g WHERE g.title LIKE 'OUT-%'",
            &[],
        )
        .await?;
    let mut by_number: Vec<(usize, Issue)> = rows
        .iter()
        .filter_map(|row| {
            let key: String = row.get(0);
            let n = key.strip_prefix("OUT-")?.parse().ok()?;
            Some((
                n,
                Issue {
                    key,
                    group_id: row.get(1),
                    project_id: row.get(2),
                },
            ))
        })
        .collect();
    by_number.sort_by_key(|(n, _)| *n);
    if by_number.len() != issues {
        bail!("seeded {issues} issues OUT-<N>, found {}", by_number.len());
    }
    let users = bench
        .db
        .query(
            "SELECT id, username FROM users WHERE username ~ '^bench[0-9]+$'",
            &[],
        )
        .await?
        .iter()
        .filter_map(|row| {
            let name: String = row.get(1);
            Some((name.strip_prefix("bench")?.parse().ok()?, row.get(0)))
        })
        .collect();
    Ok(Scene {
        issues: by_number.into_iter().map(|(_, issue)| issue).collect(),
        users,
        held: HashMap::new(),
        user_count: bench.args.users,
    })
}

async fn rows(
    bench: &Bench<'_>,
    jira: &FakeJira,
    scene: &mut Scene,
    rates: &[usize],
    seconds: usize,
    backlog: usize,
) -> anyhow::Result<(Vec<Latency>, Option<Backlog>)> {
    let mut latency = Vec::new();
    if !rates.is_empty() {
        let (worker, _) = lone_worker(bench).await?;
        let mut next_issue = 0;
        for &rate in rates {
            let cpu = bench.cpu_use("worker", vec![worker.id()]);
            let mut row = steady(bench, jira, scene, &mut next_issue, rate, seconds).await?;
            row.cpu = cpu.report(row.sent);
            latency.push(row);
        }
        drop(worker);
    }
    let backlog = if backlog > 0 {
        Some(drain(bench, jira, scene, backlog).await?)
    } else {
        None
    };
    Ok((latency, backlog))
}

/// One committed change: the issue, the user name it gives, when its statement
/// was sent and how long it took.
struct Committed {
    key: String,
    name: String,
    sent: Instant,
    commit_ms: f64,
}

/// Row (10) at one rate: `rate` changes a second for `seconds`, the issues in turn
/// from `next_issue`.
async fn steady(
    bench: &Bench<'_>,
    jira: &FakeJira,
    scene: &mut Scene,
    next_issue: &mut usize,
    rate: usize,
    seconds: usize,
) -> anyhow::Result<Latency> {
    let mut clients = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let (client, connection) =
            tokio_postgres::connect(&bench.settings.database.url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let statement = client.prepare(ASSIGN).await?;
        clients.push(Arc::new((client, statement)));
    }
    let n = rate * seconds;
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::with_capacity(n);
    for k in 0..n {
        let (key, group, project, user, name) = scene.next(*next_issue);
        *next_issue += 1;
        tokio::time::sleep_until(start + period * u32::try_from(k)?).await;
        let client = Arc::clone(&clients[k % CONNECTIONS]);
        tasks.push(tokio::spawn(async move {
            let (client, statement) = &*client;
            let sent = Instant::now();
            client
                .execute(statement, &[&vec![group], &vec![project], &vec![user]])
                .await?;
            let commit_ms = sent.elapsed().as_secs_f64() * 1000.0;
            anyhow::Ok(Committed {
                key,
                name,
                sent,
                commit_ms,
            })
        }));
    }
    let sending = (tokio::time::Instant::now() - start).as_secs_f64();
    let mut committed = Vec::with_capacity(n);
    for task in tasks {
        committed.push(task.await??);
    }

    // Every change was committed (and captured): once nothing is captured or
    // pending, the worker decided every push, after Jira took its PUT.
    let waiting = Instant::now();
    while pending(bench.db).await? > 0 {
        if waiting.elapsed() > Duration::from_secs(120) {
            bail!("the worker left pushes pending 2 minutes after {rate} changes/s ended");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (to_put, unmatched) = matched(&committed, &jira.writes.puts());
    let max = to_put.iter().copied().fold(0.0, f64::max);
    let sent = committed.len();
    Ok(Latency {
        asked: rate,
        sent,
        rate: (sent.max(2) - 1) as f64 / sending.max(f64::EPSILON),
        to_put: percentiles(to_put),
        max,
        commit: percentiles(committed.iter().map(|c| c.commit_ms).collect()),
        unmatched,
        cpu: String::new(),
    })
}

/// Per change, sent → the first PUT of its issue that arrived after it was sent
/// and writes its user, in ms; and how many changes no such PUT has written.
fn matched(committed: &[Committed], puts: &[Put]) -> (Vec<f64>, usize) {
    let mut by_key: HashMap<&str, Vec<&Put>> = HashMap::new();
    for put in puts {
        by_key.entry(put.key.as_str()).or_default().push(put);
    }
    let mut latencies = Vec::with_capacity(committed.len());
    let mut unmatched = 0;
    for change in committed {
        let put = by_key.get(change.key.as_str()).and_then(|puts| {
            puts.iter()
                .find(|put| put.at >= change.sent && put.name.as_deref() == Some(&change.name))
        });
        match put {
            Some(put) => latencies.push((put.at - change.sent).as_secs_f64() * 1000.0),
            None => unmatched += 1,
        }
    }
    (latencies, unmatched)
}

/// Pushes not decided yet: captured changes and pending rows.
async fn pending(db: &tokio_postgres::Client) -> anyhow::Result<i64> {
    Ok(db
        .query_one(
            "SELECT (SELECT count(*) FROM outbound_changes) + (SELECT count(*) FROM outbound_pending)",
            &[],
        )
        .await?
        .get(0))
}

/// Row (11): `changes` changes, one per issue, committed in transactions of
/// [`BACKLOG_BATCH`] with no worker running; then one worker drains them.
async fn drain(
    bench: &Bench<'_>,
    jira: &FakeJira,
    scene: &mut Scene,
    changes: usize,
) -> anyhow::Result<Backlog> {
    if pending(bench.db).await? != 0 {
        bail!("pushes were still pending before the backlog row");
    }
    let statement = bench.db.prepare(ASSIGN).await?;
    let mut expected = HashMap::with_capacity(changes);
    for first in (0..changes).step_by(BACKLOG_BATCH) {
        let (mut groups, mut projects, mut users) = (Vec::new(), Vec::new(), Vec::new());
        for index in first..(first + BACKLOG_BATCH).min(changes) {
            let (key, group, project, user, name) = scene.next(index);
            groups.push(group);
            projects.push(project);
            users.push(user);
            expected.insert(key, name);
        }
        bench
            .db
            .execute(&statement, &[&groups, &projects, &users])
            .await?;
    }
    let captured = pending(bench.db).await?;
    if captured < i64::try_from(changes)? {
        bail!("{changes} changes committed, {captured} captured");
    }
    let puts_before = jira.writes.count();
    let started = Instant::now();
    let (worker, port) = lone_worker(bench).await?;
    let cpu = bench.cpu_use("worker", vec![worker.id()]);
    loop {
        // The PUTs are counted first: comparing every issue holds the fake
        // Jira's lock, which its answers wait for.
        if jira.writes.count() - puts_before >= changes
            && jira.writes.holding(&expected) == changes
            && pending(bench.db).await? == 0
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(900) {
            bail!(
                "one worker did not push a backlog of {changes} changes in 15 minutes \
                 (Jira holds {} of them)",
                jira.writes.holding(&expected)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let push = "jirasync_message_duration_seconds{type=\"jira_server.outbound\"}";
    let scrape = worker_scrape(bench.client, port).await;
    let push_ms = scrape
        .as_ref()
        .and_then(|scrape| scrape.mean(push))
        .map(|seconds| seconds * 1000.0);
    let batch = scrape
        .as_ref()
        .and_then(|scrape| scrape.mean("jirasync_outbound_batch_size"));
    let cpu = cpu.report(changes);
    Ok(Backlog {
        changes,
        seconds,
        puts: jira.writes.count() - puts_before,
        worker_rss_mib: peak_rss_mib(&worker),
        cpu,
        push_ms,
        batch,
    })
}
