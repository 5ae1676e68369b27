//! Handler of `jira_server.oauth_request_token` (CONTRACT §7, Sentry
//! `JiraServerSetupClient.get_request_token`): fetches a request token for a
//! `pending` session and makes it `awaiting_authorization` with the authorize URL.
//! Jira refusals make the session `failed` and are acked (see `handle`).

use serde::Deserialize;
use uuid::Uuid;

use super::{OauthJobs, db_error, pool_error};
use crate::db::oauth_sessions::{self, OauthSession, state};
use crate::install::callback_url;
use crate::jira::{ClientOptions, JiraClient, JiraError, Signer};
use crate::queue::consumer::{HandleError, Incoming, Outcome};

/// The job's body.
#[derive(Debug, Deserialize)]
pub struct Job {
    /// The session to fetch a request token for.
    pub session_id: Uuid,
}

/// Parses the body, permanently failing when it is not the contract's shape.
pub fn parse(body: &[u8]) -> Result<Job, HandleError> {
    serde_json::from_slice(body).map_err(|error| HandleError::Permanent {
        outcome: "malformed",
        reason: format!("the job body is not {{\"session_id\":\"<uuid>\"}}: {error}"),
    })
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
pub async fn handle(jobs: &OauthJobs, message: &Incoming) -> Result<Outcome, HandleError> {
    let job = parse(&message.body)?;
    let client = jobs.pool.get().await.map_err(pool_error)?;
    let Some(session) = oauth_sessions::get(&client, job.session_id)
        .await
        .map_err(db_error)?
    else {
        // Only `oauth start` publishes this job, right after inserting the row.
        return Err(HandleError::Permanent {
            outcome: "unknown_session",
            reason: format!("no OAuth session {}", job.session_id),
        });
    };
    if session.state != state::PENDING {
        tracing::info!(session.id = %session.id, session.state = %session.state, "request token already handled");
        return Ok(Outcome("already_handled"));
    }
    let jira = match jira_client(&session) {
        Ok(jira) => jira,
        Err(error) => return fail(&client, &session, &error).await,
    };
    match jira.request_token(&callback_url(&jobs.public_url)).await {
        Ok(token) => {
            let authorize_url = jira.authorize_url(&token.token);
            let updated = oauth_sessions::mark_awaiting_authorization(
                &client,
                session.id,
                &token.token,
                &token.secret,
                &authorize_url,
            )
            .await
            .map_err(db_error)?;
            tracing::info!(session.id = %session.id, updated, "request token stored; awaiting authorization");
            Ok(Outcome("awaiting_authorization"))
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
            Err(HandleError::Retryable(reason))
        }
        Err(error) => fail(&client, &session, &error).await,
    }
}

/// The client for a session's Jira, with its key and TLS setting.
pub fn jira_client(session: &OauthSession) -> Result<JiraClient, JiraError> {
    let signer = Signer::from_pem(session.consumer_key.clone(), &session.private_key)?;
    let options = ClientOptions {
        verify_ssl: session.verify_ssl,
        ..ClientOptions::default()
    };
    JiraClient::new(&session.base_url, signer, &options)
}

async fn fail(
    client: &deadpool_postgres::Object,
    session: &OauthSession,
    error: &JiraError,
) -> Result<Outcome, HandleError> {
    let text = format!(
        "fetching a request token from {} failed: {error}",
        session.base_url
    );
    oauth_sessions::mark_failed(client, session.id, &text)
        .await
        .map_err(db_error)?;
    tracing::warn!(session.id = %session.id, error = %error, "OAuth session failed at the request-token step");
    Ok(Outcome(if matches!(error, JiraError::Refused { .. }) {
        "refused"
    } else {
        "failed"
    }))
}
