//! Idle slots lent (docs/reference.md §10.2, "Slots lent"): the webhooks' and
//! jobs' to pushes, the pushes' and jobs' to webhooks.
//!
//! A worker's prefetch is split among its consumers ([`prefetch`]): at
//! concurrency 16, 11 webhooks, 1 job and 4 pushes. When webhooks stop coming
//! while pushes fill their slots (a backlog after a Jira outage, a bulk change in
//! the application), 11 slots sit idle and the pushes queue up behind 4. The
//! [`Lender`] then cancels the webhook consumer, and the jobs' too when no job
//! came for [`IDLE`], and consumes `P.outbound` with those slots instead (at
//! most [`LENDABLE`]), so the worker never holds more than its concurrency. As
//! soon as webhooks or jobs wait in their queues, or the lent consumer has had
//! nothing to do for [`IDLE`], it cancels the lent consumer and consumes jobs
//! and webhooks again: jobs first, then webhooks, at once with the slots the
//! lent pushes have left, with the rest once they finish.
//!
//! The other way round, when pushes have been quiet for [`IDLE`] while every
//! webhook slot is taken (a burst of webhooks, a backlog after an outage), the
//! pushes' slots, and the jobs' when as quiet, are lent to webhooks the same
//! way: a second consumer of `P.webhooks` takes them, so a worker's batches
//! grow (at 16, 16 webhooks in flight instead of 11: each webhook's share of a
//! batch's statements and commit shrinks). Pushes or jobs waiting in their
//! queues take them back.
//!
//! The lender runs inside the consumer loop's task (polled by its `select!`),
//! on the loop's channel: a consumer it starts is handed to the loop through a
//! channel ([`LoopEnds`]), and the loop tells it which consumers ended. Any error
//! ends the connection's life (the loop reconnects, and starts unlent).
//!
//! [`prefetch`]: super::consumer::prefetch
//! [`LENDABLE`]: super::consumer::LENDABLE

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{Stream, StreamExt};
use lapin::Channel;
use lapin::message::Delivery;
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
    /// `P.outbound`, with the webhooks' (and jobs') slots lent.
    LentToPushes,
    /// `P.webhooks`, with the pushes' (and jobs') slots lent.
    LentToWebhooks,
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
    jobs: Busy,
    pushes: Busy,
    lent_to_pushes: Busy,
    lent_to_webhooks: Busy,
}

impl Lanes {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            webhooks: Busy::new(),
            jobs: Busy::new(),
            pushes: Busy::new(),
            lent_to_pushes: Busy::new(),
            lent_to_webhooks: Busy::new(),
        })
    }

    /// The counter of `lane`.
    fn busy(&self, lane: Lane) -> &Busy {
        match lane {
            Lane::Webhooks => &self.webhooks,
            Lane::Jobs => &self.jobs,
            Lane::Pushes => &self.pushes,
            Lane::LentToPushes => &self.lent_to_pushes,
            Lane::LentToWebhooks => &self.lent_to_webhooks,
        }
    }

    /// Counts a delivery of `lane` in flight until the guard is dropped (also
    /// when its task unwinds: a count left behind would keep the lender
    /// waiting for good).
    pub fn taken(self: &Arc<Self>, lane: Lane) -> InFlight {
        self.busy(lane).started();
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
        self.lanes.busy(self.lane).finished();
    }
}

/// Whose slots are lent.
#[derive(Debug, Clone, Copy)]
enum Share {
    Webhooks,
    Jobs,
    Pushes,
}

impl Share {
    fn lane(self) -> Lane {
        match self {
            Self::Webhooks => Lane::Webhooks,
            Self::Jobs => Lane::Jobs,
            Self::Pushes => Lane::Pushes,
        }
    }
}

/// Who the slots are lent to.
#[derive(Debug, Clone, Copy)]
enum Borrower {
    /// Pushes take the webhooks' slots (and the jobs').
    Pushes,
    /// Webhooks take the pushes' slots (and the jobs').
    Webhooks,
}

impl Borrower {
    /// The share lent whenever slots are lent to it (the jobs' is lent too when
    /// they are quiet).
    fn lender(self) -> Share {
        match self {
            Self::Pushes => Share::Webhooks,
            Self::Webhooks => Share::Pushes,
        }
    }

    /// The lane of the deliveries it takes with lent slots.
    fn lane(self) -> Lane {
        match self {
            Self::Pushes => Lane::LentToPushes,
            Self::Webhooks => Lane::LentToWebhooks,
        }
    }

    /// Its own share, whose queue it consumes with the lent slots too.
    fn own(self) -> Share {
        match self {
            Self::Pushes => Share::Pushes,
            Self::Webhooks => Share::Webhooks,
        }
    }

    /// The most slots lent to it: each lent push holds a pool connection
    /// ([`LENDABLE`](super::consumer::LENDABLE)); webhooks may take what the
    /// concurrency leaves beside their own. 0: nothing is lent to it (a
    /// prefetch of 0 would mean no limit).
    fn most(self, prefetch: Prefetch) -> u16 {
        match self {
            Self::Pushes => prefetch.lendable,
            Self::Webhooks => prefetch.to_webhooks,
        }
    }

    /// The label of `jirasync_worker_lent_slots`.
    fn label(self) -> &'static str {
        match self {
            Self::Pushes => "pushes",
            Self::Webhooks => "webhooks",
        }
    }
}

/// `jirasync_worker_lent_slots{to}`: the slots lent to `borrower` now.
fn lent_slots(borrower: Borrower) -> metrics::Gauge {
    metrics::gauge!("jirasync_worker_lent_slots", "to" => borrower.label())
}

/// A consumer whose slots are lent: its queue, its share of the prefetch,
/// and its consumers now (one; two once the slots came back in two parts; none
/// while they are lent).
struct Lending {
    queue: String,
    share: u16,
    consumers: Vec<String>,
}

/// Lends the webhooks' and the jobs' slots to pushes, or the pushes' and the
/// jobs' to webhooks, and takes them back (module docs).
pub struct Lender {
    /// The loop's channel: the consumers are cancelled and started on it.
    channel: Channel,
    /// A channel of its own that asks how many messages wait in the lenders'
    /// queues (a passive declare), so a failure there does not close the loop's.
    probe: Channel,
    webhooks: Lending,
    jobs: Lending,
    pushes: Lending,
    prefetch: Prefetch,
    lanes: Arc<Lanes>,
    /// To the loop: consumers to take deliveries from.
    streams: mpsc::UnboundedSender<Deliveries>,
    /// From the loop: the tags of consumers that ended.
    ended: mpsc::UnboundedReceiver<String>,
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
    /// `P.webhooks`, `P.jobs` and `P.outbound`.
    pub webhooks: String,
    pub jobs: String,
    pub outbound: String,
    pub prefetch: Prefetch,
    pub lanes: Arc<Lanes>,
    /// The webhook, job and push consumers the loop started.
    pub webhook_consumer: String,
    pub jobs_consumer: String,
    pub pushes_consumer: String,
}

impl Lender {
    pub fn new(start: Start) -> (Self, LoopEnds) {
        let (streams, streams_rx) = mpsc::unbounded_channel();
        let (ended_tx, ended) = mpsc::unbounded_channel();
        for borrower in [Borrower::Pushes, Borrower::Webhooks] {
            lent_slots(borrower).set(0.0);
        }
        let lender = Self {
            channel: start.channel,
            probe: start.probe,
            webhooks: Lending {
                queue: start.webhooks,
                share: start.prefetch.webhooks,
                consumers: vec![start.webhook_consumer],
            },
            jobs: Lending {
                queue: start.jobs,
                share: start.prefetch.jobs,
                consumers: vec![start.jobs_consumer],
            },
            pushes: Lending {
                queue: start.outbound,
                share: start.prefetch.outbound,
                consumers: vec![start.pushes_consumer],
            },
            prefetch: start.prefetch,
            lanes: start.lanes,
            streams,
            ended,
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
            Err(error) => error.context("lending idle slots failed"),
            Ok(never) => match never {},
        }
    }

    async fn lend_and_return(&mut self) -> anyhow::Result<std::convert::Infallible> {
        loop {
            // Unlent: wait for one side quiet while the other takes every slot of its own.
            let borrower = loop {
                tokio::time::sleep(TICK).await;
                self.jobs_again().await?;
                if self.wants(Borrower::Pushes) {
                    break Borrower::Pushes;
                }
                if self.wants(Borrower::Webhooks) {
                    break Borrower::Webhooks;
                }
            };
            self.lend(borrower).await?;
        }
    }

    /// Whether slots are to be lent to `borrower`: it may take some, every
    /// slot of its own is taken, and its lender has been quiet for [`IDLE`].
    fn wants(&mut self, borrower: Borrower) -> bool {
        let own = borrower.own();
        let share = usize::from(self.lending(own).share);
        borrower.most(self.prefetch) > 0
            && self.lanes.busy(own.lane()).in_flight() >= share
            && self.lanes.busy(borrower.lender().lane()).quiet_for(IDLE)
    }

    /// Lends the slots of `borrower`'s lender, and the jobs' when no job came
    /// for [`IDLE`] either, to `borrower` until its lenders' messages wait or it
    /// has had nothing to do for [`IDLE`]; then gives them back.
    async fn lend(&mut self, borrower: Borrower) -> anyhow::Result<()> {
        let lender = borrower.lender();
        let lent_lane = borrower.lane();
        self.cancel_all(lender).await?;
        // The jobs' slots too, when none came for as long.
        let jobs_quiet = self.lanes.jobs.quiet_for(IDLE);
        if jobs_quiet {
            self.cancel_all(Share::Jobs).await?;
        }
        // Deliveries that came before the cancels are handled first. A job
        // that came meanwhile keeps its slot: its consumer comes back once
        // it is done (`jobs_again`).
        self.wait_until(|lanes| lanes.busy(lender.lane()).in_flight() == 0)
            .await;
        let jobs_lent = jobs_quiet && self.lanes.jobs.in_flight() == 0;
        let budget = self.lending(lender).share + if jobs_lent { self.jobs.share } else { 0 };
        let slots = budget.min(borrower.most(self.prefetch));
        let queue = self.lending(borrower.own()).queue.clone();
        let lent = self.consume(&queue, lent_lane, slots).await?;
        lent_slots(borrower).set(f64::from(slots));
        tracing::info!(
            slots,
            jobs_lent,
            to = borrower.label(),
            "one side is quiet and the other takes every slot of its own: lending the quiet side's (and, quiet too, the jobs') slots"
        );
        // Lent: until the lenders' messages wait, or the borrower is done.
        let (lender_waiting, jobs_waiting) = loop {
            tokio::time::sleep(TICK).await;
            if !jobs_lent {
                self.jobs_again().await?;
            }
            let waiting = self.waiting(lender).await?;
            let jobs = self.waiting(Share::Jobs).await?;
            if waiting > 0 || jobs > 0 || self.lanes.busy(lent_lane).quiet_for(IDLE) {
                break (waiting, jobs);
            }
        };
        self.cancel(&lent).await?;
        // Jobs, then the lender, get their whole share back: at once what the
        // lent deliveries do not hold (at least a slot each), the rest as they
        // finish.
        let owed = if jobs_lent {
            vec![Share::Jobs, lender]
        } else {
            vec![lender]
        };
        let lent_in_flight = |lanes: &Lanes| lanes.busy(lent_lane).in_flight();
        let mut given = 0;
        let mut rest = Vec::new();
        for share_of in owed {
            self.wait_until(|lanes| {
                usize::from(given) + lent_in_flight(lanes) < usize::from(budget)
            })
            .await;
            let share = self.lending(share_of).share;
            let held = u16::try_from(lent_in_flight(&self.lanes)).unwrap_or(u16::MAX);
            let part = share.min(budget.saturating_sub(given + held));
            self.start(share_of, part).await?;
            given += part;
            if part < share {
                rest.push((share_of, share - part));
            }
        }
        tracing::info!(
            lender_waiting,
            jobs_waiting,
            to = borrower.label(),
            "the lenders' messages wait, or the borrower is done: the lent slots are theirs again"
        );
        if !rest.is_empty() {
            self.wait_until(|lanes| lent_in_flight(lanes) == 0).await;
            for (share_of, part) in rest {
                self.start(share_of, part).await?;
            }
        }
        lent_slots(borrower).set(0.0);
        Ok(())
    }

    /// The consumers of `share`.
    fn lending(&mut self, share: Share) -> &mut Lending {
        match share {
            Share::Webhooks => &mut self.webhooks,
            Share::Jobs => &mut self.jobs,
            Share::Pushes => &mut self.pushes,
        }
    }

    /// Consumes jobs again once the job that came as their slots were about to
    /// be lent is done (the slots were not lent: it held them).
    async fn jobs_again(&mut self) -> anyhow::Result<()> {
        if self.jobs.consumers.is_empty() && self.lanes.jobs.in_flight() == 0 {
            self.start(Share::Jobs, self.jobs.share).await?;
        }
        Ok(())
    }

    /// How many messages wait in the queue of `share`'s consumers.
    async fn waiting(&mut self, share: Share) -> anyhow::Result<u32> {
        let queue = self.lending(share).queue.clone();
        super::topology::waiting(&self.probe, &queue)
            .await
            .with_context(|| format!("failed to look at {queue}"))
    }

    /// Cancels `share`'s consumers.
    async fn cancel_all(&mut self, share: Share) -> anyhow::Result<()> {
        for tag in std::mem::take(&mut self.lending(share).consumers) {
            self.cancel(&tag).await?;
        }
        Ok(())
    }

    /// Consumes the queue of `share`'s consumers with `prefetch` of its share.
    async fn start(&mut self, share: Share, prefetch: u16) -> anyhow::Result<()> {
        let queue = self.lending(share).queue.clone();
        let tag = self.consume(&queue, share.lane(), prefetch).await?;
        self.lending(share).consumers.push(tag);
        Ok(())
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
