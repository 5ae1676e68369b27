//! The echo of a push (docs/reference.md §10.7 b): the webhook Jira sends for
//! jirasync's own write changes nothing — even when the group changed again since —
//! moves the watermark, is recorded `echo` and starts no push; a later change to the
//! same value is applied as usual.

use crate::common::{TestApp as Scene, eventually, seed::assignee_changed, seed::jira_user};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::common::app::WAIT;

/// Jira's `updated` read back after the push.
const PUSHED_AT: &str = "2024-01-01T10:00:05.000+0000";

impl Scene {
    /// Records that a push wrote Jira user `value` to the issue row
    /// (`jira_updated` `None`: the write's answer is still awaited).
    async fn pushed(&self, external_issue_id: i64, value: &str, jira_updated: Option<&str>) {
        let updated: Option<DateTime<Utc>> = jira_updated.map(|t| {
            DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.3f%z")
                .expect("a Jira time")
                .with_timezone(&Utc)
        });
        self.db
            .execute(
                "INSERT INTO outbound_writes (external_issue_id, kind, value, jira_updated)
                 VALUES ($1, 'assignee', $2, $3)",
                &[&external_issue_id, &value, &updated],
            )
            .await
            .expect("outbound write");
    }

    /// The inbound assignee decisions about `key`: (outcome, detail).
    async fn assignee_events(&self, key: &str) -> Vec<(String, Value)> {
        self.db
            .query(
                "SELECT outcome, detail FROM sync_events
                  WHERE issue_key = $1 AND kind = 'assignee' ORDER BY id",
                &[&key],
            )
            .await
            .expect("events")
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect()
    }

    /// Waits for the first inbound assignee decision about `key`.
    async fn first_assignee_event(&self, key: &str) -> (String, Value) {
        eventually(&format!("a decision about {key}"), WAIT, || async {
            !self.assignee_events(key).await.is_empty()
        })
        .await;
        self.assignee_events(key).await.remove(0)
    }

    /// Captured changes of `group` written by this integration's inbound sync.
    async fn changes_from_jira(&self, group: i64) -> i64 {
        self.db
            .query_one(
                "SELECT count(*) FROM outbound_changes WHERE group_id = $1 AND origin_integration_id = $2",
                &[&group, &self.integration],
            )
            .await
            .expect("outbound changes")
            .get(0)
    }
}

#[tokio::test]
async fn the_webhook_of_a_push_changes_nothing_even_after_a_newer_change() {
    // No relay: a change the echo wrote would stay captured, to be counted.
    let s = Scene::builder()
        .configure(|settings| settings.worker.outbound = false)
        .start()
        .await;
    let org = s.seed().org(s.integration, true, "ECH-1").await;
    // Pushed to Jira: its changes are captured, an echo must start none.
    s.forward_assignments(org.id).await;
    // Jira names amy "u" (`jira_user`); the push wrote "u".
    s.seed().teammate(&org, "amy@example.org").await;
    let bob = s.seed().teammate(&org, "bob@example.org").await;
    s.pushed(org.external_issue_id, "u", Some(PUSHED_AT)).await;
    // The application reassigned the group since.
    s.host_assigns(org.group_id, org.project_id, bob).await;

    s.send(&assignee_changed(
        "ECH-1",
        jira_user("amy@example.org"),
        PUSHED_AT,
    ))
    .await;

    let (outcome, detail) = s.first_assignee_event("ECH-1").await;
    assert_eq!(outcome, "echo", "{detail}");
    assert_eq!(detail["echo_of"], "u");
    assert_eq!(s.assignee(org.group_id).await, Some(bob), "nothing changed");
    assert_eq!(
        s.changes_from_jira(org.group_id).await,
        0,
        "no push started"
    );
    let watermark: Option<DateTime<Utc>> =
        s.db.query_one(
            "SELECT assignee_synced_at FROM external_issues WHERE id = $1",
            &[&org.external_issue_id],
        )
        .await
        .expect("watermark")
        .get(0);
    assert_eq!(
        watermark.map(|t| t.to_rfc3339()),
        Some("2024-01-01T10:00:05+00:00".to_owned()),
        "the echo moves the watermark"
    );
    s.finish().await;
}

#[tokio::test]
async fn an_echo_that_arrives_before_the_write_is_answered_is_an_echo() {
    let s = Scene::builder().start().await;
    let org = s.seed().org(s.integration, true, "ECH-2").await;
    s.forward_assignments(org.id).await;
    s.seed().teammate(&org, "amy@example.org").await;
    s.pushed(org.external_issue_id, "u", None).await;

    s.send(&assignee_changed(
        "ECH-2",
        jira_user("amy@example.org"),
        PUSHED_AT,
    ))
    .await;

    let (outcome, detail) = s.first_assignee_event("ECH-2").await;
    assert_eq!(outcome, "echo", "{detail}");
    assert_eq!(s.assignee(org.group_id).await, None);
    s.finish().await;
}

#[tokio::test]
async fn a_later_change_to_the_pushed_value_is_applied() {
    let s = Scene::builder().start().await;
    let org = s.seed().org(s.integration, true, "ECH-3").await;
    s.forward_assignments(org.id).await;
    let amy = s.seed().teammate(&org, "amy@example.org").await;
    s.pushed(org.external_issue_id, "u", Some(PUSHED_AT)).await;

    // Someone set amy in Jira a minute after the push.
    s.send(&assignee_changed(
        "ECH-3",
        jira_user("amy@example.org"),
        "2024-01-01T10:01:05.000+0000",
    ))
    .await;

    s.wait_assignee(org.group_id, Some(amy)).await;
    let (outcome, _) = s.first_assignee_event("ECH-3").await;
    assert_eq!(outcome, "assigned");
    s.finish().await;
}
