//! The webhook URL's token (docs/reference.md §5.1–2, Sentry
//! `get_integration_from_token`): an HS256 JWT `{"id": <external id>}` signed with
//! the integration's `webhook_secret`. Minted here for `integration add`, the
//! install job and `demo`; its shape is checked by the ingress, and its claims,
//! signature and the body's optional HMAC by the worker. After a rotation
//! (`jirasync integration rotate-webhook-secret`) the previous secrets are accepted
//! too until `previous_valid_until`.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};

use super::metadata::Metadata;

mod hub_signature;

pub use hub_signature::{check_hmac, check_hmac_at, sign as sign_hub_signature};

/// Longest token accepted, at the ingress and in the worker (Sentry's are about
/// 150 characters): a longer one is refused before it is decoded.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Why a token or signature was rejected. The reason is logged; the token never is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// No `token` header on the message.
    #[error("the message has no token")]
    Missing,
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("the token is longer than {MAX_TOKEN_LEN} bytes")]
    TooLong,
    /// The claims cannot be read.
    #[error("the token cannot be decoded")]
    Undecodable,
    /// No `id` claim (or not a string).
    #[error("the token has no id claim")]
    NoId,
    /// No active integration of the route's provider has that external id.
    #[error("no active integration matches the token")]
    UnknownIntegration,
    /// The integration has no webhook secret.
    #[error("the integration has no webhook_secret")]
    NoSecret,
    /// Signature, algorithm, expiry or audience check failed.
    #[error("the token failed verification: {0}")]
    Invalid(String),
    /// `x-hub-signature` missing or wrong.
    #[error("the body's HMAC signature is missing or wrong")]
    BadHmac,
}

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The integration has no webhook secret to sign with.
    #[error(
        "integration {0} has no webhook_secret; run `jirasync integration add` for it again to create one"
    )]
    NoSecret(i64),
    /// Signing failed.
    #[error("failed to sign the webhook token")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// The token of `external_id`, signed with `webhook_secret`, as Sentry issues it.
pub fn mint(external_id: &str, webhook_secret: &str) -> Result<String, MintError> {
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({ "id": external_id }),
        &EncodingKey::from_secret(webhook_secret.as_bytes()),
    )?)
}

/// Three dot-separated base64url parts; the header and claims must not be empty
/// (the signature may be, as in `alg: none` tokens, which the worker rejects).
/// The ingress's only check: it has no database to find the secret in.
pub fn is_jwt_shaped(token: &str) -> bool {
    if token.len() > MAX_TOKEN_LEN {
        return false;
    }
    // One pass over the bytes, no allocation: the ingress runs this per request.
    let (mut dots, mut part_len) = (0, 0);
    for &byte in token.as_bytes() {
        match byte {
            b'.' if dots < 2 && part_len > 0 => (dots, part_len) = (dots + 1, 0),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => part_len += 1,
            _ => return false,
        }
    }
    dots == 2
}

/// Whether `token` could be one jirasync minted: JWT-shaped, an `HS256` header
/// and a string `id` claim. The ingress's structural check (it has no secret):
/// anything else would be dropped by the worker, so it costs no durable write.
pub fn could_be_ours(token: &str) -> bool {
    is_jwt_shaped(token)
        && jsonwebtoken::decode_header(token).is_ok_and(|header| header.alg == Algorithm::HS256)
        && external_id(token).is_ok()
}

/// The `id` claim read without verification, to find the integration.
pub fn external_id(token: &str) -> Result<String, Rejected> {
    claims(token).map(|claims| claims.id)
}

/// What a token's claims say, read without verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The `id` claim: the integration's external id.
    pub id: String,
    /// Neither `exp` nor `nbf` is present: a token that verified under a secret
    /// verifies under it at any time (the worker keeps such tokens,
    /// `worker::lookups`).
    pub timeless: bool,
}

/// The claims read without verification, to find the integration.
pub fn claims(token: &str) -> Result<Claims, Rejected> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Rejected::TooLong);
    }
    let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(token)
        .map_err(|_| Rejected::Undecodable)?;
    let id = claims
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(Rejected::NoId)?;
    Ok(Claims {
        id,
        timeless: claims.get("exp").is_none() && claims.get("nbf").is_none(),
    })
}

/// Which of the integration's secrets a token verified under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    /// Its `webhook_secret`.
    Current,
    /// The secret a rotation replaced, until the overlap ends.
    Previous,
}

/// Verifies the token against the integration's `webhook_secret` (or, until
/// the rotation's overlap ends, its previous one): HS256 only; `exp`/`nbf`
/// checked when present; an `aud` claim rejects it.
pub fn verify(token: &str, metadata: &Metadata) -> Result<(), Rejected> {
    verify_at(token, metadata, Utc::now()).map(|_| ())
}

/// As [`verify`], the overlap judged at `now`; says which secret verified it.
pub fn verify_at(token: &str, metadata: &Metadata, now: DateTime<Utc>) -> Result<Secret, Rejected> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Rejected::TooLong);
    }
    let secret = metadata
        .webhook_secret
        .as_deref()
        .ok_or(Rejected::NoSecret)?;
    let current = verify_with(token, secret);
    match (&current, metadata.previous_at(now)) {
        (Err(_), Some((Some(previous), _))) if verify_with(token, previous).is_ok() => {
            Ok(Secret::Previous)
        }
        _ => current.map(|()| Secret::Current),
    }
}

/// The signature is checked by jsonwebtoken, which compares HMACs in constant
/// time (aws-lc-rs `hmac::verify`).
fn verify_with(token: &str, secret: &str) -> Result<(), Rejected> {
    let mut validation = Validation::new(Algorithm::HS256);
    // Sentry's tokens carry no exp; check it only when present.
    validation.required_spec_claims.clear();
    validation.validate_nbf = true;
    // With no audience configured, any `aud` claim fails validation.
    validation.validate_aud = true;
    jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map(|_| ())
    .map_err(|e| Rejected::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(super) fn metadata(value: Value) -> Metadata {
        serde_json::from_value(value).expect("metadata reads")
    }

    /// An integration mid-rotation at `now`: secrets `new` and `new-hmac`, the
    /// previous `old` and `old-hmac` valid until the time returned, 60 s later.
    pub(super) fn rotated_at(now: DateTime<Utc>) -> (Metadata, DateTime<Utc>) {
        let until = now + chrono::TimeDelta::seconds(60);
        let rotated = metadata(json!({
            "webhook_secret": "new", "webhook_hmac_secret": "new-hmac",
            "previous_webhook_secret": "old", "previous_webhook_hmac_secret": "old-hmac",
            "previous_valid_until": until.to_rfc3339(),
        }));
        (rotated, until)
    }

    #[test]
    fn only_hs256_tokens_with_a_string_id_could_be_ours() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let ours = sign(Algorithm::HS256, json!({"id": "jira:key"}), "s");
        assert!(could_be_ours(&ours));
        let b64 = |value: Value| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
        };
        for token in [
            sign(Algorithm::HS512, json!({"id": "jira:key"}), "s"),
            sign(Algorithm::HS256, json!({"sub": "jira:key"}), "s"),
            sign(Algorithm::HS256, json!({"id": 7}), "s"),
            format!(
                "{}.{}.",
                b64(json!({"alg": "none"})),
                b64(json!({"id": "x"}))
            ),
            format!(
                "{}.{}.c2ln",
                b64(json!({"alg": "RS256"})),
                b64(json!({"id": "x"}))
            ),
            format!("{}.bm90LWpzb24.c2ln", b64(json!({"alg": "HS256"}))),
        ] {
            assert!(!could_be_ours(&token), "{token}");
        }
    }

    fn sign(alg: Algorithm, claims: Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("encode")
    }

    #[test]
    fn minted_tokens_name_their_integration_and_pass_verification() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let token = mint("jira:ck", "s3cret").expect("signs");
        assert!(is_jwt_shaped(&token));
        assert_eq!(external_id(&token), Ok("jira:ck".into()));
        let with = metadata(json!({ "webhook_secret": "s3cret" }));
        assert_eq!(verify(&token, &with), Ok(()));
    }

    #[test]
    fn tokens_are_checked_like_the_contract_says() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let good = metadata(json!({"webhook_secret": "s3cret"}));
        let now = jsonwebtoken::get_current_timestamp();
        let cases: Vec<(&str, String, bool)> = vec![
            (
                "HS256 without exp",
                sign(Algorithm::HS256, json!({"id": "x"}), "s3cret"),
                true,
            ),
            (
                "HS256 with future exp",
                sign(
                    Algorithm::HS256,
                    json!({"id": "x", "exp": now + 600}),
                    "s3cret",
                ),
                true,
            ),
            (
                "expired",
                sign(
                    Algorithm::HS256,
                    json!({"id": "x", "exp": now - 600}),
                    "s3cret",
                ),
                false,
            ),
            (
                "not yet valid",
                sign(
                    Algorithm::HS256,
                    json!({"id": "x", "nbf": now + 600}),
                    "s3cret",
                ),
                false,
            ),
            (
                "wrong secret",
                sign(Algorithm::HS256, json!({"id": "x"}), "other"),
                false,
            ),
            (
                "HS512",
                sign(Algorithm::HS512, json!({"id": "x"}), "s3cret"),
                false,
            ),
            (
                "aud claim",
                sign(
                    Algorithm::HS256,
                    json!({"id": "x", "aud": "jira"}),
                    "s3cret",
                ),
                false,
            ),
            (
                "alg none",
                "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpZCI6IngifQ.".to_owned(),
                false,
            ),
        ];
        for (case, token, ok) in cases {
            assert_eq!(verify(&token, &good).is_ok(), ok, "{case}");
        }
        let token = sign(Algorithm::HS256, json!({"id": "x"}), "s3cret");
        for no_secret in [json!({}), json!({"webhook_secret": ""})] {
            assert_eq!(
                verify(&token, &metadata(no_secret.clone())),
                Err(Rejected::NoSecret),
                "{no_secret}"
            );
        }
    }

    #[test]
    fn the_id_claim_is_read_without_verification() {
        let token = sign(
            Algorithm::HS256,
            json!({"id": "jira.example.org:key"}),
            "whatever",
        );
        assert_eq!(external_id(&token), Ok("jira.example.org:key".to_owned()));
        let no_id = sign(Algorithm::HS256, json!({"sub": "x"}), "whatever");
        assert_eq!(external_id(&no_id), Err(Rejected::NoId));
        assert_eq!(external_id("a.b.c"), Err(Rejected::Undecodable));
    }

    #[test]
    fn previous_tokens_pass_until_the_overlap_ends_and_not_after() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let now = chrono::Utc::now();
        let (rotated, until) = rotated_at(now);
        let (old, new) = (
            mint("x", "old").expect("signs"),
            mint("x", "new").expect("signs"),
        );
        let other = mint("x", "other").expect("signs");
        let after = until + chrono::TimeDelta::seconds(1);
        for (case, at, token, ok) in [
            ("new token during the overlap", now, &new, true),
            ("old token during the overlap", now, &old, true),
            ("other token during the overlap", now, &other, false),
            ("new token after it", after, &new, true),
            ("old token after it", after, &old, false),
        ] {
            assert_eq!(verify_at(token, &rotated, at).is_ok(), ok, "{case}");
        }
    }

    #[test]
    fn jwt_shape_is_three_base64url_parts() {
        for (token, ok) in [
            ("eyJhbGciOiJIUzI1NiJ9.eyJpZCI6IngifQ.c2ln", true),
            ("eyJhbGciOiJub25lIn0.eyJpZCI6IngifQ.", true),
            ("a.b", false),
            ("a.b.c.d", false),
            (".b.c", false),
            ("a..c", false),
            ("a.b.c=", false),
            ("a.b+.c", false),
            ("not-a-token", false),
        ] {
            assert_eq!(is_jwt_shaped(token), ok, "{token}");
        }
    }

    proptest! {
        #[test]
        fn any_string_is_classified_without_panicking(token in ".*") {
            let _ = is_jwt_shaped(&token);
        }

        #[test]
        fn the_shape_check_agrees_with_splitting_on_dots(token in "[a-zA-Z0-9_.=+-]{0,24}") {
            let parts: Vec<&str> = token.split('.').collect();
            let base64url = |part: &str| {
                part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            };
            let expected = parts.len() == 3
                && !parts[0].is_empty()
                && !parts[1].is_empty()
                && parts.iter().all(|p| base64url(p));
            prop_assert_eq!(is_jwt_shaped(&token), expected, "{}", token);
        }

        #[test]
        fn tokens_longer_than_the_limit_are_refused(part in "[a-z]{4097}") {
            let token = format!("{part}.{part}.{part}");
            prop_assert!(!is_jwt_shaped(&token));
        }
    }
}
