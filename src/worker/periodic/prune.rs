//! The worker's housekeeping (docs/reference.md §5.9, §8): at start and every
//! hour, each worker prunes the `sync_events` rows older than
//! [`RETENTION`](crate::sync::audit::RETENTION) (`sync::audit::prune`) and the
//! console's records as old (`db::activity::prune`), the Jira Cloud delivery
//! identifiers older than 7 days (`cloud::delivery::duplicates`), clears the
//! secrets of OAuth sessions not installed 24 hours after their last update and
//! deletes sessions 30 days after it — a batch at a time and off the hot path
//! (its own connection, short statements, rows another worker is on skipped).

use std::time::Duration;

use super::runner::{self, First};
use crate::db::DbPool;
use crate::db::activity;
use crate::db::oauth_sessions::{self, CLEANUP_BATCH};
use crate::shutdown::Shutdown;
use crate::sync::audit::{self, RETENTION_DAYS};

/// How often the trail is pruned and the sessions cleaned.
const EVERY: Duration = Duration::from_secs(3600);

/// Starts the pruning task.
pub fn spawn(pool: DbPool, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
    let stop = shutdown.clone();
    runner::spawn(First::AtStart, EVERY, shutdown, move || {
        let (pool, shutdown) = (pool.clone(), stop.clone());
        async move { housekeeping(&pool, &shutdown).await }
    })
}

/// One run: the trail pruned, the sessions cleaned.
async fn housekeeping(pool: &DbPool, shutdown: &Shutdown) {
    match prune(pool, shutdown).await {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(
            pruned,
            "pruned the sync history older than {RETENTION_DAYS} days"
        ),
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "pruning the sync history failed");
        }
    }
    match prune_activity(pool, shutdown).await {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(
            pruned,
            "pruned the console's webhook and dead-letter records older than {RETENTION_DAYS} days"
        ),
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "pruning the console's records failed");
        }
    }
    match prune_deliveries(pool).await {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(
            pruned,
            "pruned the Jira Cloud delivery identifiers older than 7 days"
        ),
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "pruning the Cloud delivery identifiers failed");
        }
    }
    match clean_sessions(pool, shutdown).await {
        Ok((0, 0)) => {}
        Ok((scrubbed, deleted)) => tracing::info!(
            scrubbed,
            deleted,
            "cleared the secrets of OAuth sessions idle for 24 hours, deleted those idle for 30 days"
        ),
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "cleaning the OAuth sessions failed");
        }
    }
}

/// Prunes the trail on a connection of its own; how many rows.
async fn prune(pool: &DbPool, shutdown: &Shutdown) -> anyhow::Result<u64> {
    let client = pool.get().await?;
    Ok(audit::prune(&client, shutdown).await?)
}

/// Prunes the Cloud delivery identifiers (docs/reference.md §11.4) on a
/// connection of its own; how many rows.
async fn prune_deliveries(pool: &DbPool) -> anyhow::Result<u64> {
    let client = pool.get().await?;
    Ok(crate::cloud::delivery::duplicates::prune(&client).await?)
}

/// Prunes the console's records (CONTRACT §12.10) on a connection of its own;
/// how many rows.
async fn prune_activity(pool: &DbPool, shutdown: &Shutdown) -> anyhow::Result<u64> {
    let client = pool.get().await?;
    Ok(activity::prune(&client, shutdown).await?)
}

/// Deletes, then scrubs, batch after batch until none is full: (sessions
/// scrubbed, sessions deleted).
async fn clean_sessions(pool: &DbPool, shutdown: &Shutdown) -> anyhow::Result<(u64, u64)> {
    let client = pool.get().await?;
    // A batch is full when it touched CLEANUP_BATCH rows (a positive constant).
    let full = u64::try_from(CLEANUP_BATCH).unwrap_or(u64::MAX);
    let (mut scrubbed, mut deleted) = (0, 0);
    while !shutdown.is_cancelled() {
        let batch = oauth_sessions::delete_old(&client).await?;
        deleted += batch;
        if batch < full {
            break;
        }
    }
    while !shutdown.is_cancelled() {
        let batch = oauth_sessions::scrub_stale(&client).await?;
        scrubbed += batch;
        if batch < full {
            break;
        }
    }
    Ok((scrubbed, deleted))
}
