//! The worker's reconcile scheduler (docs/reference.md §6): every `JIRASYNC_RECONCILE_INTERVAL`
//! it enqueues one `jira_server.reconcile` job per syncing integration. Each
//! integration is claimed in Postgres first, so many workers enqueue one job per
//! interval between them, not one each.

use std::sync::Arc;
use std::time::Duration;

use super::runner::{self, First};
use crate::config::Services;
use crate::db::{DbPool, reconcile};
use crate::queue::publisher::Broker;
use crate::shutdown::Shutdown;
use crate::worker::jobs::Reconcile;

/// Starts the scheduler, publishing through `services`' broker every `every`
/// (`JIRASYNC_RECONCILE_INTERVAL`); `None` when that is 0 (turned off).
pub fn spawn(
    services: &Services,
    every: Duration,
    pool: DbPool,
    shutdown: Shutdown,
) -> Option<tokio::task::JoinHandle<()>> {
    if every.is_zero() {
        return None;
    }
    let (broker, supervisor) = Broker::start(
        &services.broker,
        crate::integration::messages::names(&services.broker),
        &services.retries,
        "scheduler",
        shutdown.clone(),
    );
    // The first tick comes one interval after start: a restart does not
    // reconcile everything at once, and the claim keeps the rhythm anyway.
    let scheduler = runner::spawn(First::AfterOnePeriod, every, shutdown, move || {
        let (pool, broker) = (pool.clone(), Arc::clone(&broker));
        async move {
            if !broker.is_ready() {
                tracing::warn!("reconcile scheduling skipped: RabbitMQ is not connected");
                return;
            }
            if let Err(error) = enqueue_due(&pool, &broker, every).await {
                tracing::warn!(error = %format!("{error:#}"), "reconcile scheduling failed");
            }
        }
    });
    Some(tokio::spawn(async move {
        let _ = scheduler.await;
        let _ = supervisor.await;
    }))
}

/// Claims the integrations due for reconciliation and enqueues a job for each.
async fn enqueue_due(pool: &DbPool, broker: &Broker, every: Duration) -> anyhow::Result<()> {
    use anyhow::Context;
    let client = pool
        .get()
        .await
        .context("failed to get a database connection")?;
    // A little slack, so a claim made one tick ago is due at this tick.
    let due = reconcile::claim_due(&client, &crate::integration::PROVIDERS, every.mul_f64(0.9))
        .await
        .context("failed to claim the integrations due for reconciliation")?;
    for integration_id in due {
        let job = Reconcile {
            integration_id,
            since_ms: None,
        };
        let id = broker.publish_job(&job).await.with_context(|| {
            format!("failed to enqueue the reconcile job of integration {integration_id}")
        })?;
        tracing::info!(integration.id = integration_id, message.id = %id, "reconcile job enqueued");
    }
    Ok(())
}
