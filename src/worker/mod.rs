//! The worker (`jirasync worker`): consumes `P.webhooks` and `P.jobs` and
//! dispatches each message by its `type` to one handler file per type; also
//! schedules the periodic reconcile jobs.

mod health;
mod hidden_email;
mod jira_access;
mod jira_statuses;
mod oauth_access_token;
mod oauth_request_token;
mod reconcile;
mod reconcile_schedule;
pub mod token;
mod webhook;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::config::Settings;
use crate::db::DbPool;
use crate::db::oauth_sessions;
use crate::queue::consumer::{self, ConsumerConfig, HandleError, Handler, Incoming, Outcome};
use crate::queue::{Names, OAUTH_ACCESS_TOKEN, OAUTH_REQUEST_TOKEN, RECONCILE, WEBHOOK};
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
    let scheduling = shutdown.child_token();
    let scheduler = reconcile_schedule::spawn(&settings, pool.clone(), scheduling.clone());
    let dispatcher = Dispatcher {
        oauth: OauthJobs {
            pool: pool.clone(),
            public_url: settings.public_url.clone(),
        },
        webhooks: WebhookJobs {
            pool,
            emails: hidden_email::EmailCache::default(),
            statuses: jira_statuses::StatusCache::default(),
        },
    };
    let consumed = consumer::run(config, Arc::new(dispatcher), shutdown.clone()).await;
    if let Some(task) = scheduler {
        // It stops with the consumers, whether they stopped for shutdown or failed.
        scheduling.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    consumed?;
    if let Some(task) = health {
        // Scrapers keep connections open; do not wait for them for long.
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    tracing::info!("worker stopped");
    Ok(())
}

/// Routes a message to the handler of its type.
pub struct Dispatcher {
    webhooks: WebhookJobs,
    oauth: OauthJobs,
}

/// What the webhook and reconcile handlers need; the caches are shared by all of the worker's tasks.
pub struct WebhookJobs {
    pool: DbPool,
    /// Emails of assignees that webhooks hide, as Jira's user API returned them.
    emails: hidden_email::EmailCache,
    /// The `done` statuses of each integration's Jira.
    statuses: jira_statuses::StatusCache,
}

/// What the OAuth jobs need.
pub struct OauthJobs {
    pool: DbPool,
    /// `JIRASYNC_PUBLIC_URL`: the base of the OAuth callback and webhook URLs.
    public_url: String,
}

impl Handler for Dispatcher {
    async fn handle(&self, message: &Incoming) -> Result<Outcome, HandleError> {
        match message.kind.as_str() {
            WEBHOOK => webhook::handle(&self.webhooks, message).await,
            OAUTH_REQUEST_TOKEN => oauth_request_token::handle(&self.oauth, message).await,
            OAUTH_ACCESS_TOKEN => oauth_access_token::handle(&self.oauth, message).await,
            RECONCILE => reconcile::handle(&self.webhooks, message).await,
            other => Err(HandleError::Permanent {
                outcome: "unknown_type",
                reason: format!("no handler for message type {other:?}"),
            }),
        }
    }

    /// An OAuth job that is dead-lettered (retries exhausted, or a permanent
    /// failure) leaves its session `failed` with the reason, so `oauth status`
    /// and `oauth start --wait` do not show `pending` forever.
    async fn dead_lettering(&self, message: &Incoming, reason: &str) {
        let result = match message.kind.as_str() {
            OAUTH_REQUEST_TOKEN => match oauth_request_token::parse(&message.body) {
                Ok(job) => {
                    let error = format!(
                        "{reason}; check that Jira is reachable from the worker, then run `jirasync oauth start` again"
                    );
                    self.fail_session(|client| async move {
                        oauth_sessions::mark_failed(&client, job.session_id, &error).await
                    })
                    .await
                }
                Err(_) => return,
            },
            OAUTH_ACCESS_TOKEN => match oauth_access_token::parse(&message.body) {
                Ok(job) => {
                    let error = format!(
                        "{reason}; check that Jira is reachable from the worker, then run `jirasync oauth finish` again"
                    );
                    self.fail_session(|client| async move {
                        oauth_sessions::mark_failed_by_request_token(
                            &client,
                            &job.oauth_token,
                            &error,
                        )
                        .await
                    })
                    .await
                }
                Err(_) => return,
            },
            _ => return,
        };
        if let Err(error) = result {
            tracing::warn!(%error, "could not mark the OAuth session failed");
        }
    }
}

impl Dispatcher {
    async fn fail_session<F, Fut>(&self, update: F) -> anyhow::Result<()>
    where
        F: FnOnce(deadpool_postgres::Object) -> Fut,
        Fut: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
    {
        let client = self.oauth.pool.get().await?;
        update(client).await?;
        Ok(())
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
