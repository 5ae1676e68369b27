//! Registering the integration's webhook in its Jira (docs/reference.md §6.4), for
//! every auth method: the Jira's version (`serverInfo`) picks the resource —
//! `/rest/webhooks/1.0/webhook` before Jira 10, `/rest/jira-webhook/1.0/webhooks`
//! from 10 — and where the resource takes a secret, one is registered and stored as
//! `webhook_hmac_secret`, so `X-Hub-Signature` is checked from the first webhook.
//! Used by both install jobs and `integration add --register-webhook`; [`update`]
//! points the registered webhook at a rotated URL and secret
//! (`integration rotate-webhook-secret`).

use crate::db::DbPool;
use serde_json::json;

use super::access::AccessError;
use super::install_record::fresh_webhook_secret;
use super::row::Integration;
use super::store;
use super::token::MintError;
use crate::jira::{ISSUE_EVENTS, JiraError, ServerInfo, WebhookApi, WebhookRegistration};

/// Why the webhook registered in Jira was not updated (the caller then says how
/// to change it by hand).
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// No registration is recorded: the webhook was registered by hand, or by a
    /// version that did not record Jira's id.
    #[error("jirasync has no record of registering this integration's webhook in Jira")]
    NotRecorded,
    /// The integration has no credentials that can call Jira.
    #[error("integration {0} has no credentials to call Jira with")]
    NoCredentials(i64),
    /// The webhook URL cannot be made.
    #[error(transparent)]
    Url(#[from] MintError),
    /// Jira could not be called, or refused (e.g. 403: no admin rights; 404: the
    /// webhook was deleted in Jira).
    #[error(transparent)]
    Access(#[from] AccessError),
}

/// Why a registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The webhook URL cannot be made.
    #[error(transparent)]
    Url(#[from] MintError),
    /// Jira could not be called, or refused.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The integration has no credentials that can call Jira.
    #[error("integration {0} has no credentials to call Jira with")]
    NoCredentials(i64),
    /// Storing what was registered failed.
    #[error("failed to record the webhook registration")]
    Db(#[from] tokio_postgres::Error),
    /// No database connection.
    #[error("database unavailable")]
    Pool(#[from] deadpool_postgres::PoolError),
}

impl RegisterError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Access(AccessError::Jira(error)) => error.is_transient(),
            Self::Access(AccessError::Db(_) | AccessError::Pool(_))
            | Self::Db(_)
            | Self::Pool(_) => true,
            _ => false,
        }
    }

    /// Whether Jira refused for want of rights (401/403): the authorizing user
    /// is no Jira administrator, or the scope lacks `ADMIN`.
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            Self::Access(AccessError::Jira(error)) if matches!(error.status(), Some(401 | 403))
        )
    }
}

/// Registers the webhook of `integration` (its URL under `public_url`) and
/// records the Jira version, the resource, Jira's id and the HMAC secret in its
/// metadata. An HMAC secret the integration already has is kept, so webhooks
/// registered before stay valid.
pub async fn register(
    pool: &DbPool,
    integration: &Integration,
    public_url: &str,
) -> Result<WebhookRegistration, RegisterError> {
    let url = integration.webhook_url(public_url)?;
    let secret = integration
        .metadata
        .webhook_hmac_secret
        .clone()
        .unwrap_or_else(fresh_webhook_secret);
    let registered = integration
        .with_jira(pool, |jira| {
            let (url, secret) = (url.clone(), secret.clone());
            async move {
                // A Jira that does not tell its version gets the legacy resource,
                // and the other one after a 404.
                let info = match jira.server_info().await {
                    Ok(info) => Some(info),
                    Err(
                        error @ (JiraError::Unexpected { .. } | JiraError::InvalidResponse { .. }),
                    ) => {
                        tracing::warn!(%error, "Jira's serverInfo is unreadable; trying the legacy webhook resource");
                        None
                    }
                    Err(error) => return Err(error),
                };
                let major = info.as_ref().map_or(0, ServerInfo::major);
                let api = WebhookApi::for_version(major);
                let offered = api.takes_secret().then_some(secret.as_str());
                let registration = jira
                    .register_webhook(api, &url, &ISSUE_EVENTS, offered)
                    .await?;
                Ok::<_, JiraError>((info, registration))
            }
        })
        .await?;
    let Some((info, registration)) = registered else {
        return Err(RegisterError::NoCredentials(integration.id));
    };
    let version = info
        .map(|info| info.version)
        .filter(|version| !version.is_empty());
    let mut patch = json!({
        "jira_version": version,
        "webhook_path": registration.api.path(),
    });
    if let Some(id) = &registration.id {
        patch["webhook_id"] = json!(id);
    }
    if registration.signed {
        patch["webhook_hmac_secret"] = json!(secret);
    }
    let client = pool.get().await?;
    store::merge_metadata(&client, pool.keys(), integration.id, &[], &patch).await?;
    tracing::info!(
        integration.id = integration.id,
        jira.version = ?version,
        webhook.api = ?registration.api,
        webhook.id = ?registration.id,
        webhook.signed = registration.signed,
        "webhook registered in Jira"
    );
    Ok(registration)
}

/// Points the webhook registered for `integration` (the resource and id its
/// metadata recorded) at its current URL under `public_url` and, where Jira signs
/// deliveries, its current `webhook_hmac_secret`: `PUT <resource>/<id>` with the
/// integration's auth method. The resource that took it.
pub async fn update(
    pool: &DbPool,
    integration: &Integration,
    public_url: &str,
) -> Result<WebhookApi, UpdateError> {
    let metadata = &integration.metadata;
    let api = metadata
        .webhook_path
        .as_deref()
        .and_then(WebhookApi::from_path);
    let (Some(api), Some(id)) = (api, metadata.webhook_id.as_deref()) else {
        return Err(UpdateError::NotRecorded);
    };
    let url = integration.webhook_url(public_url)?;
    let secret = metadata.webhook_hmac_secret.as_deref();
    let updated = integration
        .with_jira(pool, |jira| {
            let (id, url) = (id.to_owned(), url.clone());
            let secret = secret.map(str::to_owned);
            async move {
                jira.update_webhook(api, &id, &url, &ISSUE_EVENTS, secret.as_deref())
                    .await
            }
        })
        .await?;
    if updated.is_none() {
        return Err(UpdateError::NoCredentials(integration.id));
    }
    tracing::info!(
        integration.id = integration.id,
        webhook.api = ?api,
        webhook.id = id,
        "webhook in Jira updated to the rotated URL and secret"
    );
    Ok(api)
}
