//! An issue that moved to another project (docs/reference.md §5.8, Sentry
//! `rekey_external_issues`, which Sentry does for Jira Cloud only): the
//! integration's `external_issues` rows of the old key take the new one, or merge
//! into the organization's row of the new key, so the groups keep syncing. In the
//! webhook's transaction, before its assignee and status changes (which then find
//! the issue under its new key).

use deadpool_postgres::Transaction;
use serde_json::json;

use super::IssueKey;
use super::audit::{Audit, Kind};
use crate::db::rekey as q;

/// Re-keys `from` to `to` in `integration_id`, every organization; how many rows
/// moved. Once done, a redelivery finds no row of the old key and does nothing.
pub async fn apply(
    tx: &Transaction<'_>,
    integration_id: i64,
    from: &IssueKey,
    to: &IssueKey,
    audit: &mut Audit,
) -> Result<usize, tokio_postgres::Error> {
    let rows = q::lock(tx, integration_id, &[from.as_str(), to.as_str()]).await?;
    let mut moved = 0;
    for old in rows.iter().filter(|row| row.key == from.as_str()) {
        let survivor = rows
            .iter()
            .find(|row| row.key == to.as_str() && row.organization_id == old.organization_id);
        let detail = match survivor {
            Some(survivor) => {
                let merged = q::merge(tx, old.id, survivor.id).await?;
                json!({
                    "from": from.as_str(),
                    "to": to.as_str(),
                    "merged_into": survivor.id,
                    "links_moved": merged.moved,
                    "duplicate_links_dropped": merged.dropped,
                })
            }
            None => {
                q::rename(tx, old.id, to.as_str()).await?;
                json!({ "from": from.as_str(), "to": to.as_str() })
            }
        };
        moved += 1;
        tracing::info!(organization.id = old.organization_id, from = %from, to = %to, "issue re-keyed");
        audit.record(Kind::Key, Some(old.organization_id), "rekeyed", detail);
    }
    if moved == 0 {
        let detail =
            json!({ "from": from.as_str(), "to": to.as_str(), "reason": "no_issue_with_old_key" });
        audit.record(Kind::Key, None, "unchanged", detail);
    }
    Ok(moved)
}
