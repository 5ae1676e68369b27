//! The outbound relay (docs/reference.md §10.1): a task every worker runs unless
//! `JIRASYNC_OUTBOUND=off`. It wakes when a captured change is committed (a LISTEN
//! on a Postgres connection of its own) and every [`POLL`] anyway, moves the
//! captured changes into pending pushes, publishes a `jira_server.outbound`
//! message for each push not yet published, marks it published once the broker
//! confirmed it, and reports the backlog. The SQL is `pending.rs`'s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use lapin::{Channel, Connection};
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;

use super::message::Push;
use super::pending::{self, CHANNEL, MOVE_BATCH};
use crate::config::Services;
use crate::db::{self, DbPool, Target};
use crate::queue::Names;
use crate::queue::job::Job;
use crate::queue::publisher::{confirm_channel, publish_confirmed};
use crate::queue::{self, connection};
use crate::reconnect;
use crate::shutdown::Shutdown;

/// How often the relay looks without being woken: the safety net for a
/// notification missed while its connection was down.
pub const POLL: Duration = Duration::from_secs(3);

/// How long a woken relay gathers further commits before it looks: the changes
/// of a burst of commits move in one transaction, not one each (at most 20 looks
/// a second, whatever the commit rate; a change waits this long at most for it).
pub const GATHER: Duration = Duration::from_millis(50);

/// How often the backlog is counted at most: a relay woken at every commit
/// would count a large backlog many times a second.
const GAUGES_EVERY: Duration = Duration::from_secs(1);

/// Pushes published per transaction at most (their rows stay locked until the
/// broker confirmed them all).
pub const PUBLISH_BATCH: i64 = 500;

/// What the relay works with.
pub struct Relay {
    /// Postgres: the moves and publishes run on it.
    pool: DbPool,
    /// `DATABASE_URL` read, for the LISTEN connection (the pool's TLS settings).
    target: Target,
    /// RabbitMQ's URL.
    amqp_url: String,
    /// The exchange pushes are published to.
    names: Names,
}

impl Relay {
    /// A relay for `services`' Postgres (through `pool`) and RabbitMQ.
    pub fn new(services: &Services, pool: DbPool) -> anyhow::Result<Self> {
        let mut target = db::parse_url(&services.database.url)?;
        // A connection that only listens sends nothing: keepalives notice a
        // server that went away without a word.
        target.config.keepalives_idle(Duration::from_secs(30));
        Ok(Self {
            pool,
            target,
            amqp_url: services.broker.url.clone(),
            names: crate::integration::messages::names(&services.broker),
        })
    }

    /// Runs the relay as a task of its own until `shutdown`.
    pub fn spawn(self, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(shutdown))
    }

    /// Relays until `shutdown`; a round in progress finishes its batch first.
    pub async fn run(self, shutdown: Shutdown) {
        let wake = Arc::new(Notify::new());
        let listener = tokio::spawn(listen(
            self.target.clone(),
            Arc::clone(&wake),
            shutdown.clone(),
        ));
        tracing::info!("outbound relay started");
        let (mut link, mut gauged) = (None, None);
        let mut failed: Option<String> = None;
        while !shutdown.is_cancelled() {
            let result = self.round(&mut link, &mut gauged, &shutdown).await;
            let failing = result.is_err();
            match result {
                Ok(()) => {
                    if failed.take().is_some() {
                        tracing::info!("outbound relay working again");
                    }
                }
                Err(error) => {
                    let text = format!("{error:#}");
                    // Once per distinct failure: a relay woken at every commit
                    // during an outage would repeat it many times a second.
                    if failed.as_deref() != Some(text.as_str()) {
                        tracing::warn!(error = %text, "outbound relay round failed; retrying");
                        failed = Some(text);
                    }
                }
            }
            // After a failure, the next try waits for the poll: commits woke it
            // many times a second, and Postgres or RabbitMQ need the time.
            let woken = tokio::select! {
                () = shutdown.cancelled() => false,
                () = wake.notified(), if !failing => true,
                () = tokio::time::sleep(POLL) => false,
            };
            if woken {
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(GATHER) => {}
                }
            }
        }
        if let Some(link) = link {
            link.close().await;
        }
        let _ = listener.await;
        tracing::info!("outbound relay stopped");
    }

    /// Moves every captured change and publishes every pending push; then, at
    /// most once per [`GAUGES_EVERY`], counts the backlog (also when a step failed).
    async fn round(
        &self,
        link: &mut Option<Link>,
        gauged: &mut Option<Instant>,
        shutdown: &Shutdown,
    ) -> anyhow::Result<()> {
        let relayed = async {
            while self.move_batch().await? >= MOVE_BATCH && !shutdown.is_cancelled() {}
            while self.publish_batch(link).await? >= PUBLISH_BATCH && !shutdown.is_cancelled() {}
            anyhow::Ok(())
        }
        .await;
        if gauged.is_none_or(|at| at.elapsed() >= GAUGES_EVERY) {
            *gauged = Some(Instant::now());
            let counted = self.gauges().await;
            relayed?;
            return counted;
        }
        relayed
    }

    /// Sets `jirasync_outbound_backlog` and `jirasync_outbound_oldest_seconds`.
    async fn gauges(&self) -> anyhow::Result<()> {
        let client = self.client().await?;
        let backlog = pending::backlog(&client)
            .await
            .context("failed to count the outbound backlog")?;
        metrics::gauge!("jirasync_outbound_backlog").set(backlog.count as f64);
        metrics::gauge!("jirasync_outbound_oldest_seconds").set(backlog.oldest_seconds);
        Ok(())
    }

    async fn client(&self) -> anyhow::Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .context("failed to get a database connection")
    }

    /// One move in a transaction of its own; how many changes it took.
    async fn move_batch(&self) -> anyhow::Result<i64> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .context("failed to begin a move")?;
        let moved = pending::move_changes(&tx, MOVE_BATCH)
            .await
            .context("failed to move the captured changes to the pending pushes")?;
        tx.commit().await.context("failed to commit a move")?;
        if moved.changes > 0 {
            tracing::debug!(
                changes = moved.changes,
                pending = moved.pending,
                "captured changes moved"
            );
        }
        Ok(moved.changes)
    }

    /// Publishes one batch of pending pushes with confirms and marks those the
    /// broker confirmed, in one transaction; how many it took. Those not
    /// confirmed stay unpublished (an error, after the others are marked): the
    /// next round publishes them again.
    async fn publish_batch(&self, link: &mut Option<Link>) -> anyhow::Result<i64> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .context("failed to begin a publish")?;
        let pushes = pending::publishable(&tx, PUBLISH_BATCH)
            .await
            .context("failed to read the pushes to publish")?;
        if pushes.is_empty() {
            return Ok(0);
        }
        let channel = Link::channel(link, &self.amqp_url).await?;
        let exchange = self.names.exchange();
        // All at once on the channel; each waits for its own confirm.
        let publishes = pushes.iter().map(|push| {
            let (_, body, properties) = push.to_message();
            async move { publish_confirmed(channel, exchange, Push::TYPE, &body, properties).await }
        });
        let results = futures_util::future::join_all(publishes).await;
        let mut confirmed = Vec::with_capacity(pushes.len());
        let mut failure = None;
        for (push, result) in pushes.iter().zip(results) {
            match result {
                Ok(()) => confirmed.push(push),
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        pending::published(&tx, &confirmed)
            .await
            .context("failed to mark the pushes published")?;
        tx.commit().await.context("failed to commit a publish")?;
        tracing::debug!(published = confirmed.len(), "outbound pushes published");
        if let Some(error) = failure {
            // A channel that nacked or timed out is not used again (a quorum
            // queue's leader may have moved: `Broker::renew_channel`).
            if let Some(link) = link.take() {
                link.close().await;
            }
            return Err(anyhow::Error::new(error).context(format!(
                "failed to publish {} of {} pushes to {}; the next round publishes them again",
                pushes.len() - confirmed.len(),
                pushes.len(),
                self.names.outbound(),
            )));
        }
        Ok(i64::try_from(pushes.len()).unwrap_or(i64::MAX))
    }
}

/// The relay's RabbitMQ connection and confirm channel, opened when there is
/// something to publish. It declares no topology: the worker's consumer does, on
/// each connect; a push published before `P.outbound` exists comes back
/// unroutable and is published again.
struct Link {
    connection: Connection,
    channel: Channel,
}

impl Link {
    /// The channel of `link`, (re)connecting when it is not open.
    async fn channel<'a>(link: &'a mut Option<Self>, url: &str) -> anyhow::Result<&'a Channel> {
        let open = link.as_ref().is_some_and(|link| {
            link.connection.status().connected() && link.channel.status().connected()
        });
        if !open {
            if let Some(old) = link.take() {
                old.close().await;
            }
            let connection = connection::connect(url, "outbound-relay").await?;
            let channel = match confirm_channel(&connection).await {
                Ok(channel) => channel,
                Err(error) => {
                    let _ = connection.close(200, "no channel".into()).await;
                    return Err(error);
                }
            };
            *link = Some(Self {
                connection,
                channel,
            });
        }
        link.as_ref()
            .map(|link| &link.channel)
            .context("the relay's RabbitMQ link is gone")
    }

    async fn close(self) {
        let closing = self.connection.close(200, "relay stopping".into());
        let _ = tokio::time::timeout(queue::publisher::CONFIRM_TIMEOUT, closing).await;
    }
}

/// Listens on [`CHANNEL`] and wakes the relay at each notification, and after
/// each (re)connect (notifications sent meanwhile are lost), until `shutdown`.
async fn listen(target: Target, wake: Arc<Notify>, shutdown: Shutdown) {
    reconnect::until_ok(
        reconnect::DATABASE,
        &shutdown,
        || listen_once(&target, &wake, &shutdown),
        |error| {
            tracing::warn!(%error, "outbound relay cannot listen to Postgres; polling every {} s meanwhile", POLL.as_secs());
        },
    )
    .await;
}

/// One LISTEN connection's life: Ok on shutdown, Err when it failed.
async fn listen_once(target: &Target, wake: &Notify, shutdown: &Shutdown) -> anyhow::Result<()> {
    let connected = tokio::select! {
        () = shutdown.cancelled() => return Ok(()),
        connected = target.config.connect(target.tls.clone()) => connected,
    };
    let (client, mut connection) = connected
        .map_err(|error| anyhow::anyhow!(db::error_chain(&error)))
        .context("failed to connect to Postgres")?;
    // The connection's messages: notifications, notices, and its end.
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let listen = format!("LISTEN {CHANNEL}");
    let listening = client.batch_execute(&listen);
    tokio::pin!(listening);
    let mut listening_done = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            result = &mut listening, if !listening_done => {
                result.map_err(|error| anyhow::anyhow!(db::error_chain(&error)))
                    .context("failed to LISTEN")?;
                listening_done = true;
                wake.notify_one();
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    return Err(anyhow::anyhow!(db::error_chain(&error)).context("the LISTEN connection failed"));
                }
                None => anyhow::bail!("the LISTEN connection closed"),
            },
        }
    }
}
