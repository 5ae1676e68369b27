//! The worker (`jirasync worker`): consumes `P.webhooks` and `P.jobs` and
//! dispatches each message by its `type` to one handler file per type.

mod health;
pub mod token;
mod webhook;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::config::Settings;
use crate::db::DbPool;
use crate::queue::consumer::{self, ConsumerConfig, HandleError, Handler, Incoming, Outcome};
use crate::queue::{Names, WEBHOOK};
use crate::shutdown::Shutdown;

/// `jirasync worker`: runs the consumer pool until shutdown.
pub async fn run(settings: Settings, shutdown: Shutdown) -> anyhow::Result<()> {
    serve(settings, consumer::DRAIN_DEADLINE, shutdown).await
}

/// Runs the worker with a chosen drain deadline (tests use a short one).
pub async fn serve(
    settings: Settings,
    drain_deadline: Duration,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    crate::telemetry::prometheus();
    let pool = crate::db::connect(
        &settings.database_url,
        usize::from(settings.worker_concurrency) + 1,
    )
    .await?;
    let consuming = Arc::new(AtomicBool::new(false));
    let health = match settings.metrics_listen {
        Some(address) => {
            Some(health::spawn(address, Arc::clone(&consuming), shutdown.clone()).await?)
        }
        None => None,
    };
    let config = ConsumerConfig {
        url: settings.amqp_url.clone(),
        names: Names::new(settings.queue_prefix.clone()),
        delays: settings.retry_delays.0.clone(),
        concurrency: settings.worker_concurrency,
        drain_deadline,
        consuming,
    };
    consumer::run(config, Arc::new(Dispatcher { pool }), shutdown).await?;
    if let Some(task) = health {
        // Scrapers keep connections open; do not wait for them for long.
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    tracing::info!("worker stopped");
    Ok(())
}

/// Routes a message to the handler of its type.
pub struct Dispatcher {
    pool: DbPool,
}

impl Handler for Dispatcher {
    async fn handle(&self, message: &Incoming) -> Result<Outcome, HandleError> {
        match message.kind.as_str() {
            WEBHOOK => webhook::handle(&self.pool, message).await,
            other => Err(HandleError::Permanent {
                outcome: "unknown_type",
                reason: format!("no handler for message type {other:?}"),
            }),
        }
    }
}

/// Classifies a database error: connection trouble, serialization failures and
/// deadlocks pass; anything else will fail again the same way.
pub fn db_error(error: tokio_postgres::Error) -> HandleError {
    use tokio_postgres::error::SqlState;
    let transient = match error.code() {
        None => true, // no SQLSTATE: the connection itself failed
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::TOO_MANY_CONNECTIONS,
                    SqlState::LOCK_NOT_AVAILABLE,
                    SqlState::QUERY_CANCELED,
                ]
                .contains(code)
        }
    };
    let reason = format!("database error: {error}");
    if transient {
        HandleError::Retryable(reason)
    } else {
        HandleError::Permanent {
            outcome: "failed",
            reason,
        }
    }
}

/// A pool that cannot hand out a connection is a passing failure.
pub fn pool_error(error: deadpool_postgres::PoolError) -> HandleError {
    HandleError::Retryable(format!("database unavailable: {error}"))
}
