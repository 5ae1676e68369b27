//! Handler of `jira_cloud.webhook_refresh` (docs/reference.md §11.3): a Jira
//! Cloud 3LO integration's dynamic webhook expires 30 days after it was
//! registered or refreshed, so the scheduler enqueues this job every
//! `JIRASYNC_CLOUD_WEBHOOK_REFRESH_INTERVAL`; it lists the app's webhooks and
//! refreshes jirasync's, or registers a new one when it is gone.
//! [`WebhookRefresh`] is the message the scheduler publishes.

use serde::{Deserialize, Serialize};

use crate::cloud::dynamic_webhook;
use crate::integration::webhook_registration::RegisterError;
use crate::integration::{self, AuthMethod, Integration, Provider, messages};
use crate::queue::handler::Failure;
use crate::queue::job::Job;
use crate::worker::environment::Environment;
use crate::worker::failure;
use crate::worker::outcome::Outcome;

/// `jira_cloud.webhook_refresh`: refresh (or register again) one integration's
/// dynamic webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRefresh {
    /// The integration.
    pub integration_id: i64,
}

impl Job for WebhookRefresh {
    const TYPE: &'static str = messages::CLOUD_WEBHOOK_REFRESH;
    const SHAPE: &'static str = r#"{"integration_id":…}"#;
}

/// Refreshes the integration's dynamic webhook; an integration that is gone,
/// inactive or not a 3LO one is skipped (acked), as is one that must be
/// connected again (connecting it registers its webhook anew).
pub async fn handle(env: &Environment, job: &WebhookRefresh) -> Result<Outcome, Failure> {
    tracing::Span::current().record("integration.id", job.integration_id);
    let client = env.pool.get().await?;
    let Some(integration) = integration::by_id(&client, env.pool.keys(), job.integration_id)
        .await?
        .filter(|integration| integration.is_active() && integration.provider == Provider::Cloud)
    else {
        tracing::warn!("webhook refresh job for an unknown, inactive or Data Center integration");
        return Ok(Outcome::UnknownIntegration);
    };
    match integration::credentials(&client, env.pool.keys(), integration.id).await? {
        Some(stored) if stored.needs_reauth.is_some() => {
            tracing::warn!("webhook refresh skipped: the integration needs to be connected again");
            return Ok(Outcome::NeedsReauth);
        }
        Some(stored) if stored.credentials.method() == AuthMethod::OAuth2 => {}
        _ => {
            tracing::warn!(
                "webhook refresh skipped: the integration is not an OAuth 2.0 (3LO) one"
            );
            return Ok(Outcome::NotDynamic);
        }
    }
    drop(client);
    refresh(env, &integration).await
}

async fn refresh(env: &Environment, integration: &Integration) -> Result<Outcome, Failure> {
    let (public_url, jql) = (&env.public_url, &env.atlassian.webhook_jql);
    match dynamic_webhook::refresh(&env.pool, integration, public_url, jql).await {
        Ok(recorded) => {
            let outcome = if recorded.registered {
                Outcome::WebhookRegistered
            } else {
                Outcome::WebhookRefreshed
            };
            tracing::info!(
                webhook.id = %recorded.id,
                webhook.expires_at = %recorded.expires_at,
                outcome = outcome.label(),
                "dynamic webhook of the Jira Cloud integration kept alive"
            );
            Ok(outcome)
        }
        Err(RegisterError::Access(error)) => Err(failure::access(
            "refresh the dynamic webhook in Jira Cloud",
            error,
        )),
        Err(RegisterError::Db(error)) => Err(error.into()),
        Err(RegisterError::Pool(error)) => Err(error.into()),
        Err(error @ (RegisterError::Url(_) | RegisterError::NoCredentials(_))) => {
            Err(Failure::permanent(
                Outcome::JiraFailed,
                anyhow::Error::new(error).context("failed to refresh the dynamic webhook"),
            ))
        }
    }
}
