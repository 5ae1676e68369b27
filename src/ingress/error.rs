//! Maps ingress failures to responses: 4xx carry a safe message, 503 carries
//! `Retry-After`; details are logged once, here.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::queue::publisher::PublishError;

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_SECS: &str = "5";

/// An error answer of the ingress.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is wrong; the message is safe to show.
    #[error("{1}")]
    BadRequest(StatusCode, String),
    /// The broker did not take the message.
    #[error(transparent)]
    Unavailable(PublishError),
    /// Too many requests or body bytes in flight: shed, to be retried.
    #[error("the ingress is busy")]
    Overloaded,
    /// Over a route's rate limit.
    #[error("too many requests")]
    TooMany,
}

impl From<PublishError> for ApiError {
    /// A message too large for the broker's frame is the request's fault (a 400
    /// that publishes nothing); the rest are the broker's (503).
    fn from(error: PublishError) -> Self {
        match error {
            PublishError::TooLarge { .. } => {
                Self::bad_request("the request's headers are too large to queue")
            }
            error => Self::Unavailable(error),
        }
    }
}

impl ApiError {
    /// A 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(StatusCode::BAD_REQUEST, message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::BadRequest(status, message) => {
                (status, Json(json!({ "error": message }))).into_response()
            }
            Self::Unavailable(error) => {
                tracing::warn!(error = %error, "request not accepted: broker unavailable");
                unavailable("the message broker is unavailable; retry later")
            }
            Self::Overloaded => unavailable("the ingress is busy; retry later"),
            Self::TooMany => {
                let mut response = unavailable("too many requests; retry later");
                *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                response
            }
        }
    }
}

/// `503` with `Retry-After` and `message`.
fn unavailable(message: &str) -> Response {
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "error": message })),
    )
        .into_response();
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECS),
    );
    response
}
