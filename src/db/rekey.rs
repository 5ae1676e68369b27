//! Queries of an issue move (docs/reference.md §5.8, Sentry
//! `rekey_external_issues`): the integration's `external_issues` rows of the old
//! and the new key, locked; a row renamed, or merged into the one that has the new
//! key already, with the time of the move (`key_synced_at`). Each takes the
//! caller's transaction; `sync::rekey` owns the order and the ordering guard.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

/// An `external_issues` row of either key in an organization that moves issues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovingIssue {
    /// Row id.
    pub id: i64,
    /// Its organization.
    pub organization_id: i64,
    /// Its key.
    pub key: String,
    /// The event time of the last move applied to it.
    pub key_synced_at: Option<DateTime<Utc>>,
}

/// `$1` integration, `$2` the keys: see [`lock_moving`]. An organization moves
/// issues when its integration and itself are active and any sync flag is on.
pub const LOCK_MOVING: &str = "SELECT ei.id, ei.organization_id, ei.key, ei.key_synced_at
   FROM external_issues ei
   JOIN organization_integrations oi
     ON oi.organization_id = ei.organization_id AND oi.integration_id = ei.integration_id
   JOIN organizations o ON o.id = ei.organization_id
  WHERE ei.integration_id = $1 AND ei.key = ANY($2)
    AND oi.status = 'active' AND o.status = 'active'
    AND (oi.config->>'sync_reverse_assignment' = 'true'
         OR oi.config->>'sync_status_reverse' = 'true'
         OR oi.config->>'sync_forward_assignment' = 'true'
         OR oi.config->>'sync_status_forward' = 'true')
  ORDER BY ei.id FOR UPDATE OF ei";

/// The rows of `keys` in `integration_id` in the organizations that move issues
/// (docs/reference.md §5.8: any of `sync_reverse_assignment`,
/// `sync_status_reverse`, `sync_forward_assignment`, `sync_status_forward` on),
/// locked in id order.
pub async fn lock_moving(
    client: &impl GenericClient,
    integration_id: i64,
    keys: &[&str],
) -> Result<Vec<MovingIssue>, Error> {
    let statement = client.prepare_cached(LOCK_MOVING).await?;
    let rows = client.query(&statement, &[&integration_id, &keys]).await?;
    Ok(rows
        .iter()
        .map(|row| MovingIssue {
            id: row.get(0),
            organization_id: row.get(1),
            key: row.get(2),
            key_synced_at: row.get(3),
        })
        .collect())
}

/// Gives row `id` the key `to`, moved at `moved_at`.
pub async fn rename(
    client: &impl GenericClient,
    id: i64,
    to: &str,
    moved_at: Option<DateTime<Utc>>,
) -> Result<(), Error> {
    client
        .execute(
            "UPDATE external_issues SET key = $2, key_synced_at = $3 WHERE id = $1",
            &[&id, &to, &moved_at],
        )
        .await?;
    Ok(())
}

/// What merging one row into another did to the links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Merged {
    /// Links moved to the surviving row.
    pub moved: u64,
    /// Links dropped because the surviving row had them already.
    pub dropped: u64,
}

/// Merges row `from` into `into`: its issue links move there (a group linked to
/// both keeps one link), the later watermarks win — of those not beyond
/// `horizon`, which bind nothing (`sync::clock`) —, the move time becomes
/// `moved_at`, and `from` goes.
pub async fn merge(
    client: &impl GenericClient,
    from: i64,
    into: i64,
    horizon: DateTime<Utc>,
    moved_at: Option<DateTime<Utc>>,
) -> Result<Merged, Error> {
    let moved = client
        .execute(
            "UPDATE group_links gl SET linked_id = $2
              WHERE gl.linked_type = 'issue' AND gl.linked_id = $1
                AND NOT EXISTS (SELECT 1 FROM group_links kept
                                 WHERE kept.group_id = gl.group_id
                                   AND kept.linked_type = 'issue' AND kept.linked_id = $2)",
            &[&from, &into],
        )
        .await?;
    let dropped = client
        .execute(
            "DELETE FROM group_links WHERE linked_type = 'issue' AND linked_id = $1",
            &[&from],
        )
        .await?;
    client
        .execute(
            "UPDATE external_issues kept
                SET assignee_synced_at = GREATEST(
                        CASE WHEN kept.assignee_synced_at <= $3 THEN kept.assignee_synced_at END,
                        CASE WHEN gone.assignee_synced_at <= $3 THEN gone.assignee_synced_at END),
                    status_synced_at = GREATEST(
                        CASE WHEN kept.status_synced_at <= $3 THEN kept.status_synced_at END,
                        CASE WHEN gone.status_synced_at <= $3 THEN gone.status_synced_at END),
                    key_synced_at = $4
               FROM external_issues gone
              WHERE kept.id = $2 AND gone.id = $1",
            &[&from, &into, &horizon, &moved_at],
        )
        .await?;
    client
        .execute("DELETE FROM external_issues WHERE id = $1", &[&from])
        .await?;
    Ok(Merged { moved, dropped })
}
