//! Handler of `jira_server.oauth_request_token` (docs/reference.md §6, Sentry
//! `JiraServerSetupClient.get_request_token`): fetches a request token for a
//! `pending` session and makes it `awaiting_authorization` with the authorize URL.
//! Jira refusals make the session `failed` and are acked (see `handle`).
//! [`OauthRequestToken`] is the message its producers publish.

use super::install::session_client;
use crate::db::oauth_sessions::{self, Oauth1Session, SessionRef, State};
use crate::integration::messages;
use crate::integration::routes;
use crate::jira::JiraError;
use crate::queue::handler::Failure;
use crate::queue::job::Job;
use crate::worker::environment::Environment;
use crate::worker::outcome::Outcome;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `jira_server.oauth_request_token`: fetch a request token for a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OauthRequestToken {
    /// The session, recorded by `oauth start`.
    pub session_id: Uuid,
}

impl Job for OauthRequestToken {
    const TYPE: &'static str = messages::OAUTH_REQUEST_TOKEN;
    const SHAPE: &'static str = r#"{"session_id":"<uuid>"}"#;
}

/// Fetches the request token.
///
/// A session that is no longer `pending` is a redelivery: acked, nothing done.
/// A refusal or another permanent Jira failure marks the session `failed` with
/// an actionable error and is acked, not dead-lettered: the session is where
/// people (and `oauth start --wait`) look, and replaying the message could not
/// help — the fix is in Jira or in the `oauth start` arguments, then a new session.
/// Network errors, timeouts and 5xx are retried (each try signs afresh); when
/// retries run out, `Dispatcher::dead_lettering` marks the session `failed`.
pub async fn handle(env: &Environment, job: &OauthRequestToken) -> Result<Outcome, Failure> {
    let client = env.pool.get().await?;
    let Some(session) =
        oauth_sessions::find(&client, env.pool.keys(), SessionRef::Id(job.session_id)).await?
    else {
        // Only `oauth start` publishes this job, right after inserting the row.
        return Err(Failure::permanent(
            Outcome::UnknownSession,
            anyhow::anyhow!("no OAuth session {}", job.session_id),
        ));
    };
    if session.state != State::Pending {
        tracing::info!(session.id = %session.id, session.state = %session.state, "request token already handled");
        return Ok(Outcome::AlreadyHandled);
    }
    // Only an OAuth 1.0a session is ever pending (an OAuth 2.0 one starts
    // awaiting authorization).
    let Some(session) = session.into_oauth1() else {
        return Ok(Outcome::AlreadyHandled);
    };
    let jira = match session_client(&session) {
        Ok(jira) => jira,
        Err(error) => return fail(&client, &session, &error).await,
    };
    match jira
        .request_token(&routes::oauth_callback_url(&env.public_url))
        .await
    {
        Ok(token) => {
            let authorize_url = jira.authorize_url(&token.token);
            let updated = oauth_sessions::mark_awaiting_authorization(
                &client,
                env.pool.keys(),
                session.id,
                &token.token,
                &token.secret,
                &authorize_url,
            )
            .await?;
            tracing::info!(session.id = %session.id, updated, "request token stored; awaiting authorization");
            Ok(Outcome::AwaitingAuthorization)
        }
        Err(error) if error.is_transient() => {
            let reason = error.to_string();
            // Best effort: the retry matters more than the note.
            if let Err(db) = oauth_sessions::note_pending_error(
                &client,
                session.id,
                &format!("retrying: {reason}"),
            )
            .await
            {
                tracing::warn!(error = %db, "could not note the passing failure on the session");
            }
            Err(Failure::passing(error))
        }
        Err(error) => fail(&client, &session, &error).await,
    }
}

async fn fail(
    client: &deadpool_postgres::Object,
    session: &Oauth1Session,
    error: &JiraError,
) -> Result<Outcome, Failure> {
    let text = format!(
        "fetching a request token from {} failed: {error}",
        session.base_url
    );
    oauth_sessions::mark_failed(client, SessionRef::Id(session.id), &text).await?;
    tracing::warn!(session.id = %session.id, error = %error, "OAuth session failed at the request-token step");
    Ok(if matches!(error, JiraError::Refused { .. }) {
        Outcome::Refused
    } else {
        Outcome::Failed
    })
}
