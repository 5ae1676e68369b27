//! The audit trail's pruning (docs/reference.md §5.9): at start and every hour,
//! each worker deletes `sync_events` rows older than 30 days, a batch at a time
//! and off the hot path (its own connection, short statements, rows another
//! worker is deleting skipped).

use std::time::Duration;

use crate::db::DbPool;
use crate::shutdown::Shutdown;
use crate::sync::audit::{self, PRUNE_BATCH, RETENTION};

/// How often the trail is pruned.
const EVERY: Duration = Duration::from_secs(3600);

/// Starts the pruning task.
pub fn spawn(pool: DbPool, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticks.tick() => {}
            }
            match prune(&pool, &shutdown).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "pruned the sync history older than 30 days"),
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "pruning the sync history failed");
                }
            }
        }
    })
}

/// Deletes batch after batch until none is full; how many rows.
async fn prune(pool: &DbPool, shutdown: &Shutdown) -> anyhow::Result<u64> {
    let client = pool.get().await?;
    let mut pruned = 0;
    while !shutdown.is_cancelled() {
        let deleted = audit::prune(&client, RETENTION).await?;
        pruned += deleted;
        if deleted < PRUNE_BATCH {
            break;
        }
    }
    Ok(pruned)
}
