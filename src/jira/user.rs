//! Jira Server user lookup (`GET /rest/api/2/user`), for assignees whose
//! webhook payload hides the email address.

use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::client::JiraClient;
use super::error::JiraError;

/// How to name a Jira user in [`JiraClient::get_user`].
#[derive(Debug, Clone, Copy)]
pub enum UserRef<'a> {
    /// The user name (`?username=`).
    Username(&'a str),
    /// The user key (`?key=`), stable across renames.
    Key(&'a str),
}

/// A Jira user as `GET /rest/api/2/user` (Data Center) or `/rest/api/3/user`
/// (Cloud, which has no `name` and no `key`: an `accountId`) returns it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JiraUser {
    /// The user name (Data Center; empty on Cloud).
    #[serde(default)]
    pub name: String,
    /// The account id (Cloud).
    #[serde(default)]
    pub account_id: Option<String>,
    /// The user key.
    #[serde(default)]
    pub key: Option<String>,
    /// The email address; absent or empty when Jira hides it.
    #[serde(default)]
    pub email_address: Option<String>,
    /// The display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Whether the account is active.
    #[serde(default = "active_by_default")]
    pub active: bool,
}

fn active_by_default() -> bool {
    true
}

impl JiraUser {
    /// How Jira's REST API names the user when it assigns: the `accountId` on
    /// Cloud, else the user name.
    pub fn handle(&self) -> &str {
        self.account_id
            .as_deref()
            .filter(|id| !id.is_empty())
            .unwrap_or(&self.name)
    }
}

impl JiraClient {
    /// `GET /rest/api/2/user`; `None` when Jira has no such user (404).
    pub async fn get_user(&self, user: UserRef<'_>) -> Result<Option<JiraUser>, JiraError> {
        let mut url = self.endpoint("/rest/api/2/user")?;
        match user {
            UserRef::Username(name) => url.query_pairs_mut().append_pair("username", name),
            UserRef::Key(key) => url.query_pairs_mut().append_pair("key", key),
        };
        let answer = self.call(Method::GET, url, None).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let answer = answer.success()?;
        serde_json::from_str(&answer.body)
            .map(Some)
            .map_err(|error| JiraError::InvalidResponse {
                reason: format!("user is not the expected JSON: {error}"),
            })
    }
}
