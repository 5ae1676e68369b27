//! Any bytes as a webhook body: `payload::parse` (what the worker's webhook
//! handler calls) classifies them without panicking, the way its docs say; the
//! reconciler's `current_state` and `parse_jira_time` take whatever is in them.

#![no_main]

use jirasync::jira::payload::{self, AssigneeChange, MalformedWebhook, WebhookEvent};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|body: &[u8]| {
    let result = payload::parse(body);
    assert_eq!(result, payload::parse(body), "parse is deterministic");

    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        assert!(
            matches!(result, Err(MalformedWebhook::NotJson(_))),
            "not JSON, yet {result:?}"
        );
        return;
    };
    let Value::Object(root) = &value else {
        assert!(
            matches!(result, Err(MalformedWebhook::NotAnObject(_))),
            "JSON but not an object, yet {result:?}"
        );
        return;
    };
    check_classification(root, &result);

    // The reconciler reads Jira search results' `fields` the same way.
    for fields in [Some(root), root.get("fields").and_then(Value::as_object)]
        .into_iter()
        .flatten()
    {
        if let Ok(change) = payload::current_state("K-1", fields) {
            assert!(change.assignee.is_some(), "current_state always decides");
        }
    }
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = payload::parse_jira_time(text);
    }
});

/// What `WebhookEvent`'s and `MalformedWebhook`'s docs promise.
fn check_classification(
    root: &Map<String, Value>,
    result: &Result<WebhookEvent, MalformedWebhook>,
) {
    let changelog = root.get("changelog").unwrap_or(&Value::Null);
    let empty = match changelog {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    };
    assert_eq!(
        empty,
        result == &Ok(WebhookEvent::NoChangelog),
        "an empty changelog, and only that, means NoChangelog: {result:?}"
    );
    let has_item = |field: &str| {
        changelog
            .get("items")
            .and_then(Value::as_array)
            .is_some_and(|items| {
                items
                    .iter()
                    .any(|item| item.get("field").and_then(Value::as_str) == Some(field))
            })
    };
    let (assignee_item, status_item) = (has_item("assignee"), has_item("status"));
    // Jira's `Key` item of a move; its `toString` stands in for a missing issue.key.
    let key_item = changelog
        .get("items")
        .and_then(Value::as_array)
        .and_then(|items| {
            items
                .iter()
                .find(|item| item.get("field").and_then(Value::as_str) == Some("Key"))
        });
    let key_text = |name: &str| {
        key_item
            .and_then(|item| item.get(name))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let issue = root.get("issue");
    let fields = issue.and_then(|i| i.get("fields"));
    match result {
        Err(MalformedWebhook::NotJson(_) | MalformedWebhook::NotAnObject(_)) => {
            panic!("a JSON object classified as {result:?}")
        }
        Ok(WebhookEvent::NoChangelog) => {}
        Ok(WebhookEvent::NothingToSync) => {
            assert!(!assignee_item && !status_item, "an item was ignored");
        }
        Err(MalformedWebhook::MissingIssueKey) => {
            assert!(assignee_item || status_item || key_text("fromString").is_some());
            assert!(key_text("toString").is_none() || key_text("fromString").is_none());
            assert!(
                issue
                    .and_then(|i| i.get("key"))
                    .and_then(Value::as_str)
                    .is_none()
            );
        }
        Err(MalformedWebhook::MissingFields) => {
            assert!(assignee_item);
            assert!(fields.and_then(Value::as_object).is_none());
        }
        Err(MalformedWebhook::BadAssignee(_)) => {
            assert!(assignee_item);
            assert!(!matches!(
                fields.and_then(|f| f.get("assignee")),
                None | Some(Value::Null | Value::Object(_))
            ));
        }
        Ok(WebhookEvent::Changed(change)) => {
            let issue_key = issue.and_then(|i| i.get("key")).and_then(Value::as_str);
            assert_eq!(
                Some(change.key.as_str()),
                issue_key.or_else(|| key_text("fromString").and(key_text("toString"))),
                "the key is issue.key, else the move's new key"
            );
            if let Some(from) = &change.moved_from {
                assert_eq!(Some(from.as_str()), key_text("fromString"), "moved from fromString");
                assert_ne!(from.as_str(), change.key.as_str(), "a move changes the key");
            }
            assert!(
                change.moved_from.is_some() || assignee_item || status_item,
                "a change that changes nothing"
            );
            assert_eq!(change.assignee.is_some(), assignee_item);
            assert_eq!(change.status.is_some(), status_item);
            let assignee = fields.and_then(|f| f.get("assignee"));
            match &change.assignee {
                Some(AssigneeChange::Assign(email, _)) => {
                    let sent = assignee
                        .and_then(|a| a.get("emailAddress"))
                        .and_then(Value::as_str)
                        .map(str::trim);
                    assert_eq!(Some(email.as_str()), sent, "the email is emailAddress");
                    assert!(!email.as_str().is_empty());
                }
                Some(AssigneeChange::Unassign) => {
                    assert!(matches!(assignee, None | Some(Value::Null)));
                }
                Some(AssigneeChange::MissingEmail(_)) => {
                    assert!(matches!(assignee, Some(Value::Object(_))));
                }
                None => {}
            }
        }
    }
}
