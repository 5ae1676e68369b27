//! How a [`JiraClient`](super::JiraClient) authenticates: one method per
//! integration (docs/reference.md §7) — OAuth 1.0a through an application link,
//! or a bearer token (an OAuth 2.0 access token or a personal access token).
//! Every REST call goes through [`Auth::authorization`].

use std::fmt;

use reqwest::{Method, Url};

use super::error::JiraError;
use super::oauth1_signing::{OAuthParams, Signer};

/// The credentials a client signs or authorizes its requests with. `Debug`
/// never shows a key or token.
#[derive(Clone)]
pub enum Auth {
    /// OAuth 1.0a, RSA-SHA1, through an application link: the install flow's
    /// steps are signed with the consumer key alone, REST calls also with the
    /// access token the flow obtained.
    OAuth1 {
        /// The consumer key and its private key (boxed: an RSA key is large).
        signer: Box<Signer>,
        /// The access token, once there is one. Secret.
        access_token: Option<String>,
    },
    /// `Authorization: Bearer`: an OAuth 2.0 access token or a personal access
    /// token. Secret.
    Bearer(String),
    /// `Authorization: Basic base64(email:token)`: a Jira Cloud API token
    /// (docs/reference.md §11.3a). The token is secret.
    Basic {
        /// The Atlassian account's email.
        email: String,
        /// The API token.
        token: String,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OAuth1 {
                signer,
                access_token,
            } => f
                .debug_struct("OAuth1")
                .field("consumer_key", &signer.consumer_key())
                .field("access_token", &access_token.as_ref().map(|_| "[redacted]"))
                .finish(),
            Self::Bearer(_) => f.write_str("Bearer([redacted])"),
            Self::Basic { email, .. } => f
                .debug_struct("Basic")
                .field("email", email)
                .field("token", &"[redacted]")
                .finish(),
        }
    }
}

impl Auth {
    /// OAuth 1.0a with `signer` and no access token yet (the install flow).
    pub fn oauth1(signer: Signer) -> Self {
        Self::OAuth1 {
            signer: Box::new(signer),
            access_token: None,
        }
    }

    /// The same method, now with `access_token` for REST calls.
    pub fn with_access_token(self, access_token: impl Into<String>) -> Self {
        match self {
            Self::OAuth1 { signer, .. } => Self::OAuth1 {
                signer,
                access_token: Some(access_token.into()),
            },
            Self::Bearer(_) => Self::Bearer(access_token.into()),
            Self::Basic { email, .. } => Self::Basic {
                email,
                token: access_token.into(),
            },
        }
    }

    /// Whether REST calls can be authorized (an OAuth 1.0a access token is there).
    pub fn can_call_rest(&self) -> bool {
        match self {
            Self::OAuth1 { access_token, .. } => access_token.is_some(),
            Self::Bearer(_) | Self::Basic { .. } => true,
        }
    }

    /// The `Authorization` header of one REST call, signed afresh (new nonce and
    /// timestamp): the query parameters of `url` are signed, a JSON body is not
    /// (RFC 5849 §3.4.1.3.1).
    pub(super) fn authorization(&self, method: &Method, url: &Url) -> Result<String, JiraError> {
        match self {
            Self::OAuth1 {
                signer,
                access_token: Some(token),
            } => {
                let params = OAuthParams {
                    token: Some(token),
                    ..OAuthParams::default()
                };
                Ok(signer.authorization_header(method, url, &[], &params)?)
            }
            Self::OAuth1 {
                access_token: None, ..
            } => Err(JiraError::Config(
                "the integration has no OAuth access token to sign REST calls with".to_owned(),
            )),
            Self::Bearer(token) => Ok(bearer(token)),
            Self::Basic { email, token } => Ok(basic(email, token)),
        }
    }

    /// The OAuth 1.0a signer, for the install flow's own steps.
    pub(super) fn signer(&self) -> Result<&Signer, JiraError> {
        match self {
            Self::OAuth1 { signer, .. } => Ok(signer.as_ref()),
            Self::Bearer(_) | Self::Basic { .. } => Err(JiraError::Config(
                "OAuth 1.0a steps need an application link's consumer key and private key"
                    .to_owned(),
            )),
        }
    }
}

/// `Bearer <token>`: the header of an OAuth 2.0 access token or a personal
/// access token.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `Basic base64(email:token)`: the header of a Jira Cloud API token.
pub fn basic(email: &str, token: &str) -> String {
    use base64::Engine as _;
    let pair = format!("{email}:{token}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_token_is_sent_as_basic_email_and_token_and_never_shown() {
        let auth = Auth::Basic {
            email: "admin@example.org".into(),
            token: "atl-secret".into(),
        };
        let url = Url::parse("https://acme.atlassian.net/rest/api/3/myself").expect("url");
        assert_eq!(
            auth.authorization(&Method::GET, &url).expect("header"),
            "Basic YWRtaW5AZXhhbXBsZS5vcmc6YXRsLXNlY3JldA=="
        );
        assert!(!format!("{auth:?}").contains("atl-secret"));
        assert!(auth.can_call_rest());
    }
}
