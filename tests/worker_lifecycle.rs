//! The worker's life: graceful shutdown, broker outages, and the whole path from
//! an HTTP POST through the ingress to the assignment.

mod common;

use std::time::Duration;

use common::proxy::Proxy;
use common::seed::{self, SECRET, Seed, assignee_changed, jira_user};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);
const T1: &str = "2024-01-01T10:00:00.000+0000";

async fn assignee(db: &tokio_postgres::Client, group: i64) -> Option<i64> {
    db.query_opt(
        "SELECT user_id FROM group_assignees WHERE group_id = $1",
        &[&group],
    )
    .await
    .expect("group_assignees")
    .and_then(|row| row.get(0))
}

async fn activity_count(db: &tokio_postgres::Client, group: i64) -> i64 {
    db.query_one(
        "SELECT count(*) FROM activities WHERE group_id = $1",
        &[&group],
    )
    .await
    .expect("activities")
    .get(0)
}

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
        .post(ingress.url(&format!("/extensions/jira-server/issue-updated/{token}/")))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 202);
    common::eventually("DEMO-1's group is assigned to Jane", WAIT, || {
        let db = &db;
        async move { assignee(db, org.group_id).await == Some(jane) }
    })
    .await;
    worker.stop().await;
    ingress.stop().await;
    common::cleanup(&settings).await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_messages_within_the_deadline() {
    let mut settings = common::migrated().await;
    settings.worker_concurrency = 1;
    let db = common::db(&settings).await;
    let seed = Seed { db: &db };
    let (integration, external_id) = seed.integration(json!({})).await;
    let org = seed.org(integration, true, "LIFE-1").await;
    let user = seed.teammate(&org, "x@example.org").await;
    let worker = common::spawn_worker_draining(&settings, Duration::from_secs(15));
    let (_connection, channel) = common::amqp().await;

    // Hold the issue's row lock so the worker blocks inside the message.
    let mut locker = common::db(&settings).await;
    let lock = locker.transaction().await.expect("begin");
    lock.execute(
        "SELECT 1 FROM external_issues WHERE id = $1 FOR UPDATE",
        &[&org.external_issue_id],
    )
    .await
    .expect("lock");
    let token = seed::token(&external_id, SECRET);
    let body = assignee_changed("LIFE-1", jira_user("x@example.org"), T1).to_string();
    common::publish_webhook(&channel, &settings, &token, body.as_bytes(), None).await;
    common::eventually("the worker is blocked on the row lock", WAIT, || {
        let db = &db;
        async move {
            db.query_one("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'", &[])
                .await
                .expect("pg_stat_activity")
                .get::<_, i64>(0)
                > 0
        }
    })
    .await;

    worker.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !worker.task.is_finished(),
        "the worker waits for its in-flight message"
    );
    lock.rollback().await.expect("release the lock");
    tokio::time::timeout(WAIT, worker.task)
        .await
        .expect("the worker stops once the message is done")
        .expect("no panic")
        .expect("clean exit");
    assert_eq!(
        assignee(&db, org.group_id).await,
        Some(user),
        "the in-flight message was applied"
    );
    assert_eq!(
        common::depth(&channel, &common::names(&settings).webhooks()).await,
        0,
        "and acked"
    );
    common::cleanup(&settings).await;
}

#[tokio::test]
async fn messages_unfinished_at_the_deadline_are_left_for_redelivery() {
    let mut settings = common::migrated().await;
    settings.worker_concurrency = 1;
    let db = common::db(&settings).await;
    let seed = Seed { db: &db };
    let (integration, external_id) = seed.integration(json!({})).await;
    let org = seed.org(integration, true, "LIFE-2").await;
    let user = seed.teammate(&org, "x@example.org").await;
    let first = common::spawn_worker_draining(&settings, Duration::from_millis(500));
    let (_connection, channel) = common::amqp().await;

    let mut locker = common::db(&settings).await;
    let lock = locker.transaction().await.expect("begin");
    lock.execute(
        "SELECT 1 FROM external_issues WHERE id = $1 FOR UPDATE",
        &[&org.external_issue_id],
    )
    .await
    .expect("lock");
    let token = seed::token(&external_id, SECRET);
    let body = assignee_changed("LIFE-2", jira_user("x@example.org"), T1).to_string();
    common::publish_webhook(&channel, &settings, &token, body.as_bytes(), None).await;
    common::eventually("the worker is blocked on the row lock", WAIT, || {
        let db = &db;
        async move {
            db.query_one("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'", &[])
                .await
                .expect("pg_stat_activity")
                .get::<_, i64>(0)
                > 0
        }
    })
    .await;
    first.shutdown.cancel();
    tokio::time::timeout(WAIT, first.task)
        .await
        .expect("the worker gives up after the deadline")
        .expect("no panic")
        .expect("clean exit");
    lock.rollback().await.expect("release the lock");

    let second = common::spawn_worker(&settings);
    common::eventually("the redelivered message is applied", WAIT, || {
        let db = &db;
        async move { assignee(db, org.group_id).await == Some(user) }
    })
    .await;
    second.stop().await;
    assert_eq!(activity_count(&db, org.group_id).await, 1, "applied once");
    assert_eq!(
        common::depth(&channel, &common::names(&settings).dead()).await,
        0
    );
    common::cleanup(&settings).await;
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
    settings.amqp_url = proxy.amqp_url();
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
        assignee(&db, org.group_id).await,
        None,
        "nothing applied while cut off"
    );
    proxy.restore();
    common::eventually("applied after the worker reconnected", WAIT, || {
        let db = &db;
        async move { assignee(db, org.group_id).await == Some(user) }
    })
    .await;
    worker.stop().await;
    common::cleanup(&direct).await;
}
