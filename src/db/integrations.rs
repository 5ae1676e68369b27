//! Queries about integrations.

use deadpool_postgres::GenericClient;
use serde_json::Value;

/// An active `jira_server` integration, as the worker needs it.
#[derive(Debug, Clone)]
pub struct Integration {
    /// Row id.
    pub id: i64,
    /// `metadata` (base_url, webhook_secret, …). Holds secrets: never log it.
    pub metadata: Value,
}

/// The active `jira_server` integration with this external id.
pub async fn find_active_jira_server(
    client: &impl GenericClient,
    external_id: &str,
) -> Result<Option<Integration>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT id, metadata FROM integrations
              WHERE provider = 'jira_server' AND external_id = $1 AND status = 'active'",
            &[&external_id],
        )
        .await?;
    Ok(row.map(|row| Integration {
        id: row.get(0),
        metadata: row.get(1),
    }))
}
