//! Held pushes sent again (docs/reference.md §10.8): a push whose integration
//! could not call Jira (it needs to be connected again, or has no access token)
//! is held, neither retried on a timer nor dead-lettered. Once the integration
//! can call Jira again — `needs_reauth` cleared, an access token stored — the
//! worker's periodic check (every [`EVERY`]) releases its held pushes: the relay
//! publishes them again, with the group's state of that moment.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

/// How often held pushes are checked: well within the 10 s the contract allows
/// between an integration connected again and its pushes leaving.
pub const EVERY: Duration = Duration::from_secs(3);

/// Releases the held pushes of every integration that can call Jira now;
/// returns how many.
pub const RELEASE: &str = "WITH released AS (
  UPDATE outbound_pending p SET held_at = NULL, published_seq = NULL
    FROM integration_credentials c
   WHERE p.held_at IS NOT NULL
     AND c.integration_id = p.integration_id
     AND c.needs_reauth_at IS NULL
     AND (c.auth_method <> 'oauth1' OR COALESCE(c.access_token, '') <> '')
  RETURNING 1)
SELECT count(*) FROM released";

/// Releases the held pushes that can go now, and wakes the relays when any did;
/// returns how many.
pub async fn release(client: &impl GenericClient) -> Result<i64, Error> {
    let released: i64 = client.query_one(RELEASE, &[]).await?.get(0);
    if released > 0 {
        super::pending::notify(client).await?;
    }
    Ok(released)
}
