//! The webhook route, `POST /extensions/jira-server/issue-updated/{token}/`: checks
//! the token's shape and the body's presence, publishes the raw body with the
//! contract's headers and answers 202 with the message id once the broker
//! confirmed. What it keeps between requests (its publish metrics, the tokens it
//! saw lately) is `route_state`; `mod.rs` routes to [`receive`].

use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::admission::{self, BodyError};
use super::client::Client;
use super::error::ApiError;
use super::state::AppState;
use crate::integration::messages::{
    HUB_SIGNATURE, MAX_HUB_SIGNATURE, MAX_WEBHOOK_IDENTIFIER, WEBHOOK, WEBHOOK_IDENTIFIER,
    WebhookRequest, webhook_properties,
};
use crate::integration::token::is_jwt_shaped;

/// The contract's request headers as header names, parsed once.
const HUB_SIGNATURE_HEADER: HeaderName = HeaderName::from_static(HUB_SIGNATURE);
const WEBHOOK_IDENTIFIER_HEADER: HeaderName = HeaderName::from_static(WEBHOOK_IDENTIFIER);

/// Receives one webhook: room in its client's share of the body budget (else
/// `429`) and in the budget (else `503`) first, then the token and the headers
/// are checked before the body is read, so a request refused for them costs no
/// body bytes. The budget is taken here rather than by a middleware of the
/// route: one layer less per request.
pub async fn receive(State(state): State<AppState>, request: Request) -> Response {
    let _room = match state
        .admission
        .body(Client::of(&request), request.headers())
    {
        Ok(room) => room,
        Err(shed) => return shed.into_response(),
    };
    let client = Client::of(&request);
    let (mut parts, body) = request.into_parts();
    match Path::<String>::from_request_parts(&mut parts, &state).await {
        Ok(Path(token)) => receive_admitted(&state, token, client, &parts, body)
            .await
            .into_response(),
        Err(rejection) => rejection.into_response(),
    }
}

async fn receive_admitted(
    state: &AppState,
    token: String,
    client: Client,
    parts: &Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let received = SystemTime::now();
    // A token remembered as could-be-ours passed both checks already.
    let digest = match state.tokens.known(&token) {
        Some(digest) => digest,
        None if !is_jwt_shaped(&token) => {
            return Err(ApiError::bad_request(
                "the token in the URL is not a JWT (three base64url parts separated by dots)",
            ));
        }
        None => state.tokens.could_be_ours(&token).ok_or_else(|| {
            ApiError::bad_request(
                "the token in the URL is not a jirasync webhook token (an HS256 JWT with an id claim)",
            )
        })?,
    };
    // The workers' verdicts (docs/reference.md §3): before the body is read.
    if let Err(refusal) = state.verdicts.admit(digest, client) {
        return Ok(refusal.into_response());
    }
    // The headers are read in place, not copied out of the request.
    let headers = &parts.headers;
    let text = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    for (name, max) in [
        (&HUB_SIGNATURE_HEADER, MAX_HUB_SIGNATURE),
        (&WEBHOOK_IDENTIFIER_HEADER, MAX_WEBHOOK_IDENTIFIER),
    ] {
        if headers.get(name).is_some_and(|value| value.len() > max) {
            return Err(ApiError::bad_request(format!(
                "the {name} header is longer than {max} bytes"
            )));
        }
    }
    let request = WebhookRequest {
        token: &token,
        content_type: text(&header::CONTENT_TYPE),
        webhook_identifier: text(&WEBHOOK_IDENTIFIER_HEADER),
        hub_signature: text(&HUB_SIGNATURE_HEADER),
    };
    let too_large = || {
        ApiError::BadRequest(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is larger than JIRASYNC_MAX_BODY_BYTES".into(),
        )
    };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if announced.is_some_and(|length| length > state.max_body_bytes) {
        return Err(too_large());
    }
    let body = match admission::read_body(body, state.max_body_bytes).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return Err(too_large()),
        Err(BodyError::Stalled) => return Ok(admission::stalled()),
        Err(BodyError::Unreadable) => {
            return Err(ApiError::bad_request("the body could not be read"));
        }
    };
    if body.is_empty() {
        return Err(ApiError::bad_request("the body is empty"));
    }
    let (id, properties) = webhook_properties(&request, received);

    let started = Instant::now();
    let publishes = &state.publishes;
    publishes.in_flight().increment(1.0);
    let result = state.broker.publish(WEBHOOK, &body, properties).await;
    publishes.in_flight().decrement(1.0);
    publishes.duration().record(started.elapsed().as_secs_f64());
    result?;
    tracing::debug!(message.id = %id, body_bytes = body.len(), "webhook queued");
    Ok(accepted(id))
}

/// `202` with `{"id":"<message id>"}`, written without building a JSON value.
fn accepted(id: uuid::Uuid) -> Response {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let body = [
        br#"{"id":""#.as_slice(),
        id.hyphenated().encode_lower(&mut text).as_bytes(),
        br#""}"#,
    ]
    .concat();
    (
        StatusCode::ACCEPTED,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accepted_body_is_what_serde_json_writes() {
        let id = uuid::Uuid::new_v4();
        let response = accepted(id);
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = futures_util::FutureExt::now_or_never(axum::body::to_bytes(
            response.into_body(),
            usize::MAX,
        ))
        .expect("a full body is ready at once")
        .expect("a full body reads");
        let expected = serde_json::to_vec(&serde_json::json!({ "id": id.to_string() }))
            .expect("a JSON value serializes");
        assert_eq!(body, expected);
    }
}
