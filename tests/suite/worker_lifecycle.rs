//! The worker's life: graceful shutdown, broker outages, and the whole path from
//! an HTTP POST through the ingress to the assignment.

use crate::common;

use std::time::Duration;

use common::proxy::Proxy;
use common::seed::{self, SECRET, Seed, assignee_changed, jira_user};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);
const T1: &str = "2024-01-01T10:00:00.000+0000";

#[tokio::test]
async fn the_fixture_posted_to_the_ingress_assigns_the_linked_group() {
    let settings = common::migrated().await;
    let db = common::db(&settings).await;
    let seed = Seed { db: &db };
    let (integration, external_id) = seed.integration(json!({})).await;
    let org = seed.org(integration, true, "DEMO-1").await;
    let jane = seed.teammate(&org, "jane@example.org").await;
    let ingress = common::spawn_ingress(&settings, true).await;
    let worker = common::spawn_worker(&settings);

    let body = std::fs::read("tests/fixtures/issue_updated.json").expect("fixture");
    let token = seed::token(&external_id, SECRET);
    let response = reqwest::Client::new()
        .post(ingress.url(&common::webhook_path(&token)))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 202);
    common::eventually("DEMO-1's group is assigned to Jane", WAIT, || {
        let db = &db;
        async move { common::assignee(db, org.group_id).await == Some(jane) }
    })
    .await;
    worker.stop().await;
    ingress.stop().await;
}

/// A worker (concurrency 1) whose only message waits on a row lock the test holds.
struct Blocked {
    db: tokio_postgres::Client,
    group: i64,
    user: i64,
    worker: common::Worker,
    locker: tokio_postgres::Client,
    _connection: lapin::Connection,
    channel: lapin::Channel,
    settings: common::Isolated,
}

async fn blocked_worker(key: &str, drain: Duration) -> Blocked {
    let mut settings = common::migrated().await;
    settings.worker.concurrency = 1;
    let db = common::db(&settings).await;
    let seed = Seed { db: &db };
    let (integration, external_id) = seed.integration(json!({})).await;
    let org = seed.org(integration, true, key).await;
    let user = seed.teammate(&org, "x@example.org").await;
    let worker = common::spawn_worker_draining(&settings, drain);
    let (connection, channel) = common::amqp().await;

    // Hold the issue's row lock so the worker blocks inside the message.
    let locker = common::db(&settings).await;
    locker
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM external_issues WHERE id = {} FOR UPDATE",
            org.external_issue_id
        ))
        .await
        .expect("lock");
    let token = seed::token(&external_id, SECRET);
    let body = assignee_changed(key, jira_user("x@example.org"), T1).to_string();
    common::publish_webhook(&channel, &settings, &token, body.as_bytes(), None).await;
    common::eventually("the worker is blocked on the row lock", WAIT, || {
        let db = &db;
        async move { common::a_backend_waits_on_a_lock(db).await }
    })
    .await;
    Blocked {
        settings,
        db,
        group: org.group_id,
        user,
        worker,
        locker,
        _connection: connection,
        channel,
    }
}

async fn release(locker: &tokio_postgres::Client) {
    locker
        .batch_execute("ROLLBACK")
        .await
        .expect("release the lock");
}

#[tokio::test]
async fn shutdown_finishes_in_flight_messages_within_the_deadline() {
    let b = blocked_worker("LIFE-1", Duration::from_secs(15)).await;
    b.worker.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !b.worker.is_finished(),
        "the worker waits for its in-flight message"
    );
    release(&b.locker).await;
    tokio::time::timeout(WAIT, b.worker.join())
        .await
        .expect("the worker stops once the message is done")
        .expect("no panic")
        .expect("clean exit");
    assert_eq!(
        common::assignee(&b.db, b.group).await,
        Some(b.user),
        "the in-flight message was applied"
    );
    assert_eq!(
        common::depth(&b.channel, &common::names(&b.settings).webhooks()).await,
        0,
        "and acked"
    );
}

#[tokio::test]
async fn messages_unfinished_at_the_deadline_are_left_for_redelivery() {
    let b = blocked_worker("LIFE-2", Duration::from_millis(500)).await;
    b.worker.shutdown.cancel();
    tokio::time::timeout(WAIT, b.worker.join())
        .await
        .expect("the worker gives up after the deadline")
        .expect("no panic")
        .expect("clean exit");
    release(&b.locker).await;

    let second = common::spawn_worker(&b.settings);
    common::eventually("the redelivered message is applied", WAIT, || {
        let db = &b.db;
        async move { common::assignee(db, b.group).await == Some(b.user) }
    })
    .await;
    second.stop().await;
    assert_eq!(
        common::activities(&b.db, b.group).await.len(),
        1,
        "applied once"
    );
    assert_eq!(
        common::depth(&b.channel, &common::names(&b.settings).dead()).await,
        0
    );
}

#[tokio::test]
async fn the_worker_reconnects_after_losing_the_broker() {
    let mut settings = common::migrated().await;
    let db = common::db(&settings).await;
    let seed = Seed { db: &db };
    let (integration, external_id) = seed.integration(json!({})).await;
    let org = seed.org(integration, true, "LIFE-3").await;
    let user = seed.teammate(&org, "x@example.org").await;
    let proxy = Proxy::start("127.0.0.1:5672".parse().expect("address")).await;
    let direct = settings.clone();
    settings.broker.url = proxy.amqp_url();
    let worker = common::spawn_worker(&settings);
    let (_connection, channel) = common::amqp().await;
    // The worker is up once it consumes.
    common::eventually("the worker consumes", WAIT, || {
        let channel = &channel;
        let queue = common::names(&direct).webhooks();
        async move {
            channel
                .queue_declare(
                    queue.as_str().into(),
                    lapin::options::QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    Default::default(),
                )
                .await
                .map(|q| q.consumer_count() > 0)
                .unwrap_or(false)
        }
    })
    .await;

    proxy.cut();
    let token = seed::token(&external_id, SECRET);
    let body = assignee_changed("LIFE-3", jira_user("x@example.org"), T1).to_string();
    common::publish_webhook(&channel, &direct, &token, body.as_bytes(), None).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        common::assignee(&db, org.group_id).await,
        None,
        "nothing applied while cut off"
    );
    proxy.restore();
    common::eventually("applied after the worker reconnected", WAIT, || {
        let db = &db;
        async move { common::assignee(db, org.group_id).await == Some(user) }
    })
    .await;
    worker.stop().await;
}

#[tokio::test]
async fn a_worker_with_a_metrics_address_serves_health_and_metrics() {
    let mut settings = common::migrated().await;
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = free.local_addr().expect("address");
    drop(free);
    settings.metrics.listen = Some(address);
    let worker = common::spawn_worker(&settings);
    let client = reqwest::Client::new();
    common::eventually("the worker is ready", WAIT, || {
        let request = client.get(format!("http://{address}/readyz")).send();
        async move { matches!(request.await, Ok(r) if r.status() == 200) }
    })
    .await;
    let health = client
        .get(format!("http://{address}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let metrics = client
        .get(format!("http://{address}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("jirasync_broker_connected"), "{metrics}");
    worker.stop().await;
}

/// The line a `jirasync worker` process logs once it consumes, started with
/// `extra` variables: it names how many threads its runtime has.
async fn consuming_line(extra: &[(&str, String)]) -> String {
    let settings = common::migrated().await;
    let log = std::env::temp_dir().join(format!("jst-threads-{}.log", common::unique()));
    let mut variables = vec![("RUST_LOG", "info".to_owned())];
    variables.extend(extra.iter().cloned());
    let _worker = common::process_logged("worker", &settings, &variables, &log);
    let consuming = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .find(|line| line.contains("worker consuming"))
            .map(str::to_owned)
    };
    common::eventually("the worker consumes", WAIT, || {
        let found = consuming().is_some();
        async move { found }
    })
    .await;
    let line = consuming().unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    line
}

#[tokio::test]
async fn a_worker_process_runs_on_one_runtime_thread_unless_its_setting_says_more() {
    let default = consuming_line(&[]).await;
    assert!(default.contains("threads=1"), "{default}");
    let three = consuming_line(&[("JIRASYNC_WORKER_THREADS", "3".to_owned())]).await;
    assert!(three.contains("threads=3"), "{three}");
}
