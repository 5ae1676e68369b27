//! Handler of `jira_server.oauth_access_token` (docs/reference.md §6.1, Sentry
//! `JiraServerIntegrationProvider.build_integration`): exchanges the authorized
//! request token for an access token, saves the integration and its credentials,
//! registers the webhook in Jira and marks the session `installed`.

use deadpool_postgres::Object;

use super::OauthJobs;
use super::install::{self, Refusal, Step, step};
use super::oauth_request_token::session_client;
use crate::db::StoreError;
use crate::db::oauth_sessions::{self, OauthSession, Progress, SessionRef, state};
use crate::integration::Credentials;
use crate::integration::install_record::{self as saving, Install, SaveError};
use crate::jira::JiraClient;
use crate::queue::handler::Failure;
use crate::queue::job::OauthAccessToken;
use crate::secrets::Keyring;
use crate::worker::Outcome;

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
    let Some(session) =
        oauth_sessions::claim_authorizing(&client, jobs.pool.keys(), &job.oauth_token).await?
    else {
        return unclaimed(
            &client,
            jobs.pool.keys(),
            SessionRef::RequestToken(&job.oauth_token),
        )
        .await;
    };
    let step = complete(jobs, &mut client, &session, job).await;
    install::settle(&client, &session, step).await
}

/// No claim: the session is unknown, installed, or another delivery holds it.
pub async fn unclaimed(
    client: &Object,
    keys: &Keyring,
    session: SessionRef<'_>,
) -> Result<Outcome, Failure> {
    let session = oauth_sessions::find(client, keys, session).await?;
    match session.as_ref().map(|s| s.state.as_str()) {
        Some(state::INSTALLED) => Ok(Outcome::AlreadyInstalled),
        Some(state::AUTHORIZING) => Err(Failure::passing(anyhow::anyhow!(
            "another delivery is completing this OAuth session"
        ))),
        _ => {
            tracing::warn!("no OAuth session awaits this token or state; ignored");
            Ok(Outcome::UnknownSession)
        }
    }
}

/// Exchange (unless done before), save, register; the integration id.
async fn complete(
    jobs: &OauthJobs,
    client: &mut Object,
    session: &OauthSession,
    job: &OauthAccessToken,
) -> Step<i64> {
    let jira = step!(install::judged(
        session,
        "setting up the client for",
        session_client(session)
    ));
    let integration_id =
        match install::stored_access_token(client, jobs.pool.keys(), session).await? {
            Some(stored) => stored,
            None => step!(exchange(client, jobs.pool.keys(), &jira, session, job).await),
        };
    let retry = format!("jirasync oauth finish {}", session.id);
    install::register_webhook(jobs, session, integration_id, &retry).await
}

/// Exchanges the request token and stores the integration, its credentials and
/// the link from the session, in one transaction.
async fn exchange(
    client: &mut Object,
    keys: &Keyring,
    jira: &JiraClient,
    session: &OauthSession,
    job: &OauthAccessToken,
) -> Step<i64> {
    let token = jira
        .access_token(
            &job.oauth_token,
            session.request_token_secret.as_deref().unwrap_or_default(),
            job.verifier(),
        )
        .await;
    let token = step!(install::judged(
        session,
        "exchanging the request token with",
        token
    ));
    let credentials = Credentials::OAuth1 {
        consumer_key: session.consumer_key.clone(),
        private_key: session.private_key.clone(),
        access_token: Some(token.token.clone()),
        access_token_secret: Some(token.secret.clone()),
    };
    save(client, keys, session, &credentials).await
}

/// Saves the integration the session installs with `credentials`, and links the
/// session to it, in one transaction. Shared with the OAuth 2.0 token job.
pub async fn save(
    client: &mut Object,
    keys: &Keyring,
    session: &OauthSession,
    credentials: &Credentials,
) -> Step<i64> {
    let install = Install {
        base_url: &session.base_url,
        verify_ssl: session.verify_ssl,
        name: None,
        link: &session.consumer_key,
        credentials: Some(credentials),
    };
    let tx = client.transaction().await?;
    let saved = match saving::save(&tx, keys, &install).await {
        Ok(saved) => saved,
        Err(SaveError::Db(error)) => return Err(error.into()),
        Err(SaveError::Unreadable(error)) => return Err(StoreError::Unreadable(error).into()),
        Err(SaveError::Install(error)) => return Ok(Err(Refusal(error.to_string()))),
    };
    oauth_sessions::record(&tx, session.id, saved.id, Progress::TokenStored).await?;
    tx.commit().await?;
    if saved.is_disabled() {
        tracing::warn!(
            integration.id = saved.id,
            "the integration is disabled: its credentials were updated and it stays disabled; \
             `jirasync integration enable` lets it take webhooks again"
        );
    }
    Ok(Ok(saved.id))
}
