//! Handler of `jira_server.oauth_access_token` (docs/reference.md §6.1, Sentry
//! `JiraServerIntegrationProvider.build_integration`): exchanges the authorized
//! request token for an access token, saves the integration and its credentials,
//! registers the webhook in Jira and marks the session `installed`.

use deadpool_postgres::Object;

use super::OauthJobs;
use super::install::{self, Step, save, session_client, step, unclaimed};
use crate::db::oauth_sessions::{self, Oauth1Session, SessionRef};
use crate::integration::Credentials;
use crate::jira::JiraClient;
use crate::queue::handler::Failure;
use crate::secrets::Keyring;
use crate::worker::Outcome;
use crate::worker::jobs::OauthAccessToken;

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

/// Exchange (unless done before), save, register; the integration id.
async fn complete(
    jobs: &OauthJobs,
    client: &mut Object,
    session: &Oauth1Session,
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
    session: &Oauth1Session,
    job: &OauthAccessToken,
) -> Step<i64> {
    let token = jira
        .access_token(
            &job.oauth_token,
            session
                .flow
                .request_token_secret
                .as_deref()
                .unwrap_or_default(),
            job.verifier(),
        )
        .await;
    let token = step!(install::judged(
        session,
        "exchanging the request token with",
        token
    ));
    let link = &session.flow.consumer_key;
    let credentials = Credentials::OAuth1 {
        consumer_key: link.clone(),
        private_key: session.flow.private_key.clone(),
        access_token: Some(token.token.clone()),
        access_token_secret: Some(token.secret.clone()),
    };
    save(client, keys, session, link, &credentials).await
}
