//! Reading the audit trail (`sync_events`, docs/reference.md §5.9) for `jirasync
//! explain`; it is written by `sync::audit` and pruned there.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Error;

/// One recorded decision, with its organization's slug.
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
    /// `assignee`, `status` or `key`.
    pub kind: String,
    /// When Jira says the change happened.
    pub event_time: Option<DateTime<Utc>>,
    /// The organization, when one was reached.
    pub organization_id: Option<i64>,
    /// Its slug.
    pub organization: Option<String>,
    /// What was decided.
    pub outcome: String,
    /// Why.
    pub detail: Value,
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
    Ok(rows
        .iter()
        .map(|row| SyncEvent {
            id: row.get(0),
            at: row.get(1),
            message_id: row.get(2),
            integration_id: row.get(3),
            issue_key: row.get(4),
            kind: row.get(5),
            event_time: row.get(6),
            organization_id: row.get(7),
            organization: row.get(8),
            outcome: row.get(9),
            detail: row.get(10),
        })
        .collect())
}
