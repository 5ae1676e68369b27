//! Webhook authentication (CONTRACT §5.1–2, Sentry `get_integration_from_token`):
//! the URL token names the integration and is verified with HS256 against its
//! `webhook_secret`; an optional `webhook_hmac_secret` also requires the body's HMAC.

use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::db::integrations::Integration;

/// Longest token accepted, as at the ingress (Sentry's are about 150 characters):
/// a longer one is refused before it is decoded.
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
    /// No active jira_server integration has that external id.
    #[error("no active jira_server integration matches the token")]
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

/// The `id` claim read without verification, to find the integration.
pub fn external_id(token: &str) -> Result<String, Rejected> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Rejected::TooLong);
    }
    let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(token)
        .map_err(|_| Rejected::Undecodable)?;
    claims
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(Rejected::NoId)
}

/// Verifies the token against the integration's `webhook_secret`: HS256 only;
/// `exp`/`nbf` checked when present; an `aud` claim rejects it.
/// The signature is checked by jsonwebtoken, which compares HMACs in constant time
/// (aws-lc-rs `hmac::verify`).
pub fn verify(token: &str, integration: &Integration) -> Result<(), Rejected> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Rejected::TooLong);
    }
    let secret = integration
        .metadata
        .get("webhook_secret")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(Rejected::NoSecret)?;
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

/// When the integration has a `webhook_hmac_secret`, requires `signature` to be
/// `sha256=<hex>` of HMAC-SHA256 over `body`, compared in constant time.
pub fn check_hmac(
    integration: &Integration,
    signature: Option<&str>,
    body: &[u8],
) -> Result<(), Rejected> {
    let Some(secret) = integration
        .metadata
        .get("webhook_hmac_secret")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return Ok(());
    };
    let given = signature
        .and_then(|s| s.strip_prefix("sha256="))
        .and_then(decode_hex)
        .ok_or(Rejected::BadHmac)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| Rejected::BadHmac)?;
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    if bool::from(expected.as_slice().ct_eq(&given)) {
        Ok(())
    } else {
        Err(Rejected::BadHmac)
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    // Digits only: `from_str_radix` alone also takes a sign ("+7").
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    fn integration(metadata: Value) -> Integration {
        Integration { id: 1, metadata }
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
    fn tokens_are_checked_like_the_contract_says() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let good = integration(json!({"webhook_secret": "s3cret"}));
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
        let no_secret = integration(json!({}));
        let token = sign(Algorithm::HS256, json!({"id": "x"}), "s3cret");
        assert_eq!(verify(&token, &no_secret), Err(Rejected::NoSecret));
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
    fn the_hmac_is_required_only_when_configured_and_must_match() {
        let body = b"{\"a\":1}";
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k").expect("key");
        mac.update(body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let good = format!("sha256={hex}");
        let with = integration(json!({"webhook_hmac_secret": "k"}));
        let without = integration(json!({}));
        assert_eq!(check_hmac(&without, None, body), Ok(()));
        assert_eq!(check_hmac(&with, Some(&good), body), Ok(()));
        assert_eq!(check_hmac(&with, None, body), Err(Rejected::BadHmac));
        assert_eq!(
            check_hmac(&with, Some(&good), b"{\"a\":2}"),
            Err(Rejected::BadHmac)
        );
        assert_eq!(
            check_hmac(&with, Some(&hex), body),
            Err(Rejected::BadHmac),
            "prefix required"
        );
        assert_eq!(
            check_hmac(&with, Some("sha256=zz"), body),
            Err(Rejected::BadHmac)
        );
    }

    #[test]
    fn a_plus_sign_is_not_a_hex_digit_in_the_hmac() {
        // `u8::from_str_radix` takes "+7" as 7, so an HMAC byte 07 written "+7"
        // passed; fuzz/fuzz_targets/token.rs checks this too.
        let with = integration(json!({"webhook_hmac_secret": "k"}));
        let (body, hex, zero) = (0..)
            .find_map(|i| {
                let body = format!("{{\"a\":{i}}}");
                let mut mac = Hmac::<Sha256>::new_from_slice(b"k").expect("key");
                mac.update(body.as_bytes());
                let hex: String = mac
                    .finalize()
                    .into_bytes()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                // A byte below 0x10: a '0' at an even position.
                let zero = (0..hex.len())
                    .step_by(2)
                    .find(|&j| hex.as_bytes()[j] == b'0')?;
                Some((body, hex, zero))
            })
            .expect("some body's HMAC has a byte below 0x10");
        let good = format!("sha256={hex}");
        let plus = format!("sha256={}+{}", &hex[..zero], &hex[zero + 1..]);
        assert_eq!(check_hmac(&with, Some(&good), body.as_bytes()), Ok(()));
        assert_eq!(
            check_hmac(&with, Some(&plus), body.as_bytes()),
            Err(Rejected::BadHmac),
            "{plus}"
        );
    }
}
