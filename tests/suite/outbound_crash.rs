//! Outbound pushes through crashes and restarts (issue #24, "Bad input and
//! faults"; docs/reliability.md), with real `jirasync worker` processes, the
//! real Postgres and RabbitMQ and a fake Jira that checks every call's OAuth
//! signature and keeps its issues' assignees: a worker `kill -9`ed between
//! reading and writing a push, Postgres stopped and started while pushes wait,
//! and a change committed while no jirasync process runs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use crate::common::fake_jira::FakeJira;
use crate::common::private_pg::{PrivatePg, free_port};
use crate::common::{self, Process, TestApp as Scene, eventually};

const ACCESS_TOKEN: &str = "acc-tok";
const WAIT: Duration = Duration::from_secs(30);
/// Long enough that a worker waiting for this answer is killed before it comes.
const HELD: Duration = Duration::from_secs(120);

/// A Jira issue that keeps its assignee: its GET answers what the last PUT set,
/// so a write made a second time is found `unchanged` by the read before it.
#[derive(Clone)]
struct JiraIssue {
    key: String,
    assignee: Arc<Mutex<Option<String>>>,
}

/// Builds an answer from the request.
type Make = Box<dyn Fn(&Request) -> ResponseTemplate + Send + Sync>;

/// Verifies the request's OAuth signature (`401` otherwise), then answers
/// `make`'s response, after `first_held` the first time and `delay` after.
struct Answer {
    jira: Arc<FakeJira>,
    make: Make,
    first_held: Mutex<Option<Duration>>,
    delay: Duration,
}

impl Answer {
    fn new(jira: &Arc<FakeJira>, make: Make) -> Self {
        Self {
            jira: Arc::clone(jira),
            make,
            first_held: Mutex::new(None),
            delay: Duration::ZERO,
        }
    }

    /// The first answer waits `held`.
    fn first_held(self, held: Option<Duration>) -> Self {
        *self.first_held.lock().expect("lock") = held;
        self
    }

    /// Every answer (but a held first one) waits `delay`.
    fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

impl Respond for Answer {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if let Err(problem) = self.jira.verify(request) {
            return ResponseTemplate::new(401)
                .set_body_string(format!("oauth_problem={problem}&oauth_problem_advice=fake"));
        }
        let answer = (self.make)(request);
        let held = self.first_held.lock().expect("lock").take();
        answer.set_delay(held.unwrap_or(self.delay))
    }
}

impl JiraIssue {
    fn new(key: &str) -> Self {
        Self {
            key: key.to_owned(),
            assignee: Arc::new(Mutex::new(None)),
        }
    }

    /// The Jira user the issue is assigned to now.
    fn assignee(&self) -> Option<String> {
        self.assignee.lock().expect("lock").clone()
    }

    /// `GET /rest/api/2/issue/{key}` as Jira answers it now.
    fn json(&self) -> Value {
        let assignee = self.assignee().map_or(
            Value::Null,
            |name| json!({"name": name, "key": format!("JIRAUSER-{name}"), "active": true}),
        );
        json!({
            "key": self.key,
            "fields": {
                "assignee": assignee,
                "status": {"id": "1", "name": "Open"},
                "project": {"id": "10000", "key": "OUT"},
                "updated": "2024-01-01T10:00:00.000+0000",
            }
        })
    }

    /// Mounts the issue's GET, each answer after `delay`.
    async fn mount(&self, s: &Scene, delay: Duration) {
        let issue = self.clone();
        let make: Make = Box::new(move |_| ResponseTemplate::new(200).set_body_json(issue.json()));
        Mock::given(method("GET"))
            .and(path(format!("/rest/api/2/issue/{}", self.key)))
            .respond_with(Answer::new(&s.jira, make).delay(delay))
            .mount(&s.server)
            .await;
    }

    /// Mounts `PUT …/assignee` with `{"name": name}`: Jira assigns the issue
    /// when the request arrives; the first answer waits `first_held`.
    async fn mount_put(&self, s: &Scene, name: &str, first_held: Option<Duration>) {
        let (issue, name_owned) = (self.clone(), name.to_owned());
        let make: Make = Box::new(move |_| {
            *issue.assignee.lock().expect("lock") = Some(name_owned.clone());
            ResponseTemplate::new(204)
        });
        Mock::given(method("PUT"))
            .and(path(format!("/rest/api/2/issue/{}/assignee", self.key)))
            .and(body_json(json!({ "name": name })))
            .respond_with(Answer::new(&s.jira, make).first_held(first_held))
            .mount(&s.server)
            .await;
    }

    /// Mounts `user/assignable/search` finding `name` for `email`; the first
    /// answer waits `first_held`.
    async fn mount_assignable(
        &self,
        s: &Scene,
        email: &str,
        name: &str,
        first_held: Option<Duration>,
    ) {
        let user = json!([{"name": name, "key": format!("JIRAUSER-{name}"),
            "emailAddress": email.to_lowercase(), "active": true}]);
        let make: Make = Box::new(move |_| ResponseTemplate::new(200).set_body_json(user.clone()));
        Mock::given(method("GET"))
            .and(path("/rest/api/2/user/assignable/search"))
            .and(query_param("issueKey", self.key.as_str()))
            .and(query_param("username", email))
            .respond_with(Answer::new(&s.jira, make).first_held(first_held))
            .mount(&s.server)
            .await;
    }
}

/// A `jirasync worker` process with its metrics listener; killed when dropped.
struct WorkerProcess {
    process: Process,
    port: u16,
}

impl WorkerProcess {
    fn start(settings: &jirasync::config::Settings) -> Self {
        let port = free_port();
        let listen = ("JIRASYNC_METRICS_LISTEN", format!("127.0.0.1:{port}"));
        Self {
            process: common::process("worker", settings, &[listen]),
            port,
        }
    }

    /// `kill -9`, and waits for it to be gone.
    fn kill(mut self) {
        self.process.kill().expect("kill -9 the worker");
        let _ = self.process.wait();
    }

    /// The value of the metric line that starts with `series` (its name and
    /// labels), when the worker answers and has it.
    async fn metric(&self, series: &str) -> Option<f64> {
        let url = format!("http://127.0.0.1:{}/metrics", self.port);
        let text = reqwest::get(url).await.ok()?.text().await.ok()?;
        text.lines()
            .filter(|line| line.starts_with(series))
            .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
            .reduce(f64::max)
    }
}

/// A scene whose workers the test starts as processes.
async fn scene() -> Scene {
    Scene::builder()
        .credentials(Some(ACCESS_TOKEN))
        .no_worker()
        .start()
        .await
}

/// An issue linked to a group of a new organization that pushes assignments,
/// and a teammate `email` (Jira user `name`) of it; (group, project, user).
async fn assignable(s: &Scene, issue: &JiraIssue, email: &str) -> (i64, i64, i64) {
    let org = s.seed().org(s.integration, true, &issue.key).await;
    s.forward_assignments(org.id).await;
    let user = s.seed().teammate(&org, email).await;
    (org.group_id, org.project_id, user)
}

/// The outcomes recorded about `key`, oldest first.
async fn outcomes(s: &Scene, key: &str) -> Vec<String> {
    s.outbound_events(key)
        .await
        .into_iter()
        .map(|(_, outcome, _)| outcome)
        .collect()
}

/// Starts a worker after the killed one and waits until it decides `key` with
/// `outcome`, in good time: the killed push's lock does not hold it up.
async fn restart_until(s: &Scene, key: &str, outcome: &str) -> WorkerProcess {
    let restarted = Instant::now();
    let worker = WorkerProcess::start(&s.settings);
    s.wait_outbound(key, outcome).await;
    assert!(
        restarted.elapsed() < Duration::from_secs(15),
        "the killed push's lock held the new one up: {outcome} {:?} after the restart",
        restarted.elapsed()
    );
    worker
}

/// Nothing waits on a lock (one the killed worker's transaction would still
/// hold) and nothing is dead-lettered; then the worker and the scene stop.
async fn finish_after_kill(s: Scene, worker: WorkerProcess) {
    let waiting = common::backends_waiting_on_locks(&s.db).await;
    assert_eq!(waiting, 0, "nothing waits on a lock");
    assert_eq!(s.dead_letters().await, 0, "nothing dead-lettered");
    worker.kill();
    s.finish().await;
}

#[tokio::test]
async fn a_worker_killed_after_reading_before_writing_leaves_the_push_to_the_next_worker() {
    let s = scene().await;
    let issue = JiraIssue::new("CRASH-1");
    let (group, project, user) = assignable(&s, &issue, "amy@example.org").await;
    issue.mount(&s, Duration::ZERO).await;
    // The first worker reads the issue, then waits for the user it is to assign.
    issue
        .mount_assignable(&s, "amy@example.org", "amy", Some(HELD))
        .await;
    issue.mount_put(&s, "amy", None).await;
    let first = WorkerProcess::start(&s.settings);

    s.host_assigns(group, project, user).await;
    eventually(
        "the first worker read the issue and asks Jira for the user",
        WAIT,
        || async {
            !s.requests_to("/rest/api/2/user/assignable/search")
                .await
                .is_empty()
        },
    )
    .await;
    first.kill();
    assert_eq!(
        s.requests_to("/rest/api/2/issue/CRASH-1").await.len(),
        1,
        "the killed worker read the issue once"
    );
    assert!(
        s.assignee_puts("CRASH-1").await.is_empty(),
        "killed before its write"
    );

    let second = restart_until(&s, "CRASH-1", "pushed").await;
    assert_eq!(s.assignee_puts("CRASH-1").await, [json!({"name": "amy"})]);
    assert_eq!(issue.assignee().as_deref(), Some("amy"));
    assert_eq!(outcomes(&s, "CRASH-1").await, ["pushed"]);
    finish_after_kill(s, second).await;
}

#[tokio::test]
async fn a_worker_killed_while_jira_takes_its_write_is_not_written_twice() {
    let s = scene().await;
    let issue = JiraIssue::new("CRASH-2");
    let (group, project, user) = assignable(&s, &issue, "bo@example.org").await;
    issue.mount(&s, Duration::ZERO).await;
    issue
        .mount_assignable(&s, "bo@example.org", "bo", None)
        .await;
    // Jira assigns at once but answers the first PUT too late for its worker.
    issue.mount_put(&s, "bo", Some(HELD)).await;
    let first = WorkerProcess::start(&s.settings);

    s.host_assigns(group, project, user).await;
    eventually("Jira took the first worker's write", WAIT, || async {
        !s.assignee_puts("CRASH-2").await.is_empty()
    })
    .await;
    first.kill();
    assert_eq!(issue.assignee().as_deref(), Some("bo"), "Jira took it");
    assert!(
        outcomes(&s, "CRASH-2").await.is_empty(),
        "the killed worker recorded nothing"
    );

    let second = restart_until(&s, "CRASH-2", "unchanged").await;
    assert_eq!(
        s.requests_to("/rest/api/2/issue/CRASH-2").await.len(),
        2,
        "each worker read the issue before deciding"
    );
    assert_eq!(
        s.assignee_puts("CRASH-2").await,
        [json!({"name": "bo"})],
        "written once: the new worker found Jira assigned already"
    );
    assert_eq!(issue.assignee().as_deref(), Some("bo"));
    assert_eq!(outcomes(&s, "CRASH-2").await, ["unchanged"]);
    finish_after_kill(s, second).await;
}

/// The `LISTEN` of a worker's relay, in `pg_stat_activity`.
const LISTENING: &str = "SELECT count(*) FROM pg_stat_activity
  WHERE datname = current_database() AND query = 'LISTEN jirasync_outbound'";

#[tokio::test]
async fn postgres_stopped_and_started_while_pushes_wait_loses_none_and_dead_letters_none() {
    // Declared first, dropped last: after the scene removed its database.
    let pg = PrivatePg::start().await;
    let url = pg.url();
    let mut s = Scene::builder()
        .credentials(Some(ACCESS_TOKEN))
        .no_worker()
        .configure(move |settings| {
            settings.database.url = format!("{url}/{}", settings.broker.queue_prefix);
        })
        .start()
        .await;
    let mut issues = Vec::new();
    for n in 1..=4 {
        let issue = JiraIssue::new(&format!("PGR-{n}"));
        let email = format!("u{n}@example.org");
        let seeded = assignable(&s, &issue, &email).await;
        // The first two are read slowly: their pushes are in flight when Postgres stops.
        let read = if n <= 2 {
            Duration::from_secs(2)
        } else {
            Duration::ZERO
        };
        issue.mount(&s, read).await;
        issue
            .mount_assignable(&s, &email, &format!("u{n}"), None)
            .await;
        issue.mount_put(&s, &format!("u{n}"), None).await;
        issues.push((issue, seeded));
    }
    let worker = WorkerProcess::start(&s.settings);
    eventually("the worker's relay listens", WAIT, || async {
        s.db.query_one(LISTENING, &[])
            .await
            .is_ok_and(|row| row.get::<_, i64>(0) == 1)
    })
    .await;

    for (_, (group, project, user)) in &issues[..2] {
        s.host_assigns(*group, *project, *user).await;
    }
    eventually("the first two pushes read their issues", WAIT, || async {
        !s.requests_to("/rest/api/2/issue/PGR-1").await.is_empty()
            && !s.requests_to("/rest/api/2/issue/PGR-2").await.is_empty()
    })
    .await;
    let (_, (group, project, user)) = &issues[2];
    s.host_assigns(*group, *project, *user).await;
    pg.stop().await;
    eventually("the worker sees Postgres down", WAIT, || async {
        worker.metric("jirasync_database_available").await == Some(0.0)
    })
    .await;
    // Held down a while: the in-flight pushes' reads come back meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg.start_again().await;

    // The test's own connection died with the server, like the worker's did.
    s.db = common::db(&s.settings).await;
    eventually("the relay listens again", WAIT, || async {
        s.db.query_one(LISTENING, &[])
            .await
            .is_ok_and(|row| row.get::<_, i64>(0) == 1)
    })
    .await;
    let (_, (group, project, user)) = &issues[3];
    s.host_assigns(*group, *project, *user).await;

    for (n, (issue, _)) in issues.iter().enumerate() {
        let name = format!("u{}", n + 1);
        eventually(&format!("{} is decided", issue.key), WAIT, || async {
            outcomes(&s, &issue.key)
                .await
                .iter()
                .any(|o| o == "pushed" || o == "unchanged")
        })
        .await;
        assert_eq!(issue.assignee(), Some(name.clone()), "{}", issue.key);
        assert_eq!(
            s.assignee_puts(&issue.key).await,
            [json!({ "name": name })],
            "{} written once",
            issue.key
        );
        let outcomes = outcomes(&s, &issue.key).await;
        assert!(
            outcomes.iter().all(|o| o == "pushed" || o == "unchanged"),
            "{}: {outcomes:?}",
            issue.key
        );
    }
    let pending: i64 =
        s.db.query_one("SELECT count(*) FROM outbound_pending", &[])
            .await
            .expect("pending")
            .get(0);
    assert_eq!(pending, 0, "no push left pending");
    assert_eq!(s.dead_letters().await, 0, "nothing dead-lettered");
    let outbound = r#"jirasync_messages_total{type="jira_server.outbound""#;
    for outcome in ["dead_lettered", "retried"] {
        let series = format!(r#"{outbound},outcome="{outcome}"}}"#);
        assert_eq!(
            worker.metric(&series).await,
            None,
            "no push {outcome} because of the outage"
        );
    }
    worker.kill();
    s.finish().await;
    drop(pg);
}

#[tokio::test]
async fn a_change_committed_while_no_process_runs_is_pushed_and_the_backlog_empties() {
    let s = scene().await;
    let issue = JiraIssue::new("CRASH-3");
    let (group, project, user) = assignable(&s, &issue, "cy@example.org").await;
    // Read slowly: the backlog counts the push a while before it is decided.
    issue.mount(&s, Duration::from_secs(2)).await;
    issue
        .mount_assignable(&s, "cy@example.org", "cy", None)
        .await;
    issue.mount_put(&s, "cy", None).await;

    s.host_assigns(group, project, user).await;
    let captured: i64 =
        s.db.query_one("SELECT count(*) FROM outbound_changes", &[])
            .await
            .expect("captured changes")
            .get(0);
    assert_eq!(captured, 1, "captured while no jirasync process runs");

    let worker = WorkerProcess::start(&s.settings);
    eventually(
        "the backlog gauge counts the waiting push",
        WAIT,
        || async { worker.metric("jirasync_outbound_backlog").await == Some(1.0) },
    )
    .await;
    s.wait_outbound("CRASH-3", "pushed").await;
    assert_eq!(s.assignee_puts("CRASH-3").await, [json!({"name": "cy"})]);
    assert_eq!(issue.assignee().as_deref(), Some("cy"));
    eventually("the backlog gauge falls to 0", WAIT, || async {
        worker.metric("jirasync_outbound_backlog").await == Some(0.0)
    })
    .await;
    worker.kill();
    s.finish().await;
}
