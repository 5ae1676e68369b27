//! Best-effort fanout: small notices every listener should hear within a second,
//! where one lost costs only a delay (the workers' verdicts on webhook tokens,
//! docs/reference.md §4). A [`Publisher`] keeps a connection of its own and
//! publishes, without confirms, what callers queue; callers never wait on the
//! broker. [`listen`] binds a fresh exclusive queue on each (re)connect and hands
//! every message to a callback. The worker publishes, the ingress listens.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{connection, topology};
use crate::reconnect;
use crate::shutdown::Shutdown;

/// Notices waiting to be published at most; more are dropped (a broker that is
/// away or blocks the connection must not grow the worker's memory).
const BACKLOG: usize = 10_000;

/// How often an idle link checks that its connection is still up.
const TICK: Duration = Duration::from_millis(500);

/// Publishes notices to one fanout exchange from a task of its own.
#[derive(Clone)]
pub struct Publisher {
    queue: mpsc::Sender<Vec<u8>>,
}

impl Publisher {
    /// Starts the task that connects to `url` (the connection named after
    /// `role`), declares `exchange` and publishes each queued body with
    /// `properties`, reconnecting whenever the connection is lost, until
    /// `shutdown`; then it publishes what is queued and closes.
    pub fn start(
        url: String,
        exchange: String,
        properties: BasicProperties,
        role: &'static str,
        shutdown: Shutdown,
    ) -> (Self, JoinHandle<()>) {
        let (queue, queued) = mpsc::channel(BACKLOG);
        let link = Link {
            url,
            exchange,
            role,
        };
        let task = tokio::spawn(link.publish(queued, properties, shutdown));
        (Self { queue }, task)
    }

    /// Queues `body`; false when it was dropped (the backlog is full, or the
    /// publisher has stopped).
    pub fn send(&self, body: Vec<u8>) -> bool {
        self.queue.try_send(body).is_ok()
    }
}

/// Hands the body of every message published to the fanout `exchange` to
/// `on_message`, until `shutdown`: connects to `url` (named after `role`),
/// declares the exchange and a queue of its own bound to it, consumes without
/// acks, and does it all again after a lost connection. What was published
/// while it was away is not heard.
pub async fn listen(
    url: String,
    exchange: String,
    role: &'static str,
    shutdown: Shutdown,
    on_message: impl Fn(&[u8]) + Send + Sync + 'static,
) {
    let link = Link {
        url,
        exchange,
        role,
    };
    while let Some((connection, channel)) = link.connected(&shutdown).await {
        metrics::gauge!("jirasync_broker_connected", "role" => role).set(1.0);
        let stop = link
            .consume(connection, channel, &shutdown, &on_message)
            .await;
        metrics::gauge!("jirasync_broker_connected", "role" => role).set(0.0);
        if stop {
            break;
        }
        link.lost();
    }
}

/// One fanout connection's settings.
struct Link {
    url: String,
    exchange: String,
    role: &'static str,
}

impl Link {
    /// Connects and declares the exchange, trying again after a failure
    /// ([`reconnect::BROKER`]); `None` on shutdown, which also ends a connect
    /// (and its declare) in progress.
    async fn connected(&self, shutdown: &Shutdown) -> Option<(Connection, Channel)> {
        let role = self.role;
        let opened = reconnect::until_ok(
            reconnect::BROKER,
            shutdown,
            || async {
                tokio::select! {
                    () = shutdown.cancelled() => Ok(None),
                    opened = self.open() => opened.map(Some),
                }
            },
            |error| tracing::warn!(role, %error, "RabbitMQ unavailable; retrying"),
        )
        .await??;
        tracing::info!(role, "connected to RabbitMQ");
        Some(opened)
    }

    fn lost(&self) {
        tracing::warn!(
            role = self.role,
            "lost the RabbitMQ connection; reconnecting"
        );
    }

    async fn open(&self) -> anyhow::Result<(Connection, Channel)> {
        let connection = connection::connect(&self.url, self.role).await?;
        let opened = async {
            let channel = connection.create_channel().await?;
            topology::declare_fanout(&channel, &self.exchange).await?;
            anyhow::Ok(channel)
        };
        match opened.await {
            Ok(channel) => Ok((connection, channel)),
            Err(error) => {
                close(&connection).await;
                Err(error)
            }
        }
    }

    /// The publisher's task.
    async fn publish(
        self,
        mut queued: mpsc::Receiver<Vec<u8>>,
        properties: BasicProperties,
        shutdown: Shutdown,
    ) {
        while let Some((connection, channel)) = self.connected(&shutdown).await {
            metrics::gauge!("jirasync_broker_connected", "role" => self.role).set(1.0);
            let stop = self
                .pump(&channel, &mut queued, &properties, &shutdown)
                .await;
            metrics::gauge!("jirasync_broker_connected", "role" => self.role).set(0.0);
            close(&connection).await;
            if stop {
                break;
            }
            self.lost();
        }
    }

    /// Publishes what is queued until the link breaks (false) or shutdown (true,
    /// after publishing what was queued by then).
    async fn pump(
        &self,
        channel: &Channel,
        queued: &mut mpsc::Receiver<Vec<u8>>,
        properties: &BasicProperties,
        shutdown: &Shutdown,
    ) -> bool {
        let mut tick = tokio::time::interval(TICK);
        loop {
            let body = tokio::select! {
                () = shutdown.cancelled() => {
                    while let Ok(body) = queued.try_recv() {
                        if self.send(channel, body, properties).await.is_err() {
                            break;
                        }
                    }
                    return true;
                }
                body = queued.recv() => match body {
                    Some(body) => body,
                    None => return true,
                },
                _ = tick.tick() => {
                    if !channel.status().connected() {
                        return false;
                    }
                    continue;
                }
            };
            if let Err(error) = self.send(channel, body, properties).await {
                tracing::debug!(role = self.role, %error, "a fanout publish failed");
                return false;
            }
        }
    }

    /// One publish without a confirm: the broker drops it when no queue is
    /// bound, as a fanout with no listener should.
    async fn send(
        &self,
        channel: &Channel,
        body: Vec<u8>,
        properties: &BasicProperties,
    ) -> lapin::Result<()> {
        channel
            .basic_publish(
                self.exchange.as_str().into(),
                "".into(),
                BasicPublishOptions::default(),
                &body,
                properties.clone(),
            )
            .await
            .map(drop)
    }

    /// The listener's life on one connection: true on shutdown, false when the
    /// connection or the consumer failed.
    async fn consume(
        &self,
        connection: Connection,
        channel: Channel,
        shutdown: &Shutdown,
        on_message: &(impl Fn(&[u8]) + Send + Sync),
    ) -> bool {
        let consumer = async {
            let queue = topology::declare_listener_queue(&channel, &self.exchange).await?;
            let consumer = channel
                .basic_consume(
                    queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions {
                        // Acks would buy nothing: the queue dies with the connection.
                        no_ack: true,
                        exclusive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            anyhow::Ok(consumer)
        };
        let mut consumer = match consumer.await {
            Ok(consumer) => consumer,
            Err(error) => {
                tracing::warn!(role = self.role, error = %format!("{error:#}"), "failed to listen; reconnecting");
                close(&connection).await;
                return false;
            }
        };
        let stop = loop {
            tokio::select! {
                () = shutdown.cancelled() => break true,
                delivery = consumer.next() => match delivery {
                    Some(Ok(delivery)) => on_message(&delivery.data),
                    Some(Err(error)) => {
                        tracing::debug!(role = self.role, %error, "the listener's consumer failed");
                        break false;
                    }
                    None => break false,
                },
            }
        };
        drop(consumer);
        close(&connection).await;
        stop
    }
}

async fn close(connection: &Connection) {
    if connection.status().connected() {
        let closing = connection.close(200, "closing".into());
        let _ = tokio::time::timeout(Duration::from_secs(5), closing).await;
    }
}
