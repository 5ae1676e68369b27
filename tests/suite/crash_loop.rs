//! Poison messages, the other kind (docs/reliability.md): a message whose handling takes the
//! whole process down, again and again. Panics are caught (`tests/poison.rs`); what
//! is left is a process that dies holding the message. Here a real `jirasync worker`
//! process is `kill -9`ed every time it holds the poison message (its handler waits
//! on a row lock the test holds), and a fresh one started: the broker's delivery
//! limit moves the message to `P.dead`, and other webhooks are applied between the
//! crashes.

use crate::common;

use std::time::Duration;

use common::seed::{SECRET, Seed, assignee_changed, jira_user, token};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_message_that_crashes_the_process_every_time_ends_in_the_dead_letter_queue() {
    let settings = common::migrated().await;
    let names = common::names(&settings);
    let db = common::db(&settings).await;
    let seed = Seed { db: &db };
    let (integration, external_id) = seed.integration(serde_json::json!({})).await;
    let poison_org = seed.org(integration, true, "CRASH-1").await;
    // A user the poison would assign: it fails only by crashing, not by content.
    seed.teammate(&poison_org, "crash@example.org").await;
    let flow_org = seed.org(integration, true, "FLOW-1").await;
    let flow_users = [
        seed.teammate(&flow_org, "flow-a@example.org").await,
        seed.teammate(&flow_org, "flow-b@example.org").await,
    ];
    let token = token(&external_id, SECRET);
    let (_connection, channel) = common::amqp().await;

    // The test holds CRASH-1's row: the worker that takes its webhook waits on it.
    let mut locker = common::db(&settings).await;
    let lock = locker.transaction().await.expect("begin");
    lock.execute(
        "SELECT id FROM external_issues WHERE key = 'CRASH-1' FOR UPDATE",
        &[],
    )
    .await
    .expect("lock CRASH-1");
    let poison = assignee_changed(
        "CRASH-1",
        jira_user("crash@example.org"),
        "2024-01-01T00:00:00.000+0000",
    )
    .to_string();
    common::publish_webhook(&channel, &settings, &token, poison.as_bytes(), None).await;

    let mut crashes = 0;
    for round in 0..15 {
        if common::depth(&channel, &names.dead()).await > 0 {
            break;
        }
        // Another webhook, applied by this process before it dies: the rest flow.
        let user = flow_users[round % 2];
        let email = if round % 2 == 0 {
            "flow-a@example.org"
        } else {
            "flow-b@example.org"
        };
        let updated = format!("2024-01-01T00:{round:02}:00.000+0000");
        let body = assignee_changed("FLOW-1", jira_user(email), &updated).to_string();
        common::publish_webhook(&channel, &settings, &token, body.as_bytes(), None).await;

        let mut worker = common::process("worker", &settings, &[]);
        common::eventually(
            &format!("round {round}: FLOW-1 is assigned to {email}"),
            WAIT,
            || {
                let db = &db;
                async move { common::assignee(db, flow_org.group_id).await == Some(user) }
            },
        )
        .await;
        // Either the process holds the poison message (blocked on the lock) or the
        // broker has dead-lettered it instead of delivering it again.
        let held = tokio::time::timeout(WAIT, async {
            loop {
                if common::a_backend_waits_on_a_lock(&db).await {
                    return true;
                }
                if common::depth(&channel, &names.dead()).await > 0 {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!("round {round}: the poison was neither taken nor dead-lettered")
        });
        worker.kill().expect("kill -9 the worker");
        worker.wait().expect("reap the worker");
        if !held {
            break;
        }
        crashes += 1;
        // Postgres notices a vanished client only when it next talks to it, not
        // while it waits on a lock: end the dead process's backend, as it would.
        db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
            &[],
        )
        .await
        .expect("terminate the dead worker's backend");
        common::eventually("the killed worker's lock wait ends", WAIT, || {
            let db = &db;
            async move { !common::a_backend_waits_on_a_lock(db).await }
        })
        .await;
    }

    // RabbitMQ's x-delivery-limit (10) on P.webhooks: dead-lettered after it.
    let dead = common::get_one(&channel, &names.dead(), WAIT)
        .await
        .expect("the poison message in P.dead");
    assert_eq!(
        dead.delivery.data,
        poison.as_bytes(),
        "the poison, byte for byte"
    );
    let headers = dead
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap_or_default();
    let reason = headers
        .inner()
        .get("x-first-death-reason")
        .and_then(|v| v.as_long_string())
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    assert_eq!(
        reason, "delivery_limit",
        "dead-lettered by the delivery limit: {reason}"
    );
    assert!(
        (10..=12).contains(&crashes),
        "the delivery limit is 10; the process crashed {crashes} times"
    );
    assert_eq!(common::depth(&channel, &names.dead()).await, 0, "one copy");
    // The last round's webhook comes back when the kill fell between its commit
    // and its ack (it is idempotent); the poison is not there.
    while let Some(left) =
        common::get_one(&channel, &names.webhooks(), Duration::from_secs(1)).await
    {
        assert_ne!(
            left.delivery.data,
            poison.as_bytes(),
            "the poison left P.webhooks"
        );
    }
    println!(
        "crash loop: {crashes} crashes holding the poison, then P.dead (reason {reason}); \
         {crashes} other webhooks applied in between"
    );

    // Released, the poison's issue was never assigned: the message is in P.dead,
    // waiting for `jirasync dlq replay`.
    lock.rollback().await.expect("release CRASH-1");
    assert_eq!(common::assignee(&db, poison_org.group_id).await, None);
}
