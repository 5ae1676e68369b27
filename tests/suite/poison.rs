//! Poison messages: a handler that panics does not leave its delivery unacked or
//! stop the loop; the message is dead-lettered with the panic's message and the
//! messages behind it are still handled. Drives `consumer::run` with a test handler.

use crate::common;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jirasync::queue::consumer::{self, ConsumerConfig};
use jirasync::queue::handler::{Failure, Handler, Incoming, Outcome};
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
        Ok(Outcome::Unchanged)
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
        // One at a time: the messages after the poison one wait behind it.
        concurrency: 1,
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
