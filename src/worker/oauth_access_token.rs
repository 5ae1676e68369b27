//! Handler of `jira_server.oauth_access_token` (CONTRACT §7, Sentry
//! `JiraServerIntegrationProvider.build_integration`): exchanges the authorized
//! request token for an access token, saves the integration and its credentials,
//! registers the webhook in Jira and marks the session `installed`.

use deadpool_postgres::Object;
use serde::Deserialize;
use serde_json::Value;
use tracing::Span;

use super::oauth_request_token::jira_client;
use super::{OauthJobs, db_error, pool_error};
use crate::db::integrations::{self, Credentials};
use crate::db::oauth_sessions::{self, OauthSession, state};
use crate::install::{self, Install, SaveError};
use crate::jira::{ISSUE_EVENTS, JiraClient, JiraError};
use crate::queue::consumer::{HandleError, Incoming, Outcome};

/// The job's body.
#[derive(Debug, Deserialize)]
pub struct Job {
    /// The request token, as the callback received it.
    pub oauth_token: String,
    /// The verifier; absent or empty means "use `oauth_token`", which Jira Server accepts.
    #[serde(default)]
    pub oauth_verifier: Option<String>,
}

/// Parses the body, permanently failing when it is not the contract's shape.
pub fn parse(body: &[u8]) -> Result<Job, HandleError> {
    let malformed = |detail: String| HandleError::Permanent {
        outcome: "malformed",
        reason: format!(
            "the job body is not {{\"oauth_token\":\"…\",\"oauth_verifier\":\"…\"}}: {detail}"
        ),
    };
    let job: Job = serde_json::from_slice(body).map_err(|error| malformed(error.to_string()))?;
    if job.oauth_token.is_empty() {
        return Err(malformed("oauth_token is empty".into()));
    }
    Ok(job)
}

/// How a step of the install failed.
enum Failure {
    /// Try again later (Jira or the database is unavailable).
    Passing(String),
    /// Will not succeed by retrying: the session becomes `failed` with this text.
    Final(String),
    /// A database error that is not passing.
    Db(HandleError),
}

/// Completes the install.
///
/// Idempotent: the session is claimed (`authorizing`) so a duplicate delivery
/// (the callback and `oauth finish`, or a redelivery) waits or does nothing; an
/// installed session acks at once; once the access token is stored, a retry
/// skips the exchange (Jira accepts a request token once) and only registers
/// the webhook. A crash between registering and marking `installed` can
/// register the webhook twice. An unknown request token is acked and logged:
/// the callback route is public, so anyone can send one.
/// Refusals mark the session `failed` and are acked, like the request-token job.
pub async fn handle(jobs: &OauthJobs, message: &Incoming) -> Result<Outcome, HandleError> {
    let job = parse(&message.body)?;
    let mut client = jobs.pool.get().await.map_err(pool_error)?;
    let Some(session) = oauth_sessions::claim_authorizing(&client, &job.oauth_token)
        .await
        .map_err(db_error)?
    else {
        return unclaimed(&client, &job).await;
    };
    match install(jobs, &mut client, &session, &job).await {
        Ok(integration_id) => {
            oauth_sessions::mark_installed(&client, session.id, integration_id)
                .await
                .map_err(db_error)?;
            tracing::info!(session.id = %session.id, "Jira Server integration installed");
            Ok(Outcome("installed"))
        }
        Err(Failure::Passing(reason)) => {
            if let Err(error) = oauth_sessions::release_authorizing(&client, session.id).await {
                // The claim expires by itself (AUTHORIZING_LEASE).
                tracing::warn!(%error, "could not release the OAuth session claim");
            }
            Err(HandleError::Retryable(reason))
        }
        Err(Failure::Final(text)) => {
            oauth_sessions::mark_failed(&client, session.id, &text)
                .await
                .map_err(db_error)?;
            tracing::warn!(session.id = %session.id, error = %text, "OAuth session failed at the access-token step");
            Ok(Outcome("failed"))
        }
        Err(Failure::Db(error)) => {
            let _ = oauth_sessions::release_authorizing(&client, session.id).await;
            Err(error)
        }
    }
}

/// No claim: the session is unknown, installed, or another delivery holds it.
async fn unclaimed(client: &Object, job: &Job) -> Result<Outcome, HandleError> {
    let session = oauth_sessions::find_by_request_token(client, &job.oauth_token)
        .await
        .map_err(db_error)?;
    match session.as_ref().map(|s| s.state.as_str()) {
        Some(state::INSTALLED) => Ok(Outcome("already_installed")),
        Some(state::AUTHORIZING) => Err(HandleError::Retryable(
            "another delivery is completing this OAuth session".into(),
        )),
        _ => {
            tracing::warn!("no OAuth session awaits this request token; ignored");
            Ok(Outcome("unknown_session"))
        }
    }
}

/// Exchange (unless done before), save, register; the integration id.
async fn install(
    jobs: &OauthJobs,
    client: &mut Object,
    session: &OauthSession,
    job: &Job,
) -> Result<i64, Failure> {
    let jira = jira_client(session)
        .map_err(|error| jira_failure(session, "setting up the client for", error))?;
    let (integration_id, access_token) = match stored_access_token(client, session).await? {
        Some(stored) => stored,
        None => exchange(client, &jira, session, job).await?,
    };
    Span::current().record("integration.id", integration_id);
    let (external_id, metadata) = integrations::find_jira_server(&*client, integration_id)
        .await
        .map_err(db_failure)?
        .ok_or_else(|| {
            Failure::Final(format!(
                "integration {integration_id} disappeared during the install"
            ))
        })?;
    let secret = metadata
        .get("webhook_secret")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let url = install::webhook_url(&jobs.public_url, &external_id, secret)
        .map_err(|error| Failure::Final(error.to_string()))?;
    match jira
        .register_webhook(&access_token, &url, &ISSUE_EVENTS)
        .await
    {
        Ok(registration) => {
            tracing::info!(webhook.api = ?registration.api, webhook.id = ?registration.id, "webhook registered in Jira");
            Ok(integration_id)
        }
        Err(error) if error.is_transient() => Err(Failure::Passing(error.to_string())),
        Err(error) => Err(Failure::Final(format!(
            "integration {integration_id} was saved, but registering its webhook in Jira at {} failed: {error}; \
             fix that and run `jirasync oauth finish {}` again, or register the URL from \
             `jirasync integration webhook-url {integration_id}` in Jira by hand \
             (events jira:issue_created, jira:issue_updated)",
            session.base_url, session.id
        ))),
    }
}

/// The integration and access token an earlier try of this session stored.
async fn stored_access_token(
    client: &Object,
    session: &OauthSession,
) -> Result<Option<(i64, String)>, Failure> {
    let Some(integration_id) = session.integration_id else {
        return Ok(None);
    };
    let credentials = integrations::credentials(client, integration_id)
        .await
        .map_err(db_failure)?;
    Ok(credentials
        .and_then(|c| c.access_token)
        .map(|token| (integration_id, token)))
}

/// Exchanges the request token and stores the integration, its credentials and
/// the link from the session, in one transaction.
async fn exchange(
    client: &mut Object,
    jira: &JiraClient,
    session: &OauthSession,
    job: &Job,
) -> Result<(i64, String), Failure> {
    let verifier = job
        .oauth_verifier
        .as_deref()
        .filter(|verifier| !verifier.is_empty())
        .unwrap_or(&job.oauth_token);
    let token = jira
        .access_token(
            &job.oauth_token,
            session.request_token_secret.as_deref().unwrap_or_default(),
            verifier,
        )
        .await
        .map_err(|error| jira_failure(session, "exchanging the request token with", error))?;
    let install = Install {
        base_url: &session.base_url,
        verify_ssl: session.verify_ssl,
        name: None,
        credentials: Credentials {
            consumer_key: session.consumer_key.clone(),
            private_key: session.private_key.clone(),
            access_token: Some(token.token.clone()),
            access_token_secret: Some(token.secret.clone()),
        },
    };
    let tx = client.transaction().await.map_err(db_failure)?;
    let saved = install::save(&tx, &install)
        .await
        .map_err(|error| match error {
            SaveError::Db(error) => db_failure(error),
            SaveError::Install(error) => Failure::Final(error.to_string()),
        })?;
    oauth_sessions::set_integration(&tx, session.id, saved.id)
        .await
        .map_err(db_failure)?;
    tx.commit().await.map_err(db_failure)?;
    Ok((saved.id, token.token))
}

fn jira_failure(session: &OauthSession, doing: &str, error: JiraError) -> Failure {
    if error.is_transient() {
        Failure::Passing(error.to_string())
    } else {
        Failure::Final(format!(
            "{doing} Jira at {} failed: {error}",
            session.base_url
        ))
    }
}

fn db_failure(error: tokio_postgres::Error) -> Failure {
    match db_error(error) {
        HandleError::Retryable(reason) => Failure::Passing(reason),
        other => Failure::Db(other),
    }
}
