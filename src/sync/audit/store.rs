//! The `sync_events` table (docs/reference.md §5.9, §8): the statements that
//! write decisions ([`Audit::write`](super::Audit::write)), read them back for
//! `jirasync explain` ([`recent`]) and prune them after [`RETENTION`] (the worker's
//! housekeeping, `worker::periodic::prune`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Error;

use super::decision::Decision;
use super::sentence::{Place, Sentence};
use crate::shutdown::Shutdown;

/// How long `sync_events` rows are kept.
pub const RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// [`RETENTION`] in days, as `explain` and the worker's log tell it.
pub const RETENTION_DAYS: u64 = RETENTION.as_secs() / (24 * 3600);

/// `$1` message id, `$2` integration, `$3` issue key, `$4` event time, `$5` kind,
/// `$6` organization, `$7` outcome, `$8` detail: one decision (the common case:
/// one organization), see [`Audit::write`](super::Audit::write).
pub const INSERT_SYNC_EVENT: &str = "INSERT INTO sync_events
        (message_id, integration_id, issue_key, event_time, kind, organization_id, outcome, detail)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// As [`INSERT_SYNC_EVENT`], every column an array: several decisions, of one
/// message or of several (a batch, `sync::batch`), in one statement, in order.
pub const INSERT_SYNC_EVENTS: &str = "INSERT INTO sync_events
        (message_id, integration_id, issue_key, event_time, kind, organization_id, outcome, detail)
 SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[],
                      $5::text[], $6::bigint[], $7::text[], $8::jsonb[])";

/// One recorded decision, with its organization's slug. Serialized as
/// `explain --json` prints it: the row's columns (`kind`, `outcome`, `detail`
/// from the decision).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SyncEvent {
    /// Row id.
    pub id: i64,
    /// When it was decided.
    pub at: DateTime<Utc>,
    /// The message (webhook or job) that led to it.
    pub message_id: Option<String>,
    /// The integration.
    pub integration_id: Option<i64>,
    /// The issue key it was recorded under.
    pub issue_key: String,
    /// When Jira says the change happened.
    pub event_time: Option<DateTime<Utc>>,
    /// The organization, when one was reached.
    pub organization_id: Option<i64>,
    /// Its slug.
    pub organization: Option<String>,
    /// What was decided, and why.
    #[serde(flatten)]
    pub decision: Decision,
}

impl SyncEvent {
    /// The decision as a sentence, in its organization, about its issue.
    pub fn sentence(&self) -> Sentence<'_> {
        self.decision.sentence(Place {
            issue_key: &self.issue_key,
            organization_id: self.organization_id,
            organization: self.organization.as_deref(),
        })
    }
}

/// `$1` issue key, `$2` integration or NULL, `$3` limit: see [`recent`].
pub const RECENT: &str =
    "SELECT e.id, e.created_at, e.message_id, e.integration_id, e.issue_key, e.kind,
                    e.event_time, e.organization_id, o.slug, e.outcome, e.detail
               FROM sync_events e LEFT JOIN organizations o ON o.id = e.organization_id
              WHERE (e.issue_key = $1 OR (e.kind = 'key' AND e.detail->>'from' = $1))
                AND ($2::bigint IS NULL OR e.integration_id = $2)
              ORDER BY e.id DESC LIMIT $3";

/// The newest `limit` decisions about `issue_key` (also as the key it moved
/// from), of `integration_id` when given.
pub async fn recent(
    client: &impl GenericClient,
    issue_key: &str,
    integration_id: Option<i64>,
    limit: i64,
) -> Result<Vec<SyncEvent>, Error> {
    let rows = client
        .query(RECENT, &[&issue_key, &integration_id, &limit])
        .await?;
    Ok(rows.iter().map(SyncEvent::from_row).collect())
}

impl SyncEvent {
    /// The event a row of [`RECENT`]'s columns holds (`e.id, e.created_at,
    /// e.message_id, e.integration_id, e.issue_key, e.kind, e.event_time,
    /// e.organization_id, o.slug, e.outcome, e.detail`).
    pub fn from_row(row: &tokio_postgres::Row) -> Self {
        let (kind, outcome, detail): (&str, &str, Value) = (row.get(5), row.get(9), row.get(10));
        Self {
            id: row.get(0),
            at: row.get(1),
            message_id: row.get(2),
            integration_id: row.get(3),
            issue_key: row.get(4),
            event_time: row.get(6),
            organization_id: row.get(7),
            organization: row.get(8),
            decision: Decision::from_row(kind, outcome, detail),
        }
    }
}

/// `$1` retention in seconds: the first row young enough to keep, by id (ids and
/// `created_at` grow together, so the rows before it are the old ones). Walks the
/// primary key from the oldest row: as far as there are rows to prune, no further.
pub const PRUNE_CUTOFF: &str = "SELECT id FROM sync_events
  WHERE created_at >= now() - make_interval(secs => $1)
  ORDER BY id LIMIT 1";

/// The one literal of [`PRUNE_BATCH`], so that [`PRUNE`] can spell it.
macro_rules! prune_batch_literal {
    () => {
        5000
    };
}

/// Rows one [`PRUNE`] deletes at most (a constant, so the plan is an index scan).
pub const PRUNE_BATCH: u64 = prune_batch_literal!();

/// `$1` the cutoff id: see [`prune`]. Takes its batch from [`PRUNE_BATCH`].
pub const PRUNE: &str = concat!(
    "DELETE FROM sync_events WHERE id = ANY (ARRAY(
   SELECT id FROM sync_events WHERE id < $1 ORDER BY id LIMIT ",
    prune_batch_literal!(),
    " FOR UPDATE SKIP LOCKED))"
);

/// Deletes the rows older than [`RETENTION`], oldest first, batch after batch
/// until one is not full or `shutdown` is cancelled; how many. By the primary key
/// alone (no index on `created_at` for every insert to keep up), in short steps
/// that never hold a lock the hot path waits on.
pub async fn prune(client: &impl GenericClient, shutdown: &Shutdown) -> Result<u64, Error> {
    let mut pruned = 0;
    while !shutdown.is_cancelled() {
        let deleted = prune_batch(client).await?;
        pruned += deleted;
        if deleted < PRUNE_BATCH {
            break;
        }
    }
    Ok(pruned)
}

/// Deletes up to [`PRUNE_BATCH`] rows older than [`RETENTION`], oldest first; how many.
async fn prune_batch(client: &impl GenericClient) -> Result<u64, Error> {
    let seconds = RETENTION.as_secs_f64();
    let cutoff = client.query_opt(PRUNE_CUTOFF, &[&seconds]).await?;
    // None: no row is young enough to keep.
    let cutoff: i64 = cutoff.map_or(i64::MAX, |row| row.get(0));
    client.execute(PRUNE, &[&cutoff]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prune_statement_spells_the_batch_and_the_retention_is_thirty_days() {
        assert_eq!(
            PRUNE,
            "DELETE FROM sync_events WHERE id = ANY (ARRAY(
   SELECT id FROM sync_events WHERE id < $1 ORDER BY id LIMIT 5000 FOR UPDATE SKIP LOCKED))"
        );
        assert_eq!(PRUNE_BATCH, 5000);
        assert_eq!((RETENTION_DAYS, RETENTION.as_secs()), (30, 2_592_000));
    }
}
