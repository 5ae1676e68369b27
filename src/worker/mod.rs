//! The worker (`jirasync worker`): consumes `P.webhooks`, `P.jobs` and
//! `P.outbound`, and hands each message to its job (`jobs`, one file per message
//! type with its struct and handler) through the
//! [`Dispatcher`](dispatch::Dispatcher), with the
//! [`Environment`](environment::Environment) they share; runs the periodic tasks
//! (reconcile scheduling, pruning: `periodic`) and the outbound relay
//! (`outbound::relay`). This file only wires them up.

mod dispatch;
mod environment;
mod failure;
mod job_publisher;
pub mod jobs;
mod lookups;
mod outage;
pub mod outcome;
mod periodic;
mod verdicts;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::config::{
    AtlassianSettings, MetricsSettings, PublicSettings, Services, Settings, WorkerSettings,
};
use crate::integration::messages;
use crate::outbound::relay::Relay;
use crate::queue::consumer::{self, ConsumerConfig};
use crate::shutdown::Shutdown;
use crate::sync;
use dispatch::Dispatcher;
use environment::Environment;

pub use outcome::Outcome;

/// The arguments of `jirasync worker`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Postgres and RabbitMQ.
    #[command(flatten)]
    pub services: Services,
    /// The base of the OAuth callback and webhook URLs the install job hands Jira.
    #[command(flatten)]
    pub public: PublicSettings,
    /// Concurrency and reconciliation.
    #[command(flatten)]
    pub worker: WorkerSettings,
    /// The metrics and health listener.
    #[command(flatten)]
    pub metrics: MetricsSettings,
    /// Atlassian's servers and the dynamic webhooks of Jira Cloud.
    #[command(flatten)]
    pub atlassian: AtlassianSettings,
}

impl From<&Settings> for Args {
    fn from(settings: &Settings) -> Self {
        Self {
            services: settings.services(),
            public: settings.public.clone(),
            worker: settings.worker.clone(),
            metrics: settings.metrics.clone(),
            atlassian: settings.atlassian.clone(),
        }
    }
}

/// Connections at most for what messages in flight read before they write:
/// more concurrency than this waits for one (briefly) instead of opening more.
const READERS: usize = 16;

/// `jirasync worker`: runs the consumer pool until shutdown.
pub async fn run(args: Args, shutdown: Shutdown) -> anyhow::Result<()> {
    serve(args, consumer::DRAIN_DEADLINE, shutdown).await
}

/// Runs the worker with a chosen drain deadline (tests use a short one).
pub async fn serve(args: Args, drain_deadline: Duration, shutdown: Shutdown) -> anyhow::Result<()> {
    crate::telemetry::prometheus();
    let concurrency = args.worker.concurrency;
    let services = &args.services;
    // Health first: it answers (not ready) while the worker waits for Postgres.
    let consuming = Arc::new(AtomicBool::new(false));
    let health = match args.metrics.listen {
        Some(address) => {
            let consuming = Arc::clone(&consuming);
            let readiness = crate::health::Readiness {
                ready: Box::new(move || consuming.load(Ordering::Acquire)),
                ready_text: "consuming\n",
                not_ready_text: "not consuming\n",
            };
            Some(crate::health::spawn(address, readiness, shutdown.clone()).await?)
        }
        None => None,
    };
    // Connections for the messages in flight (authentication, Jira lookups,
    // reconciliations; each holds one briefly), one per batch writer, one for the
    // scheduler and the pruner; with outbound sync on, one for the relay and, for
    // pushes to Jira in progress, one per batch of them (held for its locks)
    // and, briefly, one for the batch's echo records (`jobs::outbound::batch`).
    // Pushes with lent webhook and job slots (`queue::lending`, at most
    // `LENDABLE`) use the connections the idle webhooks and jobs leave.
    let outbound = args.worker.outbound;
    let pushes = if outbound { environment::PUSHES + 1 } else { 0 };
    let size = usize::from(concurrency).min(READERS) + sync::batch::WRITERS + 1 + pushes;
    let Some(pool) = crate::db::connect_waiting(&services.database, size, &shutdown).await? else {
        tracing::info!("worker stopped before Postgres answered");
        return Ok(());
    };
    // Off, the changes Postgres captures wait (and `P.outbound` is not consumed).
    let relay = outbound
        .then(|| Relay::new(services, pool.clone()))
        .transpose()?;
    let config = ConsumerConfig {
        url: services.broker.url.clone(),
        names: messages::names(&services.broker),
        delays: services.retries.delays.0.clone(),
        outage_max: args.worker.jira_outage_max,
        concurrency,
        outbound,
        drain_deadline,
        consuming,
    };
    let scheduling = shutdown.child_token();
    let intervals = periodic::schedule::Intervals {
        reconcile: args.worker.reconcile_interval,
        webhook_refresh: args.atlassian.webhook_refresh_interval,
    };
    // Opened when a job is first published; stopped with the scheduler.
    let jobs = Arc::new(job_publisher::JobPublisher::new(
        &args.services,
        scheduling.clone(),
    ));
    let scheduler = periodic::schedule::spawn(&jobs, intervals, pool.clone(), scheduling.clone());
    let pruner = periodic::prune::spawn(pool.clone(), scheduling.clone());
    let relay = relay.map(|relay| relay.spawn(scheduling.clone()));
    let resumer = outbound.then(|| periodic::resume::spawn(pool.clone(), scheduling.clone()));
    // Stopped with the scheduler: the verdicts of messages drained after
    // shutdown still go out.
    let (verdicts, verdicts_task) = verdicts::Verdicts::start(&services.broker, scheduling.clone());
    let dispatcher = Dispatcher {
        outage: outage::Outage::new(pool.clone()),
        env: Environment {
            batches: sync::batch::Batches::start(
                &pool,
                args.worker.audit,
                sync::batch::WRITERS,
                usize::from(args.worker.batch_size),
            ),
            pool,
            lookups: lookups::Lookups::default(),
            verdicts,
            audit: args.worker.audit,
            max_event_skew: args.worker.max_event_skew,
            reconcile_slice: args.worker.reconcile_slice,
            public_url: args.public.url.clone(),
            pushes: tokio::sync::Semaphore::new(consumer::pushes(consumer::prefetch(
                concurrency,
                outbound,
            ))),
            push_batches: Default::default(),
            jira_users: Default::default(),
            activity: Default::default(),
            atlassian: args.atlassian.clone(),
            jobs: Arc::clone(&jobs),
        },
    };
    // On a runtime thread, not the thread that blocks on `main`: each delivery
    // the loop takes is then spawned where it was woken, without waking another.
    let consuming = tokio::spawn(consumer::run(
        config,
        Arc::new(dispatcher),
        shutdown.clone(),
    ));
    let consumed = match consuming.await {
        Ok(consumed) => consumed,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => Err(anyhow::Error::new(error).context("the consumer loop stopped")),
    };
    // They stop with the consumers, whether those stopped for shutdown or failed.
    scheduling.cancel();
    for task in [scheduler, pruner, verdicts_task]
        .into_iter()
        .chain(relay)
        .chain(resumer)
    {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), jobs.closed()).await;
    consumed?;
    if let Some(task) = health {
        // Scrapers keep connections open; do not wait for them for long.
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    tracing::info!("worker stopped");
    Ok(())
}
