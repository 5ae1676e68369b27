//! `jira_server.oauth2_token`: the job that exchanges an OAuth 2.0
//! authorization code, or records that Jira refused (sent by the OAuth 2.0 callback).

use serde::{Deserialize, Serialize};

use crate::integration::messages;
use crate::queue::job::Job;

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
    const TYPE: &'static str = messages::OAUTH2_TOKEN;
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
