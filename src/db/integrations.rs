//! Queries about integrations and their credentials.

use deadpool_postgres::GenericClient;
use serde_json::Value;

/// An active `jira_server` integration, as the worker needs it. `Debug` shows the
/// metadata's keys only: its values include the webhook secrets.
#[derive(Clone)]
pub struct Integration {
    /// Row id.
    pub id: i64,
    /// `metadata` (base_url, webhook_secret, …). Holds secrets: never log it.
    pub metadata: Value,
}

impl std::fmt::Debug for Integration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self
            .metadata
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        f.debug_struct("Integration")
            .field("id", &self.id)
            .field("metadata_keys", &keys)
            .finish()
    }
}

/// `$1` external id: see [`find_active_jira_server`].
pub const FIND_ACTIVE_JIRA_SERVER: &str = "SELECT id, metadata FROM integrations
  WHERE provider = 'jira_server' AND external_id = $1 AND status = 'active'";

/// The active `jira_server` integration with this external id (every webhook asks:
/// the statement is prepared once per connection).
pub async fn find_active_jira_server(
    client: &impl GenericClient,
    external_id: &str,
) -> Result<Option<Integration>, tokio_postgres::Error> {
    let statement = client.prepare_cached(FIND_ACTIVE_JIRA_SERVER).await?;
    let row = client.query_opt(&statement, &[&external_id]).await?;
    Ok(row.map(|row| Integration {
        id: row.get(0),
        metadata: row.get(1),
    }))
}

/// A `jira_server` integration to create or update (`integration add`, the
/// access-token job). `metadata` carries base_url, domain_name, verify_ssl and a
/// fresh `webhook_secret` that is used only when the row has none yet.
#[derive(Debug, Clone)]
pub struct NewJiraServer<'a> {
    /// `<host[:port]>:<consumer_key>`, at most 64 characters.
    pub external_id: &'a str,
    /// Display name of a new row.
    pub name: &'a str,
    /// Keep the name of an existing row (no name was given explicitly).
    pub keep_name: bool,
    /// base_url, domain_name, verify_ssl, webhook_secret. Holds a secret: never log it.
    pub metadata: &'a Value,
}

/// A saved `jira_server` integration.
#[derive(Debug, Clone)]
pub struct SavedIntegration {
    /// Row id.
    pub id: i64,
    /// Its external id.
    pub external_id: String,
    /// The webhook secret in effect (the existing one on update). Secret.
    pub webhook_secret: String,
}

/// Creates the integration or updates the one with the same external id. An
/// existing non-empty `webhook_secret` is kept, so webhook URLs already
/// registered in Jira stay valid; other metadata keys (e.g.
/// `webhook_hmac_secret`) are kept too. The integration becomes `active`.
pub async fn upsert_jira_server(
    client: &impl GenericClient,
    new: &NewJiraServer<'_>,
) -> Result<SavedIntegration, tokio_postgres::Error> {
    let row = client
        .query_one(
            "INSERT INTO integrations (provider, external_id, name, metadata, status)
             VALUES ('jira_server', $1, $2, $3, 'active')
             ON CONFLICT (provider, external_id) DO UPDATE
                SET name = CASE WHEN $4 THEN integrations.name ELSE EXCLUDED.name END,
                    status = 'active',
                    metadata = integrations.metadata || EXCLUDED.metadata
                        || jsonb_build_object('webhook_secret', COALESCE(
                               NULLIF(integrations.metadata->>'webhook_secret', ''),
                               EXCLUDED.metadata->>'webhook_secret'))
             RETURNING id, external_id, metadata->>'webhook_secret'",
            &[&new.external_id, &new.name, new.metadata, &new.keep_name],
        )
        .await?;
    Ok(SavedIntegration {
        id: row.get(0),
        external_id: row.get(1),
        webhook_secret: row.get::<_, Option<String>>(2).unwrap_or_default(),
    })
}

/// The credentials of an integration. Secret: `Debug` shows the consumer key only.
#[derive(Clone)]
pub struct Credentials {
    /// Consumer key of the application link.
    pub consumer_key: String,
    /// PEM private key.
    pub private_key: String,
    /// OAuth access token, once there is one.
    pub access_token: Option<String>,
    /// Its secret.
    pub access_token_secret: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("consumer_key", &self.consumer_key)
            .finish_non_exhaustive()
    }
}

/// Writes the credentials of `integration_id`. A missing access token (or
/// secret) keeps the stored one, so `integration add` without tokens does not
/// erase what the OAuth flow obtained.
pub async fn upsert_credentials(
    client: &impl GenericClient,
    integration_id: i64,
    credentials: &Credentials,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO integration_credentials
                    (integration_id, consumer_key, private_key, access_token, access_token_secret)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (integration_id) DO UPDATE
                SET consumer_key = EXCLUDED.consumer_key,
                    private_key = EXCLUDED.private_key,
                    access_token = COALESCE(EXCLUDED.access_token, integration_credentials.access_token),
                    access_token_secret = COALESCE(EXCLUDED.access_token_secret,
                                                   integration_credentials.access_token_secret)",
            &[
                &integration_id,
                &credentials.consumer_key,
                &credentials.private_key,
                &credentials.access_token,
                &credentials.access_token_secret,
            ],
        )
        .await?;
    Ok(())
}

/// The credentials of `integration_id`, if stored.
pub async fn credentials(
    client: &impl GenericClient,
    integration_id: i64,
) -> Result<Option<Credentials>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT consumer_key, private_key, access_token, access_token_secret
               FROM integration_credentials WHERE integration_id = $1",
            &[&integration_id],
        )
        .await?;
    Ok(row.map(|row| Credentials {
        consumer_key: row.get(0),
        private_key: row.get(1),
        access_token: row.get(2),
        access_token_secret: row.get(3),
    }))
}

/// A `jira_server` integration by id, whatever its status: (external_id, metadata).
pub async fn find_jira_server(
    client: &impl GenericClient,
    id: i64,
) -> Result<Option<(String, Value)>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT external_id, metadata FROM integrations
              WHERE id = $1 AND provider = 'jira_server'",
            &[&id],
        )
        .await?;
    Ok(row.map(|row| (row.get(0), row.get(1))))
}

/// The active `jira_server` integration with this row id.
pub async fn find_active_by_id(
    client: &impl GenericClient,
    id: i64,
) -> Result<Option<Integration>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT id, metadata FROM integrations
              WHERE id = $1 AND provider = 'jira_server' AND status = 'active'",
            &[&id],
        )
        .await?;
    Ok(row.map(|row| Integration {
        id: row.get(0),
        metadata: row.get(1),
    }))
}
