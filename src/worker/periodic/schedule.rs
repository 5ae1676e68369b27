//! The worker's job scheduler, claiming in Postgres what is due so that of many
//! workers one enqueues each job per interval:
//! - every `JIRASYNC_RECONCILE_INTERVAL`, one `jira_server.reconcile` per
//!   syncing integration (docs/reference.md §6; off at 0);
//! - at least once a minute, one `jira_cloud.webhook_refresh` per Jira Cloud 3LO
//!   integration whose dynamic webhook was registered or refreshed
//!   `JIRASYNC_CLOUD_WEBHOOK_REFRESH_INTERVAL` ago (§11.3).
//!
//! Both publish through the worker's [`JobPublisher`], whose connection opens
//! the first time a job is due: a worker with nothing to schedule opens none. A
//! job that cannot be enqueued gives its claim back, so the next look (of any
//! worker) tries again instead of waiting a whole interval.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;

use super::runner::{self, First};
use crate::db::{DbPool, reconcile, webhook_refresh};
use crate::queue::job::Job;
use crate::shutdown::Shutdown;
use crate::worker::job_publisher::JobPublisher;
use crate::worker::jobs::{Reconcile, WebhookRefresh};

/// The longest the scheduler waits between two looks for webhooks to refresh.
const REFRESH_LOOK: Duration = Duration::from_secs(60);

/// How often each job is scheduled.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    /// `JIRASYNC_RECONCILE_INTERVAL`; zero turns reconciliation scheduling off.
    pub reconcile: Duration,
    /// `JIRASYNC_CLOUD_WEBHOOK_REFRESH_INTERVAL`.
    pub webhook_refresh: Duration,
}

/// Starts the scheduler, publishing through `publisher`; it stops with `shutdown`.
pub fn spawn(
    publisher: &Arc<JobPublisher>,
    intervals: Intervals,
    pool: DbPool,
    shutdown: Shutdown,
) -> JoinHandle<()> {
    let mut tasks = Vec::new();
    let mut schedule = |kind: Schedule, look: Duration, every: Duration| {
        let (pool, publisher) = (pool.clone(), Arc::clone(publisher));
        // The first look comes one period after start: a restart does not
        // reconcile everything at once, and the claims keep the rhythm anyway.
        tasks.push(runner::spawn(
            First::AfterOnePeriod,
            look,
            shutdown.clone(),
            move || {
                let (pool, publisher) = (pool.clone(), Arc::clone(&publisher));
                async move { enqueue(kind, &pool, &publisher, every).await }
            },
        ));
    };
    if !intervals.reconcile.is_zero() {
        schedule(
            Schedule::Reconcile,
            intervals.reconcile,
            intervals.reconcile,
        );
    }
    let every = intervals.webhook_refresh;
    schedule(Schedule::WebhookRefresh, every.min(REFRESH_LOOK), every);
    tokio::spawn(async move {
        for task in tasks {
            let _ = task.await;
        }
    })
}

/// What a schedule enqueues.
#[derive(Debug, Clone, Copy)]
enum Schedule {
    /// `jira_server.reconcile`.
    Reconcile,
    /// `jira_cloud.webhook_refresh`.
    WebhookRefresh,
}

impl Schedule {
    /// The job's type.
    fn job_type(self) -> &'static str {
        match self {
            Self::Reconcile => Reconcile::TYPE,
            Self::WebhookRefresh => WebhookRefresh::TYPE,
        }
    }

    /// Claims the integrations due within `every` (for reconciliation with a
    /// little slack, so a claim made one tick ago is due at this tick).
    async fn claim(
        self,
        client: &deadpool_postgres::Object,
        every: Duration,
    ) -> Result<Vec<i64>, tokio_postgres::Error> {
        match self {
            Self::Reconcile => {
                reconcile::claim_due(client, &crate::integration::PROVIDERS, every.mul_f64(0.9))
                    .await
            }
            Self::WebhookRefresh => webhook_refresh::claim_due(client, every).await,
        }
    }

    /// Gives back the claim of a job that could not be enqueued.
    async fn release(
        self,
        client: &deadpool_postgres::Object,
        integration_id: i64,
    ) -> Result<(), tokio_postgres::Error> {
        match self {
            Self::Reconcile => reconcile::release_claim(client, integration_id).await,
            Self::WebhookRefresh => webhook_refresh::release_claim(client, integration_id).await,
        }
    }

    /// Enqueues the job of `integration_id`; its message id.
    async fn publish(
        self,
        publisher: &JobPublisher,
        integration_id: i64,
    ) -> anyhow::Result<uuid::Uuid> {
        match self {
            Self::Reconcile => {
                let job = Reconcile {
                    integration_id,
                    since_ms: None,
                };
                publisher.publish(&job).await
            }
            Self::WebhookRefresh => publisher.publish(&WebhookRefresh { integration_id }).await,
        }
    }
}

/// One look of `schedule`: claims what is due within `every` and enqueues a
/// job for each; what could not be enqueued is given back and logged.
async fn enqueue(schedule: Schedule, pool: &DbPool, publisher: &JobPublisher, every: Duration) {
    let job = schedule.job_type();
    if let Err(error) = enqueue_due(schedule, pool, publisher, every).await {
        tracing::warn!(job, error = %format!("{error:#}"), "scheduling failed; the next look tries again");
    }
}

async fn enqueue_due(
    schedule: Schedule,
    pool: &DbPool,
    publisher: &JobPublisher,
    every: Duration,
) -> anyhow::Result<()> {
    let job = schedule.job_type();
    let client = pool
        .get()
        .await
        .context("failed to get a database connection")?;
    let due = schedule
        .claim(&client, every)
        .await
        .with_context(|| format!("failed to claim the integrations due for {job}"))?;
    if due.is_empty() {
        return Ok(());
    }
    for (at, &integration_id) in due.iter().enumerate() {
        match schedule.publish(publisher, integration_id).await {
            Ok(id) => {
                tracing::info!(integration.id = integration_id, message.id = %id, job, "job enqueued");
            }
            Err(error) => {
                give_back(schedule, &client, &due[at..]).await;
                return Err(error.context(format!(
                    "failed to enqueue the {job} job of integration {integration_id}"
                )));
            }
        }
    }
    Ok(())
}

/// Gives back the claims of `integration_ids`, whose jobs were not enqueued.
async fn give_back(
    schedule: Schedule,
    client: &deadpool_postgres::Object,
    integration_ids: &[i64],
) {
    for &integration_id in integration_ids {
        if let Err(error) = schedule.release(client, integration_id).await {
            tracing::warn!(
                integration.id = integration_id,
                %error,
                job = schedule.job_type(),
                "could not give back a scheduling claim; it expires after the interval"
            );
        }
    }
}
