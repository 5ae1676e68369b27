//! Inbound status sync (docs/reference.md §5.7) against the real RabbitMQ and Postgres and
//! the signature-verifying fake Jira: a status change into Jira's `done` category
//! resolves the linked groups, out of it unresolves them, ignored groups stay
//! ignored, the statuses are cached, and a failing statuses endpoint is retried.

use crate::common;

use common::TestApp as Scene;
use common::app::{T1, WAIT};
use common::seed::Org;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const T2: &str = "2024-01-01T11:00:00.000+0000";
const STATUS_PATH: &str = "/rest/api/2/status";
const OPEN: &str = "1";
const IN_PROGRESS: &str = "3";
const DONE: &str = "10001";

/// A worker and an integration whose `base_url` is the fake Jira, with an access token.
async fn scene(concurrency: u16) -> Scene {
    scene_with(concurrency, Some("acc-tok")).await
}

async fn scene_with(concurrency: u16, access_token: Option<&str>) -> Scene {
    Scene::builder()
        .concurrency(concurrency)
        .credentials(access_token)
        .start()
        .await
}

/// A `jira:issue_updated` body whose changelog moves `key` from status `from` to `to`.
fn status_changed(key: &str, from: &str, to: &str, updated: &str) -> Value {
    json!({
        "timestamp": 1_700_000_000_000_i64,
        "webhookEvent": "jira:issue_updated",
        "issue": {"id": "10001", "key": key, "fields": {"summary": "x", "updated": updated}},
        "changelog": {"id": "2", "items": [
            {"field": "status", "fieldtype": "jira", "from": from, "fromString": "A", "to": to, "toString": "B"}
        ]}
    })
}

fn statuses() -> Value {
    json!([
        {"id": OPEN, "name": "Open", "statusCategory": {"id": 2, "key": "new"}},
        {"id": IN_PROGRESS, "name": "In Progress", "statusCategory": {"id": 4, "key": "indeterminate"}},
        {"id": DONE, "name": "Done", "statusCategory": {"id": 3, "key": "done"}}
    ])
}

impl Scene {
    /// An organization with status sync on, its group in `status`.
    async fn org(&self, key: &str, status: &str) -> Org {
        let org = self.seed().status_org(self.integration, key).await;
        self.set_status(org.group_id, status).await;
        org
    }

    async fn set_status(&self, group: i64, status: &str) {
        self.db
            .execute(
                "UPDATE groups SET status = $2 WHERE id = $1",
                &[&group, &status],
            )
            .await
            .expect("group status");
    }

    /// `GET /rest/api/2/status` answers `status` with `body` (up to `times`), signature checked.
    async fn mount_statuses(&self, status: u16, body: Value, times: Option<u64>) {
        let mock = Mock::given(method("GET"))
            .and(path(STATUS_PATH))
            .respond_with(
                self.jira
                    .verified(ResponseTemplate::new(status).set_body_json(body)),
            );
        let mock = match times {
            Some(n) => mock.up_to_n_times(n),
            None => mock,
        };
        mock.mount(&self.server).await;
    }

    async fn status_requests(&self) -> usize {
        self.requests_to(STATUS_PATH).await.len()
    }

    async fn group_status(&self, group: i64) -> String {
        self.db
            .query_one("SELECT status FROM groups WHERE id = $1", &[&group])
            .await
            .expect("group")
            .get(0)
    }

    async fn wait_status(&self, group: i64, expected: &str) {
        common::eventually(
            &format!("group {group} is {expected}"),
            WAIT,
            || async move { self.group_status(group).await == expected },
        )
        .await;
    }

    fn activity_data(&self) -> Value {
        json!({"integration": "jira_server", "integration_id": self.integration, "provider": "Jira Server"})
    }
}

#[tokio::test]
async fn a_status_moved_to_done_resolves_the_linked_group() {
    let s = scene(2).await;
    s.mount_statuses(200, statuses(), None).await;
    let org = s.org("ST-1", "unresolved").await;

    s.send(&status_changed("ST-1", OPEN, DONE, T1)).await;
    s.wait_status(org.group_id, "resolved").await;

    assert_eq!(
        s.activities(org.group_id).await,
        vec![("set_resolved".to_owned(), s.activity_data())]
    );
    let synced: Option<chrono::DateTime<chrono::Utc>> =
        s.db.query_one(
            "SELECT status_synced_at FROM external_issues WHERE id = $1",
            &[&org.external_issue_id],
        )
        .await
        .expect("external issue")
        .get(0);
    assert_eq!(synced, jirasync::jira::payload::parse_jira_time(T1));
    let signed = s.jira.verified_requests();
    assert_eq!(
        signed[0].get("oauth_token").map(String::as_str),
        Some("acc-tok")
    );
    s.finish().await;
}

#[tokio::test]
async fn done_then_not_done_unresolves_with_one_statuses_request() {
    let s = scene(1).await;
    s.mount_statuses(200, statuses(), None).await;
    let org = s.org("ST-2", "unresolved").await;

    s.send(&status_changed("ST-2", OPEN, DONE, T1)).await;
    s.wait_status(org.group_id, "resolved").await;
    s.send(&status_changed("ST-2", DONE, IN_PROGRESS, T2)).await;
    s.wait_status(org.group_id, "unresolved").await;
    // Not crossing the done boundary, and a redelivery: nothing more.
    s.send(&status_changed("ST-2", IN_PROGRESS, OPEN, T2)).await;
    s.send(&status_changed("ST-2", DONE, IN_PROGRESS, T2)).await;
    s.settle().await;

    let types: Vec<String> = s
        .activities(org.group_id)
        .await
        .into_iter()
        .map(|(kind, _)| kind)
        .collect();
    assert_eq!(types, ["set_resolved", "set_unresolved"]);
    assert_eq!(s.group_status(org.group_id).await, "unresolved");
    assert_eq!(s.status_requests().await, 1, "statuses are cached");
    s.finish().await;
}

#[tokio::test]
async fn ignored_and_already_resolved_groups_are_left_alone() {
    let s = scene(1).await;
    s.mount_statuses(200, statuses(), None).await;
    let org = s.org("ST-3", "ignored").await;
    let resolved = s.seed().group(org.project_id, "resolved").await;
    s.seed()
        .link(resolved, org.project_id, "issue", org.external_issue_id)
        .await;
    let other = s.org("ST-4", "resolved").await;
    s.set_status(other.group_id, "ignored").await;

    s.send(&status_changed("ST-3", OPEN, DONE, T1)).await;
    s.send(&status_changed("ST-4", DONE, OPEN, T1)).await;
    s.settle().await;

    assert_eq!(s.group_status(org.group_id).await, "ignored");
    assert_eq!(s.group_status(resolved).await, "resolved");
    assert_eq!(s.group_status(other.group_id).await, "ignored");
    for group in [org.group_id, resolved, other.group_id] {
        assert!(s.activities(group).await.is_empty(), "group {group}");
    }
    s.finish().await;
}

#[tokio::test]
async fn an_older_status_change_does_not_undo_a_newer_one() {
    let s = scene(1).await;
    s.mount_statuses(200, statuses(), None).await;
    let org = s.org("ST-5", "unresolved").await;

    s.send(&status_changed("ST-5", OPEN, DONE, T2)).await;
    s.wait_status(org.group_id, "resolved").await;
    s.send(&status_changed("ST-5", DONE, OPEN, T1)).await;
    // A newer change that crosses no boundary still guards against an older crossing.
    let other = s.org("ST-9", "unresolved").await;
    s.send(&status_changed("ST-9", IN_PROGRESS, OPEN, T2)).await;
    s.send(&status_changed("ST-9", OPEN, DONE, T1)).await;
    s.settle().await;

    assert_eq!(s.group_status(org.group_id).await, "resolved");
    assert_eq!(s.activities(org.group_id).await.len(), 1);
    assert_eq!(s.group_status(other.group_id).await, "unresolved");
    assert!(s.activities(other.group_id).await.is_empty());
    s.finish().await;
}

#[tokio::test]
async fn organizations_without_status_sync_are_not_touched_and_jira_is_not_asked() {
    let s = scene(1).await;
    s.mount_statuses(200, statuses(), None).await;
    let org = s.seed().org(s.integration, true, "ST-6").await;

    s.send(&status_changed("ST-6", OPEN, DONE, T1)).await;
    s.settle().await;

    assert_eq!(s.group_status(org.group_id).await, "unresolved");
    assert_eq!(s.status_requests().await, 0);
    s.finish().await;
}

#[tokio::test]
async fn a_failing_statuses_endpoint_is_retried_then_applied() {
    let s = scene(1).await;
    // Mounted first, so it answers first; then the 200 takes over.
    s.mount_statuses(503, json!({}), Some(1)).await;
    s.mount_statuses(200, statuses(), None).await;
    let org = s.org("ST-7", "unresolved").await;

    s.send(&status_changed("ST-7", OPEN, DONE, T1)).await;
    s.wait_status(org.group_id, "resolved").await;

    assert_eq!(s.status_requests().await, 2, "a 503, then the retry");
    assert_eq!(s.dead_letters().await, 0);
    s.finish().await;
}

#[tokio::test]
async fn an_integration_without_access_token_skips_status_sync() {
    let s = scene_with(1, None).await;
    s.mount_statuses(200, statuses(), None).await;
    let org = s.org("ST-8", "unresolved").await;

    s.send(&status_changed("ST-8", OPEN, DONE, T1)).await;
    s.settle().await;

    assert_eq!(s.group_status(org.group_id).await, "unresolved");
    assert_eq!(s.status_requests().await, 0, "no request can be signed");
    assert_eq!(s.dead_letters().await, 0, "skipped, not retried");
    s.finish().await;
}

#[tokio::test]
async fn each_status_decision_is_recorded_and_explained() {
    let s = scene(1).await;
    s.mount_statuses(200, statuses(), None).await;
    let org = s.org("ST-AUD", "unresolved").await;
    s.send(&status_changed("ST-AUD", OPEN, DONE, T1)).await;
    s.wait_status(org.group_id, "resolved").await;
    s.send(&status_changed("ST-AUD", OPEN, IN_PROGRESS, T2))
        .await;
    // No organization syncs statuses of this one.
    let plain = s.seed().org(s.integration, true, "ST-OFF").await;
    s.send(&status_changed("ST-OFF", OPEN, DONE, T1)).await;
    common::eventually("three decisions", WAIT, || async {
        s.db.query_one(
            "SELECT count(*) FROM sync_events WHERE kind = 'status'",
            &[],
        )
        .await
        .expect("count")
        .get::<_, i64>(0)
            == 3
    })
    .await;
    let rows =
        s.db.query(
            "SELECT issue_key, organization_id, outcome, detail FROM sync_events
              WHERE kind = 'status' ORDER BY id",
            &[],
        )
        .await
        .expect("events");
    let got: Vec<(String, Option<i64>, String, Value)> = rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect();
    assert_eq!(
        (
            got[0].1,
            got[0].2.as_str(),
            &got[0].3["groups"][0]["result"]
        ),
        (Some(org.id), "resolved", &json!("resolved"))
    );
    assert_eq!(
        (got[1].2.as_str(), &got[1].3["reason"]),
        ("unchanged", &json!("no_done_boundary"))
    );
    assert_eq!(
        (
            got[2].0.as_str(),
            got[2].1,
            got[2].2.as_str(),
            &got[2].3["reason"]
        ),
        (
            "ST-OFF",
            None,
            "not_synced",
            &json!("no_organization_syncs_statuses")
        )
    );
    let explain = |key: &str| {
        String::from_utf8_lossy(&common::output(&["explain", key], &s.settings).stdout).into_owned()
    };
    let text = explain("ST-AUD");
    assert!(
        text.contains("does not move into or out of Jira's done category"),
        "{text}"
    );
    assert!(
        text.contains(&format!("resolved group {}", org.group_id))
            && text.contains("moved into the done category"),
        "{text}"
    );
    assert!(explain("ST-OFF").contains("no organization syncs statuses back"));
    assert_eq!(s.group_status(plain.group_id).await, "unresolved");
    s.finish().await;
}

#[tokio::test]
async fn a_status_change_in_the_webhook_that_moves_the_issue_applies_under_the_new_key() {
    let s = scene(1).await;
    s.mount_statuses(200, statuses(), None).await;
    let org = s.org("ST-OLD", "unresolved").await;
    // Only the old key is known before the move: status sync must be found there.
    let mut moved = status_changed("ST-NEW", OPEN, DONE, T1);
    moved["changelog"]["items"]
        .as_array_mut()
        .expect("items")
        .push(json!({"field": "Key", "fieldtype": "jira", "fromString": "ST-OLD", "toString": "ST-NEW"}));
    s.send(&moved).await;
    s.wait_status(org.group_id, "resolved").await;
    let key: String =
        s.db.query_one(
            "SELECT key FROM external_issues WHERE id = $1",
            &[&org.external_issue_id],
        )
        .await
        .expect("issue")
        .get(0);
    assert_eq!(key, "ST-NEW");
    s.finish().await;
}
