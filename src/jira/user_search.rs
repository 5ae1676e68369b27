//! Jira Cloud's user search (`GET /rest/api/3/user/search`), which
//! `integration migrate` asks for the Cloud account of a Data Center user's
//! verified email (docs/reference.md §11.7).

use reqwest::Method;
use serde::Deserialize;

use super::client::JiraClient;
use super::error::JiraError;

/// A Cloud user as `GET /rest/api/3/user/search` lists it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CloudUser {
    /// The account id.
    pub account_id: String,
    /// The email address; absent or empty when the user's profile visibility
    /// hides it.
    #[serde(default)]
    pub email_address: Option<String>,
    /// The display name.
    #[serde(default)]
    pub display_name: Option<String>,
}

impl CloudUser {
    /// The email address, unless hidden.
    pub fn email(&self) -> Option<&str> {
        self.email_address
            .as_deref()
            .map(str::trim)
            .filter(|email| !email.is_empty())
    }
}

impl JiraClient {
    /// `GET /rest/api/3/user/search?query=…`: the Cloud users whose display name
    /// or email starts with `query` (Atlassian matches prefixes).
    pub async fn search_cloud_users(&self, query: &str) -> Result<Vec<CloudUser>, JiraError> {
        let mut url = self.endpoint("/rest/api/3/user/search")?;
        url.query_pairs_mut().append_pair("query", query);
        let answer = self.call(Method::GET, url, None).await?.success()?;
        serde_json::from_str(&answer.body).map_err(|error| JiraError::InvalidResponse {
            reason: format!("the user search is not the expected JSON: {error}"),
        })
    }
}
