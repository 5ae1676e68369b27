//! One Jira issue as outbound sync (docs/reference.md §10.3–10.5, §11 for Cloud)
//! reads and writes it: its assignee, status, project and update time; the users
//! who may take it; its assignee set or removed; its workflow transitions and one
//! of them taken, with a resolution when it asks for one. Data Center through
//! REST API v2 and user names, Cloud through v3 and `accountId`s.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use reqwest::{Method, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::client::JiraClient;
use super::error::JiraError;
use super::payload::parse_jira_time;
use super::user::JiraUser;

/// The fields a push reads.
const FIELDS: &str = "assignee,status,project,updated";

/// An issue as `GET /rest/api/2/issue/{key}?fields=assignee,status,project,updated`
/// returns it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Issue {
    /// The issue key, e.g. `ACC-1` (Jira's current one).
    pub key: String,
    /// The fields read.
    #[serde(default)]
    pub fields: IssueFields,
}

/// The fields of an [`Issue`] a push reads; each absent when Jira did not send it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct IssueFields {
    /// The assignee; `None` when unassigned.
    #[serde(default)]
    pub assignee: Option<JiraUser>,
    /// The status.
    #[serde(default)]
    pub status: Option<Named>,
    /// The project.
    #[serde(default)]
    pub project: Option<Project>,
    /// When the issue last changed, as Jira writes it (`2024-01-01T10:00:00.000+0000`).
    #[serde(default)]
    pub updated: Option<String>,
}

/// A status (or a transition's target): its id and name.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Named {
    /// The id, e.g. `10001`.
    #[serde(default)]
    pub id: String,
    /// The display name, e.g. `Done`.
    #[serde(default)]
    pub name: String,
}

/// The project of an issue.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Project {
    /// Its id, e.g. `10000`.
    #[serde(default)]
    pub id: String,
    /// Its key, e.g. `ACC`.
    #[serde(default)]
    pub key: String,
}

impl Issue {
    /// Jira's `updated`, when it sent one that reads as a time.
    pub fn updated(&self) -> Option<DateTime<Utc>> {
        self.fields.updated.as_deref().and_then(parse_jira_time)
    }
}

/// A workflow transition as `GET …/transitions?expand=transitions.fields` returns it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Transition {
    /// Its id, which `POST …/transitions` takes.
    pub id: String,
    /// Its name, e.g. `Resolve Issue`.
    #[serde(default)]
    pub name: String,
    /// The status it leads to.
    #[serde(default)]
    pub to: Option<Named>,
    /// The fields of its screen, by field id (`resolution`, `customfield_10100`).
    #[serde(default)]
    pub fields: BTreeMap<String, TransitionField>,
}

/// One field of a transition's screen.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TransitionField {
    /// Whether the transition needs a value for it.
    #[serde(default)]
    pub required: bool,
    /// Its display name.
    #[serde(default)]
    pub name: String,
    /// Whether Jira fills it by itself when no value is sent.
    #[serde(default)]
    pub has_default_value: bool,
}

impl Transition {
    /// `name (id)`, for messages.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.id)
    }
}

/// The answer of `GET …/transitions`.
#[derive(Deserialize)]
struct Transitions {
    #[serde(default)]
    transitions: Vec<Transition>,
}

impl JiraClient {
    /// `GET /rest/api/{2|3}/issue/{key}?fields=assignee,status,project,updated`.
    pub async fn get_issue(&self, key: &str) -> Result<Issue, JiraError> {
        let mut url = self.issue_url(key, None)?;
        url.query_pairs_mut().append_pair("fields", FIELDS);
        self.get_json(url, "issue").await
    }

    /// `GET /rest/api/2/user/assignable/search?issueKey=…&username=…` (Cloud:
    /// `/rest/api/3/…&query=…`): the users who may take issue `key` and whose
    /// name, display name or email starts with `username` (Jira matches
    /// prefixes; Cloud never matches an email its owner hides).
    pub async fn assignable_users(
        &self,
        key: &str,
        username: &str,
    ) -> Result<Vec<JiraUser>, JiraError> {
        let mut url = self.rest_endpoint("/user/assignable/search")?;
        let name = if self.is_cloud() { "query" } else { "username" };
        url.query_pairs_mut()
            .append_pair("issueKey", key)
            .append_pair(name, username);
        self.get_json(url, "assignable users").await
    }

    /// `PUT /rest/api/2/issue/{key}/assignee` with `{"name": user}` (Cloud:
    /// `/rest/api/3/…` with `{"accountId": user}`); `None` unassigns
    /// (`{"name": null}`, `{"accountId": null}`).
    pub async fn assign(&self, key: &str, user: Option<&str>) -> Result<(), JiraError> {
        let url = self.issue_url(key, Some("assignee"))?;
        let body = if self.is_cloud() {
            json!({ "accountId": user })
        } else {
            json!({ "name": user })
        };
        self.call(Method::PUT, url, Some(&body)).await?.success()?;
        Ok(())
    }

    /// `GET /rest/api/2/issue/{key}/transitions?expand=transitions.fields`: the
    /// transitions the issue offers now, with the fields of their screens.
    pub async fn transitions(&self, key: &str) -> Result<Vec<Transition>, JiraError> {
        let mut url = self.issue_url(key, Some("transitions"))?;
        url.query_pairs_mut()
            .append_pair("expand", "transitions.fields");
        let answer: Transitions = self.get_json(url, "transitions").await?;
        Ok(answer.transitions)
    }

    /// `POST /rest/api/2/issue/{key}/transitions` with `{"transition":{"id":…}}`,
    /// plus `"fields":{"resolution":{"name":…}}` when `resolution` is given.
    pub async fn transition(
        &self,
        key: &str,
        transition_id: &str,
        resolution: Option<&str>,
    ) -> Result<(), JiraError> {
        let url = self.issue_url(key, Some("transitions"))?;
        let body = transition_body(transition_id, resolution);
        self.call(Method::POST, url, Some(&body)).await?.success()?;
        Ok(())
    }

    /// `/rest/api/{2|3}/issue/{key}` (then `/{tail}`), the key one encoded path segment.
    fn issue_url(&self, key: &str, tail: Option<&str>) -> Result<Url, JiraError> {
        let mut url = self.rest_endpoint("/issue")?;
        url.path_segments_mut()
            .map_err(|()| JiraError::Config("the Jira base URL cannot take a path".to_owned()))?
            .push(key)
            .extend(tail);
        Ok(url)
    }

    /// A GET whose success answer is JSON of type `T`; `what` names it in errors.
    async fn get_json<T: DeserializeOwned>(&self, url: Url, what: &str) -> Result<T, JiraError> {
        let answer = self.call(Method::GET, url, None).await?.success()?;
        serde_json::from_str(&answer.body).map_err(|error| JiraError::InvalidResponse {
            reason: format!("{what} is not the expected JSON: {error}"),
        })
    }
}

/// The body of `POST …/transitions`.
fn transition_body(transition_id: &str, resolution: Option<&str>) -> Value {
    let mut body = Map::new();
    body.insert("transition".into(), json!({ "id": transition_id }));
    if let Some(resolution) = resolution {
        body.insert(
            "fields".into(),
            json!({ "resolution": { "name": resolution } }),
        );
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issue_reads_its_assignee_status_project_and_update_time() {
        let issue: Issue = serde_json::from_str(
            r#"{"id":"10001","key":"ACC-1","fields":{
                "assignee":{"name":"amy.jones","key":"JIRAUSER10420","emailAddress":"amy@example.org","active":true},
                "status":{"id":"3","name":"In Progress","statusCategory":{"key":"indeterminate"}},
                "project":{"id":"10000","key":"ACC","name":"Accounts"},
                "updated":"2024-01-01T10:00:00.000+0100"}}"#,
        )
        .expect("issue parses");
        assert_eq!(issue.key, "ACC-1");
        assert_eq!(
            issue.fields.assignee.as_ref().map(|u| u.name.as_str()),
            Some("amy.jones")
        );
        assert_eq!(
            issue.fields.status,
            Some(Named {
                id: "3".into(),
                name: "In Progress".into()
            })
        );
        assert_eq!(
            issue.fields.project.as_ref().map(|p| p.key.as_str()),
            Some("ACC")
        );
        assert_eq!(
            issue.updated().map(|t| t.to_rfc3339()),
            Some("2024-01-01T09:00:00+00:00".to_owned())
        );
    }

    #[test]
    fn an_unassigned_issue_or_one_without_fields_reads_as_empty() {
        let issue: Issue =
            serde_json::from_str(r#"{"key":"ACC-2","fields":{"assignee":null,"updated":"x"}}"#)
                .expect("issue parses");
        assert_eq!(issue.fields.assignee, None);
        assert_eq!(issue.updated(), None, "an unreadable time is no time");
        let bare: Issue = serde_json::from_str(r#"{"key":"ACC-3"}"#).expect("issue parses");
        assert_eq!(bare.fields, IssueFields::default());
    }

    #[test]
    fn transitions_read_their_target_and_required_fields() {
        let answer: Transitions = serde_json::from_str(
            r#"{"expand":"transitions","transitions":[
                {"id":"4","name":"Start Progress","to":{"id":"3","name":"In Progress"}},
                {"id":"5","name":"Resolve Issue","to":{"id":"5","name":"Resolved"},
                 "fields":{"resolution":{"required":true,"name":"Resolution","hasDefaultValue":false,
                                         "allowedValues":[{"name":"Fixed"}]},
                           "customfield_10100":{"required":false,"name":"Root cause"}}}]}"#,
        )
        .expect("transitions parse");
        let [start, resolve] = answer.transitions.as_slice() else {
            panic!("two transitions");
        };
        assert!(start.fields.is_empty());
        assert_eq!(resolve.to.as_ref().map(|t| t.id.as_str()), Some("5"));
        assert!(resolve.fields["resolution"].required);
        assert!(!resolve.fields["customfield_10100"].required);
        assert_eq!(resolve.label(), "Resolve Issue (5)");
    }

    #[test]
    fn a_transition_body_carries_the_resolution_only_when_given() {
        assert_eq!(
            transition_body("5", Some("Fixed")),
            json!({"transition": {"id": "5"}, "fields": {"resolution": {"name": "Fixed"}}})
        );
        assert_eq!(
            transition_body("4", None),
            json!({"transition": {"id": "4"}})
        );
    }
}
