//! The queries of `integrations` and `integration_credentials` (docs/reference.md
//! §8), each written once. Callers own the transaction. The secrets among them
//! are sealed here on the way in and opened on the way out (`crate::secrets`),
//! each bound to its column and its integration's row: callers see plaintext,
//! the database holds what the keyring makes of it.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::{Map, Value};
use tokio_postgres::types::Json;
use tokio_postgres::{Error, Row};

use super::credentials::{AuthMethod, Stored};
use super::{Credentials, Integration, Metadata};
use crate::db::StoreError;
use crate::db::sealed_columns::recheck;
use crate::secrets::place as sealed;
use crate::secrets::{Keyring, Slot, Unreadable};

/// The secrets of `integrations.metadata`: their key and column.
const METADATA_SECRETS: [(&str, &str); 4] = [
    ("webhook_secret", sealed::WEBHOOK_SECRET),
    ("webhook_hmac_secret", sealed::WEBHOOK_HMAC_SECRET),
    ("previous_webhook_secret", sealed::PREVIOUS_WEBHOOK_SECRET),
    (
        "previous_webhook_hmac_secret",
        sealed::PREVIOUS_WEBHOOK_HMAC_SECRET,
    ),
];

/// `metadata` as read, its secrets opened. Previous secrets whose overlap has
/// ended are dropped unopened: nothing accepts them any more.
fn open_metadata(
    keys: &Keyring,
    integration_id: i64,
    mut metadata: Metadata,
) -> Result<Metadata, Unreadable> {
    let open = |column: &'static str, stored: Option<String>| {
        keys.open_opt(&Slot::new(column, integration_id), stored.as_deref())
    };
    metadata.webhook_secret = open(sealed::WEBHOOK_SECRET, metadata.webhook_secret)?;
    metadata.webhook_hmac_secret = open(sealed::WEBHOOK_HMAC_SECRET, metadata.webhook_hmac_secret)?;
    if metadata.previous_at(Utc::now()).is_some() {
        metadata.previous_webhook_secret = open(
            sealed::PREVIOUS_WEBHOOK_SECRET,
            metadata.previous_webhook_secret,
        )?;
        metadata.previous_webhook_hmac_secret = open(
            sealed::PREVIOUS_WEBHOOK_HMAC_SECRET,
            metadata.previous_webhook_hmac_secret,
        )?;
    } else {
        metadata.previous_webhook_secret = None;
        metadata.previous_webhook_hmac_secret = None;
    }
    Ok(metadata)
}

/// `patch` (an object of metadata keys) with its secrets sealed for
/// `integration_id`'s row.
fn seal_patch(keys: &Keyring, integration_id: i64, patch: &Value) -> Value {
    let mut patch = patch.clone();
    for (key, column) in METADATA_SECRETS {
        if let Some(secret) = patch.get_mut(key)
            && let Some(plain) = secret.as_str()
        {
            *secret = Value::String(keys.seal(&Slot::new(column, integration_id), plain));
        }
    }
    patch
}

/// `$1` external id: see [`find_active`]. Its statement is checked against
/// `bench/assign.sql` by `tests/bench_script.rs`.
pub const FIND_ACTIVE: &str = "SELECT id, metadata FROM integrations
  WHERE provider = 'jira_server' AND external_id = $1 AND status = 'active'";

/// The active `jira_server` integration with this external id (every webhook asks:
/// the statement is prepared once per connection).
pub async fn find_active(
    client: &impl GenericClient,
    keys: &Keyring,
    external_id: &str,
) -> Result<Option<Integration>, StoreError> {
    recheck(client, keys).await?;
    let statement = client.prepare_cached(FIND_ACTIVE).await?;
    let Some(row) = client.query_opt(&statement, &[&external_id]).await? else {
        return Ok(None);
    };
    let id = row.get(0);
    Ok(Some(Integration {
        id,
        external_id: external_id.to_owned(),
        status: "active".to_owned(),
        metadata: open_metadata(keys, id, row.get::<_, Json<Metadata>>(1).0)?,
    }))
}

/// The `jira_server` integration with this external id, whatever its status
/// (the worker asks only for a token no active one matches).
pub async fn find(
    client: &impl GenericClient,
    keys: &Keyring,
    external_id: &str,
) -> Result<Option<Integration>, StoreError> {
    let row = client
        .query_opt(
            "SELECT id, external_id, status, metadata FROM integrations
              WHERE provider = 'jira_server' AND external_id = $1",
            &[&external_id],
        )
        .await?;
    Ok(row.as_ref().map(|row| integration(keys, row)).transpose()?)
}

/// Sets the status of `jira_server` integration `id` (`active`, `disabled`); the
/// row as it is then, if it exists.
pub async fn set_status(
    client: &impl GenericClient,
    keys: &Keyring,
    id: i64,
    status: &str,
) -> Result<Option<Integration>, StoreError> {
    let row = client
        .query_opt(
            "UPDATE integrations SET status = $2
              WHERE id = $1 AND provider = 'jira_server'
             RETURNING id, external_id, status, metadata",
            &[&id, &status],
        )
        .await?;
    Ok(row.as_ref().map(|row| integration(keys, row)).transpose()?)
}

/// The `jira_server` integration with this row id, whatever its status.
pub async fn by_id(
    client: &impl GenericClient,
    keys: &Keyring,
    id: i64,
) -> Result<Option<Integration>, StoreError> {
    recheck(client, keys).await?;
    let row = client
        .query_opt(
            "SELECT id, external_id, status, metadata FROM integrations
              WHERE id = $1 AND provider = 'jira_server'",
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(|row| integration(keys, row)).transpose()?)
}

fn integration(keys: &Keyring, row: &Row) -> Result<Integration, Unreadable> {
    let id = row.get(0);
    Ok(Integration {
        id,
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
             VALUES ('jira_server', $1, COALESCE($2, $3), $4, 'active')
             ON CONFLICT (provider, external_id) DO UPDATE
                SET name = COALESCE($2, integrations.name),
                    status = CASE integrations.status
                        WHEN 'disabled' THEN 'disabled' ELSE 'active' END,
                    metadata = integrations.metadata || EXCLUDED.metadata
             RETURNING id, external_id, status, metadata",
            &[&external_id, &name, &default_name, &Json(plain)],
        )
        .await?;
    let id: i64 = row.get(0);
    let row = match &metadata.webhook_secret {
        Some(secret) => {
            let sealed = keys.seal(&Slot::new(sealed::WEBHOOK_SECRET, id), secret);
            client
                .query_opt(
                    "UPDATE integrations
                        SET metadata = metadata || jsonb_build_object('webhook_secret', $2::text)
                      WHERE id = $1 AND COALESCE(metadata->>'webhook_secret', '') = ''
                  RETURNING id, external_id, status, metadata",
                    &[&id, &sealed],
                )
                .await?
                .unwrap_or(row)
        }
        None => row,
    };
    Ok(integration(keys, &row)?)
}

/// Writes the credentials of `integration_id` and clears any "needs
/// re-authorization" mark (a new install is what it asks for). A missing OAuth
/// 1.0a access token (or secret) keeps the stored one of the same method, so
/// `integration add` without tokens does not erase what the OAuth flow obtained.
pub(super) async fn upsert_credentials(
    client: &impl GenericClient,
    keys: &Keyring,
    integration_id: i64,
    credentials: &Credentials,
) -> Result<(), Error> {
    let none = None::<String>;
    let (consumer_key, private_key, access_token, access_token_secret) = match credentials {
        Credentials::OAuth1 {
            consumer_key,
            private_key,
            access_token,
            access_token_secret,
        } => (
            consumer_key.as_str(),
            private_key.as_str(),
            access_token,
            access_token_secret,
        ),
        Credentials::OAuth2 { .. } | Credentials::Pat { .. } => ("", "", &none, &none),
    };
    let access_token = access_token.as_deref().or(credentials.access_token());
    let (client_id, client_secret, refresh_token, expires_at, refreshed_at) = match credentials {
        Credentials::OAuth2 {
            client_id,
            client_secret,
            refresh_token,
            expires_at,
            refreshed_at,
            ..
        } => (
            Some(client_id.as_str()),
            Some(client_secret.as_str()),
            refresh_token.as_deref(),
            *expires_at,
            *refreshed_at,
        ),
        _ => (None, None, None, None, None),
    };
    let slot = |column: &'static str| Slot::new(column, integration_id);
    let private_key = keys.seal(&slot(sealed::PRIVATE_KEY), private_key);
    let access_token = keys.seal_opt(&slot(sealed::ACCESS_TOKEN), access_token);
    let access_token_secret = keys.seal_opt(
        &slot(sealed::ACCESS_TOKEN_SECRET),
        access_token_secret.as_deref(),
    );
    let client_secret = keys.seal_opt(&slot(sealed::CLIENT_SECRET), client_secret);
    let refresh_token = keys.seal_opt(&slot(sealed::REFRESH_TOKEN), refresh_token);
    client
        .execute(
            "INSERT INTO integration_credentials
                    (integration_id, auth_method, consumer_key, private_key, access_token,
                     access_token_secret, client_id, client_secret, refresh_token,
                     access_token_expires_at, refreshed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (integration_id) DO UPDATE
                SET consumer_key = EXCLUDED.consumer_key,
                    private_key = EXCLUDED.private_key,
                    access_token = CASE
                        WHEN EXCLUDED.access_token IS NULL
                         AND integration_credentials.auth_method = EXCLUDED.auth_method
                        THEN integration_credentials.access_token ELSE EXCLUDED.access_token END,
                    access_token_secret = CASE
                        WHEN EXCLUDED.access_token_secret IS NULL
                         AND integration_credentials.auth_method = EXCLUDED.auth_method
                        THEN integration_credentials.access_token_secret
                        ELSE EXCLUDED.access_token_secret END,
                    auth_method = EXCLUDED.auth_method,
                    client_id = EXCLUDED.client_id,
                    client_secret = EXCLUDED.client_secret,
                    refresh_token = EXCLUDED.refresh_token,
                    access_token_expires_at = EXCLUDED.access_token_expires_at,
                    refreshed_at = EXCLUDED.refreshed_at,
                    needs_reauth_at = NULL,
                    auth_error = NULL",
            &[
                &integration_id,
                &credentials.method().as_str(),
                &consumer_key,
                &private_key,
                &access_token,
                &access_token_secret,
                &client_id,
                &client_secret,
                &refresh_token,
                &expires_at,
                &refreshed_at,
            ],
        )
        .await?;
    Ok(())
}

const CREDENTIALS: &str = "SELECT auth_method, consumer_key, private_key, access_token,
        access_token_secret, client_id, client_secret, refresh_token, access_token_expires_at,
        refreshed_at, needs_reauth_at, auth_error
   FROM integration_credentials WHERE integration_id = $1";

/// The credentials of `integration_id`, if stored.
pub async fn credentials(
    client: &impl GenericClient,
    keys: &Keyring,
    integration_id: i64,
) -> Result<Option<Stored>, StoreError> {
    recheck(client, keys).await?;
    let row = client.query_opt(CREDENTIALS, &[&integration_id]).await?;
    Ok(row
        .as_ref()
        .map(|row| stored(keys, integration_id, row))
        .transpose()?)
}

/// As [`credentials`], the row locked for this transaction: the one refresh of
/// an integration's OAuth 2.0 token runs while it holds it.
pub(super) async fn lock_credentials(
    client: &impl GenericClient,
    keys: &Keyring,
    integration_id: i64,
) -> Result<Option<Stored>, StoreError> {
    recheck(client, keys).await?;
    let sql = format!("{CREDENTIALS} FOR UPDATE");
    let row = client.query_opt(&sql, &[&integration_id]).await?;
    Ok(row
        .as_ref()
        .map(|row| stored(keys, integration_id, row))
        .transpose()?)
}

fn stored(keys: &Keyring, integration_id: i64, row: &Row) -> Result<Stored, Unreadable> {
    let text = |index: usize| row.get::<_, Option<String>>(index).unwrap_or_default();
    let slot = |column: &'static str| Slot::new(column, integration_id);
    let secret = |column: &'static str, index: usize| {
        keys.open_opt(&slot(column), row.get::<_, Option<&str>>(index))
    };
    let credentials = match AuthMethod::parse(&row.get::<_, String>(0)) {
        AuthMethod::OAuth1 => Credentials::OAuth1 {
            consumer_key: row.get(1),
            private_key: keys.open(&slot(sealed::PRIVATE_KEY), &text(2))?,
            access_token: secret(sealed::ACCESS_TOKEN, 3)?,
            access_token_secret: secret(sealed::ACCESS_TOKEN_SECRET, 4)?,
        },
        AuthMethod::OAuth2 => Credentials::OAuth2 {
            client_id: text(5),
            client_secret: secret(sealed::CLIENT_SECRET, 6)?.unwrap_or_default(),
            access_token: secret(sealed::ACCESS_TOKEN, 3)?.unwrap_or_default(),
            refresh_token: secret(sealed::REFRESH_TOKEN, 7)?,
            expires_at: row.get(8),
            refreshed_at: row.get(9),
        },
        AuthMethod::Pat => Credentials::Pat {
            token: secret(sealed::ACCESS_TOKEN, 3)?.unwrap_or_default(),
        },
    };
    let needs_reauth = row
        .get::<_, Option<DateTime<Utc>>>(10)
        .map(|at| (at, text(11)));
    Ok(Stored {
        credentials,
        needs_reauth,
    })
}

/// Stores the tokens of a refresh of `integration_id`'s OAuth 2.0 access: the
/// rotated refresh token (`None` keeps the stored one), the access token (`None`
/// keeps the stored one, which `expires_at` should then mark as expired) and
/// its expiry, in one statement.
pub(super) async fn save_refreshed(
    client: &impl GenericClient,
    keys: &Keyring,
    integration_id: i64,
    access_token: Option<&str>,
    refresh_token: Option<&str>,
    expires_at: DateTime<Utc>,
) -> Result<(), Error> {
    let slot = |column: &'static str| Slot::new(column, integration_id);
    let access_token = keys.seal_opt(&slot(sealed::ACCESS_TOKEN), access_token);
    let refresh_token = keys.seal_opt(&slot(sealed::REFRESH_TOKEN), refresh_token);
    client
        .execute(
            "UPDATE integration_credentials
                SET access_token = COALESCE($2, access_token),
                    refresh_token = COALESCE($3, refresh_token),
                    access_token_expires_at = $4, refreshed_at = now()
              WHERE integration_id = $1",
            &[&integration_id, &access_token, &refresh_token, &expires_at],
        )
        .await?;
    Ok(())
}

/// Marks `integration_id`'s credentials as refused for good with `reason`; true
/// when they were not marked yet (so the refusal is logged and counted once).
pub(super) async fn mark_needs_reauth(
    client: &impl GenericClient,
    integration_id: i64,
    reason: &str,
) -> Result<bool, Error> {
    let marked = client
        .execute(
            "UPDATE integration_credentials SET needs_reauth_at = now(), auth_error = $2
              WHERE integration_id = $1 AND needs_reauth_at IS NULL",
            &[&integration_id, &reason],
        )
        .await?;
    Ok(marked == 1)
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

/// The metadata of the integration with this row id as stored (its secrets still
/// sealed), the row locked for the caller's transaction: for a rotation, which
/// must see which secrets there are even when one does not open.
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

/// Opens the sealed value `stored` of `column` in `integration_id`'s row.
pub(super) fn open_one(
    keys: &Keyring,
    integration_id: i64,
    column: &'static str,
    stored: &str,
) -> Result<String, Unreadable> {
    keys.open(&Slot::new(column, integration_id), stored)
}

/// Every `jira_server` integration with its credentials, by id.
pub async fn all(
    client: &impl GenericClient,
    keys: &Keyring,
) -> Result<Vec<(Integration, Option<Stored>)>, StoreError> {
    let rows = client
        .query(
            "SELECT id, external_id, status, metadata FROM integrations
              WHERE provider = 'jira_server' ORDER BY id",
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
