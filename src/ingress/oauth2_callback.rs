//! `GET /extensions/jira-server/oauth2/callback?code=…&state=…`: Jira's redirect
//! after the user answered the OAuth 2.0 authorization (or `?error=…&state=…`),
//! and `GET /extensions/jira-cloud/oauth2/callback`, Atlassian's for a Jira
//! Cloud 3LO app (docs/reference.md §11.4): the same checks, another job.
//! The ingress has no database: it checks that `state` has the shape of one
//! jirasync issues, enqueues `jira_server.oauth2_token` or
//! `jira_cloud.oauth2_token` (confirmed) and answers a short page; the worker
//! does nothing for a state no live session holds.

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::ApiError;
use super::state::AppState;
use crate::jira::oauth2_flow::is_fresh_secret_shaped;
use crate::worker::jobs::{CloudOauth2Token, Oauth2Token};

/// Longest code, error or description kept; Jira's codes are about 40 characters.
const MAX_PARAM_LEN: usize = 1024;

/// What Jira sends back.
#[derive(Debug, Deserialize)]
pub struct Callback {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Whose redirect a callback is.
#[derive(Debug, Clone, Copy)]
enum Server {
    /// A Jira Data Center's: `jira_server.oauth2_token`.
    Jira,
    /// Atlassian's, for Jira Cloud: `jira_cloud.oauth2_token`.
    Atlassian,
}

/// The Data Center callback: see [`accept`].
pub async fn receive(
    State(state): State<AppState>,
    Query(query): Query<Callback>,
) -> Result<Response, ApiError> {
    accept(&state, query, Server::Jira).await
}

/// The Jira Cloud callback: see [`accept`].
pub async fn receive_cloud(
    State(state): State<AppState>,
    Query(query): Query<Callback>,
) -> Result<Response, ApiError> {
    accept(&state, query, Server::Atlassian).await
}

/// Enqueues the token job of `server`; `400` when `state` is missing or not
/// jirasync's shape, or neither `code` nor `error` came; `503` with
/// `Retry-After` when the broker does not take it.
async fn accept(state: &AppState, query: Callback, server: Server) -> Result<Response, ApiError> {
    let Some(session_state) = query.state.filter(|s| is_fresh_secret_shaped(s)) else {
        return Err(ApiError::bad_request(
            "state is missing or is not one jirasync issued",
        ));
    };
    let long = |value: &Option<String>| value.as_deref().is_some_and(|v| v.len() > MAX_PARAM_LEN);
    if long(&query.code) || long(&query.error) || long(&query.error_description) {
        return Err(ApiError::bad_request("a parameter is too long"));
    }
    let code = query.code.filter(|code| !code.is_empty());
    if code.is_none() && query.error.is_none() {
        return Err(ApiError::bad_request("code is missing"));
    }
    let (who, again) = match server {
        Server::Jira => ("Jira", "jirasync oauth start"),
        Server::Atlassian => ("Atlassian", "jirasync oauth start --cloud"),
    };
    let page = match &query.error {
        Some(error) => format!(
            "<p>{who} did not authorize jirasync: <code>{}</code>. The session has failed; \
             start again with <code>{again}</code>.</p>",
            escape(error)
        ),
        None => "<p>jirasync is finishing the installation; you can close this tab.</p>\n\
                 <p>Check progress with <code>jirasync oauth status SESSION_ID</code>.</p>"
            .to_owned(),
    };
    let job = Oauth2Token {
        state: session_state,
        code,
        error: query.error,
        error_description: query.error_description,
    };
    let id = match server {
        Server::Jira => state.broker.publish_job(&job).await?,
        Server::Atlassian => state.broker.publish_job(&CloudOauth2Token(job)).await?,
    };
    tracing::info!(message.id = %id, oauth.server = ?server, "OAuth 2.0 token job queued");
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>jirasync</title></head>\n<body>{page}</body></html>\n"
    );
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response())
}

/// `text` safe inside HTML.
fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}
