//! The worker's consumer loop: a consuming connection and a publishing one
//! (reconnected by `crate::reconnect`), a task per delivery bounded by a
//! semaphore, each delivery handled (with retries in process) and settled by
//! `settle.rs`'s [`Settler`], the one place that decides ack / retry tier / dead
//! letter (the handlers' side of it is `handler.rs`).
//! Retry and dead-letter publishes are confirmed before the original is acked
//! (waiting out a resource alarm). They go out on a connection of their own: RabbitMQ
//! stops reading a connection it blocks, acks included, so one blocked publish on
//! the consuming connection would hold every other message's ack.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::{FutureExt, StreamExt};
use lapin::Connection;
use lapin::message::Delivery;
use metrics::{Counter, Gauge, Histogram};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::acks::{Acks, Noter};
use super::handler::{Failure, Handler, Incoming, Outcome};
use super::lending::{self, Item, Lane, Lanes, Lender};
use super::message;
use super::publisher::confirm_channel;
use super::settle::{Settler, settle};
use super::{Names, connection, topology};
use crate::reconnect;
use crate::shutdown::Shutdown;

/// How long in-flight messages may take to finish after shutdown is requested.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(20);

/// Tries of a retryable failure within one delivery, before the retry tiers.
const IN_PROCESS_TRIES: usize = 3;

/// What the consumer loop needs to know.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// RabbitMQ URL.
    pub url: String,
    /// Queue names.
    pub names: Names,
    /// Retry tiers.
    pub delays: Vec<Duration>,
    /// How long after its first failure a message whose dependency is failing
    /// ([`Failure::DependencyDown`]) keeps waiting on the last tier before it is
    /// dead-lettered (`JIRASYNC_JIRA_OUTAGE_MAX`).
    pub outage_max: Duration,
    /// Messages in flight, and unacked deliveries across the consumers
    /// ([`prefetch`]).
    pub concurrency: u16,
    /// Whether `P.outbound` is consumed too (`JIRASYNC_OUTBOUND`; off, its
    /// pushes wait in the queue).
    pub outbound: bool,
    /// How long in-flight messages may take to finish after shutdown.
    pub drain_deadline: Duration,
    /// True while the loop is consuming (the worker's `/readyz`).
    pub consuming: Arc<AtomicBool>,
}

/// Consumes `P.webhooks`, `P.jobs` and (unless turned off) `P.outbound` until
/// `shutdown`, reconnecting after failures.
pub async fn run<H: Handler>(
    config: ConsumerConfig,
    handler: Arc<H>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    if shutdown.is_cancelled() {
        return Ok(());
    }
    // `consume` returns Ok only on shutdown.
    reconnect::until_ok(
        reconnect::BROKER,
        &shutdown,
        || consume(&config, &handler, &shutdown),
        |error| tracing::warn!(%error, "consumer stopped; reconnecting"),
    )
    .await;
    Ok(())
}

/// What handling a delivery needs: shared by every delivery task of one connection.
struct Handling<H> {
    handler: Arc<H>,
    /// Where each handled delivery goes next.
    settler: Settler<H>,
    /// Where each delivery is acked, with the others settled at the same time.
    acks: Noter,
    /// Held messages stop waiting for an outage to end on shutdown.
    shutdown: Shutdown,
    /// What every delivery counts.
    meters: Meters,
}

/// The loop's metrics, each handle made once: a `metrics::counter!` with labels
/// builds its key and looks it up in the registry at every call.
struct Meters {
    /// `jirasync_messages_in_flight`.
    in_flight: Gauge,
    /// Handles of `jirasync_message_duration_seconds` by type label. A std lock:
    /// held for one map operation, never across an await.
    durations: Mutex<HashMap<&'static str, Histogram>>,
    /// Handles of `jirasync_messages_total` by type label and outcome; the same lock.
    totals: Mutex<HashMap<(&'static str, &'static str), Counter>>,
}

impl Meters {
    fn new() -> Self {
        Self {
            in_flight: metrics::gauge!("jirasync_messages_in_flight"),
            durations: Mutex::default(),
            totals: Mutex::default(),
        }
    }

    fn duration(&self, kind: &'static str) -> Histogram {
        let mut durations = self
            .durations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        durations
            .entry(kind)
            .or_insert_with(
                || metrics::histogram!("jirasync_message_duration_seconds", "type" => kind),
            )
            .clone()
    }

    fn total(&self, kind: &'static str, outcome: Outcome) -> Counter {
        let mut totals = self.totals.lock().unwrap_or_else(PoisonError::into_inner);
        totals
            .entry((kind, outcome.label()))
            .or_insert_with(|| {
                metrics::counter!("jirasync_messages_total", "type" => kind, "outcome" => outcome.label())
            })
            .clone()
    }
}

/// One connection's life: returns Ok on shutdown, Err when the connection failed.
async fn consume<H: Handler>(
    config: &ConsumerConfig,
    handler: &Arc<H>,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let connection = connection::connect(&config.url, "worker").await?;
    let publishing = match connection::connect(&config.url, "worker-publisher").await {
        Ok(publishing) => publishing,
        Err(error) => {
            close(&connection).await;
            return Err(error);
        }
    };
    let result = consume_on(config, handler, shutdown, &connection, &publishing).await;
    // Unacked messages go back to the queue when the consuming connection closes.
    close(&connection).await;
    close(&publishing).await;
    result
}

/// [`consume`] once both connections are open.
async fn consume_on<H: Handler>(
    config: &ConsumerConfig,
    handler: &Arc<H>,
    shutdown: &Shutdown,
    connection: &Connection,
    publishing: &Connection,
) -> anyhow::Result<()> {
    let publisher = confirm_channel(publishing).await?;
    let publisher_lost = lost(publishing);
    tokio::pin!(publisher_lost);
    topology::declare(connection, &config.names, &config.delays).await?;
    let channel = connection
        .create_channel()
        .await
        .context("failed to open the consume channel")?;
    let prefetch = prefetch(config.concurrency, config.outbound);
    let mut queues = vec![
        (config.names.webhooks(), Lane::Webhooks, prefetch.webhooks),
        (config.names.jobs(), Lane::Jobs, prefetch.jobs),
    ];
    if config.outbound {
        queues.push((config.names.outbound(), Lane::Pushes, prefetch.outbound));
    }
    let mut streams = Vec::new();
    let (mut webhook_consumer, mut jobs_consumer, mut pushes_consumer) =
        (String::new(), String::new(), String::new());
    for (queue, lane, prefetch) in queues {
        let consumer = lending::consume(&channel, &queue, prefetch).await?;
        match lane {
            Lane::Webhooks => webhook_consumer = consumer.tag().to_string(),
            Lane::Jobs => jobs_consumer = consumer.tag().to_string(),
            Lane::Pushes => pushes_consumer = consumer.tag().to_string(),
            Lane::LentToPushes | Lane::LentToWebhooks => {}
        }
        streams.push(lending::deliveries(lane, queue, consumer));
    }
    let mut deliveries = futures_util::stream::select_all(streams);
    let lanes = Lanes::new();
    // With pushes consumed, idle webhook and job slots are lent to them, and
    // idle push and job slots to webhooks (`lending`).
    let (mut lender, mut ends): (Lending, _) = if config.outbound {
        let probe = connection
            .create_channel()
            .await
            .context("failed to open the channel that watches the queues of lent slots")?;
        let (lender, ends) = Lender::new(lending::Start {
            channel: channel.clone(),
            probe,
            webhooks: config.names.webhooks(),
            jobs: config.names.jobs(),
            outbound: config.names.outbound(),
            prefetch,
            lanes: Arc::clone(&lanes),
            webhook_consumer,
            jobs_consumer,
            pushes_consumer,
        });
        (Box::pin(lender.run()), Some(ends))
    } else {
        (Box::pin(std::future::pending()), None)
    };
    tracing::info!(
        concurrency = config.concurrency,
        threads = tokio::runtime::Handle::current().metrics().num_workers(),
        "worker consuming"
    );
    metrics::gauge!("jirasync_broker_connected", "role" => "worker").set(1.0);
    config.consuming.store(true, Ordering::Release);

    let (acks, noter) = Acks::start(channel.clone());
    let handling = Arc::new(Handling {
        handler: Arc::clone(handler),
        acks: noter,
        settler: Settler {
            handler: Arc::clone(handler),
            publisher,
            connection: publishing.status().clone(),
            frame_max: publishing.configuration().frame_max(),
            names: config.names.clone(),
            delays: config.delays.clone(),
            outage_max: config.outage_max,
        },
        shutdown: shutdown.clone(),
        meters: Meters::new(),
    });
    let semaphore = Arc::new(Semaphore::new(usize::from(config.concurrency)));
    let tasks = TaskTracker::new();
    let result = loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            error = &mut publisher_lost => break Err(error),
            error = &mut lender => break Err(error),
            permit = Arc::clone(&semaphore).acquire_owned() => permit.context("semaphore closed")?,
        };
        let next = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            error = &mut publisher_lost => break Err(error),
            error = &mut lender => break Err(error),
            Some(stream) = next_stream(&mut ends) => {
                deliveries.push(stream);
                continue;
            }
            next = deliveries.next() => next,
        };
        match next {
            Some(Item::Delivery(lane, queue, Ok(delivery))) => {
                let handling = Arc::clone(&handling);
                let in_flight = lanes.taken(lane);
                tasks.spawn(Box::pin(async move {
                    process(&handling, queue, delivery).await;
                    drop((in_flight, permit));
                }));
            }
            Some(Item::Delivery(_, queue, Err(error))) => {
                break Err(anyhow::Error::new(error).context(format!("consuming {queue} failed")));
            }
            Some(Item::Ended(tag)) => {
                if let Some(ends) = &ends {
                    let _ = ends.ended.send(tag);
                }
            }
            None => break Err(anyhow::anyhow!("the broker cancelled the consumers")),
        }
    };
    metrics::gauge!("jirasync_broker_connected", "role" => "worker").set(0.0);
    config.consuming.store(false, Ordering::Release);
    // Stop taking new messages, then let in-flight ones finish within the deadline.
    drop(deliveries);
    tasks.close();
    if tokio::time::timeout(config.drain_deadline, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("in-flight messages did not finish in time; the broker will redeliver them");
    }
    // What the finished deliveries noted is acked before the connection closes.
    drop(handling);
    acks.finish(ACKS_AT_SHUTDOWN).await;
    result
}

/// How long the acks of the deliveries finished at shutdown may take to send.
const ACKS_AT_SHUTDOWN: Duration = Duration::from_secs(5);

/// How many unacked deliveries each consumer may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefetch {
    /// `P.webhooks`'s.
    pub webhooks: u16,
    /// `P.jobs`'s.
    pub jobs: u16,
    /// `P.outbound`'s; 0 when it is not consumed.
    pub outbound: u16,
    /// How many of the webhooks' and jobs' slots are lent to pushes at most
    /// while both are quiet (`lending`); 0 when `P.outbound` is not consumed.
    pub lendable: u16,
    /// How many of the pushes' and jobs' slots are lent to webhooks at most
    /// while both are quiet: what the concurrency leaves beside the webhooks'
    /// own (`lending`); 0 when `P.outbound` is not consumed.
    pub to_webhooks: u16,
}

/// The prefetch of each consumer: together `concurrency`, so a worker holding
/// messages through an outage holds no more than it works on (and at least one
/// each, so more when `concurrency` is below 3). Jobs get a sixteenth: they are
/// few, and a reconciliation may run for minutes. Pushes to Jira (`outbound`)
/// get a quarter, at most [`PUSHES`](crate::outbound::PUSHES) (more
/// would only wait for a push's turn): a push spends most of its time waiting on
/// Jira's answers, so the pushes a worker drains follow how many it holds (at 16:
/// 4 pushes, 164 → 319 pushes/s in docs/performance.md), while webhooks keep 11
/// slots to fill their batches with (their rate did not move from 12).
pub fn prefetch(concurrency: u16, outbound: bool) -> Prefetch {
    let jobs = (concurrency / 16).max(1);
    let outbound = if outbound {
        (concurrency / 4).clamp(1, crate::outbound::PUSHES as u16)
    } else {
        0
    };
    let webhooks = concurrency.saturating_sub(jobs + outbound).max(1);
    Prefetch {
        webhooks,
        jobs,
        outbound,
        lendable: if outbound > 0 {
            (webhooks + jobs).min(LENDABLE)
        } else {
            0
        },
        to_webhooks: if outbound > 0 {
            concurrency.saturating_sub(webhooks).min(outbound + jobs)
        } else {
            0
        },
    }
}

/// The most webhook and job slots lent to pushes: each lent push holds a
/// connection of the pool the idle webhooks and jobs leave (`worker::run` sizes
/// it).
pub const LENDABLE: u16 = 12;

/// The pushes a worker makes at once at most: its own slots and the lent ones.
pub fn pushes(prefetch: Prefetch) -> usize {
    usize::from(prefetch.outbound + prefetch.lendable)
}

/// The most webhooks a worker holds at once: its own slots and, when it consumes
/// pushes, theirs and the jobs' lent while both are quiet (`lending`).
pub fn webhooks_at_most(prefetch: Prefetch) -> u16 {
    prefetch.webhooks + prefetch.to_webhooks
}

/// The lender's fate: its error, or never.
type Lending = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Error> + Send>>;

/// The next consumer the lender started (never, without a lender).
async fn next_stream(ends: &mut Option<lending::LoopEnds>) -> Option<lending::Deliveries> {
    match ends {
        Some(ends) => ends.streams.recv().await,
        None => std::future::pending().await,
    }
}

/// Resolves with the error that ends `connection` (a stream that ends is one too).
async fn lost(connection: &Connection) -> anyhow::Error {
    let mut events = connection.events_listener();
    while let Some(event) = events.next().await {
        if let lapin::Event::Error(error) = event {
            return anyhow::Error::new(error).context("the publishing connection failed");
        }
    }
    anyhow::anyhow!("the publishing connection closed")
}

async fn close(connection: &Connection) {
    if connection.status().connected() {
        let closing = connection.close(200, "worker stopping".into());
        if tokio::time::timeout(Duration::from_secs(5), closing)
            .await
            .is_err()
        {
            tracing::warn!("closing the RabbitMQ connection timed out");
        }
    }
}

/// Handles and settles one delivery, in a task of its own. Its future is boxed
/// where it is spawned, and the handler's where it is called (`guarded`): inline,
/// they made each delivery's task 18 KB, copied whole each time tokio moved it
/// (into its cell, and the stage written at its end) — 15 % of the worker's
/// instructions per webhook (docs/performance.md, "Worker CPU profile").
async fn process<H: Handler>(handling: &Handling<H>, queue: String, delivery: Delivery) {
    // The body and properties are the handler's to read; settling needs only the acker.
    let Delivery {
        delivery_tag,
        properties,
        data,
        acker,
        ..
    } = delivery;
    let ticket = handling.acks.ticket(acker, delivery_tag);
    let incoming = Incoming {
        kind: message::message_type(&properties),
        id: message::message_id(&properties),
        queue,
        properties,
        body: data,
    };
    let span = tracing::info_span!(
        "message",
        message.id = %incoming.id,
        message.type = %incoming.kind,
        integration.id = tracing::field::Empty,
        issue.key = tracing::field::Empty,
    );
    async {
        let started = Instant::now();
        let meters = &handling.meters;
        meters.in_flight.increment(1.0);
        // Parsed once: retries and the dead-letter path reuse it. A delivery that
        // does not parse fails with its parse error.
        let (message, result) = match handling.handler.parse(&incoming) {
            Ok(message) => {
                let result = handle_with_retries(handling, &message, &incoming).await;
                (Some(message), result)
            }
            Err(failure) => (None, Err(failure)),
        };
        meters.in_flight.decrement(1.0);
        // The label is one of §4's types or `unknown`: whoever can publish picks `type`.
        let label = handling.settler.names.catalog().type_label(&incoming.kind);
        meters
            .duration(label)
            .record(started.elapsed().as_secs_f64());
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let outcome = settle(
            &handling.settler,
            &incoming,
            message.as_ref(),
            &ticket,
            result,
        )
        .await;
        meters.total(label, outcome).increment(1);
        tracing::info!(outcome = outcome.label(), elapsed_ms, "message handled");
    }
    .instrument(span)
    .await;
}

/// Runs the handler: passing failures are tried again a few times in process;
/// during an outage the message is held until it ends (or shutdown), using no
/// attempt.
async fn handle_with_retries<H: Handler>(
    handling: &Handling<H>,
    message: &H::Message,
    incoming: &Incoming,
) -> Result<Outcome, Failure> {
    let handler = handling.handler.as_ref();
    let mut delays = ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(1))
        .with_max_times(IN_PROCESS_TRIES - 1)
        .build();
    loop {
        let result = match guarded(handler, message, incoming).await {
            Err(Failure::Outage(error)) => {
                tracing::debug!(reason = %format!("{error:#}"), "held until the outage ends");
                let recovered = tokio::select! {
                    recovered = handler.recovered() => recovered,
                    () = handling.shutdown.cancelled() => return Err(Failure::Outage(error)),
                };
                if recovered {
                    continue;
                }
                Err(Failure::Passing(error))
            }
            other => other,
        };
        match result {
            Err(failure @ (Failure::Passing(_) | Failure::DependencyDown { .. })) => {
                match delays.next() {
                    Some(delay) => {
                        tracing::debug!(reason = %failure, ?delay, "retrying in process");
                        tokio::time::sleep(delay).await;
                    }
                    None => return Err(failure),
                }
            }
            other => return other,
        }
    }
}

/// Runs the handler, turning a panic into a permanent failure: the message is
/// dead-lettered at once with the panic's message (retrying a bug only repeats it,
/// and `jirasync dlq replay` brings it back once fixed) and the delivery is never
/// left unacked. A crash of the whole process is covered by the queues'
/// `x-delivery-limit` instead.
async fn guarded<H: Handler>(
    handler: &H,
    message: &H::Message,
    incoming: &Incoming,
) -> Result<Outcome, Failure> {
    // The handler's state is behind `&self` and idempotent by contract; a panic
    // leaves nothing half-applied that the next message could observe.
    // Boxed: the dispatcher's future is 8 KB (`process`).
    match AssertUnwindSafe(Box::pin(handler.handle(message, incoming)))
        .catch_unwind()
        .await
    {
        Ok(result) => result,
        Err(panic) => {
            let failure = Failure::panicked(panic.as_ref());
            tracing::error!(reason = %failure, "handler panicked");
            Err(failure)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{LENDABLE, Prefetch, prefetch, pushes, webhooks_at_most};

    fn split(concurrency: u16, outbound: bool) -> (u16, u16, u16) {
        let Prefetch {
            webhooks,
            jobs,
            outbound,
            ..
        } = prefetch(concurrency, outbound);
        (webhooks, jobs, outbound)
    }

    #[test]
    fn webhooks_and_jobs_lend_their_slots_up_to_lendable_and_only_with_pushes_consumed() {
        let lendable = |concurrency, outbound| prefetch(concurrency, outbound).lendable;
        assert_eq!(lendable(16, false), 0, "no pushes, nothing lent");
        assert_eq!(lendable(16, true), 12, "every webhook slot and the job's");
        assert_eq!(pushes(prefetch(16, true)), 16, "the whole concurrency");
        assert_eq!(lendable(64, true), LENDABLE);
        assert_eq!(pushes(prefetch(64, true)), 20);
        assert_eq!(lendable(3, true), 2);
        for concurrency in 3..=u16::MAX {
            let split = prefetch(concurrency, true);
            assert!(
                split.lendable >= 2
                    && split.lendable <= (split.webhooks + split.jobs).min(LENDABLE)
            );
            assert!(pushes(split) <= usize::from(concurrency));
        }
    }

    #[test]
    fn pushes_and_jobs_lend_their_slots_to_webhooks_only_when_pushes_are_consumed() {
        assert_eq!(webhooks_at_most(prefetch(16, true)), 16, "11 + 4 + 1");
        assert_eq!(webhooks_at_most(prefetch(64, true)), 64, "52 + 8 + 4");
        assert_eq!(webhooks_at_most(prefetch(16, false)), 15, "no lender");
        // Below 3 the shares (one each at least) add up to more than the
        // concurrency: webhooks borrow only up to it.
        assert_eq!(webhooks_at_most(prefetch(2, true)), 2);
        assert_eq!(prefetch(1, true).to_webhooks, 0, "nothing to lend");
        for concurrency in 1..=u16::MAX {
            assert_eq!(webhooks_at_most(prefetch(concurrency, true)), concurrency);
        }
    }

    #[test]
    fn the_prefetches_add_up_to_the_concurrency_with_one_each_at_least() {
        assert_eq!(split(1, false), (1, 1, 0));
        assert_eq!(split(2, false), (1, 1, 0));
        assert_eq!(split(7, false), (6, 1, 0));
        assert_eq!(split(16, false), (15, 1, 0));
        assert_eq!(split(64, false), (60, 4, 0));
        assert_eq!(split(u16::MAX, false), (61_440, 4_095, 0));
        assert_eq!(split(1, true), (1, 1, 1));
        assert_eq!(split(3, true), (1, 1, 1));
        assert_eq!(split(16, true), (11, 1, 4));
        assert_eq!(split(64, true), (52, 4, 8), "pushes: at most PUSHES");
        assert_eq!(split(u16::MAX, true), (61_432, 4_095, 8));
        for concurrency in 2..=u16::MAX {
            let (webhooks, jobs, outbound) = split(concurrency, false);
            assert!(webhooks >= 1 && jobs >= 1 && outbound == 0);
            assert_eq!(webhooks + jobs, concurrency);
        }
        for concurrency in 3..=u16::MAX {
            let (webhooks, jobs, outbound) = split(concurrency, true);
            assert!(webhooks >= 1 && jobs >= 1 && outbound >= 1);
            assert_eq!(webhooks + jobs + outbound, concurrency);
        }
    }
}
