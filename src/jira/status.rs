//! Jira Server's statuses (`GET /rest/api/2/status`), for inbound status sync:
//! which status ids are in the `done` category.

use reqwest::Method;
use serde::Deserialize;

use super::client::JiraClient;
use super::error::JiraError;

/// One status as `GET /rest/api/2/status` returns it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JiraStatus {
    /// The status id, as changelog items name it in `from` / `to`.
    pub id: String,
    /// The display name.
    #[serde(default)]
    pub name: String,
    /// Its category (`new`, `indeterminate`, `done`).
    #[serde(default)]
    pub status_category: Option<StatusCategory>,
}

/// A status category.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct StatusCategory {
    /// `new`, `indeterminate` or `done`.
    pub key: String,
}

impl JiraStatus {
    /// Whether the status is in the `done` category.
    pub fn is_done(&self) -> bool {
        self.status_category
            .as_ref()
            .is_some_and(|category| category.key == "done")
    }
}

impl JiraClient {
    /// `GET /rest/api/2/status` (Cloud: `/rest/api/3/status`): every status of the instance.
    pub async fn get_statuses(&self) -> Result<Vec<JiraStatus>, JiraError> {
        let url = self.rest_endpoint("/status")?;
        let answer = self.call(Method::GET, url, None).await?.success()?;
        serde_json::from_str(&answer.body).map_err(|error| JiraError::InvalidResponse {
            reason: format!("statuses are not the expected JSON: {error}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_done_category_is_done() {
        let statuses: Vec<JiraStatus> = serde_json::from_str(
            r#"[{"id":"1","name":"Open","statusCategory":{"id":2,"key":"new"}},
                {"id":"10001","name":"Done","statusCategory":{"id":3,"key":"done"}},
                {"id":"7","name":"Odd"}]"#,
        )
        .expect("statuses parse");
        let done: Vec<&str> = statuses
            .iter()
            .filter(|s| s.is_done())
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(done, ["10001"]);
    }
}
