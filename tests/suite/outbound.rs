//! Outbound sync end to end (docs/reference.md §10): the application writes its
//! tables, Postgres captures the change, the worker's relay publishes the push,
//! the worker pushes the group's state to the fake Jira (which checks every
//! call's OAuth signature), records the decision, and `jirasync explain` tells it.

use std::time::Duration;

use crate::common::{self, TestApp as Scene, app::T1, eventually, seed::assignee_changed};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

const ACCESS_TOKEN: &str = "acc-tok";
const WAIT: Duration = Duration::from_secs(20);

impl Scene {
    /// `GET /rest/api/2/issue/{key}`: unassigned, Open, in project OUT.
    async fn mount_issue(&self, key: &str, assignee: Value) {
        let issue = json!({
            "key": key,
            "fields": {
                "assignee": assignee,
                "status": {"id": "1", "name": "Open"},
                "project": {"id": "10000", "key": "OUT"},
                "updated": "2024-01-01T10:00:00.000+0000",
            }
        });
        Mock::given(method("GET"))
            .and(path(format!("/rest/api/2/issue/{key}")))
            .respond_with(
                self.jira
                    .verified(ResponseTemplate::new(200).set_body_json(issue)),
            )
            .mount(&self.server)
            .await;
    }

    /// `user/assignable/search` finds `name` for `email`.
    pub(crate) async fn mount_assignable(&self, key: &str, email: &str, name: &str) {
        Mock::given(method("GET"))
            .and(path("/rest/api/2/user/assignable/search"))
            .and(query_param("issueKey", key))
            .and(query_param("username", email))
            .respond_with(
                self.jira.verified(
                    ResponseTemplate::new(200)
                        .set_body_json(json!([{"name": name, "key": format!("JIRAUSER-{name}"),
                        "emailAddress": email.to_lowercase(), "active": true}])),
                ),
            )
            .mount(&self.server)
            .await;
    }

    /// `PUT …/assignee` with `{"name": name}` answers `status` with `body`.
    async fn mount_put_assignee(&self, key: &str, name: &str, status: u16, body: Value) {
        let answer = if status == 204 {
            ResponseTemplate::new(204)
        } else {
            ResponseTemplate::new(status).set_body_json(body)
        };
        Mock::given(method("PUT"))
            .and(path(format!("/rest/api/2/issue/{key}/assignee")))
            .and(body_json(json!({ "name": name })))
            .respond_with(self.jira.verified(answer))
            .mount(&self.server)
            .await;
    }

    /// The outbound decisions recorded about `key`: (kind, outcome, detail).
    pub(crate) async fn outbound_events(&self, key: &str) -> Vec<(String, String, Value)> {
        self.db
            .query(
                "SELECT kind, outcome, detail FROM sync_events
                  WHERE issue_key = $1 AND kind LIKE '%_outbound' ORDER BY id",
                &[&key],
            )
            .await
            .expect("sync events")
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect()
    }

    /// Waits until an outbound decision with `outcome` is recorded about `key`; its detail.
    pub(crate) async fn wait_outbound(&self, key: &str, outcome: &str) -> Value {
        let find = || async {
            self.outbound_events(key)
                .await
                .into_iter()
                .find(|(_, o, _)| o == outcome)
                .map(|(_, _, detail)| detail)
        };
        eventually(&format!("{key} recorded {outcome}"), WAIT, || async {
            find().await.is_some()
        })
        .await;
        find().await.unwrap_or_default()
    }

    /// The PUTs of the assignee of `key` Jira received.
    pub(crate) async fn assignee_puts(&self, key: &str) -> Vec<Value> {
        self.requests_to(&format!("/rest/api/2/issue/{key}/assignee"))
            .await
            .iter()
            .filter(|request| request.method.as_str() == "PUT")
            .map(|request| serde_json::from_slice(&request.body).unwrap_or(Value::Null))
            .collect()
    }
}

#[tokio::test]
async fn an_assignment_the_application_makes_is_pushed_its_echo_ignored_and_both_explained() {
    let s = Scene::builder()
        .credentials(Some(ACCESS_TOKEN))
        .start()
        .await;
    let org = s.seed().org(s.integration, true, "OUT-1").await;
    s.forward_assignments(org.id).await;
    let user = s.seed().teammate(&org, "Amy.Jones@Example.org").await;
    s.mount_issue("OUT-1", Value::Null).await;
    s.mount_assignable("OUT-1", "Amy.Jones@Example.org", "amy")
        .await;
    s.mount_put_assignee("OUT-1", "amy", 204, Value::Null).await;

    s.host_assigns(org.group_id, org.project_id, user).await;

    let detail = s.wait_outbound("OUT-1", "pushed").await;
    assert_eq!(s.assignee_puts("OUT-1").await, [json!({"name": "amy"})]);
    assert_eq!(detail["jira_user"], "amy");
    assert_eq!(detail["via"], "email");
    assert_eq!(detail["change"], "assign");
    assert_eq!(detail["group_id"], org.group_id);
    let signed = s.jira.verified_requests();
    assert!(
        signed
            .iter()
            .all(|params| params.get("oauth_token").map(String::as_str) == Some(ACCESS_TOKEN)),
        "every call signed with the integration's access token"
    );
    // Jira's webhook for that write: the echo, which changes nothing.
    let amy = json!({"name": "amy", "key": "JIRAUSER-amy", "emailAddress": "amy.jones@example.org",
                     "displayName": "Amy", "active": true});
    s.send(&assignee_changed(
        "OUT-1",
        amy,
        "2024-01-01T10:00:00.000+0000",
    ))
    .await;
    eventually("the echo recorded", WAIT, || async {
        let echoes: i64 =
            s.db.query_one(
                "SELECT count(*) FROM sync_events WHERE issue_key = 'OUT-1' AND outcome = 'echo'",
                &[],
            )
            .await
            .expect("echo rows")
            .get(0);
        echoes == 1
    })
    .await;
    assert_eq!(s.assignee(org.group_id).await, Some(user));
    assert_eq!(
        s.assignee_puts("OUT-1").await.len(),
        1,
        "the echo pushed nothing"
    );
    let explained = common::output(&["explain", "OUT-1"], &s.settings);
    let text = String::from_utf8_lossy(&explained.stdout);
    // Shown by `--nocapture`: the README's walk-through quotes it.
    eprintln!("jirasync explain OUT-1:\n{text}");
    assert!(explained.status.success(), "{text}");
    assert!(
        text.contains("pushed assignee") && text.contains("as Jira user amy"),
        "{text}"
    );
    assert!(
        text.contains("the echo of jirasync's own push of assignee amy"),
        "{text}"
    );
    s.finish().await;
}

#[tokio::test]
async fn an_assignment_from_jira_is_not_pushed_back_to_it() {
    let s = Scene::builder()
        .credentials(Some(ACCESS_TOKEN))
        .start()
        .await;
    let org = s.seed().org(s.integration, true, "OUT-2").await;
    s.forward_assignments(org.id).await;
    let user = s.seed().teammate(&org, "eve@example.org").await;

    s.send(&assignee_changed(
        "OUT-2",
        common::seed::jira_user("eve@example.org"),
        T1,
    ))
    .await;
    s.wait_assignee(org.group_id, Some(user)).await;

    let detail = s.wait_outbound("OUT-2", "same_origin").await;
    assert_eq!(detail["origin_integration_id"], s.integration);
    assert!(
        s.assignee_puts("OUT-2").await.is_empty(),
        "nothing sent to Jira"
    );
    s.finish().await;
}

#[tokio::test]
async fn a_push_jira_refuses_is_recorded_and_dead_lettered_with_its_message() {
    let s = Scene::builder()
        .credentials(Some(ACCESS_TOKEN))
        .start()
        .await;
    let org = s.seed().org(s.integration, true, "OUT-3").await;
    s.forward_assignments(org.id).await;
    let user = s.seed().teammate(&org, "bob@example.org").await;
    s.mount_issue("OUT-3", Value::Null).await;
    s.mount_assignable("OUT-3", "bob@example.org", "bob").await;
    s.mount_put_assignee(
        "OUT-3",
        "bob",
        400,
        json!({"errorMessages": ["User 'bob' cannot be assigned issues."], "errors": {}}),
    )
    .await;

    s.host_assigns(org.group_id, org.project_id, user).await;

    let detail = s.wait_outbound("OUT-3", "refused").await;
    assert_eq!(detail["status"], 400);
    assert!(
        detail["jira_message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot be assigned issues")),
        "{detail}"
    );
    let names = common::names(&s.settings);
    let dead = common::get_one(&s.channel, &names.dead(), WAIT)
        .await
        .expect("the refused push is dead-lettered");
    let error = jirasync::queue::message::header_str(&dead.delivery.properties, "x-jirasync-error")
        .unwrap_or_default();
    assert!(error.contains("400"), "{error}");
    assert!(error.contains("cannot be assigned issues"), "{error}");
    assert!(!error.contains(ACCESS_TOKEN), "{error}");
    s.finish().await;
}

#[tokio::test]
async fn a_push_held_for_want_of_a_token_goes_once_the_integration_is_connected() {
    let s = Scene::builder().start().await;
    let org = s.seed().org(s.integration, true, "OUT-4").await;
    s.forward_assignments(org.id).await;
    let user = s.seed().teammate(&org, "cy@example.org").await;
    s.mount_issue("OUT-4", Value::Null).await;
    s.mount_assignable("OUT-4", "cy@example.org", "cy").await;
    s.mount_put_assignee("OUT-4", "cy", 204, Value::Null).await;

    s.host_assigns(org.group_id, org.project_id, user).await;
    s.wait_outbound("OUT-4", "held").await;
    assert!(s.assignee_puts("OUT-4").await.is_empty());

    s.seed()
        .credentials(
            s.integration,
            common::fake_jira::CONSUMER_KEY,
            Some(ACCESS_TOKEN),
        )
        .await;
    let connected = std::time::Instant::now();
    s.wait_outbound("OUT-4", "pushed").await;
    assert!(
        connected.elapsed() < Duration::from_secs(10),
        "pushed {:?} after the token was stored",
        connected.elapsed()
    );
    assert_eq!(s.assignee_puts("OUT-4").await, [json!({"name": "cy"})]);
    let held = s
        .outbound_events("OUT-4")
        .await
        .into_iter()
        .filter(|(_, outcome, _)| outcome == "held")
        .count();
    assert_eq!(held, 1, "held is recorded once");
    s.finish().await;
}

#[tokio::test]
async fn a_change_committed_while_no_worker_runs_is_pushed_once_one_starts() {
    let mut s = Scene::builder()
        .credentials(Some(ACCESS_TOKEN))
        .no_worker()
        .start()
        .await;
    let org = s.seed().org(s.integration, true, "OUT-5").await;
    s.forward_assignments(org.id).await;
    let user = s.seed().teammate(&org, "dee@example.org").await;
    s.mount_issue("OUT-5", Value::Null).await;
    s.mount_assignable("OUT-5", "dee@example.org", "dee").await;
    s.mount_put_assignee("OUT-5", "dee", 204, Value::Null).await;

    s.host_assigns(org.group_id, org.project_id, user).await;
    s.worker = Some(common::spawn_worker(&s.settings));

    s.wait_outbound("OUT-5", "pushed").await;
    assert_eq!(s.assignee_puts("OUT-5").await, [json!({"name": "dee"})]);
    s.finish().await;
}

#[tokio::test]
async fn five_reassignments_within_a_second_leave_jira_with_the_last() {
    let s = Scene::builder()
        .credentials(Some(ACCESS_TOKEN))
        .start()
        .await;
    let org = s.seed().org(s.integration, true, "OUT-6").await;
    s.forward_assignments(org.id).await;
    s.mount_issue("OUT-6", Value::Null).await;
    let mut users = Vec::new();
    for n in 0..5 {
        let email = format!("r{n}@example.org");
        users.push(s.seed().teammate(&org, &email).await);
        s.mount_assignable("OUT-6", &email, &format!("r{n}")).await;
        s.mount_put_assignee("OUT-6", &format!("r{n}"), 204, Value::Null)
            .await;
    }

    for user in &users {
        s.host_assigns(org.group_id, org.project_id, *user).await;
    }

    eventually("the last assignee pushed", WAIT, || async {
        s.assignee_puts("OUT-6").await.last() == Some(&json!({"name": "r4"}))
    })
    .await;
    // Nothing older lands after it.
    eventually("no push pending", WAIT, || async {
        let pending: i64 =
            s.db.query_one("SELECT count(*) FROM outbound_pending", &[])
                .await
                .expect("pending")
                .get(0);
        pending == 0
    })
    .await;
    assert_eq!(
        s.assignee_puts("OUT-6").await.last(),
        Some(&json!({"name": "r4"}))
    );
    s.finish().await;
}
