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

/// Whose authorization server an OAuth 2.0 session's code is exchanged at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oauth2Server {
    /// The Jira Data Center's own (an External application link; flow `oauth2`).
    Jira,
    /// Atlassian's, for a Jira Cloud OAuth 2.0 (3LO) app (flow `oauth2_cloud`,
    /// docs/reference.md §11.2).
    Atlassian,
}

impl Oauth2Server {
    /// `oauth_sessions.flow` of a session of this server.
    pub const fn flow(self) -> &'static str {
        match self {
            Self::Jira => OAUTH2,
            Self::Atlassian => OAUTH2_CLOUD,
        }
    }
}

/// What an OAuth 2.0 session holds. `Debug` shows the client id only.
#[derive(Clone)]
pub struct OAuth2 {
    /// Whose authorization server issues the code.
    pub server: Oauth2Server,
    /// The application link's (or Cloud app's) client id.
    pub client_id: String,
    /// The client secret. Secret.
    pub client_secret: Option<String>,
    /// The scope asked for.
    pub scope: Option<String>,
    /// The PKCE verifier (Data Center only: Atlassian documents no PKCE). Secret.
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
            .field("server", &self.server)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The flow of a session read without knowing it.
#[derive(Debug, Clone)]
pub enum Flow {
    /// OAuth 1.0a (`oauth_sessions.flow` `oauth1`).
    OAuth1(OAuth1),
    /// OAuth 2.0 (`oauth2`, or `oauth2_cloud` for Jira Cloud).
    OAuth2(OAuth2),
}

impl Flow {
    /// `oauth1`, `oauth2` or `oauth2_cloud`, as stored and shown.
    pub fn name(&self) -> &'static str {
        match self {
            Self::OAuth1(_) => "oauth1",
            Self::OAuth2(flow) => flow.server.flow(),
        }
    }
}

/// `oauth_sessions.flow` of a Data Center OAuth 2.0 session.
pub const OAUTH2: &str = "oauth2";
/// `oauth_sessions.flow` of a Jira Cloud OAuth 2.0 (3LO) session.
pub const OAUTH2_CLOUD: &str = "oauth2_cloud";

/// One session of flow `F` ([`OAuth1`], [`OAuth2`], or [`Flow`] when read
/// without knowing it). `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct Session<F> {
    /// Session id.
    pub id: Uuid,
    /// Jira's base URL; for a Jira Cloud session the `--site` it connects, or
    /// empty when none was given.
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
    /// what is useless without them). A Jira Cloud session shows its `site`
    /// (`null` without `--site`) instead of a base URL and TLS setting.
    pub fn public_json(&self) -> Value {
        let (link, id) = match &self.flow {
            Flow::OAuth1(flow) => ("consumer_key", &flow.consumer_key),
            Flow::OAuth2(flow) => ("client_id", &flow.client_id),
        };
        let mut json = json!({
            "session_id": self.id,
            "flow": self.flow.name(),
            "state": self.state.as_str(),
            link: id,
            "authorize_url": self.authorize_url,
            "error": self.error,
            "integration_id": self.integration_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        });
        if self.is_cloud() {
            json["site"] = json!((!self.base_url.is_empty()).then_some(&self.base_url));
        } else {
            json["base_url"] = json!(self.base_url);
            json["verify_ssl"] = json!(self.verify_ssl);
        }
        json
    }

    /// Whether this is a Jira Cloud OAuth 2.0 (3LO) session.
    pub fn is_cloud(&self) -> bool {
        matches!(&self.flow, Flow::OAuth2(flow) if flow.server == Oauth2Server::Atlassian)
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
            server: Oauth2Server::Jira,
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
        let mut cloud = session(Flow::OAuth2(OAuth2 {
            server: Oauth2Server::Atlassian,
            client_id: "app".into(),
            client_secret: Some("cs".into()),
            scope: None,
            code_verifier: None,
        }));
        cloud.base_url = String::new();
        let three = cloud.public_json();
        assert_eq!(three["flow"], "oauth2_cloud");
        assert_eq!(three["site"], Value::Null);
        assert!(three.get("base_url").is_none(), "{three}");
        cloud.base_url = "https://acme.atlassian.net".into();
        assert_eq!(cloud.public_json()["site"], "https://acme.atlassian.net");
        for shown in [
            one.to_string(),
            two.to_string(),
            three.to_string(),
            format!("{cloud:?}"),
            format!("{:?}", session(oauth1())),
            format!("{:?}", session(oauth2())),
        ] {
            for secret in ["PRIVATE KEY", "rts", "\"cs\"", "\"cv\""] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
        }
    }
}
