//! What every job of the worker shares (as crates.io's `worker::Environment`):
//! the pool, the lookups, the writers of sync changes, the verdicts, and the
//! settings the handlers read.

use std::time::Duration;

use tokio::sync::Semaphore;

use crate::config::AtlassianSettings;
use crate::db::DbPool;
use crate::db::activity::Recorder;
use crate::outbound::assignee::JiraUsers;
use crate::sync::batch::Batches;
use crate::worker::lookups::Lookups;
use crate::worker::verdicts::Verdicts;

/// What the jobs share; one per worker process, shared by all of its tasks.
pub struct Environment {
    /// Postgres.
    pub pool: DbPool,
    /// The integration a token names, hidden emails, statuses.
    pub lookups: Lookups,
    /// The writers that apply webhooks, several to a transaction.
    pub batches: Batches,
    /// Tells every ingress which tokens were accepted or rejected.
    pub verdicts: Verdicts,
    /// Whether decisions are recorded in `sync_events` (`JIRASYNC_AUDIT`).
    pub audit: bool,
    /// `JIRASYNC_MAX_EVENT_SKEW`: how far an event time may lie ahead of its
    /// receive time (`sync::clock`).
    pub max_event_skew: Duration,
    /// `JIRASYNC_RECONCILE_SLICE`: how long one delivery of a reconciliation
    /// searches before the rest continues in a job of its own.
    pub reconcile_slice: Duration,
    /// `JIRASYNC_PUBLIC_URL`: the base of the OAuth callback and webhook URLs.
    pub public_url: String,
    /// Pushes to Jira in progress (their batches hold connections for their
    /// locks): as many permits as the worker holds pushes at most, its own and
    /// those of the webhook and job slots lent to them
    /// (`queue::consumer::pushes`).
    pub pushes: Semaphore,
    /// The pushes waiting to be settled together (`jobs::outbound::batch`).
    pub push_batches: crate::worker::jobs::outbound::batch::Gather,
    /// Jira's users as Jira answered them, per integration, for pushes.
    pub jira_users: JiraUsers,
    /// The console's records of webhooks and dead letters (CONTRACT §12.10).
    pub activity: Recorder,
    /// Atlassian's servers (3LO tokens, the API gateway) and the dynamic
    /// webhooks' JQL and refresh interval, for Jira Cloud jobs.
    pub atlassian: AtlassianSettings,
    /// Publishes the jobs a job continues with (a reconciliation's next slice).
    pub jobs: std::sync::Arc<super::job_publisher::JobPublisher>,
}

pub use crate::outbound::PUSHES;
