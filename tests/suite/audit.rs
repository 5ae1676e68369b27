//! The audit trail and `jirasync explain` (docs/reference.md §5.9): each decision
//! about an issue lands in `sync_events` with its reason, in the transaction of the
//! change, and `explain` tells it in a sentence; the message id of the ingress's
//! `202` follows the webhook to its outcome; old rows are pruned.

use crate::common::app::{T1, WAIT};
use crate::common::seed::{assignee_changed, jira_user};
use crate::common::{self, TestApp};

use serde_json::{Value, json};

const T0: &str = "2023-12-31T10:00:00.000+0000";
const T2: &str = "2024-01-02T10:00:00.000+0000";

/// The issue's `sync_events`, oldest first: (kind, organization, outcome, detail).
async fn events(app: &TestApp, key: &str) -> Vec<(String, Option<i64>, String, Value)> {
    app.db
        .query(
            "SELECT kind, organization_id, outcome, detail FROM sync_events
              WHERE issue_key = $1 ORDER BY id",
            &[&key],
        )
        .await
        .expect("sync_events")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

/// Waits until the issue has `count` events.
async fn wait_events(app: &TestApp, key: &str, count: usize) {
    common::eventually(
        &format!("{count} sync events of {key}"),
        WAIT,
        || async move { events(app, key).await.len() >= count },
    )
    .await;
}

/// POSTs `body` to the app's ingress as Jira would; the message id of its `202`.
async fn post_to_ingress(app: &TestApp, body: &Value) -> String {
    let response = reqwest::Client::new()
        .post(app.ingress().url(&common::webhook_path(&app.token)))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 202);
    response.json::<Value>().await.expect("JSON")["id"]
        .as_str()
        .expect("the message id")
        .to_owned()
}

/// `jirasync explain ARGS…` on the app's database: its stdout.
fn explain(app: &TestApp, args: &[&str]) -> String {
    let mut all = vec!["explain"];
    all.extend_from_slice(args);
    let output = common::output(&all, &app.settings);
    assert!(
        output.status.success(),
        "explain failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

#[tokio::test]
async fn an_assignment_is_recorded_with_who_matched_and_why_and_explain_says_so() {
    let app = TestApp::builder().ingress().start().await;
    let org = app.seed().org(app.integration, true, "AUD-1").await;
    let jane = app.seed().teammate(&org, "jane@acme.io").await;
    let body = assignee_changed("AUD-1", jira_user("Jane@Acme.io"), T1);
    let id = post_to_ingress(&app, &body).await;
    app.wait_assignee(org.group_id, Some(jane)).await;

    let recorded = events(&app, "AUD-1").await;
    assert_eq!(recorded.len(), 1, "one row per organization: {recorded:?}");
    let (kind, organization, outcome, detail) = &recorded[0];
    assert_eq!(
        (kind.as_str(), *organization, outcome.as_str()),
        ("assignee", Some(org.id), "assigned")
    );
    assert_eq!(detail["email"], "Jane@Acme.io");
    let group = &detail["groups"][0];
    assert_eq!(group["group_id"], org.group_id);
    assert_eq!(group["via"], "email");
    assert_eq!(group["user"]["id"], jane);
    assert_eq!(group["user"]["email"], "jane@acme.io");
    assert_eq!(group["user"]["team"], "t");
    assert_eq!(group["project"], "p");

    let name = app.username(jane).await;
    let text = explain(&app, &["AUD-1"]);
    for expected in [
        format!("assigned {name} (user {jane}) to group {}", org.group_id),
        "the Jira assignee's email Jane@Acme.io is their verified email".to_owned(),
        "and they are on team t, which has project p".to_owned(),
        format!("[message {id}]"),
    ] {
        assert!(text.contains(&expected), "{expected:?} in:\n{text}");
    }
    let json: Value =
        serde_json::from_str(explain(&app, &["AUD-1", "--json"]).trim()).expect("one JSON object");
    assert_eq!(json["message_id"], id.as_str(), "the 202's id follows it");
    assert_eq!(json["outcome"], "assigned");
    assert!(json["text"].as_str().is_some_and(|t| t.contains(&name)));

    // Redelivered: unchanged, and said so.
    app.send(&assignee_changed("AUD-1", jira_user("jane@acme.io"), T1))
        .await;
    wait_events(&app, "AUD-1", 2).await;
    assert_eq!(events(&app, "AUD-1").await[1].2, "unchanged");
    let newest = explain(&app, &["AUD-1", "--limit", "1"]);
    assert_eq!(newest.lines().count(), 1, "{newest}");
    assert!(newest.contains("(already assigned)"), "{newest}");
    app.finish().await;
}

#[tokio::test]
async fn no_candidate_names_each_user_turned_away_and_the_rule_they_failed() {
    let app = TestApp::builder().start().await;
    let org = app.seed().org(app.integration, true, "AUD-2").await;
    let email = "shared@acme.io";
    let unverified = app.seed().user(email, false, true).await;
    app.seed().member(&org, unverified, true).await;
    let inactive = app.seed().user(email, true, false).await;
    app.seed().member(&org, inactive, true).await;
    let outsider = app.seed().user(email, true, true).await;
    app.send(&assignee_changed("AUD-2", jira_user(email), T1))
        .await;
    wait_events(&app, "AUD-2", 1).await;

    let (_, _, outcome, detail) = &events(&app, "AUD-2").await[0];
    assert_eq!(outcome, "no_candidate");
    let rejected = &detail["groups"][0]["rejected"];
    let reasons: Vec<(i64, &str)> = rejected
        .as_array()
        .expect("rejected users")
        .iter()
        .map(|r| {
            (
                r["user_id"].as_i64().expect("id"),
                r["reason"].as_str().expect("reason"),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            (unverified, "email not verified"),
            (inactive, "inactive"),
            (outsider, "not on an active team of project p"),
        ]
    );
    let text = explain(&app, &["AUD-2"]);
    assert!(text.contains("assigned nobody to group"), "{text}");
    assert!(
        text.contains(&format!(
            "(user {outsider}): not on an active team of project p"
        )),
        "{text}"
    );
    assert_eq!(app.assignee(org.group_id).await, None);
    app.finish().await;
}

#[tokio::test]
async fn unassigned_stale_missing_email_and_unlinked_issues_each_say_why() {
    let app = TestApp::builder().concurrency(1).start().await;
    let org = app.seed().org(app.integration, true, "AUD-3").await;
    let jane = app.seed().teammate(&org, "jane3@acme.io").await;
    app.send(&assignee_changed("AUD-3", jira_user("jane3@acme.io"), T1))
        .await;
    app.wait_assignee(org.group_id, Some(jane)).await;
    app.send(&assignee_changed("AUD-3", json!(null), T2)).await;
    app.wait_assignee(org.group_id, None).await;
    // Older than what was applied: stale.
    app.send(&assignee_changed("AUD-3", jira_user("jane3@acme.io"), T0))
        .await;
    // Jira hides the email and the integration cannot ask: missing_email.
    app.send(&assignee_changed(
        "AUD-3",
        json!({"name": "hidden", "key": "JIRAUSER9", "active": true}),
        "2024-01-03T10:00:00.000+0000",
    ))
    .await;
    // No organization has this issue linked.
    app.send(&assignee_changed(
        "AUD-NOPE",
        jira_user("jane3@acme.io"),
        T1,
    ))
    .await;
    wait_events(&app, "AUD-3", 4).await;
    wait_events(&app, "AUD-NOPE", 1).await;

    let outcomes: Vec<String> = events(&app, "AUD-3")
        .await
        .into_iter()
        .map(|(_, _, outcome, _)| outcome)
        .collect();
    assert_eq!(
        outcomes,
        ["assigned", "unassigned", "stale", "missing_email"],
        "in the order applied"
    );
    let (_, organization, outcome, _) = &events(&app, "AUD-NOPE").await[0];
    assert_eq!((*organization, outcome.as_str()), (None, "not_linked"));

    let text = explain(&app, &["AUD-3"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].contains("Jira did not give the assignee's email"),
        "{text}"
    );
    assert!(
        lines[0].contains("Jira user hidden is not mapped"),
        "{text}"
    );
    assert!(
        lines[1].contains("was applied there already"),
        "newest first: {text}"
    );
    assert!(lines[2].contains("unassigned group"), "{text}");
    let unlinked = explain(&app, &["AUD-NOPE"]);
    assert!(
        unlinked.contains("no organization with sync_reverse_assignment on has AUD-NOPE linked"),
        "{unlinked}"
    );
    let never = explain(&app, &["NEVER-1"]);
    assert!(never.contains("no sync history for NEVER-1"), "{never}");
    app.finish().await;
}

#[tokio::test]
async fn a_decision_rolled_back_leaves_no_row_and_old_rows_are_pruned_at_start() {
    let app = TestApp::builder().no_worker().start().await;
    let org = app.seed().org(app.integration, true, "AUD-4").await;
    app.seed().teammate(&org, "jane4@acme.io").await;
    app.db
        .batch_execute(
            "INSERT INTO sync_events (issue_key, kind, outcome, created_at)
             SELECT 'OLD-' || n, 'assignee', 'assigned', now() - interval '31 days'
               FROM generate_series(1, 6000) n;
             INSERT INTO sync_events (issue_key, kind, outcome, created_at)
             VALUES ('RECENT-1', 'assignee', 'assigned', now() - interval '29 days')",
        )
        .await
        .expect("old rows");
    // The audit row is written in the change's transaction: a change that fails
    // (the activity's table is gone) records nothing.
    app.db
        .batch_execute("ALTER TABLE activities RENAME TO activities_gone")
        .await
        .expect("break the schema");
    let worker = common::spawn_worker(&app.settings);
    let count = |sql: &'static str| {
        let db = &app.db;
        async move {
            db.query_one(sql, &[])
                .await
                .expect("count")
                .get::<_, i64>(0)
        }
    };
    common::eventually("the old rows are pruned", WAIT, || async {
        count("SELECT count(*) FROM sync_events WHERE issue_key LIKE 'OLD-%'").await == 0
    })
    .await;
    assert_eq!(
        count("SELECT count(*) FROM sync_events WHERE issue_key = 'RECENT-1'").await,
        1,
        "29 days old is kept"
    );
    app.send(&assignee_changed("AUD-4", jira_user("jane4@acme.io"), T1))
        .await;
    common::get_one(&app.channel, &common::names(&app.settings).dead(), WAIT)
        .await
        .expect("dead-lettered");
    assert!(
        events(&app, "AUD-4").await.is_empty(),
        "rolled back with it"
    );
    worker.stop().await;
    app.db
        .batch_execute("ALTER TABLE activities_gone RENAME TO activities")
        .await
        .expect("mend the schema");
    app.finish().await;
}

#[tokio::test]
async fn decisions_are_counted_by_kind_and_outcome_for_dashboards() {
    let app = TestApp::builder().no_worker().start().await;
    let org = app.seed().org(app.integration, true, "AUD-5").await;
    let jane = app.seed().teammate(&org, "jane5@acme.io").await;
    let port = common::private_pg::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _worker = common::process(
        "worker",
        &app.settings,
        &[("JIRASYNC_METRICS_LISTEN", format!("127.0.0.1:{port}"))],
    );
    app.send(&assignee_changed("AUD-5", jira_user("nobody@acme.io"), T1))
        .await;
    // One after the other: run together, the later one could make the first stale.
    wait_events(&app, "AUD-5", 1).await;
    app.send(&assignee_changed("AUD-5", jira_user("jane5@acme.io"), T2))
        .await;
    app.wait_assignee(org.group_id, Some(jane)).await;
    let scrape = || async {
        match reqwest::get(format!("{base}/metrics")).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    };
    let counted = |text: &str, outcome: &str| {
        text.lines().any(|line| {
            line.starts_with("jirasync_sync_decisions_total{")
                && line.contains("kind=\"assignee\"")
                && line.contains(&format!("outcome=\"{outcome}\""))
                && line.ends_with(" 1")
        })
    };
    common::eventually("both decisions are counted", WAIT, || async {
        let text = scrape().await;
        counted(&text, "no_candidate") && counted(&text, "assigned")
    })
    .await;
}

#[tokio::test]
async fn with_the_audit_off_changes_apply_and_nothing_is_recorded() {
    let app = TestApp::builder()
        .configure(|settings| settings.worker.audit = false)
        .start()
        .await;
    let org = app.seed().org(app.integration, true, "AUD-6").await;
    let jane = app.seed().teammate(&org, "jane6@acme.io").await;
    app.send(&assignee_changed("AUD-6", jira_user("jane6@acme.io"), T1))
        .await;
    app.wait_assignee(org.group_id, Some(jane)).await;
    app.settle().await;
    assert!(events(&app, "AUD-6").await.is_empty());
    app.finish().await;
}

#[tokio::test]
async fn one_message_id_follows_a_webhook_from_its_202_to_a_dead_letter_and_a_replay() {
    let app = TestApp::builder().ingress().start().await;
    // Assigned later by the same id: the issue's group is linked once it is replayed.
    let body = assignee_changed("AUD-7", jira_user("jane7@acme.io"), T1);
    app.db
        .batch_execute("ALTER TABLE sync_events RENAME TO sync_events_gone")
        .await
        .expect("break the audit table");
    let id = post_to_ingress(&app, &body).await;
    let dead = common::names(&app.settings).dead();
    common::eventually("the webhook is dead-lettered", WAIT, || async {
        common::depth(&app.channel, &dead).await == 1
    })
    .await;
    let letters = common::output(&["dlq", "list", "--json"], &app.settings);
    let listed = String::from_utf8_lossy(&letters.stdout).into_owned();
    let letter: Value =
        serde_json::from_str(listed.lines().next().expect("a letter")).expect("JSON");
    assert_eq!(
        letter["id"],
        id.as_str(),
        "the dead letter carries the 202's id"
    );
    app.db
        .batch_execute("ALTER TABLE sync_events_gone RENAME TO sync_events")
        .await
        .expect("mend the table");
    let org = app.seed().org(app.integration, true, "AUD-7").await;
    let jane = app.seed().teammate(&org, "jane7@acme.io").await;
    let replayed = common::output(&["dlq", "replay"], &app.settings);
    assert!(replayed.status.success());
    app.wait_assignee(org.group_id, Some(jane)).await;
    let json: Value =
        serde_json::from_str(explain(&app, &["AUD-7", "--json"]).trim()).expect("JSON");
    assert_eq!(
        json["message_id"],
        id.as_str(),
        "and the decision after the replay"
    );
    app.finish().await;
}

#[tokio::test]
async fn explain_shows_one_integrations_history_when_asked() {
    let app = TestApp::builder().start().await;
    let org = app.seed().org(app.integration, true, "AUD-8").await;
    app.seed().teammate(&org, "jane8@acme.io").await;
    app.send(&assignee_changed("AUD-8", jira_user("jane8@acme.io"), T1))
        .await;
    wait_events(&app, "AUD-8", 1).await;
    let own = app.integration.to_string();
    let other = (app.integration + 1000).to_string();
    assert_eq!(
        explain(&app, &["AUD-8", "--integration", &own])
            .lines()
            .count(),
        1
    );
    assert!(
        explain(&app, &["AUD-8", "--integration", &other]).contains("no sync history for AUD-8")
    );
    app.finish().await;
}
