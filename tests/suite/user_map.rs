//! The user map (docs/reference.md §5.10): `jirasync user-map` tells jirasync who a
//! Jira user is; a webhook whose assignee's email is hidden, or matches no one, then
//! assigns that user, under the same membership rules.

use crate::common::app::{T1, WAIT};
use crate::common::seed::assignee_changed;
use crate::common::{self, TestApp};

use serde_json::{Value, json};

fn user_map(app: &TestApp, args: &[&str]) -> std::process::Output {
    let mut all = vec!["user-map"];
    all.extend_from_slice(args);
    common::output(&all, &app.settings)
}

/// `jirasync user-map set` of `jira_user` in `integration` to `user`.
fn map_user(app: &TestApp, integration: &str, jira_user: &str, user: &str) -> std::process::Output {
    user_map(
        app,
        &[
            "set",
            "--integration",
            integration,
            "--jira-user",
            jira_user,
            "--user",
            user,
        ],
    )
}

async fn last_decision(app: &TestApp, key: &str) -> (String, Value) {
    let row = app
        .db
        .query_one(
            "SELECT outcome, detail FROM sync_events WHERE issue_key = $1 ORDER BY id DESC LIMIT 1",
            &[&key],
        )
        .await
        .expect("a decision");
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_mapped_jira_user_is_assigned_when_the_email_is_hidden_or_matches_no_one() {
    let app = TestApp::builder().concurrency(1).start().await;
    let org = app.seed().org(app.integration, true, "MAP-1").await;
    let jane = app.seed().teammate(&org, "jane@corp.example").await;
    let jane_name = app.username(jane).await;
    let integration = app.integration.to_string();

    let set = map_user(&app, &integration, "jdoe", &jane_name);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let mapping: Value = serde_json::from_slice(&set.stdout).expect("JSON");
    assert_eq!(mapping["user_id"], jane);

    // Jira hides the email (and the integration cannot ask): the map decides.
    let hidden = json!({"name": "jdoe", "key": "JIRAUSER7", "active": true});
    app.send(&assignee_changed("MAP-1", hidden, T1)).await;
    app.wait_assignee(org.group_id, Some(jane)).await;
    let (outcome, detail) = last_decision(&app, "MAP-1").await;
    assert_eq!(outcome, "assigned");
    assert_eq!(detail["groups"][0]["via"], "user_map");
    let activity = &app.activities(org.group_id).await[0].1;
    assert_eq!(activity["assigneeEmail"], "jane@corp.example");
    let text =
        String::from_utf8_lossy(&common::output(&["explain", "MAP-1"], &app.settings).stdout)
            .into_owned();
    assert!(
        text.contains("Jira user jdoe is mapped to them (jirasync user-map)"),
        "{text}"
    );

    // An email no user has: the map decides too.
    app.send(&assignee_changed(
        "MAP-1",
        json!(null),
        "2024-01-01T11:00:00.000+0000",
    ))
    .await;
    app.wait_assignee(org.group_id, None).await;
    let private = json!({"name": "jdoe", "emailAddress": "jdoe@home.example", "active": true});
    app.send(&assignee_changed(
        "MAP-1",
        private,
        "2024-01-01T12:00:00.000+0000",
    ))
    .await;
    app.wait_assignee(org.group_id, Some(jane)).await;

    // The map is no way around the rules: a mapped user off the project's teams is
    // turned away, with the reason.
    let other = app.seed().org(app.integration, true, "MAP-2").await;
    let outside = app.seed().user("outside@corp.example", true, true).await;
    let outside_name = app.username(outside).await;
    let set = map_user(&app, &integration, "JIRAUSER9", &outside_name);
    assert!(set.status.success());
    let by_key = json!({"key": "JIRAUSER9", "active": true});
    app.send(&assignee_changed("MAP-2", by_key, T1)).await;
    common::eventually("MAP-2 is decided", WAIT, || async {
        app.db
            .query_opt("SELECT 1 FROM sync_events WHERE issue_key = 'MAP-2'", &[])
            .await
            .expect("query")
            .is_some()
    })
    .await;
    let (outcome, detail) = last_decision(&app, "MAP-2").await;
    assert_eq!(outcome, "no_candidate");
    assert_eq!(detail["groups"][0]["rejected"][0]["user_id"], outside);
    assert_eq!(
        detail["groups"][0]["rejected"][0]["reason"],
        "not on an active team of project p"
    );
    assert_eq!(app.assignee(other.group_id).await, None);

    let list = user_map(&app, &["list", "--json"]);
    let listed: Vec<Value> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0]["jira_user"], "JIRAUSER9");
    app.finish().await;
}

#[tokio::test]
async fn user_map_refuses_unknown_users_and_integrations_and_removes_what_it_set() {
    let app = TestApp::builder().no_worker().start().await;
    let integration = app.integration.to_string();
    for (args, expected) in [
        (
            vec![
                "set",
                "--integration",
                &integration,
                "--jira-user",
                "x",
                "--user",
                "nobody-here",
            ],
            "no user has username \"nobody-here\"",
        ),
        (
            vec![
                "set",
                "--integration",
                "999999",
                "--jira-user",
                "x",
                "--user",
                "nobody-here",
            ],
            "no integration has id 999999",
        ),
    ] {
        let output = user_map(&app, &args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(expected),
            "{stderr}"
        );
    }
    let user = app.seed().user("mapped@corp.example", true, true).await;
    let name = app.username(user).await;
    let set = map_user(&app, &integration, "x", &name);
    assert!(set.status.success());
    let text = String::from_utf8_lossy(&user_map(&app, &["list"]).stdout).into_owned();
    assert!(text.contains(&format!("{name} (user {user})")), "{text}");
    for expected in [true, false] {
        let removed = user_map(
            &app,
            &["remove", "--integration", &integration, "--jira-user", "x"],
        );
        let answer: Value = serde_json::from_slice(&removed.stdout).expect("JSON");
        assert_eq!(answer["removed"], expected);
    }
    let text = String::from_utf8_lossy(&user_map(&app, &["list"]).stdout).into_owned();
    assert!(text.contains("no Jira user is mapped"), "{text}");
    app.finish().await;
}
