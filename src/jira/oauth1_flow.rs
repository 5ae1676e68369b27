//! The three steps of the OAuth 1.0a install flow against Jira Server's
//! `/plugins/servlet/oauth/*` endpoints (Sentry `JiraServerSetupClient`).
//! Answers are form-encoded; a refusal carries `oauth_problem=…`.

use std::fmt;

use reqwest::Method;

use super::client::JiraClient;
use super::error::JiraError;
use super::form;
use super::oauth1_signing::{OAuthParams, percent_encode};

const REQUEST_TOKEN_PATH: &str = "/plugins/servlet/oauth/request-token";
const AUTHORIZE_PATH: &str = "/plugins/servlet/oauth/authorize";
const ACCESS_TOKEN_PATH: &str = "/plugins/servlet/oauth/access-token";

/// A temporary credential of the request-token step. `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestToken {
    /// `oauth_token`: goes into the authorize URL and the access-token step.
    pub token: String,
    /// `oauth_token_secret` (unused by RSA-SHA1, kept for completeness).
    pub secret: String,
}

/// The token credential of the access-token step. `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// `oauth_token`: signs REST calls on behalf of the authorizing user.
    pub token: String,
    /// `oauth_token_secret` (unused by RSA-SHA1, stored with the credentials).
    pub secret: String,
}

impl fmt::Debug for RequestToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestToken { token: [redacted], secret: [redacted] }")
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken { token: [redacted], secret: [redacted] }")
    }
}

impl JiraClient {
    /// Step 1: a signed `POST …/oauth/request-token` with `oauth_callback`.
    pub async fn request_token(&self, callback_url: &str) -> Result<RequestToken, JiraError> {
        let params = OAuthParams {
            callback: Some(callback_url),
            ..OAuthParams::default()
        };
        let url = self.endpoint(REQUEST_TOKEN_PATH)?;
        let answer = self
            .send_signed(Method::POST, url, &params)
            .await?
            .success()?;
        let (token, secret) = token_pair(&answer.body)?;
        Ok(RequestToken { token, secret })
    }

    /// Step 2: where the user authorizes the request token in Jira.
    pub fn authorize_url(&self, request_token: &str) -> String {
        format!(
            "{}{AUTHORIZE_PATH}?oauth_token={}",
            self.base_url(),
            percent_encode(request_token)
        )
    }

    /// Step 3: a signed `POST …/oauth/access-token` with `oauth_token` and
    /// `oauth_verifier` (omitted when empty). RSA-SHA1 does not use the request
    /// token secret; it is accepted so callers hand over the pair they stored.
    pub async fn access_token(
        &self,
        request_token: &str,
        request_token_secret: &str,
        verifier: &str,
    ) -> Result<AccessToken, JiraError> {
        let _unused_by_rsa_sha1 = request_token_secret;
        let params = OAuthParams {
            token: Some(request_token),
            verifier: Some(verifier).filter(|verifier| !verifier.is_empty()),
            ..OAuthParams::default()
        };
        let url = self.endpoint(ACCESS_TOKEN_PATH)?;
        let answer = self
            .send_signed(Method::POST, url, &params)
            .await?
            .success()?;
        let (token, secret) = token_pair(&answer.body)?;
        Ok(AccessToken { token, secret })
    }
}

/// `oauth_token` and `oauth_token_secret` of a form-encoded token answer.
fn token_pair(body: &str) -> Result<(String, String), JiraError> {
    let pairs = form::parse(body);
    if let Some(problem) = form::get(&pairs, "oauth_problem") {
        return Err(JiraError::refused(problem));
    }
    match (
        form::get(&pairs, "oauth_token"),
        form::get(&pairs, "oauth_token_secret"),
    ) {
        (Some(token), Some(secret)) if !token.is_empty() => {
            Ok((token.to_owned(), secret.to_owned()))
        }
        _ => Err(JiraError::InvalidResponse {
            reason: "the token answer lacks oauth_token or oauth_token_secret".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers_without_both_parts_are_invalid() {
        assert!(token_pair("oauth_token=a&oauth_token_secret=b").is_ok());
        for body in [
            "",
            "oauth_token=a",
            "oauth_token_secret=b",
            "<html>",
            "oauth_token=&oauth_token_secret=b",
        ] {
            assert!(
                matches!(token_pair(body), Err(JiraError::InvalidResponse { .. })),
                "case {body:?}"
            );
        }
        assert!(matches!(
            token_pair("oauth_problem=token_expired"),
            Err(JiraError::Refused { .. })
        ));
    }

    #[test]
    fn tokens_never_show_in_debug_output() {
        let token = AccessToken {
            token: "tok-123".into(),
            secret: "sec-456".into(),
        };
        let debug = format!("{token:?}");
        assert!(
            !debug.contains("tok-123") && !debug.contains("sec-456"),
            "{debug}"
        );
    }
}
