//! Typed jobs (docs/reference.md §4, §6): one serde struct per job type, carrying
//! its type name, used by the producer (CLI commands, the ingress's OAuth
//! callback, the reconcile scheduler) and by the worker that consumes it.
//! Modelled on crates.io's `BackgroundJob`.

use lapin::BasicProperties;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::handler::{Failure, Outcome};
use super::message::job_properties;

/// A job: its routing key and message `type` is [`Job::TYPE`], its body the
/// struct as JSON.
pub trait Job: Serialize + DeserializeOwned + Send + Sync {
    /// Routing key and message type, e.g. `jira_server.reconcile`.
    const TYPE: &'static str;
    /// The body's shape, for the error about a malformed one.
    const SHAPE: &'static str;

    /// Checks what serde cannot; `Err` says what is wrong.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    /// The message to publish: its new id, body and properties.
    fn to_message(&self) -> (Uuid, Vec<u8>, BasicProperties) {
        let (id, properties) = job_properties(Self::TYPE);
        // A struct of strings and numbers always serializes.
        let body = serde_json::to_vec(self).unwrap_or_default();
        (id, body, properties)
    }

    /// Parses a body; a permanent [`Outcome::MALFORMED`] failure when it is not
    /// [`Job::SHAPE`].
    fn parse(body: &[u8]) -> Result<Self, Failure> {
        let malformed = |detail: String| {
            Failure::permanent(
                Outcome::MALFORMED,
                anyhow::anyhow!("the job body is not {}: {detail}", Self::SHAPE),
            )
        };
        let job: Self =
            serde_json::from_slice(body).map_err(|error| malformed(error.to_string()))?;
        job.validate().map_err(malformed)?;
        Ok(job)
    }
}

/// `jira_server.oauth_request_token`: fetch a request token for a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OauthRequestToken {
    /// The session, recorded by `oauth start`.
    pub session_id: Uuid,
}

impl Job for OauthRequestToken {
    const TYPE: &'static str = "jira_server.oauth_request_token";
    const SHAPE: &'static str = r#"{"session_id":"<uuid>"}"#;
}

/// `jira_server.oauth_access_token`: exchange an authorized request token.
/// Sent by the OAuth callback (its query is the body) and `oauth finish`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OauthAccessToken {
    /// The request token, as the callback received it.
    pub oauth_token: String,
    /// The verifier; absent or empty means "use `oauth_token`", which Jira Server accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_verifier: Option<String>,
}

impl std::fmt::Debug for OauthAccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OauthAccessToken { oauth_token: [redacted], oauth_verifier: [redacted] }")
    }
}

impl OauthAccessToken {
    /// The verifier to sign the exchange with.
    pub fn verifier(&self) -> &str {
        self.oauth_verifier
            .as_deref()
            .filter(|verifier| !verifier.is_empty())
            .unwrap_or(&self.oauth_token)
    }
}

impl Job for OauthAccessToken {
    const TYPE: &'static str = "jira_server.oauth_access_token";
    const SHAPE: &'static str = r#"{"oauth_token":"…","oauth_verifier":"…"}"#;

    fn validate(&self) -> Result<(), String> {
        if self.oauth_token.is_empty() {
            return Err("oauth_token is empty".into());
        }
        Ok(())
    }
}

/// `jira_server.oauth2_token`: exchange an OAuth 2.0 authorization code, or
/// record that Jira refused (`error`). Sent by the OAuth 2.0 callback, its query
/// being the body.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Oauth2Token {
    /// The `state` of the session, as jirasync issued it.
    pub state: String,
    /// The authorization code; absent when Jira sent `error` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Jira's `error` (e.g. `access_denied`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Jira's `error_description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

impl std::fmt::Debug for Oauth2Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oauth2Token")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Job for Oauth2Token {
    const TYPE: &'static str = "jira_server.oauth2_token";
    const SHAPE: &'static str = r#"{"state":"…","code":"…"}"#;

    fn validate(&self) -> Result<(), String> {
        if self.state.is_empty() {
            return Err("state is empty".into());
        }
        if self.code.as_deref().is_none_or(str::is_empty) && self.error.is_none() {
            return Err("neither code nor error".into());
        }
        Ok(())
    }
}

/// `jira_server.reconcile`: re-read an integration's recently updated linked issues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconcile {
    /// The integration to reconcile.
    pub integration_id: i64,
    /// Search from this time (ms since the epoch) instead of the last reconciliation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
}

impl Job for Reconcile {
    const TYPE: &'static str = "jira_server.reconcile";
    const SHAPE: &'static str = r#"{"integration_id":…,"since_ms":…}"#;
}

/// Every job type, routed to `P.jobs`; the worker's dispatcher handles each.
pub const JOB_TYPES: [&str; 4] = [
    OauthRequestToken::TYPE,
    OauthAccessToken::TYPE,
    Oauth2Token::TYPE,
    Reconcile::TYPE,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_round_trip_and_leave_absent_options_out() {
        let job = Reconcile {
            integration_id: 7,
            since_ms: None,
        };
        let (_, body, properties) = job.to_message();
        assert_eq!(body, br#"{"integration_id":7}"#);
        assert_eq!(
            super::super::message::message_type(&properties),
            Reconcile::TYPE
        );
        assert_eq!(Reconcile::parse(&body).expect("parses"), job);
    }

    #[test]
    fn malformed_bodies_are_permanent_and_name_the_shape() {
        for (body, says) in [
            (&b"nope"[..], r#"{"integration_id""#),
            (br#"{"oauth_token":""}"#, "oauth_token is empty"),
        ] {
            let failure = match body.starts_with(b"{") {
                true => OauthAccessToken::parse(body).expect_err("empty token"),
                false => Reconcile::parse(body).expect_err("not JSON"),
            };
            assert!(
                matches!(
                    failure,
                    Failure::Permanent {
                        outcome: Outcome::MALFORMED,
                        ..
                    }
                ),
                "{failure:?}"
            );
            assert!(failure.to_string().contains(says), "{failure}");
        }
    }

    #[test]
    fn the_access_token_job_falls_back_to_the_token_as_verifier() {
        let job =
            OauthAccessToken::parse(br#"{"oauth_token":"t","oauth_verifier":""}"#).expect("parses");
        assert_eq!(job.verifier(), "t");
        let job = OauthAccessToken::parse(br#"{"oauth_token":"t","oauth_verifier":"v"}"#)
            .expect("parses");
        assert_eq!(job.verifier(), "v");
    }
}
