//! The queries of `integrations` (docs/reference.md §8), each written once, and
//! (in [`credentials`]) of `integration_credentials`. Callers own the transaction.
//! The secrets among them are sealed here on the way in and opened on the way out
//! (their columns are declared in `crate::secrets::column`), each bound to its
//! column and its integration's row: callers see plaintext, the database holds
//! what the keyring makes of it.

mod credentials;

use chrono::Utc;
use deadpool_postgres::GenericClient;
use serde_json::{Map, Value};
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::{Error, Row};

use super::credentials::Stored;
use super::metadata::Metadata;
use super::provider::{Kind, provider};
use super::row::Integration;
use crate::db::StoreError;
use crate::db::sealed_columns::recheck;
use crate::secrets::Sealed;
use crate::secrets::column::{
    Integrations, PREVIOUS_WEBHOOK_HMAC_SECRET, PREVIOUS_WEBHOOK_SECRET, WEBHOOK_HMAC_SECRET,
    WEBHOOK_SECRET, metadata_secrets,
};
use crate::secrets::{Keyring, Unreadable};

pub use credentials::credentials;
pub(super) use credentials::{
    lock_credentials, mark_needs_reauth, save_refreshed, upsert_credentials,
};

/// `metadata` as read, its secrets opened. Previous secrets whose overlap has
/// ended are dropped unopened: nothing accepts them any more.
fn open_metadata(
    keys: &Keyring,
    integration_id: i64,
    mut metadata: Metadata,
) -> Result<Metadata, Unreadable> {
    let open = |column: &Sealed<Integrations>, stored: Option<String>| {
        column.open_opt(keys, integration_id, stored.as_deref())
    };
    metadata.webhook_secret = open(&WEBHOOK_SECRET, metadata.webhook_secret)?;
    metadata.webhook_hmac_secret = open(&WEBHOOK_HMAC_SECRET, metadata.webhook_hmac_secret)?;
    if metadata.previous_at(Utc::now()).is_some() {
        metadata.previous_webhook_secret =
            open(&PREVIOUS_WEBHOOK_SECRET, metadata.previous_webhook_secret)?;
        metadata.previous_webhook_hmac_secret = open(
            &PREVIOUS_WEBHOOK_HMAC_SECRET,
            metadata.previous_webhook_hmac_secret,
        )?;
    } else {
        metadata.previous_webhook_secret = None;
        metadata.previous_webhook_hmac_secret = None;
    }
    Ok(metadata)
}

/// `patch` (an object of metadata keys) with its secrets sealed for
/// `integration_id`'s row: every metadata key declared sealed.
fn seal_patch(keys: &Keyring, integration_id: i64, patch: &Value) -> Value {
    let mut patch = patch.clone();
    for (key, column) in metadata_secrets() {
        if let Some(secret) = patch.get_mut(key)
            && let Some(plain) = secret.as_str()
        {
            *secret = Value::String(keys.seal(&column.slot(integration_id), plain));
        }
    }
    patch
}

/// `$1` external id: see [`find_active`]. Its statement is checked against
/// `bench/assign.sql` by `tests/bench_script.rs`.
pub const FIND_ACTIVE: &str = concat!(
    "SELECT id, metadata, xmin::text::bigint FROM integrations
  WHERE provider = '",
    provider!(),
    "' AND external_id = $1 AND status = 'active'"
);

/// [`FIND_ACTIVE`] for Jira Cloud: `$1` the site's cloudId.
pub const FIND_ACTIVE_CLOUD: &str = "SELECT id, metadata, xmin::text::bigint FROM integrations
  WHERE provider = 'jira_cloud' AND external_id = $1 AND status = 'active'";

/// `$1` integration ids: the [`Version`] of each that is still active, read
/// in a batch's transaction (see [`active_versions`]). Its statement is checked
/// against `bench/assign.sql` by `tests/bench_script.rs`.
pub const ACTIVE_VERSIONS: &str = "SELECT id, xmin::text::bigint FROM integrations
  WHERE id = ANY($1) AND status = 'active'";

/// Which version of an integration's row was read: the transaction that last
/// wrote it (`xmin`). Any write of the row (its status, its secrets, its
/// metadata) makes another; a row kept from an earlier read is the current
/// one only while its version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version(i64);

/// The active integration of `provider` with this external id, and the
/// [`Version`] of its row (the worker asks for every webhook whose integration
/// it has not kept: the statement is prepared once per connection).
pub async fn find_active(
    client: &impl GenericClient,
    keys: &Keyring,
    provider: Kind,
    external_id: &str,
) -> Result<Option<(Integration, Version)>, StoreError> {
    recheck(client, keys).await?;
    let sql = match provider {
        Kind::Server => FIND_ACTIVE,
        Kind::Cloud => FIND_ACTIVE_CLOUD,
    };
    let statement = client.prepare_cached(sql).await?;
    let Some(row) = client.query_opt(&statement, &[&external_id]).await? else {
        return Ok(None);
    };
    let id = row.get(0);
    let integration = Integration {
        id,
        provider,
        external_id: external_id.to_owned(),
        status: "active".to_owned(),
        metadata: open_metadata(keys, id, row.get::<_, Json<Metadata>>(1).0)?,
    };
    Ok(Some((integration, Version(row.get(2)))))
}

/// The [`Version`] of each of `ids` that is still active (none asked, no
/// query): what a batch checks the integrations it was prepared with against.
pub async fn active_versions(
    client: &impl GenericClient,
    ids: &[i64],
) -> Result<Vec<(i64, Version)>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let statement = client.prepare_cached(ACTIVE_VERSIONS).await?;
    let rows = client.query(&statement, &[&ids]).await?;
    Ok(rows
        .iter()
        .map(|row| (row.get(0), Version(row.get(1))))
        .collect())
}

/// The integration of `provider` with this external id, whatever its status
/// (the worker asks only for a token no active one matches).
pub async fn find(
    client: &impl GenericClient,
    keys: &Keyring,
    provider: Kind,
    external_id: &str,
) -> Result<Option<Integration>, StoreError> {
    one(
        client,
        keys,
        "SELECT id, external_id, status, metadata, provider FROM integrations
              WHERE provider = $2 AND external_id = $1",
        &[&external_id, &provider.as_str()],
    )
    .await
}

/// Sets the status of integration `id` (`active`, `disabled`), of either
/// provider; the row as it is then, if it exists.
pub async fn set_status(
    client: &impl GenericClient,
    keys: &Keyring,
    id: i64,
    status: &str,
) -> Result<Option<Integration>, StoreError> {
    one(
        client,
        keys,
        "UPDATE integrations SET status = $2
              WHERE id = $1 AND provider IN ('jira_server', 'jira_cloud')
             RETURNING id, external_id, status, metadata, provider",
        &[&id, &status],
    )
    .await
}

/// The integration (of either provider) with this row id, whatever its status.
pub async fn by_id(
    client: &impl GenericClient,
    keys: &Keyring,
    id: i64,
) -> Result<Option<Integration>, StoreError> {
    recheck(client, keys).await?;
    one(
        client,
        keys,
        "SELECT id, external_id, status, metadata, provider FROM integrations
              WHERE id = $1 AND provider IN ('jira_server', 'jira_cloud')",
        &[&id],
    )
    .await
}

/// The integration `sql` returns (`id, external_id, status, metadata,
/// provider`), if any.
async fn one(
    client: &impl GenericClient,
    keys: &Keyring,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Integration>, StoreError> {
    // Read per push and per job: prepared once per connection.
    let statement = client.prepare_cached(sql).await?;
    let row = client.query_opt(&statement, params).await?;
    Ok(row.as_ref().map(|row| integration(keys, row)).transpose()?)
}

fn integration(keys: &Keyring, row: &Row) -> Result<Integration, Unreadable> {
    let id = row.get(0);
    Ok(Integration {
        id,
        provider: Kind::parse(row.get(4)).unwrap_or_default(),
        external_id: row.get(1),
        status: row.get(2),
        metadata: open_metadata(keys, id, row.get::<_, Json<Metadata>>(3).0)?,
    })
}

/// Creates the integration or updates the one with the same external id, and
/// makes it `active`, unless an admin `disabled` it: that one stays so (its
/// credentials are still updated; the caller says so). The metadata is merged into the stored one, so keys this
/// write does not carry (e.g. `webhook_hmac_secret`) are kept, and an existing
/// non-empty `webhook_secret` wins over the new one, so webhook URLs already
/// registered in Jira stay valid. `name: None` keeps an existing row's name.
///
/// A new row's id is known only once it is inserted, and its secrets are sealed
/// for that id: so the row is upserted without secrets first, then its
/// `webhook_secret` is set when it has none (callers run both in one transaction).
/// Of the metadata's secrets only `webhook_secret` is written here; the others
/// go through [`merge_metadata`].
pub(super) async fn upsert(
    client: &impl GenericClient,
    keys: &Keyring,
    provider: Kind,
    external_id: &str,
    name: Option<&str>,
    default_name: &str,
    metadata: &Metadata,
) -> Result<Integration, StoreError> {
    let plain = Metadata {
        webhook_secret: None,
        webhook_hmac_secret: None,
        previous_webhook_secret: None,
        previous_webhook_hmac_secret: None,
        previous_valid_until: None,
        ..metadata.clone()
    };
    recheck(client, keys).await?;
    let row = client
        .query_one(
            "INSERT INTO integrations (provider, external_id, name, metadata, status)
             VALUES ($5, $1, COALESCE($2, $3), $4, 'active')
             ON CONFLICT (provider, external_id) DO UPDATE
                SET name = COALESCE($2, integrations.name),
                    status = CASE integrations.status
                        WHEN 'disabled' THEN 'disabled' ELSE 'active' END,
                    metadata = integrations.metadata || EXCLUDED.metadata
             RETURNING id, external_id, status, metadata, provider",
            &[
                &external_id,
                &name,
                &default_name,
                &Json(plain),
                &provider.as_str(),
            ],
        )
        .await?;
    let id: i64 = row.get(0);
    let row = match &metadata.webhook_secret {
        Some(secret) => {
            let sealed = WEBHOOK_SECRET.seal(keys, id, secret);
            client
                .query_opt(
                    "UPDATE integrations
                        SET metadata = metadata || jsonb_build_object('webhook_secret', $2::text)
                      WHERE id = $1 AND COALESCE(metadata->>'webhook_secret', '') = ''
                  RETURNING id, external_id, status, metadata, provider",
                    &[&id, &sealed],
                )
                .await?
                .unwrap_or(row)
        }
        None => row,
    };
    Ok(integration(keys, &row)?)
}

/// Merges `patch` (an object of metadata keys) into the integration's metadata,
/// its secrets sealed for the integration's row; keys in `remove` are dropped
/// first.
pub(super) async fn merge_metadata(
    client: &impl GenericClient,
    keys: &Keyring,
    integration_id: i64,
    remove: &[&str],
    patch: &Value,
) -> Result<(), Error> {
    let patch = seal_patch(keys, integration_id, patch);
    let remove: Vec<&str> = remove.to_vec();
    client
        .execute(
            "UPDATE integrations SET metadata = (metadata - $2::text[]) || $3 WHERE id = $1",
            &[&integration_id, &remove, &patch],
        )
        .await?;
    Ok(())
}

/// The metadata of the `jira_server` integration with this row id as stored (its
/// secrets still sealed), the row locked for the caller's transaction: for a
/// rotation, which must see which secrets there are even when one does not open.
/// Rotation updates the webhook through Data Center's API: a Cloud row is not
/// one it can rotate.
pub(super) async fn lock_sealed_metadata(
    client: &impl GenericClient,
    keys: &Keyring,
    id: i64,
) -> Result<Option<Map<String, Value>>, Error> {
    recheck(client, keys).await?;
    let row = client
        .query_opt(
            "SELECT metadata FROM integrations
              WHERE id = $1 AND provider = 'jira_server' FOR UPDATE",
            &[&id],
        )
        .await?;
    Ok(row.map(|row| match row.get::<_, Value>(0) {
        Value::Object(map) => map,
        _ => Map::new(),
    }))
}

/// Every integration (of either provider) with its credentials, by id.
pub async fn all(
    client: &impl GenericClient,
    keys: &Keyring,
) -> Result<Vec<(Integration, Option<Stored>)>, StoreError> {
    let rows = client
        .query(
            "SELECT id, external_id, status, metadata, provider FROM integrations
              WHERE provider IN ('jira_server', 'jira_cloud') ORDER BY id",
            &[],
        )
        .await?;
    let mut all = Vec::with_capacity(rows.len());
    for row in &rows {
        let integration = integration(keys, row)?;
        let stored = credentials(client, keys, integration.id).await?;
        all.push((integration, stored));
    }
    Ok(all)
}
