//! The queries of `integration_credentials` (docs/reference.md §7, §8): writing
//! an install's credentials, reading them (opened), locking them for a refresh,
//! storing a refresh's tokens and marking them refused. Callers own the transaction.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::{Error, Row};

use crate::db::StoreError;
use crate::db::sealed_columns::recheck;
use crate::integration::credentials::{AuthMethod, Credentials, Stored};
use crate::secrets::column::{
    ACCESS_TOKEN, ACCESS_TOKEN_SECRET, CLIENT_SECRET, IntegrationCredentials, PRIVATE_KEY,
    REFRESH_TOKEN,
};
use crate::secrets::{Keyring, Sealed, Unreadable};

/// Writes the credentials of `integration_id` and clears any "needs
/// re-authorization" mark (a new install is what it asks for). A missing OAuth
/// 1.0a access token (or secret) keeps the stored one of the same method, so
/// `integration add` without tokens does not erase what the OAuth flow obtained.
pub(in crate::integration) async fn upsert_credentials(
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
        _ => ("", "", &none, &none),
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
        // The email is no secret: kept where a client id would be.
        Credentials::ApiToken { email, .. } => (Some(email.as_str()), None, None, None, None),
        Credentials::ClientCredentials {
            client_id,
            client_secret,
            expires_at,
            ..
        } => (
            Some(client_id.as_str()),
            Some(client_secret.as_str()),
            None,
            *expires_at,
            None,
        ),
        _ => (None, None, None, None, None),
    };
    let id = integration_id;
    let private_key = PRIVATE_KEY.seal(keys, id, private_key);
    let access_token = ACCESS_TOKEN.seal_opt(keys, id, access_token);
    let access_token_secret =
        ACCESS_TOKEN_SECRET.seal_opt(keys, id, access_token_secret.as_deref());
    let client_secret = CLIENT_SECRET.seal_opt(keys, id, client_secret);
    let refresh_token = REFRESH_TOKEN.seal_opt(keys, id, refresh_token);
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
    let statement = client.prepare_cached(CREDENTIALS).await?;
    let row = client.query_opt(&statement, &[&integration_id]).await?;
    Ok(row
        .as_ref()
        .map(|row| stored(keys, integration_id, row))
        .transpose()?)
}

/// As [`credentials`], the row locked for this transaction: the one refresh of
/// an integration's OAuth 2.0 token runs while it holds it.
pub(in crate::integration) async fn lock_credentials(
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
    let secret = |column: &Sealed<IntegrationCredentials>, index: usize| {
        column.open_opt(keys, integration_id, row.get::<_, Option<&str>>(index))
    };
    let credentials = match AuthMethod::parse(&row.get::<_, String>(0)) {
        AuthMethod::OAuth1 => Credentials::OAuth1 {
            consumer_key: row.get(1),
            private_key: PRIVATE_KEY.open(keys, integration_id, &text(2))?,
            access_token: secret(&ACCESS_TOKEN, 3)?,
            access_token_secret: secret(&ACCESS_TOKEN_SECRET, 4)?,
        },
        AuthMethod::OAuth2 => Credentials::OAuth2 {
            client_id: text(5),
            client_secret: secret(&CLIENT_SECRET, 6)?.unwrap_or_default(),
            access_token: secret(&ACCESS_TOKEN, 3)?.unwrap_or_default(),
            refresh_token: secret(&REFRESH_TOKEN, 7)?,
            expires_at: row.get(8),
            refreshed_at: row.get(9),
        },
        AuthMethod::Pat => Credentials::Pat {
            token: secret(&ACCESS_TOKEN, 3)?.unwrap_or_default(),
        },
        AuthMethod::ApiToken => Credentials::ApiToken {
            email: text(5),
            token: secret(&ACCESS_TOKEN, 3)?.unwrap_or_default(),
        },
        AuthMethod::ClientCredentials => Credentials::ClientCredentials {
            client_id: text(5),
            client_secret: secret(&CLIENT_SECRET, 6)?.unwrap_or_default(),
            access_token: secret(&ACCESS_TOKEN, 3)?.unwrap_or_default(),
            expires_at: row.get(8),
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
pub(in crate::integration) async fn save_refreshed(
    client: &impl GenericClient,
    keys: &Keyring,
    integration_id: i64,
    access_token: Option<&str>,
    refresh_token: Option<&str>,
    expires_at: DateTime<Utc>,
) -> Result<(), Error> {
    let access_token = ACCESS_TOKEN.seal_opt(keys, integration_id, access_token);
    let refresh_token = REFRESH_TOKEN.seal_opt(keys, integration_id, refresh_token);
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
pub(in crate::integration) async fn mark_needs_reauth(
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
