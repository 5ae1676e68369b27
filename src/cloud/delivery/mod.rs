//! A Jira Cloud delivery (docs/reference.md §11.4), checked by the worker's
//! webhook handler once the URL token verified: it must be signed — an
//! `x-hub-signature` HMAC of the body under `webhook_hmac_secret`, or, for an
//! `oauth2` integration, a delivery JWT under the OAuth client secret (Cloud has
//! no unsigned mode) — and its `X-Atlassian-Webhook-Identifier` is recorded once
//! ([`duplicates`]) so that a redelivery changes nothing.

pub mod duplicates;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::integration::token::check_hmac_at;
use crate::integration::{Credentials, Metadata};

/// How far past its `exp` a delivery JWT is still taken (clocks differ).
pub const JWT_LEEWAY_SECS: u64 = 60;

/// How a delivery was signed, once verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed {
    /// `x-hub-signature: sha256=<hex>` under `webhook_hmac_secret` (admin webhooks).
    Hmac,
    /// A delivery JWT under the OAuth 2.0 client secret (a 3LO app's dynamic webhooks).
    DeliveryJwt,
}

/// Why a delivery was refused: dropped as `invalid_token`, logged with this
/// reason (never a token, signature or secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsigned {
    /// Neither an `x-hub-signature` nor a delivery JWT.
    #[error("the Cloud delivery is not signed (no x-hub-signature, no delivery JWT)")]
    NoSignature,
    /// The integration has no `webhook_hmac_secret` to check an HMAC with.
    #[error("the Cloud integration has no webhook_hmac_secret to check the x-hub-signature")]
    NoHmacSecret,
    /// The HMAC does not match the body.
    #[error("the body's HMAC signature is wrong")]
    BadHmac,
    /// A delivery JWT, but the integration is not connected with OAuth 2.0 (3LO).
    #[error("a delivery JWT, but the integration's auth method is not oauth2")]
    NotOauth2,
    /// The delivery JWT failed verification (signature, algorithm, expiry).
    #[error("the delivery JWT failed verification: {0}")]
    BadJwt(String),
}

/// What a delivery carries to be verified by.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The `x-hub-signature` header, if any.
    pub hub_signature: Option<&'a str>,
    /// The `delivery-jwt` header (the ingress's copy of `Authorization: Bearer`), if any.
    pub delivery_jwt: Option<&'a str>,
    /// The raw body.
    pub body: &'a [u8],
}

/// Verifies `delivery` for an integration with `metadata`, at `now`: the HMAC
/// when the delivery carries one and it matches (the previous secret counts
/// until a rotation's overlap ends); else the delivery JWT under the OAuth 2.0
/// client secret of `credentials` (asked only then: `None` when the integration
/// has none stored). Anything else is [`Unsigned`].
pub fn verify(
    metadata: &Metadata,
    delivery: Delivery<'_>,
    credentials: impl FnOnce() -> Option<Credentials>,
    now: DateTime<Utc>,
) -> Result<Signed, Unsigned> {
    let hmac = delivery
        .hub_signature
        .map(|signature| check_signature(metadata, signature, delivery.body, now));
    if hmac == Some(Ok(())) {
        return Ok(Signed::Hmac);
    }
    let Some(jwt) = delivery.delivery_jwt else {
        return Err(hmac.map_or(Unsigned::NoSignature, |refused| {
            refused.err().unwrap_or(Unsigned::BadHmac)
        }));
    };
    match credentials() {
        Some(Credentials::OAuth2 { client_secret, .. }) if !client_secret.is_empty() => {
            check_delivery_jwt(jwt, &client_secret, now).map(|()| Signed::DeliveryJwt)
        }
        _ => Err(Unsigned::NotOauth2),
    }
}

/// The HMAC of §5.2, without its unsigned mode: no `webhook_hmac_secret` refuses.
fn check_signature(
    metadata: &Metadata,
    signature: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), Unsigned> {
    if metadata.webhook_hmac_secret.is_none() {
        return Err(Unsigned::NoHmacSecret);
    }
    check_hmac_at(metadata, Some(signature), body, now).map_err(|_| Unsigned::BadHmac)
}

/// A delivery JWT: HS256 only, under `client_secret` (jsonwebtoken compares the
/// MAC in constant time); `exp` checked when present with
/// [`JWT_LEEWAY_SECS`]; no other claim is relied on (`aud`, `iss`, `nbf` are
/// Atlassian's to choose).
pub fn check_delivery_jwt(
    jwt: &str,
    client_secret: &str,
    now: DateTime<Utc>,
) -> Result<(), Unsigned> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_aud = false;
    validation.validate_nbf = false;
    // Checked below against `now`, so that tests can judge it at any time.
    validation.validate_exp = false;
    let claims = jsonwebtoken::decode::<Value>(
        jwt,
        &DecodingKey::from_secret(client_secret.as_bytes()),
        &validation,
    )
    .map_err(|error| Unsigned::BadJwt(error.to_string()))?
    .claims;
    match claims.get("exp") {
        None | Some(Value::Null) => Ok(()),
        Some(exp) => {
            let exp = exp
                .as_i64()
                .or_else(|| exp.as_f64().map(|exp| exp as i64))
                .ok_or_else(|| Unsigned::BadJwt("exp is not a number".into()))?;
            let leeway = i64::try_from(JWT_LEEWAY_SECS).unwrap_or(i64::MAX);
            if now.timestamp() > exp.saturating_add(leeway) {
                Err(Unsigned::BadJwt("the token has expired".into()))
            } else {
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    const BODY: &[u8] = br#"{"webhookEvent":"jira:issue_updated"}"#;

    fn metadata(hmac: Option<&str>) -> Metadata {
        Metadata {
            webhook_secret: Some("token-secret".into()),
            webhook_hmac_secret: hmac.map(str::to_owned),
            ..Metadata::default()
        }
    }

    fn signature(secret: &str, body: &[u8]) -> String {
        crate::integration::token::sign_hub_signature(secret, body)
    }

    fn jwt(alg: Algorithm, claims: Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("signs")
    }

    fn oauth2(client_secret: &str) -> Credentials {
        Credentials::OAuth2 {
            client_id: "client".into(),
            client_secret: client_secret.into(),
            access_token: "at".into(),
            refresh_token: None,
            expires_at: None,
            refreshed_at: None,
        }
    }

    fn api_token() -> Credentials {
        Credentials::ApiToken {
            email: "admin@example.org".into(),
            token: "t".into(),
        }
    }

    #[test]
    fn a_delivery_is_verified_by_its_hmac_or_its_delivery_jwt_and_nothing_else() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let now = Utc::now();
        let ts = now.timestamp();
        let good_hmac = signature("hmac-secret", BODY);
        let other_body = signature("hmac-secret", b"{}");
        let good_jwt = jwt(Algorithm::HS256, json!({"iss": "x"}), "client-secret");
        let fresh = jwt(Algorithm::HS256, json!({"exp": ts + 30}), "client-secret");
        let in_leeway = jwt(Algorithm::HS256, json!({"exp": ts - 50}), "client-secret");
        let expired = jwt(Algorithm::HS256, json!({"exp": ts - 70}), "client-secret");
        let with_aud = jwt(Algorithm::HS256, json!({"aud": "any"}), "client-secret");
        let wrong_key = jwt(Algorithm::HS256, json!({}), "another-secret");
        let hs512 = jwt(Algorithm::HS512, json!({}), "client-secret");
        let url_token_secret = jwt(Algorithm::HS256, json!({}), "token-secret");
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Option<Credentials>,
            Result<Signed, Unsigned>,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                "hmac",
                Some("hmac-secret"),
                Some(&good_hmac),
                None,
                None,
                Ok(Signed::Hmac),
            ),
            (
                "no signature",
                Some("hmac-secret"),
                None,
                None,
                Some(api_token()),
                Err(Unsigned::NoSignature),
            ),
            (
                "hmac of another body",
                Some("hmac-secret"),
                Some(&other_body),
                None,
                None,
                Err(Unsigned::BadHmac),
            ),
            (
                "hmac not hex",
                Some("hmac-secret"),
                Some("sha256=zz"),
                None,
                None,
                Err(Unsigned::BadHmac),
            ),
            (
                "hmac without its prefix",
                Some("hmac-secret"),
                Some(&good_hmac[7..]),
                None,
                None,
                Err(Unsigned::BadHmac),
            ),
            (
                "no hmac secret: no unsigned mode",
                None,
                Some(&good_hmac),
                None,
                None,
                Err(Unsigned::NoHmacSecret),
            ),
            (
                "no hmac secret, nothing sent",
                None,
                None,
                None,
                Some(api_token()),
                Err(Unsigned::NoSignature),
            ),
            (
                "jwt under the client secret",
                Some("hmac-secret"),
                None,
                Some(&good_jwt),
                Some(oauth2("client-secret")),
                Ok(Signed::DeliveryJwt),
            ),
            (
                "jwt, bad hmac beside it",
                Some("hmac-secret"),
                Some(&other_body),
                Some(&good_jwt),
                Some(oauth2("client-secret")),
                Ok(Signed::DeliveryJwt),
            ),
            (
                "jwt with a future exp",
                Some("hmac-secret"),
                None,
                Some(&fresh),
                Some(oauth2("client-secret")),
                Ok(Signed::DeliveryJwt),
            ),
            (
                "jwt expired within the leeway",
                Some("hmac-secret"),
                None,
                Some(&in_leeway),
                Some(oauth2("client-secret")),
                Ok(Signed::DeliveryJwt),
            ),
            (
                "jwt with an aud is not judged by it",
                Some("hmac-secret"),
                None,
                Some(&with_aud),
                Some(oauth2("client-secret")),
                Ok(Signed::DeliveryJwt),
            ),
            (
                "jwt for an api_token integration",
                Some("hmac-secret"),
                None,
                Some(&good_jwt),
                Some(api_token()),
                Err(Unsigned::NotOauth2),
            ),
            (
                "jwt without stored credentials",
                Some("hmac-secret"),
                None,
                Some(&good_jwt),
                None,
                Err(Unsigned::NotOauth2),
            ),
            (
                "jwt under an empty client secret",
                Some("hmac-secret"),
                None,
                Some(&good_jwt),
                Some(oauth2("")),
                Err(Unsigned::NotOauth2),
            ),
        ];
        for (name, hmac, hub, delivery_jwt, credentials, expected) in cases {
            let delivery = Delivery {
                hub_signature: hub,
                delivery_jwt,
                body: BODY,
            };
            let got = verify(&metadata(hmac), delivery, || credentials, now);
            assert_eq!(got, expected, "{name}");
        }
        for (name, token) in [
            ("expired past the leeway", &expired),
            ("another key", &wrong_key),
            ("HS512", &hs512),
            ("the URL token's secret", &url_token_secret),
            ("not a JWT", &"a.b.c".to_owned()),
        ] {
            let delivery = Delivery {
                hub_signature: None,
                delivery_jwt: Some(token),
                body: BODY,
            };
            let got = verify(
                &metadata(Some("hmac-secret")),
                delivery,
                || Some(oauth2("client-secret")),
                now,
            );
            assert!(matches!(got, Err(Unsigned::BadJwt(_))), "{name}: {got:?}");
        }
    }

    #[test]
    fn the_credentials_are_read_only_when_the_hmac_did_not_verify_the_delivery() {
        let delivery = Delivery {
            hub_signature: Some(&signature("hmac-secret", BODY)),
            delivery_jwt: Some("a.b.c"),
            body: BODY,
        };
        let asked = std::cell::Cell::new(false);
        let got = verify(
            &metadata(Some("hmac-secret")),
            delivery,
            || {
                asked.set(true);
                None
            },
            Utc::now(),
        );
        assert_eq!(got, Ok(Signed::Hmac));
        assert!(!asked.get());
    }

    #[test]
    fn no_reason_repeats_what_was_sent() {
        let secret = "client-secret-value";
        let token = jwt(Algorithm::HS256, json!({"exp": 1}), secret);
        let reason = check_delivery_jwt(&token, secret, Utc::now())
            .expect_err("expired")
            .to_string();
        assert!(
            !reason.contains(secret) && !reason.contains(&token),
            "{reason}"
        );
    }
}
