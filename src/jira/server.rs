//! What jirasync asks Jira about itself: `GET /rest/api/2/serverInfo` (the version,
//! which decides the webhook API) and `GET /rest/api/2/myself` (whose token a
//! personal access token is).

use reqwest::Method;
use serde::Deserialize;

use super::client::JiraClient;
use super::error::JiraError;
use super::user::JiraUser;

/// A Jira's `serverInfo`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServerInfo {
    /// e.g. `10.3.1`.
    #[serde(default)]
    pub version: String,
    /// e.g. `[10, 3, 1]`.
    #[serde(default)]
    pub version_numbers: Vec<u32>,
    /// `Server`, `DataCenter` or `Cloud`.
    #[serde(default)]
    pub deployment_type: Option<String>,
}

impl ServerInfo {
    /// The major version; 0 when Jira did not say.
    pub fn major(&self) -> u32 {
        self.version_numbers.first().copied().unwrap_or_else(|| {
            self.version
                .split('.')
                .next()
                .and_then(|major| major.parse().ok())
                .unwrap_or(0)
        })
    }
}

impl JiraClient {
    /// `GET /rest/api/2/serverInfo`.
    pub async fn server_info(&self) -> Result<ServerInfo, JiraError> {
        let url = self.endpoint("/rest/api/2/serverInfo")?;
        let answer = self.call(Method::GET, url, None).await?.success()?;
        serde_json::from_str(&answer.body).map_err(|error| JiraError::InvalidResponse {
            reason: format!("serverInfo is not the expected JSON: {error}"),
        })
    }

    /// `GET /rest/api/2/myself`: the user the credentials act as.
    pub async fn myself(&self) -> Result<JiraUser, JiraError> {
        let url = self.endpoint("/rest/api/2/myself")?;
        let answer = self.call(Method::GET, url, None).await?.success()?;
        serde_json::from_str(&answer.body).map_err(|error| JiraError::InvalidResponse {
            reason: format!("myself is not the expected JSON: {error}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_major_version_comes_from_the_numbers_else_the_text() {
        let info = |json: &str| serde_json::from_str::<ServerInfo>(json).expect("parses");
        assert_eq!(
            info(r#"{"version":"10.3.1","versionNumbers":[10,3,1]}"#).major(),
            10
        );
        assert_eq!(info(r#"{"version":"9.12.2"}"#).major(), 9);
        assert_eq!(info("{}").major(), 0);
    }
}
