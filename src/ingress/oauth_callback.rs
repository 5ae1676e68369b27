//! `GET /extensions/jira-server/oauth/callback`: Jira's redirect after the user
//! authorizes. The ingress has no database, so it only enqueues the access-token
//! job (confirmed by the broker) and answers a short page; the worker does the rest.

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::queue::OAUTH_ACCESS_TOKEN;
use crate::queue::message::job_properties;

/// Longest token or verifier accepted; Jira's are about 32 characters.
const MAX_PARAM_LEN: usize = 1024;

/// The page shown once the job is queued.
const PAGE: &str = "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>jirasync</title></head>\n\
<body><p>jirasync is finishing the installation; you can close this tab.</p>\n\
<p>Check progress with <code>jirasync oauth status SESSION_ID</code>.</p></body></html>\n";

/// The callback's query, which is also the job's body (CONTRACT §4).
#[derive(Debug, Deserialize, Serialize)]
pub struct Callback {
    oauth_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    oauth_verifier: Option<String>,
}

/// Enqueues `jira_server.oauth_access_token`; `400` without `oauth_token`,
/// `503` with `Retry-After` when the broker does not take it.
pub async fn receive(
    State(state): State<AppState>,
    Query(query): Query<Callback>,
) -> Result<Response, ApiError> {
    match query.oauth_token.as_deref() {
        None | Some("") => return Err(ApiError::bad_request("oauth_token is missing")),
        Some(token) if token.len() > MAX_PARAM_LEN => {
            return Err(ApiError::bad_request("oauth_token is too long"));
        }
        Some(_) => {}
    }
    if query
        .oauth_verifier
        .as_deref()
        .is_some_and(|v| v.len() > MAX_PARAM_LEN)
    {
        return Err(ApiError::bad_request("oauth_verifier is too long"));
    }
    let body = serde_json::to_vec(&query)
        .map_err(|error| ApiError::bad_request(format!("cannot encode the job: {error}")))?;
    let (id, properties) = job_properties(OAUTH_ACCESS_TOKEN);
    state
        .broker
        .publish(OAUTH_ACCESS_TOKEN, &body, properties)
        .await?;
    tracing::info!(message.id = %id, "access-token job queued");
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        PAGE,
    )
        .into_response())
}
