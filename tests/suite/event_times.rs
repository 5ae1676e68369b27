//! Bounded event times (docs/reference.md §5.6): an event time later than the
//! receive time + `JIRASYNC_MAX_EVENT_SKEW` is replaced by the receive time (Jira's
//! kept in `sync_events.detail.event_time_clamped_from`), so a webhook — or a
//! search result — dated in year 9999 cannot freeze an issue; a watermark an older
//! version left there binds nothing and is replaced by the issue's next change;
//! and a batch of webhooks does the same.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use jirasync::integration::messages::WEBHOOK;
use jirasync::jira::payload::parse_jira_time;
use jirasync::queue::job::Job;
use jirasync::queue::message::long_string;
use jirasync::worker::jobs::Reconcile;
use lapin::BasicProperties;
use lapin::types::FieldTable;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::batching::Held;
use crate::common::app::{T1, WAIT};
use crate::common::seed::{Org, assignee_changed, jira_user};
use crate::common::{self, TestApp};
use crate::issue_moves::moved;

/// The review's probe: an `updated` no clock reaches.
const FAR: &str = "9999-12-31T23:59:59.000+0000";
/// `FAR` as `sync_events.detail` keeps it.
const FAR_JSON: &str = "9999-12-31T23:59:59Z";
/// `JIRASYNC_MAX_EVENT_SKEW`'s default, which the tests run with.
const SKEW: TimeDelta = TimeDelta::minutes(5);
const OPEN: &str = "1";
const DONE: &str = "10001";

/// Now, as Jira would date a change made now (to the millisecond), and parsed.
fn now_in_jira() -> (String, DateTime<Utc>) {
    in_jira(Utc::now())
}

/// `at` as Jira writes it (to the millisecond), and parsed back.
fn in_jira(at: DateTime<Utc>) -> (String, DateTime<Utc>) {
    let text = at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string();
    let at = parse_jira_time(&text).expect("a Jira time");
    (text, at)
}

/// A webhook that changes the assignee of `key` and its status from `from` to `to`.
fn both_changed(key: &str, assignee: Value, from: &str, to: &str, updated: &str) -> Value {
    let mut body = assignee_changed(key, assignee, updated);
    body["changelog"]["items"]
        .as_array_mut()
        .expect("items")
        .push(json!({"field": "status", "fieldtype": "jira", "from": from, "to": to}));
    body
}

/// A worker (16 tasks) and an integration with an access token, whose Jira
/// answers its statuses (`DONE` is done).
async fn scene() -> TestApp {
    let app = TestApp::builder()
        .credentials(Some("acc-tok"))
        .start()
        .await;
    let statuses = json!([
        {"id": OPEN, "name": "Open", "statusCategory": {"id": 2, "key": "new"}},
        {"id": DONE, "name": "Done", "statusCategory": {"id": 3, "key": "done"}}
    ]);
    Mock::given(method("GET"))
        .and(path("/rest/api/2/status"))
        .respond_with(
            app.jira
                .verified(ResponseTemplate::new(200).set_body_json(statuses)),
        )
        .mount(&app.server)
        .await;
    app
}

/// An organization that syncs assignees and statuses back, with `key` linked.
async fn org(app: &TestApp, key: &str) -> Org {
    app.seed().status_org(app.integration, key).await
}

async fn wait_status(app: &TestApp, group: i64, expected: &str) {
    common::eventually(&format!("group {group} is {expected}"), WAIT, || async {
        let sql = "SELECT status FROM groups WHERE id = $1";
        let row = app.db.query_one(sql, &[&group]).await.expect("group");
        row.get::<_, String>(0) == expected
    })
    .await;
}

type Time = Option<DateTime<Utc>>;

/// The row's (assignee, status, key) watermarks.
async fn watermarks(app: &TestApp, external_issue: i64) -> (Time, Time, Time) {
    let row = app
        .db
        .query_one(
            "SELECT assignee_synced_at, status_synced_at, key_synced_at FROM external_issues
              WHERE id = $1",
            &[&external_issue],
        )
        .await
        .expect("external issue");
    (row.get(0), row.get(1), row.get(2))
}

/// Rows with a watermark later than `bound`.
async fn watermarks_beyond(app: &TestApp, bound: DateTime<Utc>) -> i64 {
    app.db
        .query_one(
            "SELECT count(*) FROM external_issues
              WHERE GREATEST(assignee_synced_at, status_synced_at, key_synced_at) > $1",
            &[&bound],
        )
        .await
        .expect("watermarks")
        .get(0)
}

/// The decisions about `key` whose detail has `field`: (kind, outcome, event
/// time, detail), oldest first.
async fn decisions_with(
    app: &TestApp,
    key: &str,
    field: &str,
) -> Vec<(String, String, Time, Value)> {
    app.db
        .query(
            "SELECT kind, outcome, event_time, detail FROM sync_events
              WHERE issue_key = $1 AND detail ? $2 ORDER BY id",
            &[&key, &field],
        )
        .await
        .expect("sync_events")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

fn explain(app: &TestApp, key: &str) -> String {
    String::from_utf8_lossy(&common::output(&["explain", key], &app.settings).stdout).into_owned()
}

/// A receive time lies between `before` (to the millisecond below) and `after`.
fn received_between(at: Time, before: DateTime<Utc>, after: DateTime<Utc>) -> bool {
    at.is_some_and(|at| at >= before - TimeDelta::milliseconds(1) && at <= after)
}

#[tokio::test]
async fn a_year_9999_webhook_is_clamped_and_a_later_genuine_change_applies() {
    let app = scene().await;
    let org = org(&app, "CLK-1").await;
    let mallory = app.seed().teammate(&org, "mallory@example.org").await;
    let jane = app.seed().teammate(&org, "jane@example.org").await;

    // The review's probe: assigns and resolves, dated in year 9999.
    let before = Utc::now();
    let probe = both_changed("CLK-1", jira_user("mallory@example.org"), OPEN, DONE, FAR);
    app.send(&probe).await;
    let sent = Utc::now();
    app.wait_assignee(org.group_id, Some(mallory)).await;
    wait_status(&app, org.group_id, "resolved").await;

    // A genuine change made afterwards, dated by Jira's clock: it applies.
    let (now, genuine) = now_in_jira();
    let change = both_changed("CLK-1", jira_user("jane@example.org"), DONE, OPEN, &now);
    app.send(&change).await;
    app.wait_assignee(org.group_id, Some(jane)).await;
    wait_status(&app, org.group_id, "unresolved").await;

    // The probe's decisions keep Jira's time; they ordered by its receive time.
    let clamped = decisions_with(&app, "CLK-1", "event_time_clamped_from").await;
    let kinds: Vec<(&str, &str)> = clamped
        .iter()
        .map(|(kind, outcome, ..)| (kind.as_str(), outcome.as_str()))
        .collect();
    assert_eq!(kinds, [("assignee", "assigned"), ("status", "resolved")]);
    for (kind, _, event_time, detail) in &clamped {
        assert_eq!(detail["event_time_clamped_from"], FAR_JSON, "{kind}");
        assert!(
            received_between(*event_time, before, sent),
            "{kind}: event time {event_time:?} is the receive time, between {before} and {sent}"
        );
    }
    // The genuine change's decisions are not clamped, and moved every watermark
    // to its own time: none lies beyond a receive time + the skew.
    assert_eq!(
        watermarks(&app, org.external_issue_id).await,
        (Some(genuine), Some(genuine), None)
    );
    assert_eq!(watermarks_beyond(&app, Utc::now() + SKEW).await, 0);
    let text = explain(&app, "CLK-1");
    assert!(
        text.contains(&format!(
            "Jira's event time {FAR_JSON} lay beyond the time jirasync received"
        )) && text.contains("so the receive time was used"),
        "{text}"
    );
    assert_eq!(app.dead_letters().await, 0);
    app.finish().await;
}

#[tokio::test]
async fn an_issue_frozen_by_an_older_version_is_repaired_by_its_next_change() {
    let app = scene().await;
    let org = org(&app, "CLK-2").await;
    let jane = app.seed().teammate(&org, "jane@example.org").await;
    // What a version before the bound left after the probe.
    app.db
        .execute(
            "UPDATE external_issues SET assignee_synced_at = $2, status_synced_at = $2 WHERE id = $1",
            &[&org.external_issue_id, &parse_jira_time(FAR)],
        )
        .await
        .expect("a frozen issue");

    let (now, genuine) = now_in_jira();
    let change = both_changed("CLK-2", jira_user("jane@example.org"), OPEN, DONE, &now);
    app.send(&change).await;
    app.wait_assignee(org.group_id, Some(jane)).await;
    wait_status(&app, org.group_id, "resolved").await;
    assert_eq!(
        watermarks(&app, org.external_issue_id).await,
        (Some(genuine), Some(genuine), None),
        "the watermarks that bound nothing were replaced"
    );
    let reset = decisions_with(&app, "CLK-2", "watermark_reset_from").await;
    let kinds: Vec<(&str, &str)> = reset
        .iter()
        .map(|(kind, outcome, ..)| (kind.as_str(), outcome.as_str()))
        .collect();
    assert_eq!(kinds, [("assignee", "assigned"), ("status", "resolved")]);
    assert!(
        reset
            .iter()
            .all(|(.., detail)| detail["watermark_reset_from"] == FAR_JSON),
        "{reset:?}"
    );

    // The repaired watermark binds: an older change delivered late is stale.
    app.send(&assignee_changed("CLK-2", json!(null), T1)).await;
    common::eventually("the late change is decided stale", WAIT, || async {
        decisions_with(&app, "CLK-2", "applied_up_to").await.len() == 1
    })
    .await;
    assert_eq!(app.assignee(org.group_id).await, Some(jane));
    let text = explain(&app, "CLK-2");
    assert!(
        text.contains(&format!(
            "the watermark there, {FAR_JSON}, lay beyond any receive time"
        )),
        "{text}"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_message_without_a_receive_time_is_bounded_by_the_time_the_worker_took_it() {
    let app = scene().await;
    let org = org(&app, "CLK-3").await;
    let mallory = app.seed().teammate(&org, "mallory@example.org").await;
    // Published by hand: the token, no `received_at_ms`.
    let mut headers = FieldTable::default();
    headers.insert("token".into(), long_string(&app.token));
    let props = BasicProperties::default()
        .with_type(WEBHOOK.into())
        .with_message_id("by-hand".into())
        .with_headers(headers);
    let body = assignee_changed("CLK-3", jira_user("mallory@example.org"), FAR).to_string();
    let before = Utc::now();
    common::publish(&app.channel, &app.settings, WEBHOOK, body.as_bytes(), props).await;
    app.wait_assignee(org.group_id, Some(mallory)).await;
    let after = Utc::now();
    let clamped = decisions_with(&app, "CLK-3", "event_time_clamped_from").await;
    assert_eq!(clamped.len(), 1, "{clamped:?}");
    assert!(
        received_between(clamped[0].2, before, after),
        "{:?} between {before} and {after}",
        clamped[0].2
    );
    assert_eq!(watermarks_beyond(&app, after + SKEW).await, 0);
    app.finish().await;
}

#[tokio::test]
async fn a_far_future_updated_from_jiras_search_does_not_freeze_the_issue() {
    let app = TestApp::builder()
        .no_worker()
        .credentials(Some("acc-tok"))
        .configure(|settings| settings.worker.reconcile_interval = Duration::ZERO)
        .start()
        .await;
    let org = app.seed().org(app.integration, true, "REC-9").await;
    let mallory = app.seed().teammate(&org, "mallory@example.org").await;
    let jane = app.seed().teammate(&org, "jane@example.org").await;
    let found = json!({"startAt": 0, "maxResults": 100, "total": 1, "issues": [
        {"id": "10009", "key": "REC-9", "fields": {"assignee": jira_user("mallory@example.org"), "updated": FAR}}
    ]});
    Mock::given(method("POST"))
        .and(path("/rest/api/2/search"))
        .respond_with(
            app.jira
                .verified(ResponseTemplate::new(200).set_body_json(found)),
        )
        .mount(&app.server)
        .await;
    let worker = common::spawn_worker(&app.settings);

    let before = Utc::now();
    let (_, body, props) = Reconcile {
        integration_id: app.integration,
        since_ms: None,
    }
    .to_message();
    common::publish(&app.channel, &app.settings, Reconcile::TYPE, &body, props).await;
    app.wait_assignee(org.group_id, Some(mallory)).await;
    let after = Utc::now();
    let (assignee_synced, ..) = watermarks(&app, org.external_issue_id).await;
    assert!(
        received_between(assignee_synced, before, after),
        "bounded by the time the search answered: {assignee_synced:?}"
    );
    let clamped = decisions_with(&app, "REC-9", "event_time_clamped_from").await;
    assert_eq!(clamped.len(), 1, "{clamped:?}");
    assert_eq!(clamped[0].3["event_time_clamped_from"], FAR_JSON);

    // A change made after the reconciliation applies.
    let (now, _) = now_in_jira();
    app.send(&assignee_changed(
        "REC-9",
        jira_user("jane@example.org"),
        &now,
    ))
    .await;
    app.wait_assignee(org.group_id, Some(jane)).await;
    assert_eq!(watermarks_beyond(&app, Utc::now() + SKEW).await, 0);
    worker.stop().await;
    app.finish().await;
}

/// The issues' decisions as (issue key, kind, outcome, transaction start).
async fn decided(app: &TestApp, prefix: &str) -> Vec<(String, String, String, String)> {
    app.db
        .query(
            "SELECT issue_key, kind, outcome, created_at::text FROM sync_events
              WHERE issue_key LIKE $1 ORDER BY id",
            &[&format!("{prefix}%")],
        )
        .await
        .expect("sync_events")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

#[tokio::test]
async fn in_a_batch_event_times_are_clamped_and_older_moves_are_stale() {
    const ISSUES: usize = 6;
    let app = TestApp::builder().concurrency(64).no_worker().start().await;
    let t2 = "2024-01-05T10:00:00.000+0000";
    let mut clocks = Vec::new();
    let mut moves = Vec::new();
    for i in 0..ISSUES {
        let org = app
            .seed()
            .org(app.integration, true, &format!("BCLK-{i}"))
            .await;
        let seed = app.seed();
        seed.teammate(&org, &format!("mallory{i}@example.org"))
            .await;
        let jane = seed.teammate(&org, &format!("jane{i}@example.org")).await;
        clocks.push((org, jane));
        // As a move BMOVA-i → BMOVB-i at t2 left it.
        let moved = app
            .seed()
            .org(app.integration, true, &format!("BMOVB-{i}"))
            .await;
        app.db
            .execute(
                "UPDATE external_issues SET key_synced_at = $2 WHERE id = $1",
                &[&moved.external_issue_id, &parse_jira_time(t2)],
            )
            .await
            .expect("a moved issue");
        moves.push(moved);
    }
    // Every issue row locked while the webhooks arrive, so the writers take them
    // in batches once released.
    let held = Held::rows(&app).await;
    for i in 0..ISSUES {
        let key = format!("BCLK-{i}");
        app.send(&assignee_changed(
            &key,
            jira_user(&format!("mallory{i}@example.org")),
            FAR,
        ))
        .await;
        // Strictly later than the receive time the far-future one is clamped
        // to (taken, to the millisecond, when it was sent): at an equal time the
        // guard admits both, and of two batches the one committed last would win.
        let (now, _) = in_jira(Utc::now() + TimeDelta::milliseconds(1));
        app.send(&assignee_changed(
            &key,
            jira_user(&format!("jane{i}@example.org")),
            &now,
        ))
        .await;
        // The move back, BMOVB-i → BMOVA-i, made before t2 and delivered late.
        let (from, to) = (format!("BMOVB-{i}"), format!("BMOVA-{i}"));
        app.send(&moved(&from, &to, "2024-01-05T09:00:00.000+0000"))
            .await;
    }
    let worker = common::spawn_worker(&app.settings);
    held.until_a_writer_waits(&app).await;
    held.release().await;

    for (org, jane) in &clocks {
        app.wait_assignee(org.group_id, Some(*jane)).await;
    }
    common::eventually("every move is decided", WAIT, || async {
        decided(&app, "BMOVA-").await.len() == ISSUES
    })
    .await;
    for moved in &moves {
        let key: String = app
            .db
            .query_one(
                "SELECT key FROM external_issues WHERE id = $1",
                &[&moved.external_issue_id],
            )
            .await
            .expect("moved issue")
            .get(0);
        assert!(key.starts_with("BMOVB-"), "the later move stays: {key}");
    }
    let moves_decided = decided(&app, "BMOVA-").await;
    assert!(
        moves_decided
            .iter()
            .all(|(_, kind, outcome, _)| kind == "key" && outcome == "stale"),
        "{moves_decided:#?}"
    );
    // Each far-future webhook is decided, clamped, though perhaps after the
    // later one of its issue (a batch that waited out its lock timeout is
    // handled again alone).
    common::eventually(
        "every far-future webhook is decided, clamped",
        WAIT,
        || async {
            app.db
                .query_one(
                    "SELECT count(*) FROM sync_events WHERE issue_key LIKE 'BCLK-%'
                    AND detail->>'event_time_clamped_from' = $1",
                    &[&FAR_JSON],
                )
                .await
                .expect("clamped decisions")
                .get::<_, i64>(0)
                == ISSUES as i64
        },
    )
    .await;
    assert_eq!(watermarks_beyond(&app, Utc::now() + SKEW).await, 0);
    // Some of them were decided in a transaction shared with other webhooks.
    let all: Vec<_> = decided(&app, "B").await;
    let shared = |key_prefix: &str| {
        all.iter().any(|(key, _, _, started)| {
            key.starts_with(key_prefix)
                && all
                    .iter()
                    .filter(|(_, _, _, other)| other == started)
                    .count()
                    > 1
        })
    };
    assert!(
        shared("BCLK-") && shared("BMOVA-"),
        "clamped changes and stale moves were batched: {all:#?}"
    );
    assert_eq!(common::doubled_activities(&app.db).await, 0);
    assert_eq!(app.dead_letters().await, 0);
    worker.stop().await;
    app.finish().await;
}
