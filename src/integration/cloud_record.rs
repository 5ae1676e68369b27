//! What connecting a Jira Cloud site records in its metadata beside
//! [`save_cloud`](super::install_record::save_cloud) (docs/reference.md §11.1,
//! §11.4): the authorization server its OAuth 2.0 tokens come from, and the admin
//! webhook it registered, and the dynamic webhook of a 3LO integration. Called by
//! `cloud::connect` in its own transaction and by `cloud::dynamic_webhook`.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::json;

use super::store;
use crate::secrets::Keyring;

/// Records `<AUTH>`, where the integration's service-account tokens are
/// obtained again (`None`: an auth method without one; the key is dropped).
pub async fn record_auth_url(
    client: &impl GenericClient,
    keys: &Keyring,
    integration_id: i64,
    auth_url: Option<&str>,
) -> Result<(), tokio_postgres::Error> {
    match auth_url {
        Some(url) => {
            let patch = json!({ "auth_url": url });
            store::merge_metadata(client, keys, integration_id, &[], &patch).await
        }
        None => {
            store::merge_metadata(client, keys, integration_id, &["auth_url"], &json!({})).await
        }
    }
}

/// Records the admin webhook Jira Cloud registered: its id (the last segment of
/// the answer's `self`, when it had one), kind `admin`, and when. Admin webhooks
/// do not expire: any expiry a dynamic one left is dropped.
pub async fn record_admin_webhook(
    client: &impl GenericClient,
    keys: &Keyring,
    integration_id: i64,
    webhook_id: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), tokio_postgres::Error> {
    let patch = json!({
        "webhook_id": webhook_id,
        "webhook_kind": "admin",
        "webhook_refreshed_at": at,
    });
    let remove = ["webhook_expires_at", "webhook_path"];
    store::merge_metadata(client, keys, integration_id, &remove, &patch).await
}

/// Records the dynamic webhook a 3LO integration registered or refreshed
/// (docs/reference.md §11.3): its id, kind `dynamic`, when, and when it expires;
/// the refresh scheduler counts its next refresh from `at`.
pub async fn record_dynamic_webhook(
    client: &impl GenericClient,
    keys: &Keyring,
    integration_id: i64,
    webhook_id: &str,
    expires_at: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<(), tokio_postgres::Error> {
    let patch = json!({
        "webhook_id": webhook_id,
        "webhook_kind": "dynamic",
        "webhook_refreshed_at": at,
        "webhook_expires_at": expires_at,
    });
    store::merge_metadata(client, keys, integration_id, &["webhook_path"], &patch).await?;
    // The scheduler's own record: the next refresh is due an interval from now.
    crate::db::webhook_refresh::refreshed(client, integration_id, at).await
}
