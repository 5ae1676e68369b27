//! `GET /extensions/jira-server/oauth/callback`: Jira's redirect after the user
//! authorizes. The ingress has no database, so it only enqueues the access-token
//! job (confirmed by the broker) and answers a short page; the worker does the rest.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::AppState;
use crate::worker::jobs::OauthAccessToken;

/// Longest token or verifier accepted; Jira's are about 32 characters.
const MAX_PARAM_LEN: usize = 1024;

/// The page shown once the job is queued.
const PAGE: &str = "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>jirasync</title></head>\n\
<body><p>jirasync is finishing the installation; you can close this tab.</p>\n\
<p>Check progress with <code>jirasync oauth status SESSION_ID</code>.</p></body></html>\n";

/// Enqueues `jira_server.oauth_access_token`, whose body is the callback's query;
/// `400` without `oauth_token`, `503` with `Retry-After` when the broker does not take it.
pub async fn receive(
    State(state): State<AppState>,
    query: Result<Query<OauthAccessToken>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Ok(Query(job)) = query else {
        return Err(ApiError::bad_request("oauth_token is missing"));
    };
    if job.oauth_token.is_empty() {
        return Err(ApiError::bad_request("oauth_token is missing"));
    }
    if job.oauth_token.len() > MAX_PARAM_LEN {
        return Err(ApiError::bad_request("oauth_token is too long"));
    }
    if job
        .oauth_verifier
        .as_deref()
        .is_some_and(|v| v.len() > MAX_PARAM_LEN)
    {
        return Err(ApiError::bad_request("oauth_verifier is too long"));
    }
    let id = state.broker.publish_job(&job).await?;
    tracing::info!(message.id = %id, "access-token job queued");
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        PAGE,
    )
        .into_response())
}
