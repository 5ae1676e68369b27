//! Handler of `jira_server.oauth_access_token` (docs/reference.md §6, Sentry
//! `JiraServerIntegrationProvider.build_integration`): exchanges the authorized
//! request token for an access token, saves the integration and its credentials,
//! registers the webhook in Jira and marks the session `installed`.

use deadpool_postgres::Object;
use tracing::Span;

use super::OauthJobs;
use super::oauth_request_token::session_client;
use crate::db::oauth_sessions::{self, OauthSession, Progress, SessionRef, state};
use crate::integration::install::{self, Install, SaveError};
use crate::integration::{self as jira_server, Credentials};
use crate::jira::{ISSUE_EVENTS, JiraClient, JiraError};
use crate::queue::handler::{Failure, Outcome};
use crate::queue::job::OauthAccessToken;

/// Why the install cannot succeed by retrying: the session becomes `failed`
/// with this text and the job is acked (the fix is in Jira or the arguments).
struct Refusal(String);

/// Where a step ended: the integration id, or a refusal; a [`Failure`] (passing,
/// or a database error retrying cannot fix) is the handler's own.
type Step<T> = Result<Result<T, Refusal>, Failure>;

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
pub async fn handle(jobs: &OauthJobs, job: &OauthAccessToken) -> Result<Outcome, Failure> {
    let mut client = jobs.pool.get().await?;
    let Some(session) = oauth_sessions::claim_authorizing(&client, &job.oauth_token).await? else {
        return unclaimed(&client, job).await;
    };
    match install(jobs, &mut client, &session, job).await {
        Ok(Ok(integration_id)) => {
            oauth_sessions::record(&client, session.id, integration_id, Progress::Installed)
                .await?;
            tracing::info!(session.id = %session.id, "Jira Server integration installed");
            Ok(Outcome::Installed)
        }
        Ok(Err(Refusal(text))) => {
            oauth_sessions::mark_failed(&client, SessionRef::Id(session.id), &text).await?;
            tracing::warn!(session.id = %session.id, error = %text, "OAuth session failed at the access-token step");
            Ok(Outcome::Failed)
        }
        Err(failure) => {
            if let Err(error) = oauth_sessions::release_authorizing(&client, session.id).await {
                // The claim expires by itself (AUTHORIZING_LEASE).
                tracing::warn!(%error, "could not release the OAuth session claim");
            }
            Err(failure)
        }
    }
}

/// No claim: the session is unknown, installed, or another delivery holds it.
async fn unclaimed(client: &Object, job: &OauthAccessToken) -> Result<Outcome, Failure> {
    let session = oauth_sessions::find(client, SessionRef::RequestToken(&job.oauth_token)).await?;
    match session.as_ref().map(|s| s.state.as_str()) {
        Some(state::INSTALLED) => Ok(Outcome::AlreadyInstalled),
        Some(state::AUTHORIZING) => Err(Failure::passing(anyhow::anyhow!(
            "another delivery is completing this OAuth session"
        ))),
        _ => {
            tracing::warn!("no OAuth session awaits this request token; ignored");
            Ok(Outcome::UnknownSession)
        }
    }
}

/// Exchange (unless done before), save, register; the integration id.
async fn install(
    jobs: &OauthJobs,
    client: &mut Object,
    session: &OauthSession,
    job: &OauthAccessToken,
) -> Step<i64> {
    let jira = match session_client(session) {
        Ok(jira) => jira,
        Err(error) => return Ok(Err(refusal(session, "setting up the client for", error)?)),
    };
    let stored = stored_access_token(client, session).await?;
    let (integration_id, access_token) = match stored {
        Some(stored) => stored,
        None => match exchange(client, &jira, session, job).await? {
            Ok(exchanged) => exchanged,
            Err(refusal) => return Ok(Err(refusal)),
        },
    };
    Span::current().record("integration.id", integration_id);
    let Some(integration) = jira_server::by_id(&*client, integration_id).await? else {
        return Ok(Err(Refusal(format!(
            "integration {integration_id} disappeared during the install"
        ))));
    };
    let url = match integration.webhook_url(&jobs.public_url) {
        Ok(url) => url,
        Err(error) => return Ok(Err(Refusal(error.to_string()))),
    };
    let jira = jira.with_auth(jira.auth().clone().with_access_token(access_token));
    match jira.register_webhook(&url, &ISSUE_EVENTS).await {
        Ok(registration) => {
            tracing::info!(webhook.api = ?registration.api, webhook.id = ?registration.id, "webhook registered in Jira");
            Ok(Ok(integration_id))
        }
        Err(error) if error.is_transient() => Err(Failure::passing(error)),
        Err(error) => Ok(Err(Refusal(format!(
            "integration {integration_id} was saved, but registering its webhook in Jira at {} failed: {error}; \
             fix that and run `jirasync oauth finish {}` again, or register the URL from \
             `jirasync integration webhook-url {integration_id}` in Jira by hand \
             (events jira:issue_created, jira:issue_updated)",
            session.base_url, session.id
        )))),
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
    let credentials = jira_server::credentials(client, integration_id).await?;
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
    job: &OauthAccessToken,
) -> Step<(i64, String)> {
    let token = match jira
        .access_token(
            &job.oauth_token,
            session.request_token_secret.as_deref().unwrap_or_default(),
            job.verifier(),
        )
        .await
    {
        Ok(token) => token,
        Err(error) => {
            return Ok(Err(refusal(
                session,
                "exchanging the request token with",
                error,
            )?));
        }
    };
    let credentials = Credentials {
        consumer_key: session.consumer_key.clone(),
        private_key: session.private_key.clone(),
        access_token: Some(token.token.clone()),
        access_token_secret: Some(token.secret.clone()),
    };
    let install = Install {
        base_url: &session.base_url,
        verify_ssl: session.verify_ssl,
        name: None,
        link: &session.consumer_key,
        credentials: Some(&credentials),
    };
    let tx = client.transaction().await?;
    let saved = match install::save(&tx, &install).await {
        Ok(saved) => saved,
        Err(SaveError::Db(error)) => return Err(error.into()),
        Err(SaveError::Install(error)) => return Ok(Err(Refusal(error.to_string()))),
    };
    oauth_sessions::record(&tx, session.id, saved.id, Progress::TokenStored).await?;
    tx.commit().await?;
    Ok(Ok((saved.id, token.token)))
}

/// A failed Jira call while `doing` something with the session's Jira: passing
/// when retrying can help, else the refusal that fails the session.
fn refusal(session: &OauthSession, doing: &str, error: JiraError) -> Result<Refusal, Failure> {
    if error.is_transient() {
        return Err(Failure::passing(error));
    }
    Ok(Refusal(format!(
        "{doing} Jira at {} failed: {error}",
        session.base_url
    )))
}
