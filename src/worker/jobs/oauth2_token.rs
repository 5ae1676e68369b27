//! Handler of `jira_server.oauth2_token` (docs/reference.md §6.2): the OAuth 2.0
//! callback brought a code (or Jira's `error`) with a session's `state`; the code
//! is exchanged at `/rest/oauth2/latest/token` with the PKCE verifier, the tokens
//! and the integration are saved, the webhook is registered (version-aware) and
//! the session becomes `installed`.
//! [`Oauth2Token`] is the message its producers publish.

use super::install::{self, Refusal, Step, save, step, unclaimed};
use crate::db::oauth_sessions::{self, Oauth2Server, Oauth2Session, SessionRef};
use crate::integration::messages;
use crate::integration::{Credentials, jira_client, routes};
use crate::jira::Auth;
use crate::jira::oauth2_flow::ClientCredentials;
use crate::queue::handler::{Failure, Incoming};
use crate::queue::job::Job;
use crate::worker::environment::Environment;
use crate::worker::outcome::Outcome;
use chrono::{DateTime, Utc};
use deadpool_postgres::Object;
use serde::{Deserialize, Serialize};

/// `jira_server.oauth2_token`: exchange an OAuth 2.0 authorization code, or
/// record that Jira refused (`error`). Sent by the OAuth 2.0 callback, its query
/// being the body.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Oauth2Token {
    /// The `state` of the session, as jirasync issued it.
    pub state: String,
    /// The authorization code; absent when Jira sent `error` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Jira's `error` (e.g. `access_denied`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Jira's `error_description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

impl std::fmt::Debug for Oauth2Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oauth2Token")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Job for Oauth2Token {
    const TYPE: &'static str = messages::OAUTH2_TOKEN;
    const SHAPE: &'static str = r#"{"state":"…","code":"…"}"#;

    fn validate(&self) -> Result<(), String> {
        if self.state.is_empty() {
            return Err("state is empty".into());
        }
        if self.code.as_deref().is_none_or(str::is_empty) && self.error.is_none() {
            return Err("neither code nor error".into());
        }
        Ok(())
    }
}

/// Completes the install.
///
/// The `state` must be one a live session holds: unknown, used (the session is
/// claimed or done) or expired (the callback came more than 10 minutes after
/// `oauth start`) states change nothing and exchange nothing — the callback is
/// public. A refusal (Jira's `?error=`, or the token endpoint's `invalid_grant`,
/// `invalid_client`, …) fails the session with what to check; 5xx and timeouts
/// are retried, and a retry after the exchange only registers the webhook.
pub async fn handle(
    env: &Environment,
    job: &Oauth2Token,
    message: &Incoming,
) -> Result<Outcome, Failure> {
    let mut client = env.pool.get().await?;
    let deny = |error: &str, description: Option<&str>| denied(error, description);
    let session = match claimed(env, &client, Oauth2Server::Jira, job, message, deny).await? {
        Ok(session) => session,
        Err(outcome) => return Ok(outcome),
    };
    let step = complete(env, &mut client, &session, job).await;
    install::settle(&client, &session, step).await
}

/// The session `job`'s state names, claimed for `server`'s code — or the
/// outcome when there is nothing to exchange: no live session holds the state
/// (unknown, used, expired: the callback is public, so nothing changes), or the
/// callback brought an `error`, which fails the session with `deny`'s text.
pub(super) async fn claimed(
    env: &Environment,
    client: &Object,
    server: Oauth2Server,
    job: &Oauth2Token,
    message: &Incoming,
    deny: impl FnOnce(&str, Option<&str>) -> String,
) -> Result<Result<Oauth2Session, Outcome>, Failure> {
    let keys = env.pool.keys();
    let Some(session) =
        oauth_sessions::claim_oauth2(client, keys, server, &job.state, sent_at(message)).await?
    else {
        let state = SessionRef::OAuth2State(&job.state);
        return unclaimed(client, keys, state).await.map(Err);
    };
    if let Some(error) = &job.error {
        let text = deny(error, job.error_description.as_deref());
        install::settle(client, &session, Ok(Err(Refusal(text)))).await?;
        return Ok(Err(Outcome::Refused));
    }
    Ok(Ok(session))
}

/// When the callback enqueued the job (the message's timestamp), else now.
pub(super) fn sent_at(message: &Incoming) -> DateTime<Utc> {
    message
        .properties
        .timestamp()
        .and_then(|seconds| i64::try_from(seconds).ok())
        .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
        .unwrap_or_else(Utc::now)
}

/// Jira sent the user back with `error` instead of a code.
fn denied(error: &str, description: Option<&str>) -> String {
    answered(
        "Jira",
        error,
        description,
        crate::jira::error::oauth2_hint(error),
    )
}

/// `who` (Jira, Atlassian) sent the user back with `error` (and its
/// `description`) instead of a code: the session's refusal, with `hint`.
pub(super) fn answered(who: &str, error: &str, description: Option<&str>, hint: &str) -> String {
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
        "{who} answered the authorization with error={}{description}: {hint}",
        printable(error),
    )
}

/// Exchange (unless done before), save, register; the integration id.
async fn complete(
    env: &Environment,
    client: &mut Object,
    session: &Oauth2Session,
    job: &Oauth2Token,
) -> Step<i64> {
    let integration_id =
        match install::stored_access_token(client, env.pool.keys(), session).await? {
            Some(stored) => stored,
            None => step!(exchange(env, client, session, job).await),
        };
    let retry = "jirasync oauth start --client-id …";
    install::register_webhook(env, session, integration_id, retry).await
}

/// Exchanges the code with the PKCE verifier and saves the integration.
async fn exchange(
    env: &Environment,
    client: &mut Object,
    session: &Oauth2Session,
    job: &Oauth2Token,
) -> Step<i64> {
    let (Some(code), Some(client_secret), Some(verifier)) = (
        job.code.as_deref(),
        session.flow.client_secret.as_deref(),
        session.flow.code_verifier.as_deref(),
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
        id: &session.flow.client_id,
        secret: client_secret,
    };
    let redirect_uri = routes::oauth2_callback_url(&env.public_url);
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
        client_id: session.flow.client_id.clone(),
        client_secret: client_secret.to_owned(),
        access_token,
        refresh_token: tokens.refresh_token.clone(),
        expires_at: Some(tokens.expires_at(now)),
        refreshed_at: Some(now),
    };
    let link = &session.flow.client_id;
    save(client, env.pool.keys(), session, link, &credentials).await
}
