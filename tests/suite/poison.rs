//! Poison messages: a handler that panics does not leave its delivery unacked or
//! stop the loop; the message is dead-lettered with the panic's message and the
//! messages behind it are still handled. A passing failure that is no outage (a
//! deadlock) is dead-lettered after the tiers, its first failure's time kept.
//! Drives `consumer::run` with test handlers.

use crate::common;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jirasync::queue::consumer::{self, ConsumerConfig};
use jirasync::queue::handler::{Failure, Handler, Incoming, Outcome};
use jirasync::queue::message::{ATTEMPTS, ERROR, FIRST_FAILED_AT_MS, header_int, header_str};
use jirasync::shutdown::Shutdown;

const WAIT: Duration = Duration::from_secs(20);

/// Panics on a body of `panic`; records every other body it handles.
#[derive(Default)]
struct Panicky {
    handled: Mutex<Vec<Vec<u8>>>,
}

impl Handler for Panicky {
    type Message = ();

    fn parse(&self, _: &Incoming) -> Result<(), Failure> {
        Ok(())
    }

    async fn handle(&self, (): &(), message: &Incoming) -> Result<Outcome, Failure> {
        assert!(message.body != b"panic", "poison message {}", message.id);
        self.handled
            .lock()
            .expect("handled list")
            .push(message.body.clone());
        Ok(Outcome::new("unchanged"))
    }
}

#[tokio::test]
async fn a_panicking_handler_dead_letters_its_message_and_the_rest_keep_flowing() {
    let settings = common::settings();
    let names = common::names(&settings);
    let consuming = Arc::new(AtomicBool::new(false));
    let config = ConsumerConfig {
        url: settings.broker.url.clone(),
        names: names.clone(),
        delays: settings.retries.delays.0.clone(),
        outage_max: settings.worker.jira_outage_max,
        // One at a time: the messages after the poison one wait behind it.
        concurrency: 1,
        outbound: settings.worker.outbound,
        drain_deadline: Duration::from_secs(5),
        consuming: Arc::clone(&consuming),
    };
    let handler = Arc::new(Panicky::default());
    let shutdown = Shutdown::new();
    let task = tokio::spawn(consumer::run(
        config,
        Arc::clone(&handler),
        shutdown.clone(),
    ));
    common::eventually("the consumer is consuming", WAIT, || {
        let consuming = Arc::clone(&consuming);
        async move { consuming.load(std::sync::atomic::Ordering::Acquire) }
    })
    .await;

    let (_connection, channel) = common::amqp().await;
    for body in [&b"before"[..], b"panic", b"after-1", b"after-2"] {
        common::publish_webhook(&channel, &settings, "a.b.c", body, None).await;
    }
    common::eventually(
        "the messages after the poison one are handled",
        WAIT,
        || {
            let handler = Arc::clone(&handler);
            async move { handler.handled.lock().expect("handled list").len() == 3 }
        },
    )
    .await;
    assert_eq!(
        *handler.handled.lock().expect("handled list"),
        vec![b"before".to_vec(), b"after-1".to_vec(), b"after-2".to_vec()]
    );

    let dead = common::get_one(&channel, &names.dead(), WAIT)
        .await
        .expect("the poison message is dead-lettered");
    assert_eq!(dead.delivery.data, b"panic");
    let error = jirasync::queue::message::header_str(&dead.delivery.properties, "x-jirasync-error")
        .expect("error header");
    assert!(
        error.starts_with("handler panicked: poison message"),
        "{error:?}"
    );
    assert_eq!(
        jirasync::queue::message::header_int(&dead.delivery.properties, "x-jirasync-attempts"),
        Some(1),
        "dead-lettered at once, not retried"
    );
    assert_eq!(common::depth(&channel, &names.webhooks()).await, 0);

    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    // Nothing unacked went back to the queue when the consumer closed.
    assert_eq!(common::depth(&channel, &names.webhooks()).await, 0);
    assert_eq!(common::depth(&channel, &names.dead()).await, 0);
}

/// Fails every message like a deadlock would, recording the outage clock each
/// delivery carried.
#[derive(Default)]
struct Deadlocked {
    clocks: Mutex<Vec<Option<i64>>>,
}

impl Handler for Deadlocked {
    type Message = ();

    fn parse(&self, _: &Incoming) -> Result<(), Failure> {
        Ok(())
    }

    async fn handle(&self, (): &(), message: &Incoming) -> Result<Outcome, Failure> {
        let clock = header_int(&message.properties, FIRST_FAILED_AT_MS);
        self.clocks.lock().expect("clock list").push(clock);
        Err(Failure::passing(anyhow::anyhow!(
            "database error 40P01 (ERROR): deadlock detected"
        )))
    }
}

/// Runs the consumer loop on `settings` with `handler` until the returned
/// shutdown is cancelled, once it consumes.
async fn consume<H: Handler>(
    settings: &jirasync::config::Settings,
    handler: Arc<H>,
) -> (Shutdown, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let consuming = Arc::new(AtomicBool::new(false));
    let config = ConsumerConfig {
        url: settings.broker.url.clone(),
        names: common::names(settings),
        delays: settings.retries.delays.0.clone(),
        // A dependency's outage would be waited out for a day: a deadlock is none.
        outage_max: Duration::from_secs(86_400),
        concurrency: 1,
        outbound: settings.worker.outbound,
        drain_deadline: Duration::from_secs(5),
        consuming: Arc::clone(&consuming),
    };
    let shutdown = Shutdown::new();
    let task = tokio::spawn(consumer::run(config, handler, shutdown.clone()));
    common::eventually("the consumer is consuming", WAIT, || {
        let consuming = Arc::clone(&consuming);
        async move { consuming.load(std::sync::atomic::Ordering::Acquire) }
    })
    .await;
    (shutdown, task)
}

#[tokio::test]
async fn a_passing_failure_that_is_no_outage_is_dead_lettered_after_the_tiers_with_its_clock() {
    let settings = common::settings();
    let names = common::names(&settings);
    let handler = Arc::new(Deadlocked::default());
    let (shutdown, task) = consume(&settings, Arc::clone(&handler)).await;
    let (_connection, channel) = common::amqp().await;
    common::publish_webhook(&channel, &settings, "a.b.c", b"{}", None).await;

    let dead = common::get_one(&channel, &names.dead(), WAIT)
        .await
        .expect("dead-lettered once the tiers are used up");
    let props = &dead.delivery.properties;
    assert_eq!(
        header_int(props, ATTEMPTS),
        Some(3),
        "1 s and 2 s tiers, then P.dead"
    );
    let error = header_str(props, ERROR).expect("error header");
    assert!(
        error.starts_with("gave up after 3 attempts: database error 40P01"),
        "{error}"
    );
    // Set at the first failure, kept on each retry and on the dead letter.
    let first = header_int(props, FIRST_FAILED_AT_MS).expect("the clock of its first failure");
    let clocks = handler.clocks.lock().expect("clock list").clone();
    // Three tries in process per delivery.
    assert_eq!(clocks.len(), 9, "{clocks:?}");
    assert!(clocks[..3].iter().all(Option::is_none), "{clocks:?}");
    assert!(clocks[3..].iter().all(|c| *c == Some(first)), "{clocks:?}");

    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    assert_eq!(common::depth(&channel, &names.dead()).await, 0);
}

/// Message types whoever can publish makes up.
const MADE_UP_TYPES: usize = 50;

#[tokio::test]
async fn made_up_message_types_are_one_metric_label() {
    let settings = common::migrated().await;
    let names = common::names(&settings);
    let port = common::private_pg::free_port();
    let _worker = common::process(
        "worker",
        &settings,
        &[("JIRASYNC_METRICS_LISTEN", format!("127.0.0.1:{port}"))],
    );
    let (_connection, channel) = common::amqp().await;
    channel
        .confirm_select(Default::default())
        .await
        .expect("confirm mode");
    for n in 0..MADE_UP_TYPES {
        let kind = match n % 3 {
            0 => format!("jira_server.{}", common::unique()),
            1 => format!("{} \"x\" {n}", common::unique()),
            _ => format!("t{n}-{}", common::unique()),
        };
        let (_, props) = jirasync::queue::message::job_properties(&kind);
        // Straight to the queues (the exchange routes only known types).
        let queue = if n % 2 == 0 {
            names.webhooks()
        } else {
            names.jobs()
        };
        jirasync::queue::publisher::publish_confirmed(&channel, "", &queue, b"{}", props)
            .await
            .expect("publish confirmed");
    }
    common::eventually("every made-up type is dead-lettered", WAIT, || {
        let (channel, dead) = (&channel, names.dead());
        async move { common::depth(channel, &dead).await as usize == MADE_UP_TYPES }
    })
    .await;

    let text = common::metrics_text(port).await;
    let mut labels = std::collections::BTreeSet::new();
    for line in text.lines().filter(|line| line.starts_with("jirasync_")) {
        if let Some((_, rest)) = line.split_once("type=\"") {
            labels.insert(rest.split('"').next().unwrap_or_default().to_owned());
        }
    }
    let known = jirasync::integration::messages::CATALOG.known_types;
    let unexpected: Vec<&String> = labels
        .iter()
        .filter(|label| *label != "unknown" && !known.contains(&label.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "labels beyond §4's types: {unexpected:?}"
    );
    assert!(labels.contains("unknown"), "{labels:?}");
    let count = |sample: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.trim().parse::<f64>().ok())
    };
    let total = MADE_UP_TYPES as f64;
    assert_eq!(
        count(r#"jirasync_dead_lettered_total{type="unknown"}"#),
        Some(total)
    );
    assert_eq!(
        count(r#"jirasync_messages_total{type="unknown",outcome="unknown_type"}"#),
        Some(total)
    );
    assert_eq!(
        count(r#"jirasync_message_duration_seconds_count{type="unknown"}"#),
        Some(total)
    );
}
