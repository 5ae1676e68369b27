//! Row (9): end-to-end latency at a steady rate. With one `jirasync ingress` and one
//! `jirasync worker` running, webhooks are POSTed open-loop (each at its own
//! time, whether or not the ones before were answered), each an assignee change
//! of a seeded issue. For each: the time its 202 came back, and the time the
//! worker's transaction wrote its `sync_events` row (message_id = the id in the 202).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use jirasync::integration::messages::WEBHOOK;

use super::procs::{free_port, spawn, wait_ready, worker_counts};
use super::{Bench, percentiles};

/// What row (9) measured; latencies in ms.
pub struct Steady {
    /// Webhooks sent.
    pub sent: usize,
    /// The rate they were sent at (from the first send to the last).
    pub rate: f64,
    /// How late the sender was at worst against its schedule.
    pub worst_lag_ms: f64,
    /// 202 → the audit `INSERT`, the transaction's last statement before COMMIT.
    pub to_insert: (f64, f64),
    /// 202 → the transaction's start (`sync_events.created_at`, its `now()`).
    pub to_start: (f64, f64),
    /// POST → 202.
    pub answer: (f64, f64),
    /// Webhooks whose decision was `assigned`.
    pub assigned: usize,
    /// Where the CPU went, per 1,000 webhooks.
    pub cpu: String,
}

/// One answered webhook.
struct Answered {
    id: String,
    /// When the 202 came back, µs since the Unix epoch (the same clock as Postgres's).
    at_us: i64,
    post_ms: f64,
}

/// Sends `rate` webhooks a second for `seconds`; their events are later than every
/// earlier batch's (`batch_base`: the ordering guard applies them).
pub async fn run(
    bench: &Bench<'_>,
    token: &str,
    rate: usize,
    seconds: usize,
) -> anyhow::Result<Steady> {
    let args = bench.args;
    if args.users < 2 {
        bail!("the steady row needs --users 2 or more: every webhook changes the assignee");
    }
    // created_at is the transaction's now(); this column is the INSERT's own clock.
    bench
        .db
        .batch_execute(
            "ALTER TABLE sync_events ADD COLUMN bench_inserted_at timestamptz;
             ALTER TABLE sync_events ALTER COLUMN bench_inserted_at SET DEFAULT clock_timestamp();",
        )
        .await?;
    let bodies = webhooks(bench, rate * seconds).await?;

    let (ingress_port, metrics_port) = (free_port(), free_port());
    let ingress = spawn(
        bench.settings,
        "ingress",
        &[("JIRASYNC_LISTEN", format!("127.0.0.1:{ingress_port}"))],
    )?;
    let worker = spawn(
        bench.settings,
        "worker",
        &[(
            "JIRASYNC_METRICS_LISTEN",
            format!("127.0.0.1:{metrics_port}"),
        )],
    )?;
    wait_ready(bench.client, ingress_port, "the ingress").await?;
    wait_ready(bench.client, metrics_port, "the worker").await?;
    let cpu = bench.cpu_use("ingress and worker", vec![ingress.id(), worker.id()]);

    let url =
        format!("http://127.0.0.1:{ingress_port}/extensions/jira-server/issue-updated/{token}/");
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut worst_lag = Duration::ZERO;
    let mut tasks = Vec::with_capacity(bodies.len());
    for (k, body) in bodies.into_iter().enumerate() {
        let due = start + period * u32::try_from(k)?;
        tokio::time::sleep_until(due).await;
        worst_lag = worst_lag.max(tokio::time::Instant::now() - due);
        let (client, url) = (bench.client.clone(), url.clone());
        tasks.push(tokio::spawn(async move { post(&client, &url, body).await }));
    }
    let sending = (tokio::time::Instant::now() - start).as_secs_f64();
    let mut answered = Vec::with_capacity(tasks.len());
    for task in tasks {
        answered.push(task.await??);
    }
    let sent = answered.len();

    let waiting = Instant::now();
    loop {
        let handled: f64 = worker_counts(bench.client, metrics_port, WEBHOOK)
            .await
            .iter()
            .map(|(_, n)| n)
            .sum();
        if handled >= sent as f64 {
            break;
        }
        if waiting.elapsed() > Duration::from_secs(120) {
            bail!("the worker handled {handled} of {sent} webhooks in 2 minutes");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu = cpu.report(sent);
    drop(worker);
    drop(ingress);

    let ids: Vec<String> = answered.iter().map(|a| a.id.clone()).collect();
    let rows = bench
        .db
        .query(
            "SELECT message_id,
                    (extract(epoch FROM min(created_at)) * 1e6)::int8,
                    (extract(epoch FROM max(bench_inserted_at)) * 1e6)::int8,
                    count(*) FILTER (WHERE kind = 'assignee' AND outcome = 'assigned')
               FROM sync_events WHERE message_id = ANY($1) GROUP BY message_id",
            &[&ids],
        )
        .await?;
    bench
        .db
        .batch_execute("ALTER TABLE sync_events DROP COLUMN bench_inserted_at")
        .await?;
    let written: HashMap<String, (i64, i64, i64)> = rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect();
    let (mut to_insert, mut to_start, mut answer) = (Vec::new(), Vec::new(), Vec::new());
    let mut assigned = 0;
    for a in &answered {
        let &(started_us, inserted_us, decided) = written
            .get(&a.id)
            .with_context(|| format!("no sync_events row of message {}", a.id))?;
        to_insert.push((inserted_us - a.at_us) as f64 / 1000.0);
        to_start.push((started_us - a.at_us) as f64 / 1000.0);
        answer.push(a.post_ms);
        assigned += usize::from(decided > 0);
    }
    Ok(Steady {
        sent,
        rate: (sent.max(2) - 1) as f64 / sending.max(f64::EPSILON),
        worst_lag_ms: worst_lag.as_secs_f64() * 1000.0,
        to_insert: percentiles(to_insert),
        to_start: percentiles(to_start),
        answer: percentiles(answer),
        assigned,
        cpu,
    })
}

/// POSTs one webhook; its id and when the 202 came back.
async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> anyhow::Result<Answered> {
    let sent = Instant::now();
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .context("failed to POST a webhook to the ingress")?;
    let at_us = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros())?;
    let post_ms = sent.elapsed().as_secs_f64() * 1000.0;
    let status = response.status();
    if status != reqwest::StatusCode::ACCEPTED {
        bail!("the ingress answered {status}, not 202");
    }
    let answer: serde_json::Value = response.json().await?;
    let id = answer["id"]
        .as_str()
        .context("no id in the ingress's 202")?
        .to_owned();
    Ok(Answered { id, at_us, post_ms })
}

/// `n` webhooks across the seeded issues, each giving its issue another user than
/// it holds (the one after it, in turn), each event a millisecond after the last.
async fn webhooks(bench: &Bench<'_>, n: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let args = bench.args;
    let rows = bench
        .db
        .query(
            "SELECT g.title, ue.email FROM groups g
               JOIN group_assignees ga ON ga.group_id = g.id
               JOIN user_emails ue ON ue.user_id = ga.user_id
              WHERE g.title LIKE 'BENCH-%'",
            &[],
        )
        .await?;
    let number = |text: &str, prefix: &str, suffix: &str| -> Option<usize> {
        text.strip_prefix(prefix)?
            .strip_suffix(suffix)?
            .parse()
            .ok()
    };
    let mut holds: HashMap<usize, usize> = rows
        .iter()
        .filter_map(|r| {
            let issue = number(r.get(0), "BENCH-", "")?;
            Some((issue, number(r.get(1), "bench", "@example.org")?))
        })
        .collect();
    let base = super::batch_base(n);
    let mut bodies = Vec::with_capacity(n);
    for k in 0..n {
        let issue = k % args.issues + 1;
        let user = holds.get(&issue).map_or(1, |held| held % args.users + 1);
        holds.insert(issue, user);
        let at = base + chrono::Duration::milliseconds(i64::try_from(k)?);
        let body = serde_json::json!({
            "timestamp": at.timestamp_millis(), "webhookEvent": "jira:issue_updated",
            "issue": {"key": format!("BENCH-{issue}"), "fields": {"assignee": {"name": format!("bench{user}"), "emailAddress": format!("bench{user}@example.org")},
                      "updated": at.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string(), "description": "x".repeat(5000)}},
            "changelog": {"items": [{"field": "assignee"}]}
        });
        bodies.push(serde_json::to_vec(&body)?);
    }
    Ok(bodies)
}
