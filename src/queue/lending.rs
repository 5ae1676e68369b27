//! Idle webhook slots lent to pushes (docs/reference.md §10.2, "Slots lent to
//! pushes").
//!
//! A worker's prefetch is split among its consumers ([`prefetch`]): at
//! concurrency 16, 11 webhooks, 1 job and 4 pushes. When webhooks stop coming
//! while pushes fill their slots (a backlog after a Jira outage, a bulk change in
//! the application), 11 slots sit idle and the pushes queue up behind 4. The
//! [`Lender`] then cancels the webhook consumer and consumes `P.outbound` with
//! those slots instead, so the worker never holds more than its concurrency. As
//! soon as webhooks wait in their queue, or the lent consumer has had nothing to
//! do for [`IDLE`], it cancels the lent consumer and consumes webhooks again:
//! at once with the slots the lent pushes have left, with the rest once they
//! finish.
//!
//! The lender runs inside the consumer loop's task (polled by its `select!`),
//! on the loop's channel: a consumer it starts is handed to the loop through a
//! channel ([`LoopEnds`]), and the loop tells it which consumers ended. Any error
//! ends the connection's life (the loop reconnects, and starts unlent).
//!
//! [`prefetch`]: super::consumer::prefetch

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{Stream, StreamExt};
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::QueueDeclareOptions;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio::sync::mpsc;

use super::consumer::Prefetch;

/// How often the lender looks at the lanes (and, while lending, at the webhook
/// queue).
const TICK: Duration = Duration::from_millis(100);

/// How long webhooks must have been quiet, with every push slot taken, before
/// their slots are lent; and how long the lent consumer may have nothing to do
/// before they are returned.
pub const IDLE: Duration = Duration::from_secs(1);

/// Which consumer a delivery came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// `P.webhooks`.
    Webhooks,
    /// `P.jobs`.
    Jobs,
    /// `P.outbound`, with the pushes' own slots.
    Pushes,
    /// `P.outbound`, with the webhooks' slots lent.
    Lent,
}

/// What a consumer's stream yields: a delivery (its lane and queue), then, once
/// the consumer is cancelled and its last delivery yielded, that it ended.
#[expect(
    clippy::large_enum_variant,
    reason = "a delivery moves once, from the stream into its task; boxing would allocate for each"
)]
pub enum Item {
    /// A delivery, or the error that ended the consumer.
    Delivery(Lane, String, lapin::Result<Delivery>),
    /// The consumer with this tag delivers nothing more.
    Ended(String),
}

/// A consumer's deliveries, tagged, ending with [`Item::Ended`].
pub type Deliveries = Pin<Box<dyn Stream<Item = Item> + Send>>;

/// Tags `consumer`'s deliveries with `lane` and `queue`, and marks its end.
pub fn deliveries(lane: Lane, queue: String, consumer: lapin::Consumer) -> Deliveries {
    let tag = consumer.tag().to_string();
    Box::pin(
        consumer
            .map(move |delivery| Item::Delivery(lane, queue.clone(), delivery))
            .chain(futures_util::stream::once(std::future::ready(Item::Ended(
                tag,
            )))),
    )
}

/// Consumes `queue` on `channel`, holding at most `prefetch` unacked deliveries.
pub async fn consume(
    channel: &Channel,
    queue: &str,
    prefetch: u16,
) -> anyhow::Result<lapin::Consumer> {
    // Per consumer (quorum queues know no per-channel prefetch): it applies to
    // the consumers started after it on the channel.
    channel
        .basic_qos(prefetch, BasicQosOptions { global: false })
        .await
        .context("failed to set the prefetch")?;
    channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("failed to consume {queue}"))
}

/// One lane's deliveries in flight, and when it last had one.
#[derive(Debug)]
pub struct Busy {
    in_flight: AtomicUsize,
    last: Mutex<Instant>,
}

impl Busy {
    /// Quiet since long enough: a worker that starts on a backlog of pushes lends
    /// at its first look unless webhooks came meanwhile (they come within
    /// milliseconds of consuming when they wait).
    fn new() -> Self {
        let now = Instant::now();
        Self {
            in_flight: AtomicUsize::new(0),
            last: Mutex::new(now.checked_sub(IDLE).unwrap_or(now)),
        }
    }

    /// A delivery of the lane is taken.
    fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// A delivery of the lane is settled.
    fn finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Nothing in flight, and nothing taken for `idle`.
    fn quiet_for(&self, idle: Duration) -> bool {
        self.in_flight() == 0
            && self
                .last
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .elapsed()
                >= idle
    }
}

/// The lanes the lender watches; the consumer loop counts each delivery in its
/// lane ([`Lanes::taken`]) from when it is taken until it is settled.
#[derive(Debug)]
pub struct Lanes {
    webhooks: Busy,
    pushes: Busy,
    lent: Busy,
}

impl Lanes {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            webhooks: Busy::new(),
            pushes: Busy::new(),
            lent: Busy::new(),
        })
    }

    /// The counter of `lane` (jobs are not watched).
    fn busy(&self, lane: Lane) -> Option<&Busy> {
        match lane {
            Lane::Webhooks => Some(&self.webhooks),
            Lane::Pushes => Some(&self.pushes),
            Lane::Lent => Some(&self.lent),
            Lane::Jobs => None,
        }
    }

    /// Counts a delivery of `lane` in flight until the guard is dropped (also
    /// when its task unwinds: a count left behind would keep the lender
    /// waiting for good).
    pub fn taken(self: &Arc<Self>, lane: Lane) -> InFlight {
        if let Some(busy) = self.busy(lane) {
            busy.started();
        }
        InFlight {
            lanes: Arc::clone(self),
            lane,
        }
    }
}

/// A delivery in flight in its lane ([`Lanes::taken`]).
pub struct InFlight {
    lanes: Arc<Lanes>,
    lane: Lane,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(busy) = self.lanes.busy(self.lane) {
            busy.finished();
        }
    }
}

/// Lends the webhooks' slots to pushes and takes them back (module docs).
pub struct Lender {
    /// The loop's channel: the consumers are cancelled and started on it.
    channel: Channel,
    /// A channel of its own that asks how many webhooks wait (a passive
    /// declare), so a failure there does not close the loop's.
    probe: Channel,
    /// `P.webhooks` and `P.outbound`.
    webhooks: String,
    outbound: String,
    prefetch: Prefetch,
    lanes: Arc<Lanes>,
    /// The webhook consumers' tags (one, or two once the slots came back in
    /// two parts): together they hold the webhooks' whole share.
    webhook_consumers: Vec<String>,
    /// To the loop: consumers to take deliveries from.
    streams: mpsc::UnboundedSender<Deliveries>,
    /// From the loop: the tags of consumers that ended.
    ended: mpsc::UnboundedReceiver<String>,
    lent_slots: metrics::Gauge,
}

/// The loop's ends of a [`Lender`]'s channels.
pub struct LoopEnds {
    /// Consumers the lender started.
    pub streams: mpsc::UnboundedReceiver<Deliveries>,
    /// Where the loop tells which consumers ended.
    pub ended: mpsc::UnboundedSender<String>,
}

/// What the lender needs to start with.
pub struct Start {
    pub channel: Channel,
    pub probe: Channel,
    pub webhooks: String,
    pub outbound: String,
    pub prefetch: Prefetch,
    pub lanes: Arc<Lanes>,
    /// The webhook consumer the loop started.
    pub webhook_consumer: String,
}

impl Lender {
    pub fn new(start: Start) -> (Self, LoopEnds) {
        let (streams, streams_rx) = mpsc::unbounded_channel();
        let (ended_tx, ended) = mpsc::unbounded_channel();
        let lent_slots = metrics::gauge!("jirasync_worker_lent_slots");
        lent_slots.set(0.0);
        let lender = Self {
            channel: start.channel,
            probe: start.probe,
            webhooks: start.webhooks,
            outbound: start.outbound,
            webhook_consumers: vec![start.webhook_consumer],
            prefetch: start.prefetch,
            lanes: start.lanes,
            streams,
            ended,
            lent_slots,
        };
        let ends = LoopEnds {
            streams: streams_rx,
            ended: ended_tx,
        };
        (lender, ends)
    }

    /// Lends and takes back, for as long as the connection lives; returns the
    /// error that stopped it (the loop then reconnects).
    pub async fn run(mut self) -> anyhow::Error {
        match self.lend_and_return().await {
            Err(error) => error.context("lending webhook slots to pushes failed"),
            Ok(never) => match never {},
        }
    }

    async fn lend_and_return(&mut self) -> anyhow::Result<std::convert::Infallible> {
        let slots = self.prefetch.lendable;
        loop {
            // Unlent: wait for idle webhooks while every push slot is taken.
            loop {
                tokio::time::sleep(TICK).await;
                if self.lanes.pushes.in_flight() >= usize::from(self.prefetch.outbound)
                    && self.lanes.webhooks.quiet_for(IDLE)
                {
                    break;
                }
            }
            for tag in std::mem::take(&mut self.webhook_consumers) {
                self.cancel(&tag).await?;
            }
            // Deliveries that came before the cancel are handled first.
            self.wait_until(|lanes| lanes.webhooks.in_flight() == 0)
                .await;
            let lent = self
                .consume(&self.outbound.clone(), Lane::Lent, slots)
                .await?;
            self.lent_slots.set(f64::from(slots));
            tracing::info!(
                slots,
                "webhooks are quiet and every push slot is taken: lending the webhooks' slots to pushes"
            );
            // Lent: until webhooks wait, or the pushes are done.
            let waiting = loop {
                tokio::time::sleep(TICK).await;
                let waiting = self
                    .probe
                    .queue_declare(
                        self.webhooks.as_str().into(),
                        QueueDeclareOptions {
                            passive: true,
                            ..QueueDeclareOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await
                    .with_context(|| format!("failed to look at {}", self.webhooks))?
                    .message_count();
                if waiting > 0 || self.lanes.lent.quiet_for(IDLE) {
                    break waiting;
                }
            };
            self.cancel(&lent).await?;
            // Webhooks get their whole share back: at once what the lent pushes
            // do not hold (at least one), the rest as they finish.
            let share = self.prefetch.webhooks;
            self.wait_until(|lanes| lanes.lent.in_flight() < usize::from(share))
                .await;
            let free = share.saturating_sub(self.lent_in_flight()).max(1);
            let tag = self
                .consume(&self.webhooks.clone(), Lane::Webhooks, free)
                .await?;
            self.webhook_consumers.push(tag);
            tracing::info!(
                waiting,
                "webhooks wait or the pushes are done: the webhooks' slots are theirs again"
            );
            if free < share {
                self.wait_until(|lanes| lanes.lent.in_flight() == 0).await;
                let tag = self
                    .consume(&self.webhooks.clone(), Lane::Webhooks, share - free)
                    .await?;
                self.webhook_consumers.push(tag);
            }
            self.lent_slots.set(0.0);
        }
    }

    /// The lent pushes in flight (at most the lent slots, a `u16`).
    fn lent_in_flight(&self) -> u16 {
        u16::try_from(self.lanes.lent.in_flight()).unwrap_or(u16::MAX)
    }

    /// Cancels consumer `tag` and waits until the loop has taken its last delivery.
    async fn cancel(&mut self, tag: &str) -> anyhow::Result<()> {
        self.channel
            .basic_cancel(tag.into(), BasicCancelOptions::default())
            .await
            .context("failed to cancel a consumer")?;
        loop {
            match self.ended.recv().await {
                Some(ended) if ended == tag => return Ok(()),
                Some(_) => {}
                None => anyhow::bail!("the consumer loop stopped"),
            }
        }
    }

    /// Consumes `queue` with `prefetch` in `lane`; hands the consumer to the loop
    /// and returns its tag.
    async fn consume(&self, queue: &str, lane: Lane, prefetch: u16) -> anyhow::Result<String> {
        let consumer = consume(&self.channel, queue, prefetch).await?;
        let tag = consumer.tag().to_string();
        self.streams
            .send(deliveries(lane, queue.to_owned(), consumer))
            .map_err(|_| anyhow::anyhow!("the consumer loop stopped"))?;
        Ok(tag)
    }

    /// Waits until `done` holds of the lanes.
    async fn wait_until(&self, done: impl Fn(&Lanes) -> bool) {
        while !done(&self.lanes) {
            tokio::time::sleep(TICK / 10).await;
        }
    }
}
