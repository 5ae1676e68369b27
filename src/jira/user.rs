//! Jira user lookup — Data Center's `GET /rest/api/2/user` by name or key, Jira
//! Cloud's `GET /rest/api/3/user?accountId=` (docs/reference.md §11.5) — for
//! assignees whose webhook payload hides the email address.

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
    /// A Jira Cloud user's `accountId` (`/rest/api/3/user?accountId=`).
    AccountId(&'a str),
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
    /// `GET /rest/api/2/user` (Cloud's `/rest/api/3/user` for an `accountId`);
    /// `None` when Jira has no such user (404).
    pub async fn get_user(&self, user: UserRef<'_>) -> Result<Option<JiraUser>, JiraError> {
        let path = match user {
            UserRef::AccountId(_) => "/rest/api/3/user",
            UserRef::Username(_) | UserRef::Key(_) => "/rest/api/2/user",
        };
        let mut url = self.endpoint(path)?;
        match user {
            UserRef::Username(name) => url.query_pairs_mut().append_pair("username", name),
            UserRef::Key(key) => url.query_pairs_mut().append_pair("key", key),
            UserRef::AccountId(id) => url.query_pairs_mut().append_pair("accountId", id),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cloud_user_reads_without_a_name_and_a_hidden_email_reads_as_none() {
        let user: JiraUser = serde_json::from_str(
            r#"{"accountId":"5b10ac8d82e05b22cc7d4ef5","displayName":"Mia","active":true}"#,
        )
        .expect("a Cloud user reads");
        assert_eq!(user.name, "");
        assert_eq!(user.account_id.as_deref(), Some("5b10ac8d82e05b22cc7d4ef5"));
        assert_eq!(user.email_address, None);
    }
}
