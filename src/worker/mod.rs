//! The worker (`jirasync worker`): consumes `P.webhooks` and `P.jobs` and
//! dispatches each message by its `type` to one handler file per type; also
//! schedules the periodic reconcile jobs.

mod failure;
mod install;
pub mod jobs;
mod lookups;
mod oauth2_token;
mod oauth_access_token;
mod oauth_request_token;
mod outage;
pub mod outcome;
mod periodic;
mod prune;
mod reconcile;
mod reconcile_schedule;
mod verdicts;
mod webhook;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::config::{MetricsSettings, PublicSettings, Services, Settings, WorkerSettings};
use crate::db::DbPool;
use crate::db::oauth_sessions::{self, SessionRef};
use crate::integration::messages::{self, WEBHOOK};
use crate::queue::consumer::{self, ConsumerConfig};
use crate::queue::handler::{self, Failure, Handler, Incoming};
use crate::queue::job::Job;
use crate::shutdown::Shutdown;
use crate::sync;
use crate::worker::jobs::{Oauth2Token, OauthAccessToken, OauthRequestToken, Reconcile};
use lookups::hidden_email::EmailCache;
use lookups::jira_statuses::StatusCache;
use lookups::single_flight::SingleFlight;

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
}

impl From<&Settings> for Args {
    fn from(settings: &Settings) -> Self {
        Self {
            services: settings.services(),
            public: settings.public.clone(),
            worker: settings.worker.clone(),
            metrics: settings.metrics.clone(),
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
    // scheduler and the pruner.
    let size = usize::from(concurrency).min(READERS) + sync::batch::WRITERS + 1;
    let Some(pool) = crate::db::connect_waiting(&services.database, size, &shutdown).await? else {
        tracing::info!("worker stopped before Postgres answered");
        return Ok(());
    };
    let config = ConsumerConfig {
        url: services.broker.url.clone(),
        names: messages::names(&services.broker),
        delays: services.retries.delays.0.clone(),
        outage_max: args.worker.jira_outage_max,
        concurrency,
        drain_deadline,
        consuming,
    };
    let scheduling = shutdown.child_token();
    let scheduler = reconcile_schedule::spawn(&args, pool.clone(), scheduling.clone());
    let pruner = prune::spawn(pool.clone(), scheduling.clone());
    // Stopped with the scheduler: the verdicts of messages drained after
    // shutdown still go out.
    let (verdicts, verdicts_task) = verdicts::Verdicts::start(&services.broker, scheduling.clone());
    let dispatcher = Dispatcher {
        outage: outage::Outage::new(pool.clone()),
        oauth: OauthJobs {
            pool: pool.clone(),
            public_url: args.public.url.clone(),
        },
        webhooks: WebhookJobs {
            batches: sync::batch::Batches::start(
                &pool,
                args.worker.audit,
                sync::batch::WRITERS,
                usize::from(args.worker.batch_size),
            ),
            pool,
            integrations: SingleFlight::default(),
            emails: EmailCache::default(),
            statuses: StatusCache::default(),
            audit: args.worker.audit,
            max_event_skew: args.worker.max_event_skew,
            verdicts,
        },
    };
    let consumed = consumer::run(config, Arc::new(dispatcher), shutdown.clone()).await;
    // They stop with the consumers, whether those stopped for shutdown or failed.
    scheduling.cancel();
    for task in scheduler.into_iter().chain([pruner, verdicts_task]) {
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
    outage: outage::Outage,
}

/// What the webhook and reconcile handlers need; the caches are shared by all of the worker's tasks.
pub struct WebhookJobs {
    pool: DbPool,
    /// Emails of assignees that webhooks hide, as Jira's user API returned them.
    emails: EmailCache,
    /// The `done` statuses of each integration's Jira.
    statuses: StatusCache,
    /// Whether decisions are recorded in `sync_events` (`JIRASYNC_AUDIT`).
    audit: bool,
    /// `JIRASYNC_MAX_EVENT_SKEW`: how far an event time may lie ahead of its
    /// receive time (`sync::clock`).
    max_event_skew: Duration,
    /// The writers that apply webhooks, several to a transaction.
    batches: sync::batch::Batches,
    /// Lookups of integrations by external id in progress, shared by the
    /// webhooks that ask at the same time.
    integrations: SingleFlight<String, Option<crate::integration::Integration>>,
    /// Tells every ingress which tokens were accepted or rejected.
    verdicts: verdicts::Verdicts,
}

/// What the OAuth jobs need.
pub struct OauthJobs {
    pool: DbPool,
    /// `JIRASYNC_PUBLIC_URL`: the base of the OAuth callback and webhook URLs.
    public_url: String,
}

/// Every message type the worker handles, parsed once per delivery: this match
/// is the one list of them (the topology binds `messages::JOB_TYPES` to `P.jobs`).
pub enum Message {
    /// `jira_server.webhook`: the body is read after the token is verified.
    Webhook,
    /// `jira_server.oauth_request_token`.
    RequestToken(OauthRequestToken),
    /// `jira_server.oauth_access_token`.
    AccessToken(OauthAccessToken),
    /// `jira_server.oauth2_token`.
    Oauth2Token(Oauth2Token),
    /// `jira_server.reconcile`.
    Reconcile(Reconcile),
}

impl Message {
    /// The message a delivery carries, by its `type`.
    fn parse(incoming: &Incoming) -> Result<Self, Failure> {
        let body = incoming.body.as_slice();
        Ok(match incoming.kind.as_str() {
            WEBHOOK => Self::Webhook,
            OauthRequestToken::TYPE => Self::RequestToken(OauthRequestToken::parse(body)?),
            OauthAccessToken::TYPE => Self::AccessToken(OauthAccessToken::parse(body)?),
            Oauth2Token::TYPE => Self::Oauth2Token(Oauth2Token::parse(body)?),
            Reconcile::TYPE => Self::Reconcile(Reconcile::parse(body)?),
            other => {
                return Err(Failure::permanent(
                    handler::Outcome::UNKNOWN_TYPE,
                    anyhow::anyhow!("no handler for message type {other:?}"),
                ));
            }
        })
    }
}

impl Handler for Dispatcher {
    type Message = Message;

    fn parse(&self, incoming: &Incoming) -> Result<Message, Failure> {
        Message::parse(incoming)
    }

    async fn handle(
        &self,
        message: &Message,
        incoming: &Incoming,
    ) -> Result<handler::Outcome, Failure> {
        let outcome = match message {
            Message::Webhook => webhook::handle(&self.webhooks, incoming).await,
            Message::RequestToken(job) => oauth_request_token::handle(&self.oauth, job).await,
            Message::AccessToken(job) => oauth_access_token::handle(&self.oauth, job).await,
            Message::Oauth2Token(job) => oauth2_token::handle(&self.oauth, job, incoming).await,
            Message::Reconcile(job) => reconcile::handle(&self.webhooks, job, &incoming.id).await,
        };
        outcome.map(handler::Outcome::from)
    }

    /// An OAuth job that is dead-lettered (retries exhausted, or a permanent
    /// failure) leaves its session `failed` with the reason, so `oauth status`
    /// and `oauth start --wait` do not show `pending` forever.
    async fn recovered(&self) -> bool {
        self.outage.recovered().await
    }

    async fn dead_lettering(&self, message: &Message, reason: &str, error: &anyhow::Error) {
        let (session, command) = match message {
            Message::RequestToken(job) => (SessionRef::Id(job.session_id), "oauth start"),
            Message::AccessToken(job) => {
                (SessionRef::RequestToken(&job.oauth_token), "oauth finish")
            }
            Message::Oauth2Token(job) => (SessionRef::OAuth2State(&job.state), "oauth start"),
            Message::Webhook | Message::Reconcile(_) => return,
        };
        let what = if failure::is_database(error) {
            "Postgres"
        } else {
            "Jira"
        };
        let error = format!(
            "{reason}; check that {what} is reachable from the worker, then run `jirasync {command}` again"
        );
        let failed = match self.oauth.pool.get().await {
            Ok(client) => oauth_sessions::mark_failed(&client, session, &error)
                .await
                .map_err(anyhow::Error::new),
            Err(error) => Err(anyhow::Error::new(error)),
        };
        if let Err(error) = failed {
            tracing::warn!(error = %format!("{error:#}"), "could not mark the OAuth session failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_type_the_topology_routes_has_a_handler() {
        for kind in messages::JOB_TYPES.into_iter().chain([WEBHOOK]) {
            let incoming = Incoming {
                queue: "P.jobs".into(),
                kind: kind.into(),
                id: "-".into(),
                properties: Default::default(),
                body: Vec::new(),
            };
            // An empty body is malformed for every job, but the type is known.
            let known = match Message::parse(&incoming) {
                Ok(_) => true,
                Err(Failure::Permanent { outcome, .. }) => {
                    outcome != handler::Outcome::UNKNOWN_TYPE
                }
                Err(Failure::Passing(_) | Failure::Outage(_) | Failure::DependencyDown { .. }) => {
                    false
                }
            };
            assert!(known, "{kind} has no handler");
        }
    }
}
