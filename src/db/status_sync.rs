//! Queries of the inbound status sync (issue 8 §1). Each takes the caller's
//! transaction; `sync::status` owns the order and the commit. Groups are reached
//! as for assignees (`sync::linked_groups`).

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::json;
use tokio_postgres::Error;

use super::sync::{ExternalIssue, LinkedGroup, insert_activity};

/// Organizations whose reverse status sync is on, active, with an active link
/// to the integration (the `$1` integration, `$2` key of the queries below).
const STATUS_SYNC_ISSUES: &str = "
      FROM external_issues ei
      JOIN organization_integrations oi
        ON oi.organization_id = ei.organization_id AND oi.integration_id = ei.integration_id
      JOIN organizations o ON o.id = ei.organization_id
     WHERE ei.integration_id = $1
       AND ei.key = $2
       AND oi.status = 'active'
       AND oi.config->>'sync_status_reverse' = 'true'
       AND o.status = 'active'";

/// Whether any organization syncs the status of this issue back: without one,
/// Jira's statuses need not be fetched.
pub async fn enabled(
    client: &impl GenericClient,
    integration_id: i64,
    key: &str,
) -> Result<bool, Error> {
    let sql = format!("SELECT EXISTS (SELECT 1 {STATUS_SYNC_ISSUES})");
    let row = client.query_one(&sql, &[&integration_id, &key]).await?;
    Ok(row.get(0))
}

/// The issue's rows in organizations with reverse status sync on, with their
/// `status_synced_at`, locked for this transaction.
pub async fn lock_external_issues(
    client: &impl GenericClient,
    integration_id: i64,
    key: &str,
) -> Result<Vec<(ExternalIssue, Option<DateTime<Utc>>)>, Error> {
    let sql = format!(
        "SELECT ei.id, ei.organization_id, ei.assignee_synced_at, ei.status_synced_at
         {STATUS_SYNC_ISSUES}
         ORDER BY ei.id
           FOR UPDATE OF ei"
    );
    let rows = client.query(&sql, &[&integration_id, &key]).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let issue = ExternalIssue {
                id: row.get(0),
                organization_id: row.get(1),
                assignee_synced_at: row.get(2),
            };
            (issue, row.get(3))
        })
        .collect())
}

/// Moves the group from status `from` to `to` and writes the `activity` row,
/// only if the group is in `from` (an ignored group, or one already in `to`,
/// is left alone). Returns whether it changed.
pub async fn transition(
    client: &impl GenericClient,
    group: LinkedGroup,
    from: &str,
    to: &str,
    activity: &str,
    integration_id: i64,
) -> Result<bool, Error> {
    let changed = client
        .query_opt(
            "UPDATE groups SET status = $3 WHERE id = $1 AND status = $2 RETURNING id",
            &[&group.group_id, &from, &to],
        )
        .await?
        .is_some();
    if changed {
        let data = json!({
            "integration": "jira_server",
            "integration_id": integration_id,
            "provider": "Jira Server",
        });
        insert_activity(client, group, activity, &data).await?;
    }
    Ok(changed)
}
