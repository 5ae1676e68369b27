//! Builds a signed Jira client for an installed integration (its metadata's
//! `base_url` and `verify_ssl`, its stored credentials). Used by the webhook
//! handler's user and status look-ups.

use deadpool_postgres::GenericClient;
use serde_json::Value;

use super::db_error;
use crate::db::integrations::{self, Integration};
use crate::jira::{ClientOptions, JiraClient, JiraError, Signer};
use crate::queue::consumer::HandleError;

/// A client for one integration and the access token its requests are signed with.
pub struct IntegrationJira {
    /// The client, signing with the integration's consumer key and private key.
    pub client: JiraClient,
    /// The OAuth access token. Secret: never log it.
    pub access_token: String,
}

/// The integration's Jira client; `None` when it has no access token (added by
/// hand without one), so no request can be signed.
pub async fn connect(
    db: &impl GenericClient,
    integration: &Integration,
) -> Result<Option<IntegrationJira>, HandleError> {
    let Some(credentials) = integrations::credentials(db, integration.id)
        .await
        .map_err(db_error)?
    else {
        return Ok(None);
    };
    let Some(access_token) = credentials.access_token.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let base_url = integration
        .metadata
        .get("base_url")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let verify_ssl = integration
        .metadata
        .get("verify_ssl")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let options = ClientOptions {
        verify_ssl,
        ..ClientOptions::default()
    };
    let client = Signer::from_pem(credentials.consumer_key, &credentials.private_key)
        .map_err(JiraError::from)
        .and_then(|signer| JiraClient::new(base_url, signer, &options))
        .map_err(|error| jira_error("set up the Jira client", error))?;
    Ok(Some(IntegrationJira {
        client,
        access_token,
    }))
}

/// A failed Jira call: 5xx, 429, timeouts and network errors are retried; a
/// refusal or a broken setup is dead-lettered, to be replayed once fixed.
pub fn jira_error(doing: &str, error: JiraError) -> HandleError {
    if error.is_transient() {
        HandleError::Retryable(format!("failed to {doing}: {error}"))
    } else {
        HandleError::Permanent {
            outcome: "jira_failed",
            reason: format!("failed to {doing}: {error}"),
        }
    }
}
