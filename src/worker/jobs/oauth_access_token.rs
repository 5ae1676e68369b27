//! `jira_server.oauth_access_token`: the job that exchanges an authorized
//! OAuth 1.0a request token (sent by the OAuth callback and `oauth finish`).

use serde::{Deserialize, Serialize};

use crate::integration::messages;
use crate::queue::job::Job;

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
    const TYPE: &'static str = messages::OAUTH_ACCESS_TOKEN;
    const SHAPE: &'static str = r#"{"oauth_token":"…","oauth_verifier":"…"}"#;

    fn validate(&self) -> Result<(), String> {
        if self.oauth_token.is_empty() {
            return Err("oauth_token is empty".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::handler::{Failure, Outcome};

    #[test]
    fn the_access_token_job_falls_back_to_the_token_as_verifier() {
        let job =
            OauthAccessToken::parse(br#"{"oauth_token":"t","oauth_verifier":""}"#).expect("parses");
        assert_eq!(job.verifier(), "t");
        let job = OauthAccessToken::parse(br#"{"oauth_token":"t","oauth_verifier":"v"}"#)
            .expect("parses");
        assert_eq!(job.verifier(), "v");
    }

    #[test]
    fn an_empty_token_is_malformed() {
        let failure = OauthAccessToken::parse(br#"{"oauth_token":""}"#).expect_err("empty token");
        assert!(
            matches!(failure, Failure::Permanent { outcome, .. } if outcome == Outcome::MALFORMED),
            "{failure:?}"
        );
        assert!(
            failure.to_string().contains("oauth_token is empty"),
            "{failure}"
        );
    }
}
