//! Queries of an issue move (docs/reference.md §5.8, Sentry
//! `rekey_external_issues`): the integration's `external_issues` rows of the old
//! and the new key, locked; a row renamed, or merged into the one that has the new
//! key already. Each takes the caller's transaction; `sync::rekey` owns the order.

use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

/// An `external_issues` row of either key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedIssue {
    /// Row id.
    pub id: i64,
    /// Its organization.
    pub organization_id: i64,
    /// Its key.
    pub key: String,
}

/// `$1` integration, `$2` the keys: see [`lock`].
pub const LOCK_KEYS: &str = "SELECT id, organization_id, key FROM external_issues
              WHERE integration_id = $1 AND key = ANY($2)
              ORDER BY id FOR UPDATE";

/// The rows of `keys` in `integration_id`, every organization, locked in id order
/// (the order every change of an issue locks in).
pub async fn lock(
    client: &impl GenericClient,
    integration_id: i64,
    keys: &[&str],
) -> Result<Vec<KeyedIssue>, Error> {
    let statement = client.prepare_cached(LOCK_KEYS).await?;
    let rows = client.query(&statement, &[&integration_id, &keys]).await?;
    Ok(rows
        .iter()
        .map(|row| KeyedIssue {
            id: row.get(0),
            organization_id: row.get(1),
            key: row.get(2),
        })
        .collect())
}

/// Gives row `id` the key `to`.
pub async fn rename(client: &impl GenericClient, id: i64, to: &str) -> Result<(), Error> {
    client
        .execute(
            "UPDATE external_issues SET key = $2 WHERE id = $1",
            &[&id, &to],
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
/// both keeps one link), the later watermarks win, and `from` goes.
pub async fn merge(client: &impl GenericClient, from: i64, into: i64) -> Result<Merged, Error> {
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
                SET assignee_synced_at = GREATEST(kept.assignee_synced_at, gone.assignee_synced_at),
                    status_synced_at = GREATEST(kept.status_synced_at, gone.status_synced_at)
               FROM external_issues gone
              WHERE kept.id = $2 AND gone.id = $1",
            &[&from, &into],
        )
        .await?;
    client
        .execute("DELETE FROM external_issues WHERE id = $1", &[&from])
        .await?;
    Ok(Merged { moved, dropped })
}
