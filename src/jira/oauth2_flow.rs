//! OAuth 2.0 against Jira Data Center's own authorization server (incoming
//! application links of type *External application*, Jira 8.22+): the
//! authorization code grant with PKCE (RFC 7636, S256) at
//! `/rest/oauth2/latest/authorize`, and the code and refresh-token grants at
//! `/rest/oauth2/latest/token`. Answers are JSON; a refusal carries `error`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng as _;
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::client::JiraClient;
use super::error::JiraError;

/// Where the user authorizes jirasync.
pub const AUTHORIZE_PATH: &str = "/rest/oauth2/latest/authorize";
/// Where codes and refresh tokens are exchanged.
pub const TOKEN_PATH: &str = "/rest/oauth2/latest/token";

/// A fresh unguessable value for `state` or a PKCE `code_verifier`: 32 random
/// bytes, base64url (43 characters, within RFC 7636's 43–128).
pub fn fresh_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `value` has the shape of [`fresh_secret`]'s values: 43 base64url
/// characters. The ingress's check of a callback's `state`.
pub fn is_fresh_secret_shaped(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The PKCE `code_challenge` of `verifier` with method S256.
pub fn code_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// What the authorize URL asks for.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest<'a> {
    /// The application link's client id.
    pub client_id: &'a str,
    /// Where Jira sends the browser back.
    pub redirect_uri: &'a str,
    /// The scope, e.g. `ADMIN`.
    pub scope: &'a str,
    /// The session's `state`.
    pub state: &'a str,
    /// The PKCE verifier (only its challenge goes into the URL).
    pub code_verifier: &'a str,
}

/// The shortest access-token lifetime believed, in seconds (docs/reference.md §6.2).
pub const MIN_EXPIRES_IN: i64 = 60;
/// The longest access-token lifetime believed, in seconds: a year.
pub const MAX_EXPIRES_IN: i64 = 31_536_000;
/// The lifetime assumed when the answer gives none, or not a positive number.
pub const DEFAULT_EXPIRES_IN: i64 = 3600;

/// The tokens a grant gave, read leniently: Jira has already rotated the refresh
/// token when it answers, so whatever the answer holds besides must not stop the
/// new refresh token from being stored. `Debug` redacts them.
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens {
    /// The access token (`Authorization: Bearer`); `None` when the answer has
    /// none (or not a non-empty string).
    pub access_token: Option<String>,
    /// The refresh token; Jira rotates it, so the new one replaces the old.
    pub refresh_token: Option<String>,
    /// Seconds the access token is valid for: `expires_in` clamped to
    /// [[`MIN_EXPIRES_IN`], [`MAX_EXPIRES_IN`]], [`DEFAULT_EXPIRES_IN`] when it
    /// is missing or not a positive number.
    pub expires_in: i64,
}

/// The fields of a token answer, each of any JSON type.
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    access_token: Option<Value>,
    #[serde(default)]
    refresh_token: Option<Value>,
    #[serde(default)]
    expires_in: Option<Value>,
}

/// The same without `expires_in`, which serde skips unparsed: the reading of an
/// answer whose number is beyond what an `f64` holds (`1e400`).
#[derive(Deserialize)]
struct TokensOnly {
    #[serde(default)]
    access_token: Option<Value>,
    #[serde(default)]
    refresh_token: Option<Value>,
}

impl Tokens {
    /// Reads a token endpoint's answer; `None` when it is not a JSON object.
    /// Never fails on a field: a token that is not a non-empty string is
    /// absent, an unusable `expires_in` is [`DEFAULT_EXPIRES_IN`].
    pub fn parse(body: &str) -> Option<Self> {
        // serde would read a struct from an array too.
        if !body.trim_start().starts_with('{') {
            return None;
        }
        let (access_token, refresh_token, expires_in) = match serde_json::from_str::<Answer>(body) {
            Ok(answer) => (answer.access_token, answer.refresh_token, answer.expires_in),
            Err(_) => {
                let tokens = serde_json::from_str::<TokensOnly>(body).ok()?;
                (tokens.access_token, tokens.refresh_token, None)
            }
        };
        let token = |value: Option<Value>| match value {
            Some(Value::String(token)) if !token.is_empty() => Some(token),
            _ => None,
        };
        Some(Self {
            access_token: token(access_token),
            refresh_token: token(refresh_token),
            expires_in: clamp_expires_in(expires_in.as_ref()),
        })
    }

    /// When the access token expires if it was issued at `now`. Cannot
    /// overflow: the lifetime is at most a year.
    pub fn expires_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        TimeDelta::try_seconds(self.expires_in)
            .and_then(|lifetime| now.checked_add_signed(lifetime))
            .unwrap_or(now)
    }
}

/// `expires_in` as §6.2 reads it: a positive number of seconds clamped to
/// [[`MIN_EXPIRES_IN`], [`MAX_EXPIRES_IN`]]; anything else (missing, zero,
/// negative, a string) [`DEFAULT_EXPIRES_IN`].
pub fn clamp_expires_in(value: Option<&Value>) -> i64 {
    match value.and_then(Value::as_f64) {
        // Clamped as a float first, so the cast is exact and cannot saturate.
        Some(seconds) if seconds > 0.0 => {
            seconds.clamp(MIN_EXPIRES_IN as f64, MAX_EXPIRES_IN as f64) as i64
        }
        _ => DEFAULT_EXPIRES_IN,
    }
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// The client's credentials at the token endpoint. `Debug` redacts the secret.
#[derive(Clone, Copy)]
pub struct ClientCredentials<'a> {
    /// The client id.
    pub id: &'a str,
    /// The client secret. Secret.
    pub secret: &'a str,
}

impl fmt::Debug for ClientCredentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
}

impl JiraClient {
    /// The URL the user opens to authorize jirasync.
    pub fn oauth2_authorize_url(&self, request: &AuthorizeRequest<'_>) -> Result<Url, JiraError> {
        let mut url = self.endpoint(AUTHORIZE_PATH)?;
        url.query_pairs_mut()
            .append_pair("client_id", request.client_id)
            .append_pair("redirect_uri", request.redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", request.scope)
            .append_pair("state", request.state)
            .append_pair("code_challenge", &code_challenge(request.code_verifier))
            .append_pair("code_challenge_method", "S256");
        Ok(url)
    }

    /// Exchanges an authorization code (`grant_type=authorization_code`).
    pub async fn oauth2_exchange_code(
        &self,
        client: ClientCredentials<'_>,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
    ) -> Result<Tokens, JiraError> {
        self.oauth2_grant(&[
            ("grant_type", "authorization_code"),
            ("client_id", client.id),
            ("client_secret", client.secret),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", code_verifier),
        ])
        .await
    }

    /// Refreshes (`grant_type=refresh_token`): the answer's refresh token
    /// replaces `refresh_token`, which Jira will not take again.
    pub async fn oauth2_refresh(
        &self,
        client: ClientCredentials<'_>,
        refresh_token: &str,
    ) -> Result<Tokens, JiraError> {
        self.oauth2_grant(&[
            ("grant_type", "refresh_token"),
            ("client_id", client.id),
            ("client_secret", client.secret),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    async fn oauth2_grant(&self, form: &[(&str, &str)]) -> Result<Tokens, JiraError> {
        let url = self.endpoint(TOKEN_PATH)?;
        let answer = self.post_form(url, form).await?;
        if answer.status.is_client_error()
            && let Ok(refusal) = serde_json::from_str::<ErrorAnswer>(&answer.body)
        {
            return Err(JiraError::oauth2_refused(&refusal.error));
        }
        let answer = answer.success()?;
        Tokens::parse(&answer.body).ok_or_else(|| JiraError::InvalidResponse {
            reason: "the token answer is not a JSON object".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_s256_challenge_is_rfc_7636s_example() {
        // RFC 7636 Appendix B.
        assert_eq!(
            code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn fresh_secrets_have_the_shape_the_ingress_checks_and_differ() {
        let (a, b) = (fresh_secret(), fresh_secret());
        assert!(is_fresh_secret_shaped(&a) && is_fresh_secret_shaped(&b));
        assert_ne!(a, b);
        for bad in [
            "",
            "short",
            &"a".repeat(44),
            &format!("{}!", "a".repeat(42)),
        ] {
            assert!(!is_fresh_secret_shaped(bad), "{bad}");
        }
    }

    #[test]
    fn tokens_never_show_in_debug_output() {
        let tokens = Tokens {
            access_token: Some("acc-123".into()),
            refresh_token: Some("ref-456".into()),
            expires_in: 3600,
        };
        let debug = format!("{tokens:?}");
        assert!(
            !debug.contains("acc-123") && !debug.contains("ref-456"),
            "{debug}"
        );
    }

    #[test]
    fn expires_in_is_clamped_and_defaults_to_an_hour() {
        for (answer, expected) in [
            (r#""expires_in": 7200"#, 7200),
            (r#""expires_in": 1"#, MIN_EXPIRES_IN),
            (r#""expires_in": 0.5"#, MIN_EXPIRES_IN),
            (r#""expires_in": 1e30"#, MAX_EXPIRES_IN),
            // Beyond an f64: unreadable, so the default; the tokens are still read.
            (r#""expires_in": 1e400"#, DEFAULT_EXPIRES_IN),
            (r#""expires_in": 9223372036854775807"#, MAX_EXPIRES_IN),
            (r#""expires_in": 18446744073709551615"#, MAX_EXPIRES_IN),
            (r#""expires_in": -5"#, DEFAULT_EXPIRES_IN),
            (r#""expires_in": 0"#, DEFAULT_EXPIRES_IN),
            (r#""expires_in": "7200""#, DEFAULT_EXPIRES_IN),
            (r#""expires_in": null"#, DEFAULT_EXPIRES_IN),
            (r#""expires_in": {"s": 1}"#, DEFAULT_EXPIRES_IN),
            (r#""other": 1"#, DEFAULT_EXPIRES_IN),
        ] {
            let body = format!(r#"{{"access_token": "a", "refresh_token": "r", {answer}}}"#);
            let tokens = Tokens::parse(&body).expect("an object");
            assert_eq!(tokens.expires_in, expected, "{answer}");
            assert_eq!(tokens.access_token.as_deref(), Some("a"), "{answer}");
            assert_eq!(tokens.refresh_token.as_deref(), Some("r"), "{answer}");
            let now = Utc::now();
            assert_eq!(tokens.expires_at(now) - now, TimeDelta::seconds(expected));
        }
    }

    #[test]
    fn a_refresh_token_is_read_whatever_else_the_answer_holds() {
        let tokens = Tokens::parse(r#"{"refresh_token": "r", "access_token": 7}"#).expect("object");
        assert_eq!(tokens.refresh_token.as_deref(), Some("r"));
        assert_eq!(tokens.access_token, None);
        let tokens =
            Tokens::parse(r#"{"access_token": "", "refresh_token": ["r"]}"#).expect("object");
        assert_eq!((tokens.access_token, tokens.refresh_token), (None, None));
        for not_an_object in ["", "[]", "\"x\"", "<html>", r#"{"refresh_token": "r""#] {
            assert!(Tokens::parse(not_an_object).is_none(), "{not_an_object}");
        }
    }
}
