//! `integration_credentials`: how jirasync authenticates to an integration's
//! Jira — one auth method per integration (docs/reference.md §7) — and the
//! [`Auth`] a client is built with.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::jira::{Auth, KeyError, Signer};

/// How an OAuth 2.0 access token is refreshed ahead of its expiry: this long
/// before, at most a quarter of its lifetime.
const REFRESH_AHEAD: Duration = Duration::from_secs(60);

/// How long before its expiry a service account's token is replaced.
const RENEW_AHEAD: TimeDelta = TimeDelta::minutes(5);

/// The auth method of an integration, as `integration_credentials.auth_method`
/// and `integration status` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// OAuth 1.0a, RSA-SHA1, through an application link.
    OAuth1,
    /// OAuth 2.0 through an incoming *External application* link (Jira 8.22+).
    OAuth2,
    /// A personal access token (Jira 8.14+).
    Pat,
    /// Jira Cloud: an Atlassian account's email and API token (Basic auth).
    ApiToken,
    /// Jira Cloud: a service account's OAuth 2.0 client credentials.
    ClientCredentials,
}

impl AuthMethod {
    /// `oauth1`, `oauth2` or `pat`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OAuth1 => "oauth1",
            Self::OAuth2 => "oauth2",
            Self::Pat => "pat",
            Self::ApiToken => "api_token",
            Self::ClientCredentials => "client_credentials",
        }
    }

    /// The method a stored name names (`oauth1` for anything else: older rows).
    pub fn parse(name: &str) -> Self {
        match name {
            "oauth2" => Self::OAuth2,
            "pat" => Self::Pat,
            "api_token" => Self::ApiToken,
            "client_credentials" => Self::ClientCredentials,
            _ => Self::OAuth1,
        }
    }
}

/// The credentials of an integration. Secret: `Debug` shows the method and the
/// non-secret identifiers only.
#[derive(Clone)]
pub enum Credentials {
    /// An OAuth 1.0a application link's consumer key and private key, and the
    /// access token once there is one.
    OAuth1 {
        /// Consumer key of the application link.
        consumer_key: String,
        /// PEM private key.
        private_key: String,
        /// OAuth access token, once there is one.
        access_token: Option<String>,
        /// Its secret.
        access_token_secret: Option<String>,
    },
    /// An OAuth 2.0 client and the tokens the install obtained.
    OAuth2 {
        /// The application link's client id.
        client_id: String,
        /// Its client secret.
        client_secret: String,
        /// The access token.
        access_token: String,
        /// The refresh token (rotated by every refresh).
        refresh_token: Option<String>,
        /// When the access token expires.
        expires_at: Option<DateTime<Utc>>,
        /// When it was obtained.
        refreshed_at: Option<DateTime<Utc>>,
    },
    /// A personal access token.
    Pat {
        /// The token.
        token: String,
    },
    /// Jira Cloud: an Atlassian account's API token, sent as Basic
    /// `email:token` (docs/reference.md §11.3a).
    ApiToken {
        /// The account's email (not secret).
        email: String,
        /// The API token.
        token: String,
    },
    /// Jira Cloud: a service account's OAuth 2.0 client credentials and the
    /// 60-minute access token they last obtained (§11.3c; no refresh token).
    ClientCredentials {
        /// The credential's client id.
        client_id: String,
        /// Its client secret.
        client_secret: String,
        /// The access token, once one was obtained (empty: none yet).
        access_token: String,
        /// When it expires.
        expires_at: Option<DateTime<Utc>>,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OAuth1 { consumer_key, .. } => f
                .debug_struct("OAuth1")
                .field("consumer_key", consumer_key)
                .finish_non_exhaustive(),
            Self::OAuth2 {
                client_id,
                expires_at,
                ..
            } => f
                .debug_struct("OAuth2")
                .field("client_id", client_id)
                .field("expires_at", expires_at)
                .finish_non_exhaustive(),
            Self::Pat { .. } => f.write_str("Pat { .. }"),
            Self::ApiToken { email, .. } => f
                .debug_struct("ApiToken")
                .field("email", email)
                .finish_non_exhaustive(),
            Self::ClientCredentials {
                client_id,
                expires_at,
                ..
            } => f
                .debug_struct("ClientCredentials")
                .field("client_id", client_id)
                .field("expires_at", expires_at)
                .finish_non_exhaustive(),
        }
    }
}

impl Credentials {
    /// The method.
    pub fn method(&self) -> AuthMethod {
        match self {
            Self::OAuth1 { .. } => AuthMethod::OAuth1,
            Self::OAuth2 { .. } => AuthMethod::OAuth2,
            Self::Pat { .. } => AuthMethod::Pat,
            Self::ApiToken { .. } => AuthMethod::ApiToken,
            Self::ClientCredentials { .. } => AuthMethod::ClientCredentials,
        }
    }

    /// The auth these credentials give; for OAuth 1.0a the access token only
    /// when it is there (an empty one counts as none).
    pub fn auth(&self) -> Result<Auth, KeyError> {
        Ok(match self {
            Self::OAuth1 {
                consumer_key,
                private_key,
                access_token,
                ..
            } => {
                let auth = Auth::oauth1(Signer::from_pem(consumer_key.clone(), private_key)?);
                match access_token.as_deref() {
                    Some(token) if !token.is_empty() => auth.with_access_token(token),
                    _ => auth,
                }
            }
            Self::OAuth2 { access_token, .. } => Auth::Bearer(access_token.clone()),
            Self::Pat { token } => Auth::Bearer(token.clone()),
            Self::ApiToken { email, token } => Auth::Basic {
                email: email.clone(),
                token: token.clone(),
            },
            Self::ClientCredentials { access_token, .. } => Auth::Bearer(access_token.clone()),
        })
    }

    /// Whether a new access token should be obtained before a call: an OAuth
    /// 2.0 token that expires within [`REFRESH_AHEAD`] (or a quarter of its
    /// lifetime, when that is shorter) is refreshed; a service account's token
    /// that is missing or expires within [`RENEW_AHEAD`] is obtained again (it
    /// has no refresh token).
    pub fn expiring(&self, now: DateTime<Utc>) -> bool {
        let (expires_at, refreshed_at) = match self {
            Self::OAuth2 {
                expires_at: Some(expires_at),
                refreshed_at,
                ..
            } => (expires_at, refreshed_at),
            Self::ClientCredentials {
                access_token,
                expires_at,
                ..
            } => {
                return access_token.is_empty()
                    || expires_at.is_none_or(|at| at - RENEW_AHEAD <= now);
            }
            _ => return false,
        };
        let lifetime = refreshed_at.map_or(TimeDelta::MAX, |at| *expires_at - at);
        let ahead = TimeDelta::from_std(REFRESH_AHEAD)
            .unwrap_or(TimeDelta::MAX)
            .min(lifetime / 4);
        *expires_at - ahead <= now
    }

    /// Whether REST calls can be authenticated (an OAuth 1.0a link added without
    /// an access token cannot sign them).
    pub fn can_call_rest(&self) -> bool {
        self.access_token().is_some_and(|token| !token.is_empty())
    }

    /// The token REST calls carry now (the bearer token, or OAuth 1.0a's access token).
    pub fn access_token(&self) -> Option<&str> {
        match self {
            Self::OAuth1 { access_token, .. } => access_token.as_deref(),
            Self::OAuth2 { access_token, .. } => Some(access_token),
            Self::Pat { token } | Self::ApiToken { token, .. } => Some(token),
            Self::ClientCredentials { access_token, .. } => Some(access_token),
        }
    }
}

/// What is stored for an integration: its credentials, and whether Jira
/// refused them for good (an admin must connect it again).
#[derive(Debug, Clone)]
pub struct Stored {
    /// The credentials.
    pub credentials: Credentials,
    /// When Jira refused them, and why; `None` while they work.
    pub needs_reauth: Option<(DateTime<Utc>, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_account_token_is_replaced_when_missing_or_within_five_minutes_of_expiry() {
        let now = Utc::now();
        let service =
            |token: &str, expires_at: Option<DateTime<Utc>>| Credentials::ClientCredentials {
                client_id: "c".into(),
                client_secret: "s".into(),
                access_token: token.into(),
                expires_at,
            };
        let cases = [
            (
                "fresh",
                service("t", Some(now + TimeDelta::minutes(30))),
                false,
            ),
            (
                "expiring",
                service("t", Some(now + TimeDelta::minutes(4))),
                true,
            ),
            (
                "expired",
                service("t", Some(now - TimeDelta::minutes(1))),
                true,
            ),
            ("no expiry", service("t", None), true),
            (
                "no token",
                service("", Some(now + TimeDelta::minutes(30))),
                true,
            ),
            ("a PAT", Credentials::Pat { token: "p".into() }, false),
        ];
        for (name, credentials, expiring) in cases {
            assert_eq!(credentials.expiring(now), expiring, "case {name}");
        }
    }

    fn oauth2(lifetime_s: i64, left_s: i64) -> Credentials {
        let now = Utc::now();
        Credentials::OAuth2 {
            client_id: "c".into(),
            client_secret: "s".into(),
            access_token: "a".into(),
            refresh_token: Some("r".into()),
            expires_at: Some(now + TimeDelta::seconds(left_s)),
            refreshed_at: Some(now + TimeDelta::seconds(left_s - lifetime_s)),
        }
    }

    #[test]
    fn tokens_are_refreshed_a_minute_or_a_quarter_of_their_life_ahead() {
        let now = Utc::now();
        assert!(
            !oauth2(3600, 120).expiring(now),
            "two minutes left of an hour"
        );
        assert!(
            oauth2(3600, 30).expiring(now),
            "half a minute left of an hour"
        );
        assert!(!oauth2(8, 4).expiring(now), "half of a short life left");
        assert!(oauth2(8, 1).expiring(now), "an eighth of a short life left");
        assert!(oauth2(8, -1).expiring(now), "expired");
        let pat = Credentials::Pat { token: "t".into() };
        assert!(!pat.expiring(now));
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let debug = format!("{:?}", oauth2(60, 30));
        assert!(
            !debug.contains("\"s\"") && !debug.contains("\"a\""),
            "{debug}"
        );
        let pat = format!(
            "{:?}",
            Credentials::Pat {
                token: "pat-123".into()
            }
        );
        assert!(!pat.contains("pat-123"), "{pat}");
        let api = format!(
            "{:?}",
            Credentials::ApiToken {
                email: "admin@example.org".into(),
                token: "atl-123".into()
            }
        );
        assert!(
            !api.contains("atl-123") && api.contains("admin@example.org"),
            "{api}"
        );
        let service = format!(
            "{:?}",
            Credentials::ClientCredentials {
                client_id: "cid".into(),
                client_secret: "csec".into(),
                access_token: "tok".into(),
                expires_at: None,
            }
        );
        assert!(
            !service.contains("csec") && !service.contains("tok"),
            "{service}"
        );
    }
}
