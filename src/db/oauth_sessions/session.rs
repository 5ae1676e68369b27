//! One row of `oauth_sessions`, typed: a [`Session`] of its flow — OAuth 1.0a
//! ([`OAuth1`]: an application link's key, the request token) or OAuth 2.0
//! ([`OAuth2`]: a client, the PKCE verifier) — in one of the [`State`]s. Read by
//! the queries beside it; the OAuth jobs and `jirasync oauth` take the flow
//! they handle.

use std::error::Error as StdError;
use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio_postgres::types::{FromSql, Type};
use uuid::Uuid;

/// `oauth_sessions.state` (docs/reference.md §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Created; the request-token job has not succeeded yet (OAuth 1.0a only).
    Pending,
    /// A person must open the authorize URL.
    AwaitingAuthorization,
    /// The access-token or token job is working on it.
    Authorizing,
    /// The integration exists and its webhook is registered.
    Installed,
    /// A step failed for good; `error` says why and what to check.
    Failed,
}

impl State {
    /// Every state, as the table's CHECK lists them.
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::AwaitingAuthorization,
        Self::Authorizing,
        Self::Installed,
        Self::Failed,
    ];

    /// The stored name, as `oauth status` shows it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::AwaitingAuthorization => "awaiting_authorization",
            Self::Authorizing => "authorizing",
            Self::Installed => "installed",
            Self::Failed => "failed",
        }
    }

    /// The state a stored name names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == name)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'a> FromSql<'a> for State {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        let name = <&str as FromSql>::from_sql(ty, raw)?;
        Self::parse(name).ok_or_else(|| format!("unknown OAuth session state {name:?}").into())
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

/// What an OAuth 1.0a session holds. `Debug` shows the consumer key only.
#[derive(Clone)]
pub struct OAuth1 {
    /// Consumer key of the application link.
    pub consumer_key: String,
    /// PEM private key of the application link. Secret.
    pub private_key: String,
    /// The request token, once fetched. A temporary credential.
    pub request_token: Option<String>,
    /// Its secret. Secret.
    pub request_token_secret: Option<String>,
}

/// What an OAuth 2.0 session holds. `Debug` shows the client id only.
#[derive(Clone)]
pub struct OAuth2 {
    /// The application link's client id.
    pub client_id: String,
    /// The client secret. Secret.
    pub client_secret: Option<String>,
    /// The scope asked for.
    pub scope: Option<String>,
    /// The PKCE verifier. Secret.
    pub code_verifier: Option<String>,
}

impl fmt::Debug for OAuth1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth1")
            .field("consumer_key", &self.consumer_key)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for OAuth2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The flow of a session read without knowing it.
#[derive(Debug, Clone)]
pub enum Flow {
    /// OAuth 1.0a (`oauth_sessions.flow` `oauth1`).
    OAuth1(OAuth1),
    /// OAuth 2.0 (`oauth2`).
    OAuth2(OAuth2),
}

impl Flow {
    /// `oauth1` or `oauth2`, as stored and shown.
    pub fn name(&self) -> &'static str {
        match self {
            Self::OAuth1(_) => "oauth1",
            Self::OAuth2(_) => OAUTH2,
        }
    }
}

/// `oauth_sessions.flow` of an OAuth 2.0 session.
pub const OAUTH2: &str = "oauth2";

/// One session of flow `F` ([`OAuth1`], [`OAuth2`], or [`Flow`] when read
/// without knowing it). `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct Session<F> {
    /// Session id.
    pub id: Uuid,
    /// Jira's base URL.
    pub base_url: String,
    /// Whether to verify Jira's TLS certificate.
    pub verify_ssl: bool,
    /// Where it is.
    pub state: State,
    /// Where the person authorizes.
    pub authorize_url: Option<String>,
    /// Why it failed (or, while pending, the last passing failure).
    pub error: Option<String>,
    /// The integration it installed (set once the access token is stored).
    pub integration_id: Option<i64>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// What its flow holds.
    pub flow: F,
}

/// A session of either flow.
pub type OauthSession = Session<Flow>;
/// An OAuth 1.0a session.
pub type Oauth1Session = Session<OAuth1>;
/// An OAuth 2.0 session.
pub type Oauth2Session = Session<OAuth2>;

impl<F> Session<F> {
    /// The session holding what `take` makes of its flow; `None` when `take`
    /// finds none.
    fn try_map_flow<G>(self, take: impl FnOnce(F) -> Option<G>) -> Option<Session<G>> {
        let flow = take(self.flow)?;
        Some(Session {
            id: self.id,
            base_url: self.base_url,
            verify_ssl: self.verify_ssl,
            state: self.state,
            authorize_url: self.authorize_url,
            error: self.error,
            integration_id: self.integration_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
            flow,
        })
    }
}

impl OauthSession {
    /// The session as an OAuth 1.0a one; `None` when it is an OAuth 2.0 one.
    pub fn into_oauth1(self) -> Option<Oauth1Session> {
        self.try_map_flow(|flow| match flow {
            Flow::OAuth1(flow) => Some(flow),
            Flow::OAuth2(_) => None,
        })
    }

    /// The session as an OAuth 2.0 one; `None` when it is an OAuth 1.0a one.
    pub fn into_oauth2(self) -> Option<Oauth2Session> {
        self.try_map_flow(|flow| match flow {
            Flow::OAuth2(flow) => Some(flow),
            Flow::OAuth1(_) => None,
        })
    }

    /// The session as `jirasync oauth status` shows it: no private key, client
    /// secret, verifier, token or token secret (the authorize URL carries only
    /// what is useless without them).
    pub fn public_json(&self) -> Value {
        let (link, id) = match &self.flow {
            Flow::OAuth1(flow) => ("consumer_key", &flow.consumer_key),
            Flow::OAuth2(flow) => ("client_id", &flow.client_id),
        };
        json!({
            "session_id": self.id,
            "flow": self.flow.name(),
            "state": self.state.as_str(),
            "base_url": self.base_url,
            link: id,
            "verify_ssl": self.verify_ssl,
            "authorize_url": self.authorize_url,
            "error": self.error,
            "integration_id": self.integration_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(flow: Flow) -> OauthSession {
        Session {
            id: Uuid::nil(),
            base_url: "https://jira.example.com".into(),
            verify_ssl: true,
            state: State::AwaitingAuthorization,
            authorize_url: None,
            error: None,
            integration_id: None,
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
            flow,
        }
    }

    fn oauth1() -> Flow {
        Flow::OAuth1(OAuth1 {
            consumer_key: "ck".into(),
            private_key: "-----BEGIN PRIVATE KEY-----".into(),
            request_token: Some("rt".into()),
            request_token_secret: Some("rts".into()),
        })
    }

    fn oauth2() -> Flow {
        Flow::OAuth2(OAuth2 {
            client_id: "cid".into(),
            client_secret: Some("cs".into()),
            scope: Some("ADMIN".into()),
            code_verifier: Some("cv".into()),
        })
    }

    #[test]
    fn states_are_stored_and_shown_by_the_names_the_table_allows() {
        let names: Vec<_> = State::ALL.into_iter().map(State::as_str).collect();
        assert_eq!(
            names,
            [
                "pending",
                "awaiting_authorization",
                "authorizing",
                "installed",
                "failed"
            ]
        );
        for state in State::ALL {
            assert_eq!(State::parse(state.as_str()), Some(state), "{state}");
            assert_eq!(state.to_string(), state.as_str());
        }
        assert_eq!(State::parse("done"), None);
    }

    #[test]
    fn a_session_is_taken_as_its_own_flow_only() {
        let one = session(oauth1()).into_oauth1().expect("OAuth 1.0a");
        assert_eq!(one.flow.consumer_key, "ck");
        assert!(session(oauth1()).into_oauth2().is_none());
        let two = session(oauth2()).into_oauth2().expect("OAuth 2.0");
        assert_eq!(two.flow.client_id, "cid");
        assert!(session(oauth2()).into_oauth1().is_none());
    }

    #[test]
    fn status_names_the_flow_s_link_and_no_secret() {
        let one = session(oauth1()).public_json();
        assert_eq!(one["flow"], "oauth1");
        assert_eq!(one["consumer_key"], "ck");
        assert_eq!(one["state"], "awaiting_authorization");
        let two = session(oauth2()).public_json();
        assert_eq!(two["flow"], "oauth2");
        assert_eq!(two["client_id"], "cid");
        assert!(two.get("consumer_key").is_none());
        for shown in [
            one.to_string(),
            two.to_string(),
            format!("{:?}", session(oauth1())),
            format!("{:?}", session(oauth2())),
        ] {
            for secret in ["PRIVATE KEY", "rts", "\"cs\"", "\"cv\""] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
        }
    }
}
