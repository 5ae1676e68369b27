//! OAuth 2.0 against Jira Data Center's own authorization server (incoming
//! application links of type *External application*, Jira 8.22+): the
//! authorization code grant with PKCE (RFC 7636, S256) at
//! `/rest/oauth2/latest/authorize`, and the code and refresh-token grants at
//! `/rest/oauth2/latest/token`. Answers are JSON; a refusal carries `error`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use reqwest::Url;
use serde::Deserialize;
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

/// The tokens a grant gave. `Debug` redacts them.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Tokens {
    /// The access token (`Authorization: Bearer`).
    pub access_token: String,
    /// The refresh token; Jira rotates it, so the new one replaces the old.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Seconds the access token is valid for.
    #[serde(default)]
    pub expires_in: Option<i64>,
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
        serde_json::from_str(&answer.body).map_err(|_| JiraError::InvalidResponse {
            reason: "the token answer lacks access_token".to_owned(),
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
            access_token: "acc-123".into(),
            refresh_token: Some("ref-456".into()),
            expires_in: Some(3600),
        };
        let debug = format!("{tokens:?}");
        assert!(
            !debug.contains("acc-123") && !debug.contains("ref-456"),
            "{debug}"
        );
    }
}
