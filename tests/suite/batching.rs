//! Batched commits (docs/reference.md §5.12): webhooks ready together share one
//! transaction. The tests hold every issue row locked while the webhooks arrive,
//! so the worker's writers block on their first webhooks (two writers: all but two
//! at most are then in a writer's batch or waiting for one); once the lock is
//! released, they go in batches. A batch shows in the audit trail: its decisions
//! share the transaction's start time (`created_at`). The last test holds the
//! integrations instead, to see how many connections the lookups take.

use std::time::Duration;

use serde_json::Value;

use crate::common;
use common::app::{TestApp, WAIT};
use common::proxy::Proxy;
use common::seed::{assignee_changed, jira_user};

/// Webhooks in flight in the tests' workers: all of a test's webhooks at once.
const CONCURRENCY: u16 = 64;

/// A seeded issue: its key, its group, and the teammate its webhook assigns.
pub struct Issue {
    pub key: String,
    pub group: i64,
    pub user: i64,
    pub email: String,
}

/// A test app whose worker the test starts.
async fn app() -> TestApp {
    app_with(|_| {}).await
}

/// As [`app`], with `configure` applied to the settings.
async fn app_with(
    configure: impl FnOnce(&mut jirasync::config::Settings) + Send + 'static,
) -> TestApp {
    TestApp::builder()
        .concurrency(CONCURRENCY)
        .no_worker()
        .configure(configure)
        .start()
        .await
}

/// Issues `<PREFIX>-<i>`, each in an organization of its own with a teammate
/// `<prefix><i>@acme.io`.
pub async fn issues(app: &TestApp, prefix: &str, count: usize) -> Vec<Issue> {
    let mut issues = Vec::new();
    for i in 0..count {
        let key = format!("{prefix}-{i}");
        let org = app.seed().org(app.integration, true, &key).await;
        let email = format!("{}{i}@acme.io", prefix.to_lowercase());
        let user = app.seed().teammate(&org, &email).await;
        issues.push(Issue {
            key,
            group: org.group_id,
            user,
            email,
        });
    }
    issues
}

/// The webhook that assigns `issue` to its teammate.
fn assignment(issue: &Issue) -> Value {
    assignee_changed(&issue.key, jira_user(&issue.email), common::app::T1)
}

/// A worker process at [`CONCURRENCY`], its metrics on `port`.
fn worker(app: &TestApp, port: u16) -> common::Process {
    common::process(
        "worker",
        &app.settings,
        &[
            ("JIRASYNC_WORKER_CONCURRENCY", CONCURRENCY.to_string()),
            ("JIRASYNC_METRICS_LISTEN", format!("127.0.0.1:{port}")),
        ],
    )
}

/// Holds every `external_issues` row locked until dropped or [`Held::release`]d.
pub struct Held(tokio_postgres::Client);

impl Held {
    pub async fn rows(app: &TestApp) -> Self {
        let db = common::db(&app.settings).await;
        db.batch_execute("BEGIN; SELECT id FROM external_issues FOR UPDATE")
            .await
            .expect("lock every issue row");
        Self(db)
    }

    /// Waits until every webhook was delivered and a writer waits on the lock.
    pub async fn until_a_writer_waits(&self, app: &TestApp) {
        let queue = common::names(&app.settings).webhooks();
        common::eventually(
            "every webhook is delivered and a writer waits on the lock",
            WAIT,
            || async {
                common::depth(&app.channel, &queue).await == 0
                    && common::a_backend_waits_on_a_lock(&app.db).await
            },
        )
        .await;
    }

    pub async fn release(self) {
        self.0
            .batch_execute("COMMIT")
            .await
            .expect("release the rows");
    }
}

/// The issue's assignee decisions in the order they were written: (message id,
/// event time, outcome, transaction start).
async fn decisions(app: &TestApp, key: &str) -> Vec<(String, String, String, String)> {
    app.db
        .query(
            "SELECT message_id, event_time::text, outcome, created_at::text FROM sync_events
              WHERE issue_key = $1 AND kind = 'assignee' ORDER BY id",
            &[&key],
        )
        .await
        .expect("sync_events")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

/// How many decisions share a transaction with another one.
fn batched<T>(decisions: &[T], started: impl Fn(&T) -> &str) -> usize {
    decisions
        .iter()
        .filter(|d| {
            decisions
                .iter()
                .filter(|o| started(o) == started(d))
                .count()
                > 1
        })
        .count()
}

#[tokio::test]
async fn webhooks_of_one_issue_in_one_batch_apply_in_turn_under_the_ordering_guard() {
    let app = app().await;
    let org = app.seed().org(app.integration, true, "BAT-1").await;
    let mut users = Vec::new();
    for u in 0..3 {
        users.push(app.seed().teammate(&org, &format!("bat{u}@acme.io")).await);
    }
    let held = Held::rows(&app).await;
    // 24 changes of one issue, sent in a shuffled order of their event times.
    let order = [
        5, 17, 0, 22, 9, 13, 3, 20, 11, 1, 16, 7, 23, 4, 19, 10, 14, 2, 21, 8, 15, 6, 18, 12,
    ];
    for &n in &order {
        let email = format!("bat{}@acme.io", n % 3);
        let at = format!("2024-01-01T10:{n:02}:00.000+0000");
        app.send(&assignee_changed("BAT-1", jira_user(&email), &at))
            .await;
    }
    let worker = common::spawn_worker(&app.settings);
    held.until_a_writer_waits(&app).await;
    held.release().await;
    // The newest change (10:23) wins.
    app.wait_assignee(org.group_id, Some(users[23 % 3])).await;
    common::eventually("every change is decided", WAIT, || async {
        decisions(&app, "BAT-1").await.len() == order.len()
    })
    .await;
    let decided = decisions(&app, "BAT-1").await;
    assert!(
        batched(&decided, |d| &d.3) >= 2,
        "some changes shared a transaction: {decided:#?}"
    );
    // In the order they were written, a change older than one applied before it
    // is stale, and any other is not — within a transaction as across them.
    let mut newest: Option<&str> = None;
    for (message, at, outcome, _) in &decided {
        let older = newest.is_some_and(|newest| at.as_str() < newest);
        assert_eq!(
            outcome == "stale",
            older,
            "{message} at {at} after {newest:?}: {outcome}; all: {decided:#?}"
        );
        if !older {
            newest = Some(at);
        }
    }
    assert_eq!(common::doubled_activities(&app.db).await, 0);
    assert_eq!(app.dead_letters().await, 0);
    // Stopped before the teardown, or it could declare its queues anew.
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_poison_webhook_in_a_batch_is_dead_lettered_alone() {
    let app = app().await;
    let port = common::private_pg::free_port();
    let good = issues(&app, "POI", 20).await;
    let held = Held::rows(&app).await;
    for (i, issue) in good.iter().enumerate() {
        let webhook = assignment(issue);
        app.send(&webhook).await;
        if i % 5 == 4 {
            // A key Postgres refuses (a NUL byte): its first statement fails.
            let mut poison = webhook;
            poison["issue"]["key"] = "POI-\u{0}".into();
            app.send(&poison).await;
        }
    }
    let worker = worker(&app, port);
    held.until_a_writer_waits(&app).await;
    held.release().await;
    for issue in &good {
        app.wait_assignee(issue.group, Some(issue.user)).await;
    }
    common::eventually(
        "the four poison webhooks are dead-lettered",
        WAIT,
        || async { app.dead_letters().await == 4 },
    )
    .await;
    let dead = common::names(&app.settings).dead();
    for _ in 0..4 {
        let letter = common::get_one(&app.channel, &dead, Duration::from_secs(5))
            .await
            .expect("a dead letter");
        let error = jirasync::queue::message::header_str(
            &letter.delivery.properties,
            jirasync::queue::message::ERROR,
        )
        .unwrap_or_default();
        assert!(error.contains("database error 22021"), "{error}");
        let body: Value = serde_json::from_slice(&letter.delivery.data).expect("json");
        assert_eq!(body["issue"]["key"], "POI-\u{0}");
    }
    let fallbacks = common::metric_sample(port, "jirasync_webhook_batch_fallbacks_total")
        .await
        .unwrap_or(0.0);
    assert!(
        fallbacks >= 1.0,
        "a batch with a poison webhook fell back to one by one"
    );
    assert_eq!(common::doubled_activities(&app.db).await, 0);
    // Killed before the teardown, or it could declare its queues anew.
    drop(worker);
    app.finish().await;
}

#[tokio::test]
async fn a_worker_killed_between_its_commit_and_its_acks_loses_nothing_and_writes_nothing_twice() {
    let app = app().await;
    let issues = issues(&app, "ACK", 12).await;
    let held = Held::rows(&app).await;
    for issue in &issues {
        app.send(&assignment(issue)).await;
    }
    let proxy = Proxy::start("127.0.0.1:5672".parse().expect("address")).await;
    let mut via_proxy = (*app.settings).clone();
    via_proxy.broker.url = proxy.amqp_url();
    let concurrency = [("JIRASYNC_WORKER_CONCURRENCY", CONCURRENCY.to_string())];
    let mut first = common::process("worker", &via_proxy, &concurrency);
    held.until_a_writer_waits(&app).await;
    // The broker hears nothing more from the worker: its acks wait in the proxy.
    proxy.freeze();
    held.release().await;
    for issue in &issues {
        app.wait_assignee(issue.group, Some(issue.user)).await;
    }
    let mut committed = Vec::new();
    for issue in &issues {
        committed.extend(decisions(&app, &issue.key).await);
    }
    assert_eq!(committed.len(), issues.len(), "one decision each");
    assert!(
        batched(&committed, |d| &d.3) >= 2,
        "some were committed together: {committed:#?}"
    );
    first.kill().expect("kill -9 the worker");
    let _ = first.wait();
    proxy.cut();
    // Unacked, so redelivered: a second worker applies them again, as no-ops.
    let second = common::process("worker", &app.settings, &concurrency);
    for Issue { key, .. } in &issues {
        common::eventually(&format!("{key} is applied again"), WAIT, || async {
            decisions(&app, key).await.len() == 2
        })
        .await;
        let decided = decisions(&app, key).await;
        assert_eq!(decided[0].0, decided[1].0, "the same message, redelivered");
        assert_eq!(
            (decided[0].2.as_str(), decided[1].2.as_str()),
            ("assigned", "unchanged")
        );
    }
    for issue in &issues {
        let activities = app.activities(issue.group).await;
        assert_eq!(activities.len(), 1, "assigned once: {activities:?}");
    }
    assert_eq!(app.dead_letters().await, 0);
    // Killed before the teardown, or it could declare its queues anew.
    drop(second);
    app.finish().await;
}

#[tokio::test]
async fn with_a_batch_size_of_one_every_webhook_has_a_transaction_of_its_own() {
    let app = app_with(|settings| settings.worker.batch_size = 1).await;
    let issues = issues(&app, "ONE", 12).await;
    let held = Held::rows(&app).await;
    for issue in &issues {
        app.send(&assignment(issue)).await;
    }
    let worker = common::spawn_worker(&app.settings);
    held.until_a_writer_waits(&app).await;
    held.release().await;
    for issue in &issues {
        app.wait_assignee(issue.group, Some(issue.user)).await;
    }
    let mut decided = Vec::new();
    for issue in &issues {
        decided.extend(decisions(&app, &issue.key).await);
    }
    assert_eq!(decided.len(), issues.len());
    assert_eq!(batched(&decided, |d| &d.3), 0, "{decided:#?}");
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_worker_with_many_messages_in_flight_opens_at_most_twenty_nine_connections() {
    let app = app().await;
    // 40 integrations: their lookups cannot share a query.
    let mut tokens = Vec::new();
    for _ in 0..40 {
        let (_, external_id) = app.seed().integration(serde_json::json!({})).await;
        tokens.push(common::seed::token(&external_id, common::seed::SECRET));
    }
    // Every lookup waits, holding its connection, while the table is locked.
    let locker = common::db(&app.settings).await;
    locker
        .batch_execute("BEGIN; LOCK TABLE integrations IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock the integrations");
    let body = assignee_changed("NONE-1", jira_user("none@acme.io"), common::app::T1).to_string();
    for token in &tokens {
        app.send_with(token, body.as_bytes(), None).await;
    }
    let worker = common::spawn_worker(&app.settings);
    let queue = common::names(&app.settings).webhooks();
    common::eventually(
        "every webhook is delivered and 16 lookups wait",
        WAIT,
        || async {
            common::depth(&app.channel, &queue).await == 0
                && common::backends_waiting_on_locks(&app.db).await >= 16
        },
    )
    .await;
    // 16 for what messages read, 2 writers, 1 for the periodic tasks, 8 for pushes
    // to Jira, 2 for the outbound relay (its moves and publishes, and its LISTEN).
    let opened = || async {
        let row = app
            .db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND application_name = 'jirasync'",
                &[],
            )
            .await
            .expect("pg_stat_activity");
        row.get::<_, i64>(0)
    };
    let watched = std::time::Instant::now();
    while watched.elapsed() < Duration::from_secs(1) {
        let opened = opened().await;
        assert!(opened <= 29, "{opened} connections");
        tokio::task::yield_now().await;
    }
    locker.batch_execute("COMMIT").await.expect("unlock");
    worker.stop().await;
    app.finish().await;
}

/// One writer takes the batches while they end quickly; a batch stuck on a row
/// another transaction holds holds up no other webhook: once the first writer
/// has been busy with it for `sync::batch::STUCK`, a relief writer takes what
/// waits, so another issue's webhook is applied while the stuck batch still waits.
#[tokio::test]
async fn a_batch_stuck_on_a_held_row_holds_up_no_other_webhook() {
    let app = app().await;
    let port = common::private_pg::free_port();
    let seeded = issues(&app, "STK", 2).await;
    let (stuck, free) = (&seeded[0], &seeded[1]);
    let holder = common::db(&app.settings).await;
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT id FROM external_issues WHERE key = '{}' FOR UPDATE",
            stuck.key
        ))
        .await
        .expect("hold the stuck issue's row");
    let worker = worker(&app, port);
    app.send(&assignment(stuck)).await;
    common::eventually("a writer waits on the held row", WAIT, || async {
        common::a_backend_waits_on_a_lock(&app.db).await
    })
    .await;
    app.send(&assignment(free)).await;
    app.wait_assignee(free.group, Some(free.user)).await;
    assert_eq!(
        app.assignee(stuck.group).await,
        None,
        "the stuck issue waits for its row"
    );
    assert!(
        common::metric_sample(port, "jirasync_webhook_batch_reliefs_total")
            .await
            .is_some_and(|reliefs| reliefs >= 1.0),
        "a relief writer took the other webhook"
    );
    holder
        .batch_execute("COMMIT")
        .await
        .expect("release the row");
    app.wait_assignee(stuck.group, Some(stuck.user)).await;
    drop(worker);
    app.finish().await;
}

/// How many of `queue`'s messages are delivered and not yet acked, as RabbitMQ
/// tells it (`rabbitmqctl list_queues`).
async fn unacked(queue: String) -> u64 {
    common::rabbitmqctl_rows("list_queues", ["name", "messages_unacknowledged"])
        .await
        .into_iter()
        .find(|(name, _)| *name == queue)
        .and_then(|(_, count)| count.parse().ok())
        .unwrap_or(u64::MAX)
}

#[tokio::test]
async fn webhooks_committed_together_are_acked_together_and_none_stays_unacked() {
    let app = app().await;
    let port = common::private_pg::free_port();
    let issues = issues(&app, "ACKS", 48).await;
    let held = Held::rows(&app).await;
    for issue in &issues {
        app.send(&assignment(issue)).await;
    }
    let worker = worker(&app, port);
    held.until_a_writer_waits(&app).await;
    held.release().await;
    for issue in &issues {
        app.wait_assignee(issue.group, Some(issue.user)).await;
    }
    let webhooks = common::names(&app.settings).webhooks();
    common::eventually("every webhook is acked", WAIT, || {
        let webhooks = webhooks.clone();
        async move { unacked(webhooks).await == 0 }
    })
    .await;
    let frames = common::metric_sample(port, "jirasync_worker_ack_frames_total")
        .await
        .unwrap_or(0.0);
    // Batches of up to 32 committed at once: fewer frames than webhooks (a few
    // on a quiet machine; how many the tasks of one commit note before the
    // acker runs depends on the scheduling).
    assert!(
        (1.0..48.0).contains(&frames),
        "48 webhooks acked in {frames} frames"
    );
    assert_eq!(common::depth(&app.channel, &webhooks).await, 0);
    assert_eq!(common::doubled_activities(&app.db).await, 0);
    drop(worker);
    app.finish().await;
}
