//! What every job of the worker shares (as crates.io's `worker::Environment`):
//! the pool, the lookups, the writers of sync changes, the verdicts, and the
//! settings the handlers read.

use std::time::Duration;

use crate::db::DbPool;
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
    /// `JIRASYNC_PUBLIC_URL`: the base of the OAuth callback and webhook URLs.
    pub public_url: String,
}
