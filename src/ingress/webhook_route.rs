//! The webhook routes, `POST /extensions/jira-server/issue-updated/{token}/` and
//! Jira Cloud's `POST /extensions/jira-cloud/issue-updated/{token}/` (docs/reference.md
//! §3, §11.4): one code path, the provider a parameter. Checks the token's shape and
//! the body's presence, publishes the raw body with the contract's headers (a
//! Cloud delivery's bearer token too) as the provider's message type and answers
//! 202 with the message id once the broker confirmed. What it keeps between
//! requests (its publish metrics, the tokens it saw lately) is `route_state`;
//! `mod.rs` routes to [`receive`] and [`receive_cloud`].

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
use crate::integration::Provider;
use crate::integration::messages::{
    CloudDelivery, HUB_SIGNATURE, MAX_DELIVERY_JWT, MAX_HUB_SIGNATURE, MAX_WEBHOOK_IDENTIFIER,
    WEBHOOK_IDENTIFIER, WebhookRequest, provider_webhook_properties, webhook_type,
};
use crate::integration::token::is_jwt_shaped;

/// The contract's request headers as header names, parsed once.
const HUB_SIGNATURE_HEADER: HeaderName = HeaderName::from_static(HUB_SIGNATURE);
const WEBHOOK_IDENTIFIER_HEADER: HeaderName = HeaderName::from_static(WEBHOOK_IDENTIFIER);

/// Receives one Data Center webhook (see [`receive_as`]).
pub async fn receive(State(state): State<AppState>, request: Request) -> Response {
    receive_as(Provider::Server, state, request).await
}

/// Receives one Jira Cloud delivery (see [`receive_as`]).
pub async fn receive_cloud(State(state): State<AppState>, request: Request) -> Response {
    receive_as(Provider::Cloud, state, request).await
}

/// Receives one webhook of `provider`: room in its client's share of the body
/// budget (else `429`) and in the budget (else `503`) first, then the token and
/// the headers are checked before the body is read, so a request refused for
/// them costs no body bytes. The budget is taken here rather than by a
/// middleware of the route: one layer less per request.
async fn receive_as(provider: Provider, state: AppState, request: Request) -> Response {
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
        Ok(Path(token)) => receive_admitted(&state, provider, token, client, &parts, body)
            .await
            .into_response(),
        Err(rejection) => rejection.into_response(),
    }
}

async fn receive_admitted(
    state: &AppState,
    provider: Provider,
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
    let cloud = match provider {
        Provider::Cloud => CloudDelivery {
            delivery_jwt: bearer_token(headers)?,
        },
        Provider::Server => CloudDelivery::default(),
    };
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
    let (id, properties) = provider_webhook_properties(provider, &request, cloud, received);

    let started = Instant::now();
    let publishes = &state.publishes;
    publishes.in_flight().increment(1.0);
    let result = state
        .broker
        .publish(webhook_type(provider), &body, properties)
        .await;
    publishes.in_flight().decrement(1.0);
    publishes.duration().record(started.elapsed().as_secs_f64());
    result?;
    tracing::debug!(message.id = %id, body_bytes = body.len(), "webhook queued");
    Ok(accepted(id))
}

/// The token of an `Authorization: Bearer <token>` header, if any: what a Cloud
/// 3LO app's dynamic webhook signs its deliveries with (docs/reference.md §11.4).
/// Longer than [`MAX_DELIVERY_JWT`]: `400`. Another scheme, or a value that is
/// not text, is no delivery JWT (the worker then wants the HMAC signature).
fn bearer_token(headers: &axum::http::HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value.to_str().ok().and_then(|value| {
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    match token {
        Some(token) if token.len() > MAX_DELIVERY_JWT => Err(ApiError::bad_request(format!(
            "the Authorization header's bearer token is longer than {MAX_DELIVERY_JWT} bytes"
        ))),
        Some("") | None => Ok(None),
        Some(token) => Ok(Some(token)),
    }
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
    fn a_bearer_token_is_the_delivery_jwt_and_a_long_one_is_refused() {
        let with = |value: &str| {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(value).expect("a header value"),
            );
            headers
        };
        let cases = [
            ("Bearer a.b.c", Some("a.b.c")),
            ("bearer  a.b.c ", Some("a.b.c")),
            ("Basic dXNlcjpwdw==", None),
            ("Bearer ", None),
            ("Bearer", None),
        ];
        for (value, expected) in cases {
            let headers = with(value);
            assert_eq!(bearer_token(&headers).ok().flatten(), expected, "{value}");
        }
        assert_eq!(bearer_token(&axum::http::HeaderMap::new()).ok(), Some(None));
        let long = with(&format!("Bearer {}", "a".repeat(MAX_DELIVERY_JWT + 1)));
        assert!(bearer_token(&long).is_err());
        let longest = with(&format!("Bearer {}", "a".repeat(MAX_DELIVERY_JWT)));
        assert!(bearer_token(&longest).is_ok_and(|t| t.is_some()));
    }

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
