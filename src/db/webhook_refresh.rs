//! Queries of the dynamic-webhook refresh of Jira Cloud 3LO integrations
//! (docs/reference.md §11.3), on `cloud_webhook_refreshes`: which integrations
//! are due, claimed so that of many workers' schedulers one enqueues each
//! refresh, and when a webhook was last registered or refreshed. Called by the
//! worker's scheduler and by `cloud_record::record_dynamic_webhook`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

/// How long after its install an OAuth 2.0 integration without a recorded
/// webhook is left to its install job, which registers one; after that the
/// scheduler registers it.
pub const INSTALL_GRACE: Duration = Duration::from_secs(600);

/// Claims the active `jira_cloud` integrations authorised with OAuth 2.0 (3LO)
/// and not needing to be connected again whose dynamic webhook was registered
/// or refreshed `every` ago or longer (or never, once [`INSTALL_GRACE`] has
/// passed since their token was obtained), and that no scheduler claimed within
/// `every`; returns them in id order.
pub async fn claim_due(client: &impl GenericClient, every: Duration) -> Result<Vec<i64>, Error> {
    let (seconds, grace) = (every.as_secs_f64(), INSTALL_GRACE.as_secs_f64());
    let rows = client
        .query(
            "INSERT INTO cloud_webhook_refreshes AS r (integration_id, scheduled_at)
             SELECT i.id, now()
               FROM integrations i
               JOIN integration_credentials c ON c.integration_id = i.id
              WHERE i.provider = 'jira_cloud' AND i.status = 'active'
                AND c.auth_method = 'oauth2' AND c.needs_reauth_at IS NULL
                AND (EXISTS (SELECT 1 FROM cloud_webhook_refreshes w WHERE w.integration_id = i.id)
                     OR c.refreshed_at IS NULL
                     OR c.refreshed_at <= now() - make_interval(secs => $2))
              ORDER BY i.id
             ON CONFLICT (integration_id) DO UPDATE SET scheduled_at = EXCLUDED.scheduled_at
              WHERE (r.refreshed_at IS NULL OR r.refreshed_at <= now() - make_interval(secs => $1))
                AND (r.scheduled_at IS NULL OR r.scheduled_at <= now() - make_interval(secs => $1))
             RETURNING r.integration_id",
            &[&seconds, &grace],
        )
        .await?;
    let mut due: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
    due.sort_unstable();
    Ok(due)
}

/// Records that the integration's dynamic webhook was registered or refreshed `at`.
pub async fn refreshed(
    client: &impl GenericClient,
    integration_id: i64,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    client
        .execute(
            "INSERT INTO cloud_webhook_refreshes (integration_id, refreshed_at) VALUES ($1, $2)
             ON CONFLICT (integration_id) DO UPDATE SET refreshed_at = EXCLUDED.refreshed_at",
            &[&integration_id, &at],
        )
        .await?;
    Ok(())
}

/// Gives back the claim of `integration_id` (its job could not be enqueued):
/// the next look of any scheduler claims it again.
pub async fn release_claim(client: &impl GenericClient, integration_id: i64) -> Result<(), Error> {
    client
        .execute(
            "UPDATE cloud_webhook_refreshes SET scheduled_at = NULL WHERE integration_id = $1",
            &[&integration_id],
        )
        .await?;
    Ok(())
}
