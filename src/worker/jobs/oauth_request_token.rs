//! `jira_server.oauth_request_token`: the job that fetches an OAuth 1.0a
//! request token for a session `oauth start` recorded.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::integration::messages;
use crate::queue::job::Job;

/// `jira_server.oauth_request_token`: fetch a request token for a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OauthRequestToken {
    /// The session, recorded by `oauth start`.
    pub session_id: Uuid,
}

impl Job for OauthRequestToken {
    const TYPE: &'static str = messages::OAUTH_REQUEST_TOKEN;
    const SHAPE: &'static str = r#"{"session_id":"<uuid>"}"#;
}
