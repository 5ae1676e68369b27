//! Issue search for reconciliation: Jira Server's `POST /rest/api/2/search`
//! (pages by `startAt`) and Jira Cloud's `POST /rest/api/3/search/jql` (pages by
//! `nextPageToken`; the old search answers `410` there): the assignee, status
//! and update time of the issues a JQL query selects.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::client::JiraClient;
use super::error::JiraError;

/// The fields reconciliation reads.
const FIELDS: [&str; 3] = ["assignee", "status", "updated"];
/// Issues asked for per page (Jira caps it, usually at 1000, and may return fewer).
pub const PAGE_SIZE: u32 = 100;
/// The most issues one search reads: reconciliation asks for 100 keys at a time,
/// so a Jira claiming more is answering something else.
pub const MAX_ISSUES: usize = 10_000;

/// One issue of a search answer.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct FoundIssue {
    /// The issue key, e.g. `PROJ-1`.
    pub key: String,
    /// The requested fields, as Jira wrote them.
    #[serde(default)]
    pub fields: Map<String, Value>,
}

/// One page of a search answer.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SearchPage {
    /// Index of the first issue of this page.
    #[serde(default)]
    pub start_at: u32,
    /// How many issues match in all.
    #[serde(default)]
    pub total: u32,
    /// The issues of this page.
    #[serde(default)]
    pub issues: Vec<FoundIssue>,
}

/// One page of a Jira Cloud `search/jql` answer.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JqlPage {
    /// The issues of this page (Cloud may return fewer than asked).
    #[serde(default)]
    pub issues: Vec<FoundIssue>,
    /// The token of the next page; none on the last one.
    #[serde(default)]
    pub next_page_token: Option<String>,
    /// Whether this is the last page (absent: decided by the token).
    #[serde(default)]
    pub is_last: Option<bool>,
}

/// The fields Cloud reconciliation reads (docs/reference.md §11): the assignee
/// and its time; a search shows no transition.
const CLOUD_FIELDS: [&str; 2] = ["assignee", "updated"];

impl JiraClient {
    /// Jira Cloud's `POST /rest/api/3/search/jql`: the page of the issues `jql`
    /// selects that `next_page_token` names (the first without one).
    pub async fn search_jql(
        &self,
        jql: &str,
        next_page_token: Option<&str>,
    ) -> Result<JqlPage, JiraError> {
        let url = self.endpoint("/rest/api/3/search/jql")?;
        let mut body = json!({
            "jql": jql,
            "fields": CLOUD_FIELDS,
            "maxResults": PAGE_SIZE,
        });
        if let Some(token) = next_page_token {
            body["nextPageToken"] = Value::String(token.to_owned());
        }
        let answer = self.call(Method::POST, url, Some(&body)).await?.success()?;
        serde_json::from_str(&answer.body).map_err(|error| JiraError::InvalidResponse {
            reason: format!("search/jql result is not the expected JSON: {error}"),
        })
    }

    /// Every issue `jql` selects on Jira Cloud, page after page until a page has
    /// no token or says it is the last; an error (not an endless loop) when a
    /// page hands back the token that asked for it or the issues run past
    /// [`MAX_ISSUES`].
    pub async fn search_all_jql(&self, jql: &str) -> Result<Vec<FoundIssue>, JiraError> {
        let mut issues = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.search_jql(jql, token.as_deref()).await?;
            issues.extend(page.issues);
            if issues.len() > MAX_ISSUES {
                return Err(JiraError::InvalidResponse {
                    reason: format!("the search returned more than {MAX_ISSUES} issues"),
                });
            }
            let next = match (page.is_last, page.next_page_token) {
                (Some(true), _) | (_, None) => return Ok(issues),
                (_, Some(next)) => next,
            };
            if token.as_deref() == Some(next.as_str()) {
                return Err(JiraError::InvalidResponse {
                    reason: "the search did not advance: a page handed back its own token"
                        .to_owned(),
                });
            }
            token = Some(next);
        }
    }

    /// `POST /rest/api/2/search`: one page of the issues `jql` selects.
    pub async fn search(
        &self,
        jql: &str,
        start_at: u32,
        max_results: u32,
    ) -> Result<SearchPage, JiraError> {
        let url = self.endpoint("/rest/api/2/search")?;
        // Without `validateQuery: false`, a key that no longer exists (issue
        // deleted or moved) fails the whole query with 400.
        let body = json!({
            "jql": jql,
            "startAt": start_at,
            "maxResults": max_results,
            "fields": FIELDS,
            "validateQuery": false,
        });
        let answer = self.call(Method::POST, url, Some(&body)).await?.success()?;
        serde_json::from_str(&answer.body).map_err(|error| JiraError::InvalidResponse {
            reason: format!("search result is not the expected JSON: {error}"),
        })
    }

    /// Every issue `jql` selects, page after page; an error (not an endless
    /// loop) when Jira's pages do not start where asked or run past [`MAX_ISSUES`].
    pub async fn search_all(&self, jql: &str) -> Result<Vec<FoundIssue>, JiraError> {
        let mut issues = Vec::new();
        loop {
            let start_at = u32::try_from(issues.len()).unwrap_or(u32::MAX);
            let page = self.search(jql, start_at, PAGE_SIZE).await?;
            if page.start_at != start_at {
                return Err(JiraError::InvalidResponse {
                    reason: format!(
                        "the search did not advance: asked for startAt {start_at}, got {}",
                        page.start_at
                    ),
                });
            }
            let read = page.issues.len();
            issues.extend(page.issues);
            if issues.len() > MAX_ISSUES {
                return Err(JiraError::InvalidResponse {
                    reason: format!("the search returned more than {MAX_ISSUES} issues"),
                });
            }
            if read == 0 || issues.len() >= usize::try_from(page.total).unwrap_or(usize::MAX) {
                return Ok(issues);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_page_parses_with_missing_optional_parts() {
        let page: SearchPage = serde_json::from_str(
            r#"{"startAt":0,"maxResults":100,"total":1,
                "issues":[{"id":"1","key":"P-1","fields":{"assignee":null,"updated":"2024-01-01T10:00:00.000+0000"}},
                          {"key":"P-2"}]}"#,
        )
        .expect("page parses");
        assert_eq!(page.total, 1);
        assert_eq!(page.issues[0].key, "P-1");
        assert!(page.issues[1].fields.is_empty());
    }

    #[test]
    fn a_cloud_page_parses_with_or_without_its_token() {
        let page: JqlPage = serde_json::from_str(
            r#"{"issues":[{"id":"1","key":"P-1","fields":{"assignee":null}}],"nextPageToken":"t2"}"#,
        )
        .expect("page parses");
        assert_eq!(page.next_page_token.as_deref(), Some("t2"));
        assert_eq!(page.is_last, None);
        let last: JqlPage = serde_json::from_str(r#"{"issues":[],"isLast":true}"#).expect("parses");
        assert_eq!((last.next_page_token, last.is_last), (None, Some(true)));
    }
}
