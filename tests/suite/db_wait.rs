//! Postgres outages longer than the retry schedule (docs/reference.md §5.8):
//! a real `jirasync worker` process against the real RabbitMQ and Postgres, the
//! test's own database made to refuse connections (its open ones ended) for
//! longer than every retry tier together. Nothing is dead-lettered, no tier is
//! used, the worker takes no more messages than it holds, and everything is
//! applied once Postgres is back. A worker started during an outage waits.

use std::time::Duration;

use crate::common::app::{T1, WAIT};
use crate::common::private_pg::free_port;
use crate::common::seed::{Org, assignee_changed, jira_user};
use crate::common::{self, Process, TestApp};

/// Longer than the in-process tries and both tiers of the test's schedule.
const OUTAGE: Duration = Duration::from_secs(3);
/// Webhooks during the outage; more than the worker's concurrency.
const SENT: usize = 5;

/// An app with a retry schedule of 200 ms and 400 ms, and no worker of its own.
async fn app() -> TestApp {
    TestApp::builder()
        .no_worker()
        .configure(|settings| {
            settings.retries.delays = "200ms,400ms".parse().expect("delays");
        })
        .start()
        .await
}

/// `jirasync worker` with 2 tasks and its metrics on a port of its own.
fn worker(app: &TestApp) -> (Process, String) {
    let port = free_port();
    let extra = [
        ("JIRASYNC_METRICS_LISTEN", format!("127.0.0.1:{port}")),
        ("JIRASYNC_WORKER_CONCURRENCY", "2".to_owned()),
    ];
    let process = common::process("worker", &app.settings, &extra);
    (process, format!("http://127.0.0.1:{port}"))
}

/// [`worker`], once it consumes.
async fn consuming_worker(app: &TestApp) -> (Process, String) {
    let (process, base) = worker(app);
    common::eventually("the worker consumes", WAIT, || async {
        get(&format!("{base}/readyz"))
            .await
            .is_some_and(|(status, _)| status == 200)
    })
    .await;
    (process, base)
}

async fn get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::get(url).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.unwrap_or_default()))
}

/// The value of metric `name` with `labels` (each `key="value"`), 0 when absent.
async fn metric(base: &str, name: &str, labels: &[&str]) -> f64 {
    let (_, text) = get(&format!("{base}/metrics")).await.unwrap_or_default();
    text.lines()
        .find(|l| {
            l.split(['{', ' ']).next() == Some(name) && labels.iter().all(|label| l.contains(label))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

/// One organization with an issue and the user a webhook assigns it to.
struct Case {
    org: Org,
    user: i64,
    key: String,
    email: String,
}

impl Case {
    async fn send(&self, app: &TestApp) {
        app.send(&assignee_changed(&self.key, jira_user(&self.email), T1))
            .await;
    }

    /// Waits until the group is assigned, on a connection of its own (the
    /// outage ended the app's).
    async fn wait_applied(&self, app: &TestApp) {
        let db = common::db(&app.settings).await;
        let (group, user) = (self.org.group_id, Some(self.user));
        common::eventually(&format!("{} is applied", self.key), WAIT, || {
            let db = &db;
            async move { common::assignee(db, group).await == user }
        })
        .await;
    }
}

/// `SENT` cases.
async fn cases(app: &TestApp, prefix: &str) -> Vec<Case> {
    let mut cases = Vec::with_capacity(SENT);
    for n in 0..SENT {
        let key = format!("{prefix}-{n}");
        let org = app.seed().org(app.integration, true, &key).await;
        let email = format!("{prefix}{n}@example.org").to_lowercase();
        let user = app.seed().teammate(&org, &email).await;
        cases.push(Case {
            org,
            user,
            key,
            email,
        });
    }
    cases
}

#[tokio::test]
async fn an_outage_longer_than_the_retry_schedule_dead_letters_nothing() {
    let app = app().await;
    let cases = cases(&app, "OUT").await;
    let (mut process, base) = consuming_worker(&app).await;

    common::allow_connections(&app.settings, false).await;
    for case in &cases {
        case.send(&app).await;
    }
    common::eventually("the worker notices the outage", WAIT, || async {
        metric(&base, "jirasync_database_available", &[]).await == 0.0
    })
    .await;
    tokio::time::sleep(OUTAGE).await;
    let names = common::names(&app.settings);
    let waiting = common::depth(&app.channel, &names.webhooks()).await;
    assert!(process.is_running(), "the worker lives through the outage");
    assert!(
        usize::try_from(waiting).expect("fits") >= SENT - 2,
        "no more taken than its 2 tasks hold: {waiting} still queued"
    );
    for delay in ["200ms", "400ms"] {
        let tier = names.retry(
            &names.webhooks(),
            jirasync::config::parse_duration(delay).expect("delay"),
        );
        assert_eq!(common::depth(&app.channel, &tier).await, 0, "no tier used");
    }
    assert_eq!(app.dead_letters().await, 0);

    common::allow_connections(&app.settings, true).await;
    for case in &cases {
        case.wait_applied(&app).await;
    }
    assert_eq!(app.dead_letters().await, 0, "nothing dead-lettered");
    let retried = metric(&base, "jirasync_messages_total", &[r#"outcome="retried""#]).await;
    assert_eq!(retried, 0.0, "no retry tier");
    assert_eq!(metric(&base, "jirasync_database_available", &[]).await, 1.0);
}

#[tokio::test]
async fn a_worker_started_while_postgres_refuses_connections_waits_for_it() {
    let app = app().await;
    let cases = cases(&app, "LATE").await;
    common::allow_connections(&app.settings, false).await;
    let (mut process, base) = worker(&app);
    common::eventually("its health endpoint answers", WAIT, || async {
        get(&format!("{base}/healthz")).await.is_some()
    })
    .await;
    tokio::time::sleep(OUTAGE).await;
    assert!(process.is_running(), "it waits instead of exiting");

    common::allow_connections(&app.settings, true).await;
    cases[0].send(&app).await;
    cases[0].wait_applied(&app).await;
}

#[tokio::test]
async fn during_an_outage_the_worker_holds_no_more_messages_than_its_concurrency() {
    let app = app().await;
    let cases = cases(&app, "HOLD").await;
    let (_process, base) = consuming_worker(&app).await;

    common::allow_connections(&app.settings, false).await;
    for case in &cases {
        case.send(&app).await;
    }
    const JOBS: usize = 3;
    let job = jirasync::worker::jobs::Reconcile {
        integration_id: app.integration,
        since_ms: None,
    };
    let body = serde_json::to_vec(&job).expect("job body");
    for _ in 0..JOBS {
        let props = jirasync::queue::message::job_properties("jira_server.reconcile").1;
        common::publish(
            &app.channel,
            &app.settings,
            "jira_server.reconcile",
            &body,
            props,
        )
        .await;
    }
    common::eventually("the worker notices the outage", WAIT, || async {
        metric(&base, "jirasync_database_available", &[]).await == 0.0
    })
    .await;
    // Its 2 tasks hold one webhook and one job; the rest waits in the queues, ready
    // for another worker (before, each consumer's prefetch was the concurrency: 4 held).
    let names = common::names(&app.settings);
    let ready = || async {
        common::depth(&app.channel, &names.webhooks()).await
            + common::depth(&app.channel, &names.jobs()).await
    };
    let expected = u32::try_from(SENT + JOBS - 2).expect("fits");
    common::eventually("all but 2 messages stay ready", WAIT, || async {
        ready().await == expected
    })
    .await;
    tokio::time::sleep(OUTAGE).await;
    assert_eq!(ready().await, expected, "still no more taken");
    common::allow_connections(&app.settings, true).await;
    for case in &cases {
        case.wait_applied(&app).await;
    }
}
