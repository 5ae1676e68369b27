//! Queries of the inbound status sync (docs/reference.md §5.7) beyond those it
//! shares with assignees (`db::sync`). Each takes the caller's transaction;
//! `sync::status` owns the order and the commit.

use deadpool_postgres::GenericClient;
use serde_json::json;
use tokio_postgres::Error;

use super::sync::{LinkedGroup, Writer};

/// `$1` integration, `$2` issue key: see [`enabled`].
pub const STATUS_SYNC_ENABLED: &str = concat!(
    "SELECT EXISTS (SELECT 1",
    syncing_issues!("sync_status_reverse"),
    " AND ei.key = $2)"
);

/// Whether any organization syncs the status of this issue back: without one,
/// Jira's statuses need not be fetched.
pub async fn enabled(
    client: &impl GenericClient,
    integration_id: i64,
    key: &str,
) -> Result<bool, Error> {
    let row = client
        .query_one(STATUS_SYNC_ENABLED, &[&integration_id, &key])
        .await?;
    Ok(row.get(0))
}

/// `$1` group, `$2` status before, `$3` after, `$4` the integration writing it:
/// see [`transition`].
pub const TRANSITION: &str = concat!(
    "UPDATE groups SET status = $3 FROM ",
    tagged_origin!("4"),
    " WHERE id = $1 AND status = $2 AND tagged.origin IS NOT NULL RETURNING id"
);

/// Moves the group from status `from` to `to`, only if the group is in `from`
/// (an ignored group, or one already in `to`, is left alone). Returns whether
/// it changed; the caller then writes the activity, with
/// [`transition_activity`]'s data.
pub async fn transition(
    client: &impl GenericClient,
    group: &LinkedGroup,
    from: &str,
    to: &str,
    by: Writer,
) -> Result<bool, Error> {
    let statement = client.prepare_cached(TRANSITION).await?;
    let changed = client
        .query_opt(
            &statement,
            &[&group.group_id, &from, &to, &by.integration_id],
        )
        .await?
        .is_some();
    Ok(changed)
}

/// The data of the activity of a status `by` changed.
pub fn transition_activity(by: Writer) -> serde_json::Value {
    json!({
        "integration": by.provider.key,
        "integration_id": by.integration_id,
        "provider": by.provider.name,
    })
}
