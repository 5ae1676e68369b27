//! The worker against the real RabbitMQ and Postgres: every rule of docs/reference.md §5.
//! Tests that assert "nothing happened" run the worker with concurrency 1 and then
//! send a sentinel webhook: once the sentinel is applied, everything before it was handled.

use crate::common::{self, TestApp};

use std::time::Duration;

use common::seed::{self, Org, SECRET, Seed, assignee_changed, jira_user};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
const T1: &str = "2024-01-01T10:00:00.000+0000";
const T2: &str = "2024-01-01T11:00:00.000+0000";
const T0: &str = "2024-01-01T09:00:00.000+0000";

/// A worker with `concurrency` tasks and a seeded integration.
async fn scene(concurrency: u16) -> TestApp {
    TestApp::builder().concurrency(concurrency).start().await
}

impl TestApp {
    async fn synced_at(&self, external_issue: i64) -> Option<chrono::DateTime<chrono::Utc>> {
        self.db
            .query_one(
                "SELECT assignee_synced_at FROM external_issues WHERE id = $1",
                &[&external_issue],
            )
            .await
            .expect("external issue")
            .get(0)
    }
}

#[tokio::test]
async fn assigns_by_email_in_another_case_and_records_the_activity() {
    let s = scene(4).await;
    let org = s.seed().org(s.integration, true, "APP-1").await;
    let user = s.seed().teammate(&org, "Jane.Doe@Example.org").await;

    s.send(&assignee_changed(
        "APP-1",
        jira_user("jane.doe@EXAMPLE.ORG"),
        T1,
    ))
    .await;
    s.wait_assignee(org.group_id, Some(user)).await;

    let activities = s.activities(org.group_id).await;
    assert_eq!(activities.len(), 1);
    assert_eq!(activities[0].0, "assigned");
    assert_eq!(
        activities[0].1,
        json!({"assignee": user.to_string(), "assigneeEmail": "Jane.Doe@Example.org", "assigneeType": "user",
               "integration": "jira_server", "integration_id": s.integration})
    );
    let row =
        s.db.query_one(
            "SELECT user_id, project_id FROM activities WHERE group_id = $1",
            &[&org.group_id],
        )
        .await
        .expect("activity");
    assert_eq!(
        row.get::<_, Option<i64>>(0),
        None,
        "activity user_id is NULL"
    );
    assert_eq!(row.get::<_, i64>(1), org.project_id);
    assert_eq!(
        s.synced_at(org.external_issue_id).await,
        jirasync::jira::payload::parse_jira_time(T1),
        "assignee_synced_at moved to the event time"
    );
    s.finish().await;
}

#[tokio::test]
async fn unverified_emails_and_inactive_users_never_match() {
    let s = scene(1).await;
    let org = s.seed().org(s.integration, true, "APP-2").await;
    let unverified = s.seed().user("a@example.org", false, true).await;
    s.seed().member(&org, unverified, true).await;
    let inactive = s.seed().user("b@example.org", true, false).await;
    s.seed().member(&org, inactive, true).await;

    s.send(&assignee_changed("APP-2", jira_user("a@example.org"), T1))
        .await;
    s.send(&assignee_changed("APP-2", jira_user("b@example.org"), T2))
        .await;
    s.settle().await;
    assert_eq!(s.assignee(org.group_id).await, None);
    assert!(s.activities(org.group_id).await.is_empty());
    s.finish().await;
}

#[tokio::test]
async fn users_outside_the_projects_active_teams_are_not_assigned() {
    let s = scene(1).await;
    let org = s.seed().org(s.integration, true, "APP-3").await;
    // Verified and active, but: no team at all; an inactive team membership; a team without the project.
    s.seed().user("loner@example.org", true, true).await;
    let inactive_member = s
        .seed()
        .user("inactive-member@example.org", true, true)
        .await;
    s.seed().member(&org, inactive_member, false).await;
    let other_team_user = s.seed().user("other-team@example.org", true, true).await;
    let other = s.seed().org(s.integration, false, "UNRELATED-1").await;
    s.seed().member(&other, other_team_user, true).await;

    for (i, email) in [
        "loner@example.org",
        "inactive-member@example.org",
        "other-team@example.org",
    ]
    .iter()
    .enumerate()
    {
        let at = format!("2024-01-01T1{i}:00:00.000+0000");
        s.send(&assignee_changed("APP-3", jira_user(email), &at))
            .await;
    }
    s.settle().await;
    assert_eq!(s.assignee(org.group_id).await, None);
    s.finish().await;
}

#[tokio::test]
async fn of_two_users_sharing_an_email_the_lowest_id_wins() {
    let s = scene(4).await;
    let org = s.seed().org(s.integration, true, "APP-4").await;
    let first = s.seed().teammate(&org, "shared@example.org").await;
    let second = s.seed().teammate(&org, "SHARED@example.org").await;
    assert!(first < second);
    s.send(&assignee_changed(
        "APP-4",
        jira_user("shared@example.org"),
        T1,
    ))
    .await;
    s.wait_assignee(org.group_id, Some(first)).await;
    s.finish().await;
}

#[tokio::test]
async fn only_organizations_with_sync_on_are_changed() {
    let s = scene(1).await;
    let on_a = s.seed().org(s.integration, true, "APP-5").await;
    let on_b = s.seed().org(s.integration, true, "APP-5").await;
    let off = s.seed().org(s.integration, false, "APP-5").await;
    let mut users = Vec::new();
    for org in [&on_a, &on_b, &off] {
        users.push(s.seed().teammate(org, "multi@example.org").await);
    }
    s.send(&assignee_changed(
        "APP-5",
        jira_user("multi@example.org"),
        T1,
    ))
    .await;
    s.wait_assignee(on_a.group_id, Some(users[0])).await;
    s.wait_assignee(on_b.group_id, Some(users[1])).await;
    s.settle().await;
    assert_eq!(s.assignee(off.group_id).await, None, "sync off: untouched");
    s.finish().await;
}

#[tokio::test]
async fn a_null_or_absent_assignee_unassigns_and_only_a_real_unassign_writes_an_activity() {
    let s = scene(1).await;
    let org = s.seed().org(s.integration, true, "APP-6").await;
    let user = s.seed().teammate(&org, "x@example.org").await;
    s.send(&assignee_changed("APP-6", jira_user("x@example.org"), T0))
        .await;
    s.wait_assignee(org.group_id, Some(user)).await;

    s.send(&assignee_changed("APP-6", Value::Null, T1)).await;
    s.wait_assignee(org.group_id, None).await;

    // Assign again, then unassign with `fields: {}` (no assignee key at all).
    s.send(&assignee_changed("APP-6", jira_user("x@example.org"), T2))
        .await;
    s.wait_assignee(org.group_id, Some(user)).await;
    let mut absent = assignee_changed("APP-6", Value::Null, "2024-01-01T12:00:00.000+0000");
    absent["issue"]["fields"] = json!({});
    absent["timestamp"] = json!(1_704_114_000_000_i64); // 2024-01-01T13:00:00Z
    s.send(&absent).await;
    s.wait_assignee(org.group_id, None).await;

    // Unassigning an unassigned group writes nothing.
    s.send(&assignee_changed(
        "APP-6",
        Value::Null,
        "2024-01-01T14:00:00.000+0000",
    ))
    .await;
    s.settle().await;
    let kinds: Vec<String> = s
        .activities(org.group_id)
        .await
        .into_iter()
        .map(|a| a.0)
        .collect();
    assert_eq!(kinds, ["assigned", "unassigned", "assigned", "unassigned"]);
    let unassigned = &s.activities(org.group_id).await[1].1;
    assert_eq!(
        unassigned,
        &json!({"integration": "jira_server", "integration_id": s.integration})
    );
    s.finish().await;
}

#[tokio::test]
async fn an_assignee_without_email_changes_nothing() {
    let s = scene(1).await;
    let org = s.seed().org(s.integration, true, "APP-7").await;
    let user = s.seed().teammate(&org, "x@example.org").await;
    s.send(&assignee_changed("APP-7", jira_user("x@example.org"), T0))
        .await;
    s.wait_assignee(org.group_id, Some(user)).await;
    s.send(&assignee_changed(
        "APP-7",
        json!({"name": "hidden", "displayName": "Hidden"}),
        T1,
    ))
    .await;
    s.settle().await;
    assert_eq!(s.assignee(org.group_id).await, Some(user), "still assigned");
    assert_eq!(s.activities(org.group_id).await.len(), 1);
    s.finish().await;
}

#[tokio::test]
async fn the_same_message_twice_writes_one_activity() {
    let s = scene(1).await;
    let org = s.seed().org(s.integration, true, "APP-8").await;
    let user = s.seed().teammate(&org, "x@example.org").await;
    let body = assignee_changed("APP-8", jira_user("x@example.org"), T1);
    s.send(&body).await;
    s.send(&body).await;
    // And once without an event time, where the ordering guard does nothing.
    let mut timeless = body.clone();
    timeless["issue"]["fields"]
        .as_object_mut()
        .expect("fields")
        .remove("updated");
    timeless.as_object_mut().expect("body").remove("timestamp");
    s.send(&timeless).await;
    s.settle().await;
    assert_eq!(s.assignee(org.group_id).await, Some(user));
    assert_eq!(s.activities(org.group_id).await.len(), 1);
    s.finish().await;
}

#[tokio::test]
async fn an_older_event_after_a_newer_one_is_skipped_and_an_equal_one_is_a_no_op() {
    let s = scene(1).await;
    let org = s.seed().org(s.integration, true, "APP-9").await;
    let newer = s.seed().teammate(&org, "newer@example.org").await;
    s.seed().teammate(&org, "older@example.org").await;
    s.send(&assignee_changed(
        "APP-9",
        jira_user("newer@example.org"),
        T2,
    ))
    .await;
    s.send(&assignee_changed(
        "APP-9",
        jira_user("older@example.org"),
        T1,
    ))
    .await;
    s.send(&assignee_changed("APP-9", Value::Null, T1)).await;
    // Equal time: applied (not stale) but changes nothing.
    s.send(&assignee_changed(
        "APP-9",
        jira_user("newer@example.org"),
        T2,
    ))
    .await;
    s.settle().await;
    assert_eq!(s.assignee(org.group_id).await, Some(newer));
    assert_eq!(s.activities(org.group_id).await.len(), 1);
    assert_eq!(
        s.synced_at(org.external_issue_id).await,
        jirasync::jira::payload::parse_jira_time(T2),
        "never moved back"
    );
    s.finish().await;
}

#[tokio::test]
async fn commit_links_with_a_colliding_id_and_groups_being_deleted_are_untouched() {
    let s = scene(1).await;
    let org = s.seed().org(s.integration, true, "APP-10").await;
    let user = s.seed().teammate(&org, "x@example.org").await;
    // A commit link whose linked_id equals the external issue's id.
    let commit_group = s.seed().group(org.project_id, "unresolved").await;
    s.seed()
        .link(
            commit_group,
            org.project_id,
            "commit",
            org.external_issue_id,
        )
        .await;
    let mut deleting = Vec::new();
    for status in ["pending_deletion", "deletion_in_progress"] {
        let group = s.seed().group(org.project_id, status).await;
        s.seed()
            .link(group, org.project_id, "issue", org.external_issue_id)
            .await;
        deleting.push(group);
    }
    s.send(&assignee_changed("APP-10", jira_user("x@example.org"), T1))
        .await;
    s.wait_assignee(org.group_id, Some(user)).await;
    s.settle().await;
    assert_eq!(s.assignee(commit_group).await, None, "commit link");
    for group in deleting {
        assert_eq!(s.assignee(group).await, None, "group being deleted");
    }
    s.finish().await;
}

#[tokio::test]
async fn rejected_tokens_write_nothing_and_dead_letter_nothing() {
    let s = scene(1).await;
    let org = s.seed().org(s.integration, true, "APP-11").await;
    s.seed().teammate(&org, "x@example.org").await;
    let (disabled, disabled_external) = s.seed().integration(json!({})).await;
    s.db.execute(
        "UPDATE integrations SET status = 'disabled' WHERE id = $1",
        &[&disabled],
    )
    .await
    .expect("disable");
    let id = json!({ "id": s.external_id });
    let tokens = [
        ("bad signature", seed::token(&s.external_id, "wrong-secret")),
        (
            "alg none",
            format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", base64url(&id)),
        ),
        (
            "HS512",
            seed::token_with(Algorithm::HS512, id.clone(), SECRET),
        ),
        (
            "no id claim",
            seed::token_with(Algorithm::HS256, json!({"sub": s.external_id}), SECRET),
        ),
        (
            "unknown integration",
            seed::token("jira.example.org:nobody", SECRET),
        ),
        (
            "disabled integration",
            seed::token(&disabled_external, SECRET),
        ),
        (
            "aud claim",
            seed::token_with(
                Algorithm::HS256,
                json!({"id": s.external_id, "aud": "x"}),
                SECRET,
            ),
        ),
        (
            "expired",
            seed::token_with(
                Algorithm::HS256,
                json!({"id": s.external_id, "exp": 1_000}),
                SECRET,
            ),
        ),
    ];
    let body = assignee_changed("APP-11", jira_user("x@example.org"), T1).to_string();
    for (_, token) in &tokens {
        s.send_with(token, body.as_bytes(), None).await;
    }
    s.settle().await;
    assert_eq!(
        s.assignee(org.group_id).await,
        None,
        "no token was accepted"
    );
    assert_eq!(
        s.dead_letters().await,
        0,
        "rejected tokens are dropped, not dead-lettered"
    );
    s.finish().await;
}

#[tokio::test]
async fn an_hmac_secret_requires_a_matching_signature() {
    let s = scene(1).await;
    let (integration, external_id) = s
        .seed()
        .integration(json!({"webhook_hmac_secret": "hmac-key"}))
        .await;
    let org = s.seed().org(integration, true, "APP-12").await;
    let user = s.seed().teammate(&org, "x@example.org").await;
    let token = seed::token(&external_id, SECRET);
    let body = assignee_changed("APP-12", jira_user("x@example.org"), T1).to_string();

    s.send_with(&token, body.as_bytes(), None).await;
    s.send_with(&token, body.as_bytes(), Some("sha256=00ff"))
        .await;
    s.settle().await;
    assert_eq!(
        s.assignee(org.group_id).await,
        None,
        "unsigned and wrongly signed are dropped"
    );
    let signature = seed::hub_signature("hmac-key", body.as_bytes());
    s.send_with(&token, body.as_bytes(), Some(&signature)).await;
    s.wait_assignee(org.group_id, Some(user)).await;
    s.finish().await;
}

#[tokio::test]
async fn malformed_bodies_are_dead_lettered_at_once_with_a_reason() {
    let s = scene(1).await;
    let cases: [(&[u8], &str); 3] = [
        (b"{not json", "not valid JSON"),
        (b"[1, 2, 3]", "not an object"),
        (
            br#"{"changelog": {"items": [{"field": "assignee"}]}, "issue": {"key": "APP-13"}}"#,
            "issue.fields",
        ),
    ];
    for (body, _) in &cases {
        s.send_with(&s.token, body, None).await;
    }
    let dead = common::names(&s.settings).dead();
    for (body, reason) in &cases {
        let message = common::get_one(&s.channel, &dead, WAIT)
            .await
            .expect("a dead letter");
        let props = &message.delivery.properties;
        assert_eq!(&message.delivery.data, body, "body kept byte for byte");
        let error =
            jirasync::queue::message::header_str(props, "x-jirasync-error").expect("error header");
        assert!(error.contains(reason), "{error:?} names {reason:?}");
        assert!(!error.contains('\n'), "one line");
        assert_eq!(
            jirasync::queue::message::header_int(props, "x-jirasync-attempts"),
            Some(1)
        );
        assert_eq!(
            jirasync::queue::message::header_str(props, "x-jirasync-source-queue"),
            Some(common::names(&s.settings).webhooks())
        );
        assert_eq!(
            jirasync::queue::message::header_str(props, "token").as_deref(),
            Some(s.token.as_str()),
            "original headers kept"
        );
    }
    s.finish().await;
}

#[tokio::test]
async fn a_thousand_webhooks_across_fifty_issues_end_in_each_issues_last_event() {
    use rand::seq::SliceRandom;
    let settings = common::migrated().await;
    let db = common::db(&settings).await;
    let seed = Seed { db: &db };
    let (integration, external_id) = seed.integration(json!({})).await;
    let token = seed::token(&external_id, SECRET);
    let mut orgs: Vec<Org> = Vec::new();
    let mut users = Vec::new();
    for i in 0..50 {
        orgs.push(seed.org(integration, true, &format!("BULK-{i}")).await);
    }
    // Five users, members of every org's team.
    for u in 0..5 {
        let user = seed.user(&format!("bulk{u}@example.org"), true, true).await;
        for org in &orgs {
            seed.member(org, user, true).await;
        }
        users.push(user);
    }
    let mut messages = Vec::new();
    let mut expected = Vec::new();
    for (i, _) in orgs.iter().enumerate() {
        let mut last = None;
        for n in 0..20 {
            let pick = (i * 7 + n * 3) % 6; // 5 = unassign
            let assignee = if pick == 5 {
                Value::Null
            } else {
                jira_user(&format!("bulk{pick}@example.org"))
            };
            let at = format!("2024-01-01T10:{n:02}:00.000+0000");
            messages.push(assignee_changed(&format!("BULK-{i}"), assignee, &at).to_string());
            last = (pick != 5).then(|| users[pick]);
        }
        expected.push(last);
    }
    messages.shuffle(&mut rand::rng());

    let (_connection, channel) = common::amqp().await;
    common::declare_topology(&settings).await.expect("topology");
    for body in &messages {
        common::publish_webhook(&channel, &settings, &token, body.as_bytes(), None).await;
    }
    let workers: Vec<_> = (0..3).map(|_| common::spawn_worker(&settings)).collect();
    common::eventually(
        "the queue is drained and every issue is in its last state",
        Duration::from_secs(120),
        || {
            let (db, orgs, expected) = (&db, &orgs, &expected);
            async move {
                for (org, want) in orgs.iter().zip(expected) {
                    let got: Option<i64> = common::assignee(db, org.group_id).await;
                    if got != *want {
                        return false;
                    }
                }
                true
            }
        },
    )
    .await;
    common::eventually(
        "the webhook queue is empty",
        Duration::from_secs(30),
        || {
            let channel = &channel;
            let queue = common::names(&settings).webhooks();
            async move { common::depth(channel, &queue).await == 0 }
        },
    )
    .await;
    for worker in workers {
        worker.stop().await;
    }
    assert_eq!(
        common::depth(&channel, &common::names(&settings).dead()).await,
        0
    );
}

fn base64url(value: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}
