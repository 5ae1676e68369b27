//! A Postgres outage, as the worker lives through it (docs/reference.md §5.11):
//! messages that found Postgres unreachable are held — no attempt used, no retry
//! tier, nothing dead-lettered because of the outage — while every task polls it
//! once a second; the first to notice logs the outage, the first to see it end
//! logs that, and `jirasync_database_available` shows which.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::db::DbPool;

/// How often a held message's task asks Postgres whether it is back.
const POLL: Duration = Duration::from_secs(1);
/// How long one such question may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether Postgres is down, shared by the worker's tasks.
pub struct Outage {
    pool: DbPool,
    down: AtomicBool,
}

impl Outage {
    /// Postgres as reachable through `pool`, up until a task finds otherwise.
    pub fn new(pool: DbPool) -> Self {
        metrics::gauge!("jirasync_database_available").set(1.0);
        Self {
            pool,
            down: AtomicBool::new(false),
        }
    }

    /// Waits until Postgres answers; `false` when it answered at once (the
    /// failure that sent the task here was not an outage after all).
    pub async fn recovered(&self) -> bool {
        if self.answers().await {
            return false;
        }
        if !self.down.swap(true, Ordering::AcqRel) {
            metrics::gauge!("jirasync_database_available").set(0.0);
            tracing::error!(
                "Postgres is unreachable: holding the messages in hand and taking no more until it answers"
            );
        }
        loop {
            tokio::time::sleep(POLL).await;
            if self.answers().await {
                break;
            }
        }
        if self.down.swap(false, Ordering::AcqRel) {
            metrics::gauge!("jirasync_database_available").set(1.0);
            tracing::info!("Postgres answers again; resuming");
        }
        true
    }

    async fn answers(&self) -> bool {
        let ask = async {
            let client = self.pool.get().await.ok()?;
            client.simple_query("SELECT 1").await.ok()
        };
        matches!(tokio::time::timeout(ANSWER_TIMEOUT, ask).await, Ok(Some(_)))
    }
}
