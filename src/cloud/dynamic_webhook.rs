//! The dynamic webhook of a 3LO integration (docs/reference.md §11.3): registered
//! through the API gateway when the install ends, refreshed by the
//! `jira_cloud.webhook_refresh` job long before Atlassian lets it expire (30
//! days), and registered again when it is gone (expired or deleted). What was
//! registered is recorded in the integration's metadata
//! ([`record_dynamic_webhook`]).

use chrono::{DateTime, TimeDelta, Utc};

use crate::db::DbPool;
use crate::integration::Integration;
use crate::integration::cloud_record::record_dynamic_webhook;
use crate::integration::webhook_registration::RegisterError;
use crate::jira::JiraError;

/// How long Atlassian keeps a dynamic webhook that is not refreshed; the
/// expiry recorded for a registration whose answer does not say.
pub const LIFETIME: TimeDelta = TimeDelta::days(30);

/// What a registration or refresh left in Jira.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The webhook's id.
    pub id: String,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// Whether it was registered now (`false`: refreshed).
    pub registered: bool,
}

/// Registers the integration's dynamic webhook for issue created and updated
/// events matching `jql`, to its webhook URL under `public_url`, and records it.
pub async fn register(
    pool: &DbPool,
    integration: &Integration,
    public_url: &str,
    jql: &str,
) -> Result<Recorded, RegisterError> {
    let url = integration.webhook_url(public_url)?;
    let id = integration
        .with_jira(pool, |jira| {
            let url = url.clone();
            async move { jira.register_dynamic_webhook(&url, jql).await }
        })
        .await?
        .ok_or(RegisterError::NoCredentials(integration.id))?;
    let now = Utc::now();
    let recorded = Recorded {
        id,
        expires_at: now + LIFETIME,
        registered: true,
    };
    record(pool, integration, &recorded, now).await?;
    Ok(recorded)
}

/// Refreshes the integration's dynamic webhook when Jira still lists it, and
/// records its new expiry; registers a new one when it is gone (or none was
/// recorded).
pub async fn refresh(
    pool: &DbPool,
    integration: &Integration,
    public_url: &str,
    jql: &str,
) -> Result<Recorded, RegisterError> {
    let Some(id) = integration.metadata.webhook_id.clone() else {
        return register(pool, integration, public_url, jql).await;
    };
    let refreshed = integration
        .with_jira(pool, |jira| {
            let id = id.clone();
            async move {
                let listed = jira.dynamic_webhooks().await?;
                if !listed.iter().any(|webhook| webhook.id == id) {
                    return Ok::<_, JiraError>(None);
                }
                jira.refresh_dynamic_webhook(&id).await.map(Some)
            }
        })
        .await?
        .ok_or(RegisterError::NoCredentials(integration.id))?;
    let Some(expires_at) = refreshed else {
        tracing::warn!(
            integration.id = integration.id,
            webhook.id = %id,
            "the dynamic webhook is gone from Jira Cloud (expired or deleted); registering a new one"
        );
        return register(pool, integration, public_url, jql).await;
    };
    let now = Utc::now();
    let recorded = Recorded {
        id,
        expires_at: expires_at.unwrap_or(now + LIFETIME),
        registered: false,
    };
    record(pool, integration, &recorded, now).await?;
    Ok(recorded)
}

async fn record(
    pool: &DbPool,
    integration: &Integration,
    recorded: &Recorded,
    at: DateTime<Utc>,
) -> Result<(), RegisterError> {
    let client = pool.get().await?;
    record_dynamic_webhook(
        &client,
        pool.keys(),
        integration.id,
        &recorded.id,
        recorded.expires_at,
        at,
    )
    .await?;
    Ok(())
}
