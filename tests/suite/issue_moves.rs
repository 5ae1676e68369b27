//! Issues that move (docs/reference.md §5.8): Jira's `Key` changelog item re-keys
//! the integration's external issues in the organizations with a sync flag on,
//! merging into a row that has the new key already, and the groups keep syncing
//! under the new key; a move older than the last one applied to a row is stale
//! there, and a move's event time is bounded by its receive time (§5.6); `explain`
//! finds the move under either key.

use crate::common::app::WAIT;
use crate::common::seed::{assignee_changed, jira_user};
use crate::common::{self, TestApp};

use chrono::{DateTime, TimeDelta, Utc};
use jirasync::jira::payload::parse_jira_time;
use serde_json::{Value, json};

/// Sentry's "moved issue" shape: `issue.key` is the new key; the changelog has
/// the project, `Key` (old in `fromString`, new in `toString`) and workflow items.
const ISSUE_MOVED: &[u8] = include_bytes!("../fixtures/issue_moved.json");
const AFTER_MOVE: &str = "2024-01-06T10:00:00.000+0000";

/// The fixture's move time, and one an hour before it.
const T2: &str = "2024-01-05T10:00:00.000+0000";
const T1: &str = "2024-01-05T09:00:00.000+0000";
/// The review's probe: an `updated` no clock reaches.
const FAR: &str = "9999-12-31T23:59:59.000+0000";

/// The fixture's move, from `from` to `to`, at `updated`.
pub fn moved(from: &str, to: &str, updated: &str) -> Value {
    let mut body: Value = serde_json::from_slice(ISSUE_MOVED).expect("fixture");
    body["issue"]["key"] = json!(to);
    body["issue"]["fields"]["updated"] = json!(updated);
    let items = body["changelog"]["items"].as_array_mut().expect("items");
    let key = items
        .iter_mut()
        .find(|item| item["field"] == "Key")
        .expect("the Key item");
    key["fromString"] = json!(from);
    key["toString"] = json!(to);
    body
}

/// Sets the organization's sync flags to `config`.
async fn configure(app: &TestApp, org: i64, config: Value) {
    app.db
        .execute(
            "UPDATE organization_integrations SET config = $2 WHERE organization_id = $1",
            &[&org, &config],
        )
        .await
        .expect("sync flags");
}

async fn key_synced_at(app: &TestApp, external_issue: i64) -> Option<DateTime<Utc>> {
    app.db
        .query_one(
            "SELECT key_synced_at FROM external_issues WHERE id = $1",
            &[&external_issue],
        )
        .await
        .expect("external issue")
        .get(0)
}

async fn keys(app: &TestApp, org: i64) -> Vec<String> {
    app.db
        .query(
            "SELECT key FROM external_issues WHERE organization_id = $1 ORDER BY key",
            &[&org],
        )
        .await
        .expect("external issues")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

async fn linked_groups(app: &TestApp, external_issue: i64) -> Vec<i64> {
    app.db
        .query(
            "SELECT group_id FROM group_links WHERE linked_type = 'issue' AND linked_id = $1
              ORDER BY group_id",
            &[&external_issue],
        )
        .await
        .expect("links")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

async fn key_events(app: &TestApp) -> Vec<(Option<i64>, String, Value)> {
    app.db
        .query(
            "SELECT organization_id, outcome, detail FROM sync_events WHERE kind = 'key' ORDER BY id",
            &[],
        )
        .await
        .expect("events")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

#[tokio::test]
async fn a_moved_issue_is_rekeyed_and_keeps_syncing_under_its_new_key() {
    let app = TestApp::builder().concurrency(1).start().await;
    let org = app.seed().org(app.integration, true, "DEMO-1").await;
    let jane = app.seed().teammate(&org, "jane@example.org").await;
    app.send_with(&app.token, ISSUE_MOVED, None).await;
    common::eventually("DEMO-1 becomes OPS-7", WAIT, || async {
        keys(&app, org.id).await == ["OPS-7"]
    })
    .await;
    assert_eq!(
        linked_groups(&app, org.external_issue_id).await,
        [org.group_id],
        "the same row, the same links"
    );

    // Redelivered: nothing to re-key any more, and said so.
    app.send_with(&app.token, ISSUE_MOVED, None).await;
    common::eventually("the redelivery is recorded", WAIT, || async {
        key_events(&app).await.len() == 2
    })
    .await;
    let events = key_events(&app).await;
    assert_eq!(
        (events[0].0, events[0].1.as_str()),
        (Some(org.id), "rekeyed")
    );
    assert_eq!((events[1].0, events[1].1.as_str()), (None, "unchanged"));
    assert_eq!(keys(&app, org.id).await, ["OPS-7"]);

    // The group keeps syncing under the new key.
    app.send(&assignee_changed(
        "OPS-7",
        jira_user("jane@example.org"),
        AFTER_MOVE,
    ))
    .await;
    app.wait_assignee(org.group_id, Some(jane)).await;
    // A late change under the old key finds nothing to change.
    app.send(&assignee_changed("DEMO-1", json!(null), AFTER_MOVE))
        .await;
    app.settle().await;
    assert_eq!(app.assignee(org.group_id).await, Some(jane));

    for key in ["OPS-7", "DEMO-1"] {
        let output = common::output(&["explain", key], &app.settings);
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.contains("re-keyed DEMO-1 to OPS-7") && text.contains("the issue moved"),
            "explain {key}:\n{text}"
        );
    }
    assert_eq!(app.dead_letters().await, 0);
    app.finish().await;
}

#[tokio::test]
async fn a_move_onto_a_key_the_organization_has_merges_the_rows_and_their_links() {
    let app = TestApp::builder().concurrency(1).start().await;
    // Organization A links DEMO-1 to groups g1 and g2, and OPS-7 to g2 and g3.
    let a = app.seed().org(app.integration, true, "DEMO-1").await;
    let g2 = app.seed().group(a.project_id, "unresolved").await;
    let g3 = app.seed().group(a.project_id, "unresolved").await;
    app.seed()
        .link(g2, a.project_id, "issue", a.external_issue_id)
        .await;
    let ops = app.seed().issue(a.id, app.integration, "OPS-7").await;
    app.seed().link(g2, a.project_id, "issue", ops).await;
    app.seed().link(g3, a.project_id, "issue", ops).await;
    app.db
        .execute(
            "UPDATE external_issues SET assignee_synced_at = '2024-01-04T00:00:00Z' WHERE id = $1",
            &[&a.external_issue_id],
        )
        .await
        .expect("a watermark on the old row");
    // Organization B has only DEMO-1.
    let b = app.seed().org(app.integration, true, "DEMO-1").await;
    let jane = app.seed().teammate(&a, "jane@example.org").await;

    // The move and an assignment in one webhook: re-keyed first, then assigned
    // under the new key.
    let mut moved: Value = serde_json::from_slice(ISSUE_MOVED).expect("fixture");
    moved["changelog"]["items"]
        .as_array_mut()
        .expect("items")
        .push(json!({"field": "assignee", "fieldtype": "jira", "to": "jane"}));
    app.send(&moved).await;
    common::eventually("both organizations re-keyed", WAIT, || async {
        keys(&app, a.id).await == ["OPS-7"] && keys(&app, b.id).await == ["OPS-7"]
    })
    .await;
    assert_eq!(
        linked_groups(&app, ops).await,
        [a.group_id, g2, g3],
        "g1 moved over, g2 kept once, g3 as it was"
    );
    assert!(linked_groups(&app, a.external_issue_id).await.is_empty());
    let watermark: Option<chrono::DateTime<chrono::Utc>> = app
        .db
        .query_one(
            "SELECT assignee_synced_at FROM external_issues WHERE id = $1",
            &[&ops],
        )
        .await
        .expect("survivor")
        .get(0);
    assert_eq!(
        watermark.map(|at| at.to_rfc3339()),
        Some("2024-01-05T10:00:00+00:00".to_owned()),
        "the later watermark won, then the webhook's own moved it"
    );
    for group in [a.group_id, g2, g3] {
        app.wait_assignee(group, Some(jane)).await;
    }
    let events = key_events(&app).await;
    let merged = events
        .iter()
        .find(|(org, ..)| *org == Some(a.id))
        .expect("A's decision");
    assert_eq!(merged.2["merged_into"], ops);
    assert_eq!(
        (
            &merged.2["links_moved"],
            &merged.2["duplicate_links_dropped"]
        ),
        (&json!(1), &json!(1))
    );
    let renamed = events
        .iter()
        .find(|(org, ..)| *org == Some(b.id))
        .expect("B's decision");
    assert!(renamed.2["merged_into"].is_null(), "{renamed:?}");
    let text =
        String::from_utf8_lossy(&common::output(&["explain", "OPS-7"], &app.settings).stdout)
            .into_owned();
    assert!(
        text.contains("merged into the existing OPS-7 (1 links moved, 1 duplicates dropped)"),
        "{text}"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_move_applies_only_in_organizations_with_a_sync_flag_on() {
    let app = TestApp::builder().concurrency(1).start().await;
    let assigning = app.seed().org(app.integration, true, "DEMO-1").await;
    // Any one of the four flags moves the issue there.
    let forward = app.seed().org(app.integration, false, "DEMO-1").await;
    let flags = |forward_status: bool| {
        json!({"sync_reverse_assignment": false, "sync_status_reverse": false,
               "sync_forward_assignment": false, "sync_status_forward": forward_status})
    };
    configure(&app, forward.id, flags(true)).await;
    let off = app.seed().org(app.integration, false, "DEMO-1").await;
    configure(&app, off.id, flags(false)).await;

    app.send_with(&app.token, ISSUE_MOVED, None).await;
    common::eventually("the organizations with sync on re-keyed", WAIT, || async {
        keys(&app, assigning.id).await == ["OPS-7"] && keys(&app, forward.id).await == ["OPS-7"]
    })
    .await;
    // In the same transaction: the organization with every flag off kept its key.
    assert_eq!(keys(&app, off.id).await, ["DEMO-1"]);
    assert_eq!(
        linked_groups(&app, off.external_issue_id).await,
        [off.group_id]
    );
    let events = key_events(&app).await;
    let decided: Vec<(Option<i64>, &str)> = events
        .iter()
        .map(|(org, outcome, _)| (*org, outcome.as_str()))
        .collect();
    assert_eq!(
        decided,
        [
            (Some(assigning.id), "rekeyed"),
            (Some(forward.id), "rekeyed")
        ]
    );
    app.finish().await;
}

#[tokio::test]
async fn an_older_move_delivered_late_is_stale_and_redelivery_changes_nothing() {
    let app = TestApp::builder().concurrency(1).start().await;
    let org = app.seed().org(app.integration, true, "DEMO-1").await;
    let there = moved("DEMO-1", "OPS-7", T2);
    // Made before it, delivered after it.
    let back = moved("OPS-7", "DEMO-1", T1);

    app.send(&there).await;
    common::eventually("DEMO-1 becomes OPS-7", WAIT, || async {
        keys(&app, org.id).await == ["OPS-7"]
    })
    .await;
    app.send(&back).await;
    common::eventually("the late move is decided", WAIT, || async {
        key_events(&app).await.len() == 2
    })
    .await;
    assert_eq!(keys(&app, org.id).await, ["OPS-7"], "B stays");
    assert_eq!(
        key_synced_at(&app, org.external_issue_id).await,
        parse_jira_time(T2)
    );
    let events = key_events(&app).await;
    assert_eq!((events[1].0, events[1].1.as_str()), (Some(org.id), "stale"));
    assert_eq!(
        (&events[1].2["event_time"], &events[1].2["applied_up_to"]),
        (
            &json!("2024-01-05T09:00:00Z"),
            &json!("2024-01-05T10:00:00Z")
        )
    );

    // Both redelivered: decided again, nothing changed twice.
    app.send(&there).await;
    app.send(&back).await;
    common::eventually("the redeliveries are decided", WAIT, || async {
        key_events(&app).await.len() == 4
    })
    .await;
    let events = key_events(&app).await;
    let redelivered: Vec<(Option<i64>, &str)> = events[2..]
        .iter()
        .map(|(org, outcome, _)| (*org, outcome.as_str()))
        .collect();
    assert_eq!(redelivered, [(None, "unchanged"), (Some(org.id), "stale")]);
    assert_eq!(keys(&app, org.id).await, ["OPS-7"]);
    assert_eq!(
        key_synced_at(&app, org.external_issue_id).await,
        parse_jira_time(T2)
    );
    assert_eq!(
        linked_groups(&app, org.external_issue_id).await,
        [org.group_id]
    );
    let text =
        String::from_utf8_lossy(&common::output(&["explain", "DEMO-1"], &app.settings).stdout)
            .into_owned();
    assert!(
        text.contains("left OPS-7 as it is") && text.contains("a later move (Jira time"),
        "{text}"
    );
    assert_eq!(app.dead_letters().await, 0);
    app.finish().await;
}

#[tokio::test]
async fn a_far_future_move_is_bounded_and_the_move_back_applies() {
    let app = TestApp::builder().concurrency(1).start().await;
    let org = app.seed().org(app.integration, true, "DEMO-1").await;

    let before = Utc::now();
    app.send(&moved("DEMO-1", "OPS-7", FAR)).await;
    let sent = Utc::now();
    common::eventually("DEMO-1 becomes OPS-7", WAIT, || async {
        keys(&app, org.id).await == ["OPS-7"]
    })
    .await;
    let moved_at = key_synced_at(&app, org.external_issue_id).await;
    assert!(
        moved_at.is_some_and(|at| at >= before - TimeDelta::milliseconds(1) && at <= sent),
        "the move time is its receive time: {moved_at:?}"
    );
    let events = key_events(&app).await;
    assert_eq!(
        events[0].2["event_time_clamped_from"],
        "9999-12-31T23:59:59Z"
    );

    // A move made afterwards applies.
    let now = Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string();
    app.send(&moved("OPS-7", "DEMO-1", &now)).await;
    common::eventually("OPS-7 moves back to DEMO-1", WAIT, || async {
        keys(&app, org.id).await == ["DEMO-1"]
    })
    .await;
    assert_eq!(
        key_synced_at(&app, org.external_issue_id).await,
        parse_jira_time(&now)
    );
    app.finish().await;
}
