//! The queries of `integrations` and `integration_credentials` (docs/reference.md
//! §8), each written once. Callers own the transaction.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::Json;
use tokio_postgres::{Error, Row};

use super::{Credentials, Integration, Metadata};

/// `$1` external id: see [`find_active`]. Its statement is checked against
/// `bench/assign.sql` by `tests/bench_script.rs`.
pub const FIND_ACTIVE: &str = "SELECT id, metadata FROM integrations
  WHERE provider = 'jira_server' AND external_id = $1 AND status = 'active'";

/// The active `jira_server` integration with this external id (every webhook asks:
/// the statement is prepared once per connection).
pub async fn find_active(
    client: &impl GenericClient,
    external_id: &str,
) -> Result<Option<Integration>, Error> {
    let statement = client.prepare_cached(FIND_ACTIVE).await?;
    let row = client.query_opt(&statement, &[&external_id]).await?;
    Ok(row.map(|row| Integration {
        id: row.get(0),
        external_id: external_id.to_owned(),
        status: "active".to_owned(),
        metadata: row.get::<_, Json<Metadata>>(1).0,
    }))
}

/// The `jira_server` integration with this row id, whatever its status.
pub async fn by_id(client: &impl GenericClient, id: i64) -> Result<Option<Integration>, Error> {
    let row = client
        .query_opt(
            "SELECT id, external_id, status, metadata FROM integrations
              WHERE id = $1 AND provider = 'jira_server'",
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(integration))
}

fn integration(row: &Row) -> Integration {
    Integration {
        id: row.get(0),
        external_id: row.get(1),
        status: row.get(2),
        metadata: row.get::<_, Json<Metadata>>(3).0,
    }
}

/// Creates the integration or updates the one with the same external id, and
/// makes it `active`. The metadata is merged into the stored one, so keys this
/// write does not carry (e.g. `webhook_hmac_secret`) are kept, and an existing
/// non-empty `webhook_secret` wins over the new one, so webhook URLs already
/// registered in Jira stay valid. `name: None` keeps an existing row's name.
pub(super) async fn upsert(
    client: &impl GenericClient,
    external_id: &str,
    name: Option<&str>,
    default_name: &str,
    metadata: &Metadata,
) -> Result<Integration, Error> {
    let row = client
        .query_one(
            "INSERT INTO integrations (provider, external_id, name, metadata, status)
             VALUES ('jira_server', $1, COALESCE($2, $3), $4, 'active')
             ON CONFLICT (provider, external_id) DO UPDATE
                SET name = COALESCE($2, integrations.name),
                    status = 'active',
                    metadata = integrations.metadata || EXCLUDED.metadata
                        || jsonb_build_object('webhook_secret', COALESCE(
                               NULLIF(integrations.metadata->>'webhook_secret', ''),
                               EXCLUDED.metadata->>'webhook_secret'))
             RETURNING id, external_id, status, metadata",
            &[&external_id, &name, &default_name, &Json(metadata)],
        )
        .await?;
    Ok(integration(&row))
}

/// Writes the credentials of `integration_id`. A missing access token (or
/// secret) keeps the stored one, so `integration add` without tokens does not
/// erase what the OAuth flow obtained.
pub(super) async fn upsert_credentials(
    client: &impl GenericClient,
    integration_id: i64,
    credentials: &Credentials,
) -> Result<(), Error> {
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
) -> Result<Option<Credentials>, Error> {
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
