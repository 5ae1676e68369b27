//! `jirasync dlq` and the dead-letter path against the real RabbitMQ: a malformed
//! webhook lands in `P.dead`, `list` shows it without taking it, `replay` sends it
//! back, nothing lets `P.dead` drop a message. The scenarios that differ between
//! RabbitMQ versions are `pub(crate)`: `rabbitmq4.rs` runs them on a 4.x node.

use crate::common;

use std::time::Duration;

use jirasync::commands::dlq;
use jirasync::queue::message::{header_int, header_str};
use lapin::options::{BasicGetOptions, BasicRejectOptions};

const WAIT: Duration = Duration::from_secs(20);

async fn dead_letter_malformed(
    settings: &jirasync::config::Settings,
    channel: &lapin::Channel,
    count: usize,
) -> Vec<String> {
    let worker = common::spawn_worker(settings);
    let dead = common::names(settings).dead();
    // JSON arrays: well-authenticated but malformed, so dead-lettered at once.
    let bodies: Vec<String> = (0..count).map(|n| format!("[{n}]")).collect();
    let db = common::db(settings).await;
    let (_, external_id) = common::seed::Seed { db: &db }
        .integration(serde_json::json!({}))
        .await;
    let token = common::seed::token(&external_id, common::seed::SECRET);
    for body in &bodies {
        common::publish_webhook(channel, settings, &token, body.as_bytes(), None).await;
    }
    common::eventually("the malformed webhooks are dead-lettered", WAIT, || {
        let dead = dead.clone();
        async move { common::depth(channel, &dead).await as usize == count }
    })
    .await;
    worker.stop().await;
    bodies
}

#[tokio::test]
async fn list_shows_dead_letters_without_taking_them_and_replay_sends_them_back() {
    let settings = common::migrated().await;
    let (_connection, channel) = common::amqp().await;
    let names = common::names(&settings);
    let bodies = dead_letter_malformed(&settings, &channel, 1).await;

    for _ in 0..2 {
        let letters = dlq::list(&settings.broker, 50).await.expect("list");
        assert_eq!(letters.len(), 1);
        let letter = &letters[0];
        assert_eq!(letter.r#type, "jira_server.webhook");
        assert!(letter.error.contains("not an object"), "{}", letter.error);
        assert_eq!(letter.attempts, 1);
        assert_eq!(letter.source_queue, names.webhooks());
        assert!(letter.received_at_ms.is_some() && letter.dead_lettered_at_ms.is_some());
        assert_eq!(
            common::depth(&channel, &names.dead()).await,
            1,
            "listing takes nothing"
        );
    }

    assert_eq!(
        dlq::replay(&settings.broker, None).await.expect("replay"),
        1
    );
    assert_eq!(common::depth(&channel, &names.dead()).await, 0);
    let back = common::get_one(&channel, &names.webhooks(), WAIT)
        .await
        .expect("replayed to its source queue");
    assert_eq!(back.delivery.data, bodies[0].as_bytes());
    let props = &back.delivery.properties;
    assert!(
        header_str(props, "token").is_some(),
        "original headers kept"
    );
    assert_eq!(
        header_int(props, "x-jirasync-attempts"),
        None,
        "attempt count reset"
    );
    assert_eq!(header_str(props, "x-jirasync-error"), None);
    assert_eq!(
        dlq::list(&settings.broker, 50).await.expect("list"),
        vec![],
        "empty queue lists nothing"
    );
}

#[tokio::test]
async fn limits_bound_both_list_and_replay() {
    let settings = common::migrated().await;
    let (_connection, channel) = common::amqp().await;
    let names = common::names(&settings);
    dead_letter_malformed(&settings, &channel, 3).await;
    assert_eq!(dlq::list(&settings.broker, 2).await.expect("list").len(), 2);
    assert_eq!(
        dlq::replay(&settings.broker, Some(1))
            .await
            .expect("replay"),
        1
    );
    assert_eq!(common::depth(&channel, &names.dead()).await, 2);
    assert_eq!(common::depth(&channel, &names.webhooks()).await, 1);
}

#[tokio::test]
async fn dead_letters_survive_many_listings_and_requeues() {
    let settings = common::migrated().await;
    let (_connection, channel) = common::amqp().await;
    dead_letters_are_never_dropped(&settings, &channel).await;
}

/// How often the scenarios below list or give back one message: past RabbitMQ
/// 4's default quorum delivery limit of 20.
const ROUNDS: usize = 25;

/// Three dead letters stay in `P.dead`, in full, through `ROUNDS` listings and
/// `ROUNDS` returns each with requeue (what the management UI's "Get messages" with
/// "Nack message requeue true" does), and `replay` sends all three back.
pub(crate) async fn dead_letters_are_never_dropped(
    settings: &jirasync::config::Settings,
    channel: &lapin::Channel,
) {
    let names = common::names(settings);
    let mut bodies = dead_letter_malformed(settings, channel, 3).await;
    bodies.sort();
    for round in 0..ROUNDS {
        let letters = dlq::list(&settings.broker, 50).await.expect("list");
        assert_eq!(letters.len(), 3, "listing {round} shows all three");
    }
    assert_eq!(
        common::depth(channel, &names.dead()).await,
        3,
        "listings took nothing"
    );
    // Each round takes all three (unsettled, so three different messages) and
    // gives them back.
    let mut kept = Vec::new();
    for round in 0..ROUNDS {
        let mut taken = Vec::new();
        while taken.len() < 3 {
            let Some(got) = take_unsettled(channel, &names.dead()).await else {
                panic!("round {round}: only {} dead letters left", taken.len());
            };
            taken.push(got);
        }
        kept = taken
            .iter()
            .map(|got| String::from_utf8_lossy(&got.delivery.data).into_owned())
            .collect();
        for got in taken {
            got.delivery
                .acker
                .reject(BasicRejectOptions { requeue: true })
                .await
                .expect("reject with requeue");
        }
    }
    kept.sort();
    assert_eq!(kept, bodies, "every dead letter kept, body intact");
    assert_eq!(
        dlq::replay(&settings.broker, None).await.expect("replay"),
        3
    );
    assert_eq!(common::depth(channel, &names.webhooks()).await, 3);
}

/// One message of `queue`, left unsettled, waiting up to `WAIT` for one to be
/// ready (a requeued message shows again after a moment).
async fn take_unsettled(
    channel: &lapin::Channel,
    queue: &str,
) -> Option<lapin::message::BasicGetMessage> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let got = channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .expect("basic.get");
        if got.is_some() || std::time::Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_message_that_keeps_failing_delivery_ends_in_the_dead_letter_queue() {
    let settings = common::migrated().await;
    let (_connection, channel) = common::amqp().await;
    delivery_limit_dead_letters(&settings, &channel).await;
}

/// A job given back with requeue again and again (as a worker that crashes on it
/// does) is dead-lettered by the broker, and replayed from there.
pub(crate) async fn delivery_limit_dead_letters(
    settings: &jirasync::config::Settings,
    channel: &lapin::Channel,
) {
    let names = common::names(settings);
    let props = jirasync::queue::message::job_properties("jira_server.reconcile").1;
    common::publish(channel, settings, "jira_server.reconcile", b"{}", props).await;
    // Crash-like redeliveries: take it and give it back until the broker gives up.
    for _ in 0..30 {
        if common::depth(channel, &names.dead()).await == 1 {
            break;
        }
        if let Some(got) = channel
            .basic_get(names.jobs().as_str().into(), BasicGetOptions::default())
            .await
            .expect("basic.get")
        {
            got.delivery
                .acker
                .reject(BasicRejectOptions { requeue: true })
                .await
                .expect("reject with requeue");
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    common::eventually("the broker dead-letters it", WAIT, || {
        let dead = names.dead();
        async move { common::depth(channel, &dead).await == 1 }
    })
    .await;
    let letters = dlq::list(&settings.broker, 10).await.expect("list");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].source_queue, names.jobs());
    assert!(
        letters[0].error.contains("dead-lettered by the broker"),
        "{}",
        letters[0].error
    );
    assert_eq!(
        dlq::replay(&settings.broker, None).await.expect("replay"),
        1
    );
    assert_eq!(
        common::depth(channel, &names.jobs()).await,
        1,
        "back in P.jobs"
    );
}
