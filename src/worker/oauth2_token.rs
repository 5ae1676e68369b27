//! Handler of `jira_server.oauth2_token` (docs/reference.md §6.2): the OAuth 2.0
//! callback brought a code (or Jira's `error`) with a session's `state`; the code
//! is exchanged at `/rest/oauth2/latest/token` with the PKCE verifier, the tokens
//! and the integration are saved, the webhook is registered (version-aware) and
//! the session becomes `installed`.

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;

use super::OauthJobs;
use super::install::{self, Refusal, Step, step};
use super::oauth_access_token::{save, unclaimed};
use crate::db::oauth_sessions::{self, OauthSession, SessionRef};
use crate::integration::{Credentials, jira_client, routes};
use crate::jira::Auth;
use crate::jira::oauth2_flow::ClientCredentials;
use crate::queue::handler::{Failure, Incoming};
use crate::queue::job::Oauth2Token;
use crate::worker::Outcome;

/// Completes the install.
///
/// The `state` must be one a live session holds: unknown, used (the session is
/// claimed or done) or expired (the callback came more than 10 minutes after
/// `oauth start`) states change nothing and exchange nothing — the callback is
/// public. A refusal (Jira's `?error=`, or the token endpoint's `invalid_grant`,
/// `invalid_client`, …) fails the session with what to check; 5xx and timeouts
/// are retried, and a retry after the exchange only registers the webhook.
pub async fn handle(
    jobs: &OauthJobs,
    job: &Oauth2Token,
    message: &Incoming,
) -> Result<Outcome, Failure> {
    let mut client = jobs.pool.get().await?;
    let called_back_at = sent_at(message);
    let Some(session) =
        oauth_sessions::claim_oauth2(&client, jobs.pool.keys(), &job.state, called_back_at).await?
    else {
        return unclaimed(
            &client,
            jobs.pool.keys(),
            SessionRef::OAuth2State(&job.state),
        )
        .await;
    };
    if let Some(error) = &job.error {
        let text = denied(error, job.error_description.as_deref());
        install::settle(&client, &session, Ok(Err(Refusal(text)))).await?;
        return Ok(Outcome::Refused);
    }
    let step = complete(jobs, &mut client, &session, job).await;
    install::settle(&client, &session, step).await
}

/// When the callback enqueued the job (the message's timestamp), else now.
fn sent_at(message: &Incoming) -> DateTime<Utc> {
    message
        .properties
        .timestamp()
        .and_then(|seconds| i64::try_from(seconds).ok())
        .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
        .unwrap_or_else(Utc::now)
}

/// Jira sent the user back with `error` instead of a code.
fn denied(error: &str, description: Option<&str>) -> String {
    let printable = |text: &str| -> String {
        text.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(200)
            .collect()
    };
    let description = description
        .map(|text| format!(" ({})", printable(text)))
        .unwrap_or_default();
    format!(
        "Jira answered the authorization with error={}{description}: {}",
        printable(error),
        crate::jira::error::oauth2_hint(error)
    )
}

/// Exchange (unless done before), save, register; the integration id.
async fn complete(
    jobs: &OauthJobs,
    client: &mut Object,
    session: &OauthSession,
    job: &Oauth2Token,
) -> Step<i64> {
    let integration_id =
        match install::stored_access_token(client, jobs.pool.keys(), session).await? {
            Some(stored) => stored,
            None => step!(exchange(jobs, client, session, job).await),
        };
    let retry = "jirasync oauth start --client-id …";
    install::register_webhook(jobs, session, integration_id, retry).await
}

/// Exchanges the code with the PKCE verifier and saves the integration.
async fn exchange(
    jobs: &OauthJobs,
    client: &mut Object,
    session: &OauthSession,
    job: &Oauth2Token,
) -> Step<i64> {
    let (Some(code), Some(client_secret), Some(verifier)) = (
        job.code.as_deref(),
        session.client_secret.as_deref(),
        session.code_verifier.as_deref(),
    ) else {
        return Ok(Err(Refusal(
            "the OAuth 2.0 session lacks its code, client secret or verifier".to_owned(),
        )));
    };
    let jira = jira_client(
        &session.base_url,
        session.verify_ssl,
        Auth::Bearer(String::new()),
    );
    let jira = step!(install::judged(session, "setting up the client for", jira));
    let client_credentials = ClientCredentials {
        id: &session.consumer_key,
        secret: client_secret,
    };
    let redirect_uri = routes::oauth2_callback_url(&jobs.public_url);
    let tokens = jira
        .oauth2_exchange_code(client_credentials, code, &redirect_uri, verifier)
        .await;
    let tokens = step!(install::judged(
        session,
        "exchanging the authorization code with",
        tokens
    ));
    // Nothing between the answer and the save can fail: a missing access token
    // is a refusal (the code is spent), the expiry is clamped (§6.2).
    let Some(access_token) = tokens.access_token.clone() else {
        return Ok(Err(Refusal(
            "Jira's token answer carries no access_token; start again with `jirasync oauth \
             start --client-id …`"
                .to_owned(),
        )));
    };
    let now = Utc::now();
    let credentials = Credentials::OAuth2 {
        client_id: session.consumer_key.clone(),
        client_secret: client_secret.to_owned(),
        access_token,
        refresh_token: tokens.refresh_token.clone(),
        expires_at: Some(tokens.expires_at(now)),
        refreshed_at: Some(now),
    };
    save(client, jobs.pool.keys(), session, &credentials).await
}
