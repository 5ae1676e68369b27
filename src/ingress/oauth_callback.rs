//! `GET /extensions/jira-server/oauth/callback`: Jira's redirect after the user
//! authorizes. The access-token job is not built yet (the OAuth issue), so it
//! answers 501 after checking its input.

use axum::extract::Query;
use axum::http::StatusCode;
use serde::Deserialize;

use super::ApiError;

/// The callback's query.
#[derive(Debug, Deserialize)]
pub struct Callback {
    oauth_token: Option<String>,
    #[allow(dead_code)]
    oauth_verifier: Option<String>,
}

/// Validates the callback; completing the install is not implemented yet.
pub async fn receive(
    Query(query): Query<Callback>,
) -> Result<(StatusCode, &'static str), ApiError> {
    match query.oauth_token.as_deref() {
        None | Some("") => Err(ApiError::bad_request("oauth_token is missing")),
        Some(_) => Ok((
            StatusCode::NOT_IMPLEMENTED,
            "jirasync cannot complete the OAuth install yet\n",
        )),
    }
}
