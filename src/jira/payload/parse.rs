//! Reading a `jira:issue_updated` webhook body, or an issue as Jira's search
//! returns it, into the [`WebhookEvent`] and [`IssueChange`] of `change.rs`; a
//! body that cannot be read is a [`MalformedWebhook`].

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Map, Value};

use super::body::{Root, Shape};
use super::change::{AssigneeChange, AssigneeRef, IssueChange, StatusChange, WebhookEvent};
use crate::sync::{Email, IssueKey};

/// Why a body cannot be handled; dead-lettered with this one-line reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedWebhook {
    /// Not JSON at all.
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object.
    #[error("body is JSON but not an object (found {0})")]
    NotAnObject(&'static str),
    /// `issue.key` missing or not a string.
    #[error("assignee or status changed but issue.key is missing or not a string")]
    MissingIssueKey,
    /// `issue.fields` missing or not an object.
    #[error("assignee changed but issue.fields is missing or not an object")]
    MissingFields,
    /// `issue.fields.assignee` is neither an object nor null.
    #[error("issue.fields.assignee is neither an object nor null (found {0})")]
    BadAssignee(&'static str),
}

/// Parses and classifies a webhook body. Only the values read here are built
/// (`body.rs`); the rest is checked as JSON and dropped.
pub fn parse(body: &[u8]) -> Result<WebhookEvent, MalformedWebhook> {
    let root: Shape<Root> =
        serde_json::from_slice(body).map_err(|e| MalformedWebhook::NotJson(e.to_string()))?;
    match root {
        Shape::Object(root) => classify(&root),
        Shape::Not(kind) => Err(MalformedWebhook::NotAnObject(kind)),
    }
}

fn classify(root: &Root) -> Result<WebhookEvent, MalformedWebhook> {
    let changelog = root.changelog.as_ref().unwrap_or(&Value::Null);
    if is_empty(changelog) {
        return Ok(WebhookEvent::NoChangelog);
    }
    // Items that are not objects, or lack `field`, are ignored.
    let items = changelog
        .get("items")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let item = |field: &str| {
        items
            .iter()
            .find(|item| item.get("field").and_then(Value::as_str) == Some(field))
    };
    let assignee_changed = item("assignee").is_some();
    let status = item("status").map(|item| StatusChange {
        from: status_id(item.get("from")),
        to: status_id(item.get("to")),
    });
    // A move (Sentry `rekey_external_issues`): Jira's `Key` item, old key in
    // `fromString`, new in `toString`.
    let moved = item("Key").and_then(|item| {
        let text = |name: &str| {
            item.get(name)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        Some((text("fromString")?, text("toString")))
    });
    if !assignee_changed && status.is_none() && moved.is_none() {
        return Ok(WebhookEvent::NothingToSync);
    }
    let issue = root.issue.as_ref().and_then(Shape::object);
    let key = issue
        .and_then(|i| i.key.as_ref())
        .and_then(Value::as_str)
        .or_else(|| moved.and_then(|(_, to)| to))
        .ok_or(MalformedWebhook::MissingIssueKey)?;
    let moved_from = moved
        .map(|(from, _)| IssueKey::new(from))
        .filter(|from| from.as_str() != key);
    let fields = issue
        .and_then(|i| i.fields.as_ref())
        .and_then(Shape::object);
    let assignee = if assignee_changed {
        let fields = fields.ok_or(MalformedWebhook::MissingFields)?;
        Some(assignee_change(fields.assignee.as_ref())?)
    } else {
        None
    };
    let event_time = fields
        .and_then(|f| f.updated.as_ref())
        .and_then(Value::as_str)
        .and_then(parse_jira_time)
        .or_else(|| {
            root.timestamp
                .as_ref()
                .and_then(Value::as_i64)
                .and_then(DateTime::from_timestamp_millis)
        });
    if !assignee_changed && status.is_none() && moved_from.is_none() {
        // A `Key` item that names no other key.
        return Ok(WebhookEvent::NothingToSync);
    }
    Ok(WebhookEvent::Changed(IssueChange {
        key: IssueKey::new(key),
        moved_from,
        assignee,
        status,
        event_time,
        event_time_clamped_from: None,
    }))
}

/// An issue's current state as Jira's search returns it (reconciliation,
/// docs/reference.md §6.2), read like a webhook that changed the assignee: the current assignee
/// decides, and the event time is `fields.updated`. The status is left out: a
/// search shows no transition.
pub fn current_state(
    key: &str,
    fields: &Map<String, Value>,
) -> Result<IssueChange, MalformedWebhook> {
    Ok(IssueChange {
        key: IssueKey::new(key),
        moved_from: None,
        assignee: Some(assignee_change(fields.get("assignee"))?),
        status: None,
        event_time: fields
            .get("updated")
            .and_then(Value::as_str)
            .and_then(parse_jira_time),
        event_time_clamped_from: None,
    })
}

/// The current `issue.fields.assignee` decides (docs/reference.md §5.4).
fn assignee_change(assignee: Option<&Value>) -> Result<AssigneeChange, MalformedWebhook> {
    Ok(match assignee {
        None | Some(Value::Null) => AssigneeChange::Unassign,
        Some(Value::Object(assignee)) => match assignee
            .get("emailAddress")
            .and_then(Value::as_str)
            .and_then(Email::parse)
        {
            Some(email) => AssigneeChange::Assign(email, assignee_ref(assignee)),
            None => AssigneeChange::MissingEmail(assignee_ref(assignee)),
        },
        Some(other) => return Err(MalformedWebhook::BadAssignee(kind(other))),
    })
}

/// How the assignee object names the user: `name`, else `key`, else (Jira
/// Cloud, which has neither) `accountId`, ignoring empty strings.
fn assignee_ref(assignee: &Map<String, Value>) -> Option<AssigneeRef> {
    let field = |name: &str| {
        assignee
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
    };
    field("name")
        .map(AssigneeRef::Username)
        .or_else(|| field("key").map(AssigneeRef::Key))
        .or_else(|| field("accountId").map(AssigneeRef::AccountId))
}

/// `issue.key` of a body, when it is a JSON object that has one: what a Cloud
/// delivery that changes nothing is recorded under (docs/reference.md §11.4).
pub fn issue_key(body: &[u8]) -> Option<IssueKey> {
    #[derive(serde::Deserialize)]
    struct Body {
        issue: Option<Issue>,
    }
    #[derive(serde::Deserialize)]
    struct Issue {
        key: Option<Value>,
    }
    let body: Body = serde_json::from_slice(body).ok()?;
    match body.issue?.key? {
        Value::String(key) if !key.trim().is_empty() => Some(IssueKey::new(&key)),
        _ => None,
    }
}

/// A status id as Jira writes it in a changelog (a string; a number is accepted).
fn status_id(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Jira's `2023-01-01T02:00:00.000+0200`, or RFC 3339.
pub fn parse_jira_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::<FixedOffset>::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn event(body: Value) -> Result<WebhookEvent, MalformedWebhook> {
        parse(body.to_string().as_bytes())
    }

    fn assignee_changelog() -> Value {
        json!({"items": [{"field": "status"}, {"field": "assignee", "to": "jane"}]})
    }

    #[test]
    fn empty_changelogs_mean_nothing_to_do() {
        for changelog in [json!(null), json!({}), json!([]), json!("")] {
            let body = json!({"changelog": changelog, "issue": {"key": "A-1"}});
            assert_eq!(event(body), Ok(WebhookEvent::NoChangelog), "{changelog}");
        }
        assert_eq!(event(json!({"issue": {}})), Ok(WebhookEvent::NoChangelog));
    }

    #[test]
    fn only_an_item_whose_field_is_exactly_assignee_counts() {
        for items in [
            json!([{"field": "Assignee"}]),
            json!([{"field": "assignee "}]),
            json!(["assignee"]),
            json!([{"fieldId": "assignee"}]),
            json!([null, 3]),
        ] {
            let body =
                json!({"changelog": {"items": items}, "issue": {"key": "A-1", "fields": {}}});
            assert_eq!(event(body), Ok(WebhookEvent::NothingToSync), "{items}");
        }
    }

    #[test]
    fn the_current_assignee_decides_what_happens() {
        for (assignee, expected) in [
            (json!(null), AssigneeChange::Unassign),
            (
                json!({"name": "jane", "key": "JIRAUSER1"}),
                AssigneeChange::MissingEmail(Some(AssigneeRef::Username("jane".into()))),
            ),
            (
                json!({"name": "", "key": "JIRAUSER1", "emailAddress": " "}),
                AssigneeChange::MissingEmail(Some(AssigneeRef::Key("JIRAUSER1".into()))),
            ),
            (
                json!({"emailAddress": ""}),
                AssigneeChange::MissingEmail(None),
            ),
            (json!({"name": 5}), AssigneeChange::MissingEmail(None)),
            (json!({}), AssigneeChange::MissingEmail(None)),
            (
                json!({"emailAddress": "Jane@Example.org"}),
                AssigneeChange::Assign(Email::parse("Jane@Example.org").expect("email"), None),
            ),
        ] {
            let body = json!({"changelog": assignee_changelog(), "issue": {"key": "A-1", "fields": {"assignee": assignee}}});
            match event(body) {
                Ok(WebhookEvent::Changed(change)) => {
                    assert_eq!(change.assignee, Some(expected), "{assignee}")
                }
                other => panic!("{assignee}: {other:?}"),
            }
        }
        let absent =
            json!({"changelog": assignee_changelog(), "issue": {"key": "A-1", "fields": {}}});
        assert!(matches!(
            event(absent),
            Ok(WebhookEvent::Changed(IssueChange {
                assignee: Some(AssigneeChange::Unassign),
                ..
            }))
        ));
    }

    #[test]
    fn a_cloud_assignee_is_named_by_its_account_id() {
        let account = "5b10ac8d82e05b22cc7d4ef5";
        for (assignee, expected) in [
            (
                json!({"accountId": account, "displayName": "Mia", "active": true}),
                AssigneeChange::MissingEmail(Some(AssigneeRef::AccountId(account.into()))),
            ),
            (
                json!({"accountId": account, "emailAddress": "mia@example.org"}),
                AssigneeChange::Assign(
                    Email::parse("mia@example.org").expect("email"),
                    Some(AssigneeRef::AccountId(account.into())),
                ),
            ),
            (
                json!({"accountId": " "}),
                AssigneeChange::MissingEmail(None),
            ),
        ] {
            let body = json!({"changelog": assignee_changelog(), "issue": {"key": "A-1", "fields": {"assignee": assignee}}});
            match event(body) {
                Ok(WebhookEvent::Changed(change)) => {
                    assert_eq!(change.assignee, Some(expected), "{assignee}")
                }
                other => panic!("{assignee}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_issue_key_of_any_body_is_read_when_it_has_one() {
        for (body, expected) in [
            (json!({"issue": {"key": "A-1"}}).to_string(), Some("A-1")),
            (json!({"issue": {"key": 7}}).to_string(), None),
            (json!({"issue": {"key": ""}}).to_string(), None),
            (json!({"issue": null}).to_string(), None),
            (json!([1]).to_string(), None),
            ("{not json".to_owned(), None),
        ] {
            let key = issue_key(body.as_bytes());
            assert_eq!(key.as_ref().map(IssueKey::as_str), expected, "{body}");
        }
    }

    #[test]
    fn a_missing_key_or_fields_is_malformed_once_the_assignee_changed() {
        let cases = [
            (json!({"fields": {}}), MalformedWebhook::MissingIssueKey),
            (
                json!({"key": 7, "fields": {}}),
                MalformedWebhook::MissingIssueKey,
            ),
            (json!({"key": "A-1"}), MalformedWebhook::MissingFields),
            (
                json!({"key": "A-1", "fields": []}),
                MalformedWebhook::MissingFields,
            ),
            (
                json!({"key": "A-1", "fields": {"assignee": "jane"}}),
                MalformedWebhook::BadAssignee("a string"),
            ),
        ];
        for (issue, expected) in cases {
            let body = json!({"changelog": assignee_changelog(), "issue": issue});
            assert_eq!(event(body), Err(expected), "{issue}");
        }
    }

    #[test]
    fn a_status_item_carries_its_from_and_to_ids() {
        let cases = [
            (
                json!({"field": "status", "from": "1", "fromString": "Open", "to": "10001", "toString": "Done"}),
                Some("1"),
                Some("10001"),
            ),
            (
                json!({"field": "status", "from": 3, "to": null}),
                Some("3"),
                None,
            ),
            (
                json!({"field": "status", "from": "", "to": ["x"]}),
                None,
                None,
            ),
        ];
        for (item, from, to) in cases {
            // No `fields` is fine when only the status changed.
            let body = json!({"changelog": {"items": [item]}, "issue": {"key": "A-1"}});
            let expected = StatusChange {
                from: from.map(str::to_owned),
                to: to.map(str::to_owned),
            };
            match event(body) {
                Ok(WebhookEvent::Changed(change)) => {
                    assert_eq!(change.status, Some(expected), "{item}");
                    assert_eq!(change.assignee, None, "{item}");
                }
                other => panic!("{item}: {other:?}"),
            }
        }
        let both = json!({"changelog": {"items": [{"field": "assignee"}, {"field": "status", "to": "2"}]},
            "issue": {"key": "A-1", "fields": {"assignee": null}}});
        let Ok(WebhookEvent::Changed(change)) = event(both) else {
            panic!("not a change")
        };
        assert_eq!(change.assignee, Some(AssigneeChange::Unassign));
        assert_eq!(change.status.and_then(|s| s.to).as_deref(), Some("2"));
        let keyless = json!({"changelog": {"items": [{"field": "status"}]}, "issue": {}});
        assert_eq!(event(keyless), Err(MalformedWebhook::MissingIssueKey));
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_malformed() {
        assert!(matches!(
            parse(b"{not json"),
            Err(MalformedWebhook::NotJson(_))
        ));
        assert_eq!(
            parse(b"[1,2]"),
            Err(MalformedWebhook::NotAnObject("an array"))
        );
        assert_eq!(
            parse(b"\"x\""),
            Err(MalformedWebhook::NotAnObject("a string"))
        );
    }

    #[test]
    fn the_event_time_is_updated_else_timestamp() {
        let with_both = json!({"timestamp": 1_000, "changelog": assignee_changelog(),
            "issue": {"key": "A-1", "fields": {"updated": "2023-01-01T02:00:00.000+0200"}}});
        let WebhookEvent::Changed(IssueChange { event_time, .. }) =
            event(with_both).expect("event")
        else {
            panic!("not an assignee change")
        };
        assert_eq!(
            event_time,
            DateTime::parse_from_rfc3339("2023-01-01T00:00:00Z")
                .ok()
                .map(|t| t.with_timezone(&Utc))
        );

        let timestamp_only = json!({"timestamp": 1_672_531_200_000_i64, "changelog": assignee_changelog(),
            "issue": {"key": "A-1", "fields": {}}});
        let WebhookEvent::Changed(IssueChange { event_time, .. }) =
            event(timestamp_only).expect("event")
        else {
            panic!("not an assignee change")
        };
        assert_eq!(
            event_time,
            DateTime::from_timestamp_millis(1_672_531_200_000)
        );

        let neither =
            json!({"changelog": assignee_changelog(), "issue": {"key": "A-1", "fields": {}}});
        let WebhookEvent::Changed(IssueChange { event_time, .. }) = event(neither).expect("event")
        else {
            panic!("not an assignee change")
        };
        assert_eq!(event_time, None);
    }

    #[test]
    fn a_far_future_event_time_is_bounded_by_the_receive_time() {
        let body = json!({"changelog": assignee_changelog(),
            "issue": {"key": "A-1", "fields": {"updated": "9999-12-31T23:59:59.000+0000"}}});
        let Ok(WebhookEvent::Changed(mut change)) = event(body) else {
            panic!("not a change")
        };
        let far = parse_jira_time("9999-12-31T23:59:59.000+0000");
        assert_eq!(change.event_time, far, "parsed as Jira sent it");
        let received = DateTime::from_timestamp_millis(1_700_000_000_000).expect("a time");
        let skew = Duration::from_secs(300);
        change.bound_event_time(received, skew);
        assert_eq!(
            (change.event_time, change.event_time_clamped_from),
            (Some(received), far)
        );
        // Bounding again (a retry, received as before) keeps Jira's time.
        change.bound_event_time(received, skew);
        assert_eq!(
            (change.event_time, change.event_time_clamped_from),
            (Some(received), far)
        );
    }

    #[test]
    fn the_fixture_is_an_assignment_of_demo_1() {
        let body = include_bytes!("../../../tests/fixtures/issue_updated.json");
        let WebhookEvent::Changed(IssueChange {
            key,
            assignee,
            event_time,
            ..
        }) = parse(body).expect("fixture parses")
        else {
            panic!("fixture is not an assignee change")
        };
        assert_eq!(key.as_str(), "DEMO-1");
        assert_eq!(
            assignee,
            Some(AssigneeChange::Assign(
                Email::parse("Jane@Example.org").expect("email"),
                Some(AssigneeRef::Username("jane".into()))
            ))
        );
        assert!(event_time.is_some());
    }

    proptest! {
        #[test]
        fn any_bytes_are_classified_without_panicking(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse(&body);
        }

        #[test]
        fn any_json_shape_is_classified_without_panicking(
            changelog in prop_oneof![Just(json!(null)), Just(json!({"items": [{"field": "assignee"}]})), Just(json!(1))],
            assignee in prop_oneof![Just(json!(null)), Just(json!({})), Just(json!({"emailAddress": 5})), Just(json!([1]))],
            key in prop_oneof![Just(json!(null)), Just(json!("K-1")), Just(json!(1))],
        ) {
            let body = json!({"changelog": changelog, "issue": {"key": key, "fields": {"assignee": assignee}}});
            let _ = event(body);
        }
    }
}
