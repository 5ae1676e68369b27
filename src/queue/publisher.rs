//! Publishing with broker confirms (`mandatory`, the confirm awaited with a
//! timeout): [`publish_confirmed`] on a [`confirm_channel`] for the
//! commands that publish on their own (`oauth`, `reconcile`, `dlq`),
//! [`publish_confirmed_while_blocked`] for the worker's retry and dead-letter
//! copies (`settle.rs`), and [`Broker`], which keeps one connection and confirm
//! channel alive for the ingress and the worker's reconcile scheduler,
//! reconnecting by itself (`crate::reconnect`) after a broker restart and replacing
//! a channel whose publishes RabbitMQ nacks. Best-effort notices go out without
//! confirms (`fanout.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionStatus, Event};
use std::sync::{PoisonError, RwLock};

use super::Names;
use super::job::Job;
use crate::config::{BrokerSettings, RetrySettings};
use crate::reconnect;
use crate::shutdown::Shutdown;

/// How long a publish may wait for the broker's confirm.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a publish was not confirmed. Nothing was stored when this is returned
/// (except possibly for `Timeout`, where the broker may still store it).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No usable connection to the broker right now.
    #[error("not connected to RabbitMQ")]
    NotConnected,
    /// The broker blocked the connection (memory or disk alarm).
    #[error("RabbitMQ has blocked publishing ({0})")]
    Blocked(String),
    /// The broker refused to take the message.
    #[error(
        "RabbitMQ refused the message (nack): its queue is full (JIRASYNC_QUEUE_MAX_LENGTH) or the broker could not store it"
    )]
    Nacked,
    /// No queue is bound for the routing key.
    #[error("RabbitMQ returned the message as unroutable: {0}")]
    Returned(String),
    /// No confirm arrived in time.
    #[error("RabbitMQ did not confirm within {0:?}")]
    Timeout(Duration),
    /// The channel or connection failed.
    #[error("publishing failed: {0}")]
    Failed(#[from] lapin::Error),
    /// The properties would not fit in one frame: publishing them would make the
    /// broker close the connection, failing every publish in flight.
    #[error(
        "the message's properties (up to {len} bytes) do not fit in an AMQP frame of {frame_max} bytes"
    )]
    TooLarge {
        /// Their size, bounded from above.
        len: usize,
        /// The connection's negotiated frame size.
        frame_max: u32,
    },
}

/// Room a message must leave in its header frame for what the worker adds to a
/// retry or dead-letter copy (attempts, the error line, the source queue, times).
pub const HEADER_HEADROOM: usize = 4096;

/// Publishes with `mandatory` on a confirm-mode channel and waits for the confirm.
pub async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Result<(), PublishError> {
    publish_confirmed_while_blocked(None, channel, exchange, routing_key, body, properties).await
}

/// Like [`publish_confirmed`], but with `Some(connection)` waits past
/// [`CONFIRM_TIMEOUT`] for as long as RabbitMQ blocks that connection (a memory
/// or disk alarm). While blocked the broker reads nothing from the connection, a
/// nack included: giving up then would only let the publish be stored *and* the
/// nacked original be redelivered once the alarm clears. The worker uses this for
/// its retry and dead-letter copies.
pub async fn publish_confirmed_while_blocked(
    blocked: Option<&ConnectionStatus>,
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Result<(), PublishError> {
    let publish = async {
        let confirm = channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                properties,
            )
            .await?;
        confirm.await
    };
    let mut publish = std::pin::pin!(publish);
    let confirmation = loop {
        match tokio::time::timeout(CONFIRM_TIMEOUT, &mut publish).await {
            Ok(confirmation) => break confirmation,
            Err(_) if blocked.is_some_and(ConnectionStatus::blocked) => {}
            Err(_) => return Err(PublishError::Timeout(CONFIRM_TIMEOUT)),
        }
    };
    match confirmation {
        Err(e) => Err(PublishError::Failed(e)),
        Ok(Confirmation::Ack(None)) => Ok(()),
        Ok(Confirmation::Ack(Some(returned))) => Err(PublishError::Returned(
            returned.reply_text.as_str().to_owned(),
        )),
        Ok(Confirmation::Nack(_)) => Err(PublishError::Nacked),
        // Only a channel without confirm_select answers this; ours always has it.
        Ok(Confirmation::NotRequested) => Err(PublishError::Nacked),
    }
}

/// Opens a channel in confirm mode.
pub async fn confirm_channel(connection: &Connection) -> anyhow::Result<Channel> {
    let channel = connection
        .create_channel()
        .await
        .context("failed to open a RabbitMQ channel")?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .context("failed to put the channel in confirm mode")?;
    Ok(channel)
}

struct Link {
    /// Shared with the links that replace this one's channel.
    connection: Arc<Connection>,
    channel: Channel,
}

/// One long-lived connection with a confirm channel shared by every caller.
pub struct Broker {
    /// The current link. A std lock: held only to clone or replace the `Arc`,
    /// never across an await, so a publish takes it without a wait queue.
    link: RwLock<Option<Arc<Link>>>,
    blocked: std::sync::Mutex<Option<String>>,
    ready: AtomicBool,
    /// Whether the last publish was nacked (the supervisor then renews the channel).
    nacked: AtomicBool,
    names: Names,
}

impl Broker {
    /// Starts the supervisor that connects, declares the topology of `names` and
    /// reconnects whenever the connection is lost, until `shutdown`.
    pub fn start(
        settings: &BrokerSettings,
        names: Names,
        retries: &RetrySettings,
        role: &'static str,
        shutdown: Shutdown,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let (url, delays) = (settings.url.clone(), retries.delays.0.clone());
        let broker = Arc::new(Self {
            link: RwLock::new(None),
            blocked: std::sync::Mutex::new(None),
            ready: AtomicBool::new(false),
            nacked: AtomicBool::new(false),
            names,
        });
        let task = tokio::spawn(Arc::clone(&broker).supervise(url, delays, role, shutdown));
        (broker, task)
    }

    /// Whether a publish can be attempted now.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && self.blocked_reason().is_none()
    }

    /// The queue names this broker publishes under.
    pub fn names(&self) -> &Names {
        &self.names
    }

    fn link(&self) -> Option<Arc<Link>> {
        self.link
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_link(&self, link: Option<Arc<Link>>) {
        *self.link.write().unwrap_or_else(PoisonError::into_inner) = link;
    }

    fn blocked_reason(&self) -> Option<String> {
        self.blocked.lock().map(|b| b.clone()).unwrap_or(None)
    }

    fn set_blocked(&self, reason: Option<String>) {
        if let Ok(mut blocked) = self.blocked.lock() {
            *blocked = reason;
        }
    }

    /// Publishes to `P` with `routing_key` and waits for the confirm.
    pub async fn publish(
        &self,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        if let Some(reason) = self.blocked_reason() {
            return Err(PublishError::Blocked(reason));
        }
        let link = self.link().ok_or(PublishError::NotConnected)?;
        let (len, frame_max) = (
            super::message::header_frame_len(&properties),
            link.connection.configuration().frame_max(),
        );
        if frame_max > 0 && len + HEADER_HEADROOM > frame_max as usize {
            return Err(PublishError::TooLarge { len, frame_max });
        }
        let result = publish_confirmed(
            &link.channel,
            self.names.exchange(),
            routing_key,
            body,
            properties,
        )
        .await;
        match &result {
            Ok(()) => self.nacked.store(false, Ordering::Release),
            Err(PublishError::Nacked) => self.nacked.store(true, Ordering::Release),
            Err(_) => {}
        }
        result
    }

    /// Publishes `job` to `P` and waits for the confirm; its message id.
    pub async fn publish_job<J: Job>(&self, job: &J) -> Result<uuid::Uuid, PublishError> {
        let (id, body, properties) = job.to_message();
        self.publish(J::TYPE, &body, properties).await?;
        Ok(id)
    }

    async fn supervise(
        self: Arc<Self>,
        url: String,
        delays: Vec<Duration>,
        role: &'static str,
        shutdown: Shutdown,
    ) {
        while !shutdown.is_cancelled() {
            // Shutdown also ends a connect (and its topology declare) in progress:
            // nothing is declared after whoever stopped us has moved on.
            let opened = reconnect::until_ok(
                reconnect::BROKER,
                &shutdown,
                || async {
                    tokio::select! {
                        () = shutdown.cancelled() => Ok(None),
                        opened = self.open(&url, &delays, role) => opened.map(Some),
                    }
                },
                |error| tracing::warn!(role, %error, "RabbitMQ unavailable; retrying"),
            )
            .await;
            let Some(Some(mut link)) = opened else {
                break;
            };
            tracing::info!(role, "connected to RabbitMQ");
            let mut events = link.connection.events_listener();
            self.nacked.store(false, Ordering::Release);
            self.set_link(Some(Arc::clone(&link)));
            self.ready.store(true, Ordering::Release);
            metrics::gauge!("jirasync_broker_connected", "role" => role).set(1.0);
            let stop = self.watch(&mut link, &mut events, role, &shutdown).await;
            self.ready.store(false, Ordering::Release);
            metrics::gauge!("jirasync_broker_connected", "role" => role).set(0.0);
            self.set_link(None);
            self.set_blocked(None);
            if stop {
                // Let in-flight publishes finish before closing the channel.
                let _ = link.channel.close(200, "shutdown".into()).await;
                let _ = link.connection.close(200, "shutdown".into()).await;
                break;
            }
            tracing::warn!(role, "lost the RabbitMQ connection; reconnecting");
        }
    }

    async fn open(&self, url: &str, delays: &[Duration], role: &str) -> anyhow::Result<Arc<Link>> {
        let connection = super::connection::connect(url, role).await?;
        let channel = confirm_channel(&connection).await?;
        super::topology::declare(&connection, &self.names, delays).await?;
        Ok(Arc::new(Link {
            connection: Arc::new(connection),
            channel,
        }))
    }

    /// Waits until the link breaks (false) or shutdown is requested (true),
    /// replacing `link`'s channel when its last publish was nacked.
    async fn watch(
        &self,
        link: &mut Arc<Link>,
        events: &mut (impl futures_util::Stream<Item = Event> + Unpin),
        role: &str,
        shutdown: &Shutdown,
    ) -> bool {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return true,
                event = events.next() => match event {
                    Some(Event::ConnectionBlocked(reason)) => {
                        tracing::warn!(%reason, "RabbitMQ blocked the connection");
                        self.set_blocked(Some(reason));
                    }
                    Some(Event::ConnectionUnblocked) => {
                        tracing::info!("RabbitMQ unblocked the connection");
                        self.set_blocked(None);
                    }
                    Some(Event::Error(error)) => {
                        tracing::warn!(%error, "RabbitMQ connection error");
                        return false;
                    }
                    None => return false,
                    Some(_) => {}
                },
                _ = tick.tick() => {
                    if !link.connection.status().connected() || !link.channel.status().connected() {
                        return false;
                    }
                    if self.nacked.swap(false, Ordering::AcqRel) && !self.renew_channel(link, role).await {
                        return false;
                    }
                }
            }
        }
    }

    /// Publishes on a new confirm channel of `link`'s connection from now on; false
    /// when none opens in time (the link is then treated as broken). In-flight
    /// publishes finish on the old channel, which lapin closes once the last of
    /// them drops it (`hostile_clients::a_queue_that_keeps_refusing_does_not_pile_up_channels`).
    ///
    /// RabbitMQ 3.10 sets up a channel's path to a quorum queue at its first
    /// publish there, from the queue's record: when that record still names a
    /// leader whose node has just died, the channel nacks every publish to the
    /// queue for as long as that node stays down, new leader or not (fixed in later
    /// 3.11 and 3.12 releases by
    /// <https://github.com/rabbitmq/rabbitmq-server/pull/9221>). A new channel reads
    /// the record again. A full queue (`JIRASYNC_QUEUE_MAX_LENGTH`) nacks too; a new
    /// channel then costs no more than the channel.
    async fn renew_channel(&self, link: &mut Arc<Link>, role: &str) -> bool {
        let opened = tokio::time::timeout(CONFIRM_TIMEOUT, confirm_channel(&link.connection)).await;
        let channel = match opened {
            Ok(Ok(channel)) => channel,
            Ok(Err(error)) => {
                tracing::warn!(role, error = %format!("{error:#}"), "failed to open a new RabbitMQ channel; reconnecting");
                return false;
            }
            Err(_) => {
                tracing::warn!(
                    role,
                    timeout_ms = CONFIRM_TIMEOUT.as_millis(),
                    "RabbitMQ did not open a new channel in time; reconnecting"
                );
                return false;
            }
        };
        tracing::warn!(
            role,
            "RabbitMQ nacked the last publish; publishing on a new channel from now on"
        );
        *link = Arc::new(Link {
            connection: Arc::clone(&link.connection),
            channel,
        });
        self.set_link(Some(Arc::clone(link)));
        true
    }
}
