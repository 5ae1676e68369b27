//! The webhook route, `POST /extensions/jira-server/issue-updated/{token}/`: checks
//! the token's shape and the body's presence, publishes the raw body with the
//! contract's headers and answers 202 with the message id once the broker
//! confirmed. Its publish metrics and the tokens it saw lately ([`KnownTokens`])
//! live here too; `mod.rs` routes to [`receive`].

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::admission::{self, BodyError};
use super::client::Client;
use super::{ApiError, AppState};
use crate::integration::messages::{
    HUB_SIGNATURE, MAX_HUB_SIGNATURE, MAX_WEBHOOK_IDENTIFIER, WEBHOOK, WEBHOOK_IDENTIFIER,
    WebhookRequest, webhook_properties,
};
use crate::integration::token::{could_be_ours, is_jwt_shaped};
use crate::queue::verdict::TokenDigest;

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

/// The publish metrics of the webhook route, registered at the first webhook (as
/// the macros would) and kept.
#[derive(Default)]
pub struct PublishMetrics {
    /// `jirasync_publishes_in_flight`.
    in_flight: OnceLock<metrics::Gauge>,
    /// `jirasync_publish_duration_seconds`.
    duration: OnceLock<metrics::Histogram>,
}

impl PublishMetrics {
    fn in_flight(&self) -> &metrics::Gauge {
        self.in_flight
            .get_or_init(|| metrics::gauge!("jirasync_publishes_in_flight"))
    }

    fn duration(&self) -> &metrics::Histogram {
        self.duration
            .get_or_init(|| metrics::histogram!("jirasync_publish_duration_seconds"))
    }
}

/// Tokens lately found to be [`could_be_ours`], at most this many.
const KNOWN_TOKENS: usize = 16;

/// The last tokens that passed [`could_be_ours`], with their digests. A Jira
/// sends every webhook of an integration with the same token, so decoding its
/// header and claims and hashing it for the verdicts (`verdicts.rs`) once spares
/// that work on the requests after; both depend on the token alone, so a
/// remembered answer is the one they would give again. A refused token is not
/// remembered.
#[derive(Default)]
pub struct KnownTokens {
    /// The slot the next token goes to, and the slots. A std lock: held for a
    /// 16-entry compare, never across an await.
    slots: Mutex<(usize, [Option<Known>; KNOWN_TOKENS])>,
}

/// A remembered token and its digest.
type Known = (Arc<str>, TokenDigest);

impl KnownTokens {
    /// The digest of `token` when it passed [`could_be_ours`] lately (and so
    /// [`is_jwt_shaped`]).
    pub fn known(&self, token: &str) -> Option<TokenDigest> {
        let slots = self.slots.lock().ok()?;
        known(&slots.1, token)
    }

    /// [`could_be_ours`] of a token not [`known`](Self::known): its digest when it
    /// could be, and then it is remembered.
    pub fn could_be_ours(&self, token: &str) -> Option<TokenDigest> {
        if !could_be_ours(token) {
            return None;
        }
        let digest = TokenDigest::of(token);
        if let Ok(mut slots) = self.slots.lock()
            && known(&slots.1, token).is_none()
        {
            let next = slots.0;
            slots.1[next] = Some((Arc::from(token), digest));
            slots.0 = (next + 1) % KNOWN_TOKENS;
        }
        Some(digest)
    }
}

fn known(slots: &[Option<Known>], token: &str) -> Option<TokenDigest> {
    slots
        .iter()
        .flatten()
        .find(|(known, _)| **known == *token)
        .map(|(_, digest)| *digest)
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

    #[test]
    fn a_remembered_token_is_still_judged_as_could_be_ours_judges_it_with_its_digest() {
        let tokens = KnownTokens::default();
        let ours = crate::integration::token::mint("jira.example:1", "secret").expect("mints");
        let alg_none = "eyJhbGciOiJub25lIn0.eyJpZCI6IngifQ.";
        assert_eq!(tokens.known(&ours), None);
        for _ in 0..2 {
            assert_eq!(tokens.could_be_ours(&ours), Some(TokenDigest::of(&ours)));
            assert_eq!(tokens.could_be_ours(alg_none), None);
        }
        assert_eq!(tokens.known(&ours), Some(TokenDigest::of(&ours)));
        assert_eq!(tokens.known(alg_none), None);
    }

    #[test]
    fn more_tokens_than_slots_evict_the_oldest_and_stay_correct() {
        let tokens = KnownTokens::default();
        let minted: Vec<String> = (0..KNOWN_TOKENS + 3)
            .map(|i| {
                crate::integration::token::mint(&format!("jira.example:{i}"), "s").expect("mints")
            })
            .collect();
        for token in minted.iter().chain(minted.iter()) {
            let digest = tokens.known(token).or_else(|| tokens.could_be_ours(token));
            assert_eq!(digest, Some(TokenDigest::of(token)));
        }
        let slots = tokens.slots.lock().expect("not poisoned");
        assert_eq!(slots.1.iter().flatten().count(), KNOWN_TOKENS);
    }
}
