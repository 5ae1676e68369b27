//! The push decisions of outbound sync (docs/reference.md §10.4, §10.5) on their
//! own, against the real Postgres and a fake Jira (wiremock) that checks every
//! call — method, path, the whole query, the PAT's `Authorization` header and
//! the body — and fails the test on any call it does not expect: the assignee
//! found through the user map or a verified email (never an unverified one),
//! unassigning, team assignments, Jira holding the target already, the status
//! moved by the transition leading to the mapped status, and Jira's refusals
//! and throttling.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jirasync::db::DbPool;
use jirasync::jira::payload::parse_jira_time;
use jirasync::jira::{Auth, ClientOptions, JiraClient};
use jirasync::outbound::assignee::{self, Assignee, JiraUsers, plan_assignee};
use jirasync::outbound::plan::{Plan, PlanError, Target, Write};
use jirasync::outbound::status::{self, plan_status};
use jirasync::sync::audit::detail::{
    JiraUserVia, PushChange, PushKind, PushOutcome, PushUser, Pushed,
};
use serde_json::{Value, json};
use wiremock::matchers::{any, body_json, header, method, path};
use wiremock::{Match, Mock, MockBuilder, MockServer, Request, ResponseTemplate};

use crate::common::seed::{Org, Seed};
use crate::common::{self, Isolated};

/// The personal access token the integration calls Jira with.
const PAT: &str = "pat-outbound-test";
/// The issue pushed to.
const ISSUE: &str = "OUT-1";
/// Its path.
const ISSUE_PATH: &str = "/rest/api/2/issue/OUT-1";
/// Jira's `updated` before the push, and after the write.
const BEFORE: &str = "2024-01-01T10:00:00.000+0000";
const AFTER: &str = "2024-01-01T10:05:00.000+0000";

/// One test's world: fields drop in order, the database last.
struct Scene {
    server: MockServer,
    jira: JiraClient,
    users: JiraUsers,
    pool: DbPool,
    db: tokio_postgres::Client,
    integration: i64,
    org: Org,
    _settings: Isolated,
}

/// A migrated database with an integration, an organization whose group is
/// linked to `OUT-1`, and a fake Jira that fails the test on any call no mock expects.
async fn scene() -> Scene {
    let settings = common::migrated().await;
    let db = common::db(&settings).await;
    let server = MockServer::start().await;
    let seed = Seed { db: &db };
    let (integration, _) = seed.integration(json!({"base_url": server.uri()})).await;
    let org = seed.org(integration, true, ISSUE).await;
    let pool = jirasync::db::connect(&settings.database, 2)
        .await
        .expect("connect to the test's database");
    let jira = JiraClient::new(
        &server.uri(),
        Auth::Bearer(PAT.into()),
        &ClientOptions::default(),
    )
    .expect("client of the fake Jira");
    let scene = Scene {
        server,
        jira,
        users: JiraUsers::default(),
        pool,
        db,
        integration,
        org,
        _settings: settings,
    };
    scene.refuse_unexpected_calls().await;
    scene
}

/// Matches a request whose query is exactly these pairs (any order).
struct QueryIs(Vec<(String, String)>);

impl Match for QueryIs {
    fn matches(&self, request: &Request) -> bool {
        let mut asked: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
        let mut expected = self.0.clone();
        asked.sort();
        expected.sort();
        asked == expected
    }
}

/// A call to the fake Jira: `verb` on `route` with exactly `query`, authorized with the PAT.
fn call(verb: &str, route: &str, query: &[(&str, &str)]) -> MockBuilder {
    let query = query
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    Mock::given(method(verb))
        .and(path(route))
        .and(QueryIs(query))
        .and(header("authorization", format!("Bearer {PAT}").as_str()))
}

/// Jira's issue `OUT-1` with `assignee` (a name, or none), `status` (id, name) and `updated`.
fn issue(assignee: Option<&str>, status: (&str, &str), updated: &str) -> Value {
    let assignee = assignee.map(|name| {
        json!({"name": name, "key": format!("JIRAUSER-{name}"), "displayName": name, "active": true})
    });
    json!({"id": "10001", "key": ISSUE, "fields": {
        "assignee": assignee,
        "status": {"id": status.0, "name": status.1, "statusCategory": {"key": "new"}},
        "project": {"id": "10000", "key": "OUT", "name": "Outbound"},
        "updated": updated,
    }})
}

/// A Jira user as the user API and the assignable search answer.
fn jira_user(name: &str, email: &str, active: bool) -> Value {
    json!({"name": name, "key": format!("JIRAUSER-{name}"), "emailAddress": email,
           "displayName": name, "active": active})
}

/// Jira's time as the plans return it.
fn time(jira: &str) -> Option<DateTime<Utc>> {
    Some(parse_jira_time(jira).expect("a Jira time"))
}

impl Scene {
    /// Any call no other mock matches is answered 599 and fails the test at [`finish`](Self::finish).
    async fn refuse_unexpected_calls(&self) {
        Mock::given(any())
            .respond_with(ResponseTemplate::new(599))
            .with_priority(u8::MAX)
            .named("a call the test does not expect")
            .expect(0)
            .mount(&self.server)
            .await;
    }

    /// The push's target.
    fn target(&self) -> Target<'static> {
        Target {
            integration_id: self.integration,
            organization_id: self.org.id,
            issue_key: ISSUE,
            group_id: self.org.group_id,
        }
    }

    /// The issue reads answer `answers`, each once and in order (the plan's read,
    /// the read-back after a write, a later plan's read).
    async fn mount_reads(&self, answers: &[Value]) {
        for answer in answers {
            call(
                "GET",
                ISSUE_PATH,
                &[("fields", "assignee,status,project,updated")],
            )
            .respond_with(ResponseTemplate::new(200).set_body_json(answer))
            .up_to_n_times(1)
            .expect(1)
            .mount(&self.server)
            .await;
        }
    }

    /// `GET /rest/api/2/user?<by>=<value>` answers `status` with `body`, once.
    async fn mount_user(&self, by: &str, value: &str, status: u16, body: Value) {
        call("GET", "/rest/api/2/user", &[(by, value)])
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .expect(1)
            .mount(&self.server)
            .await;
    }

    /// The assignable search for `email` answers `users`, `times` times.
    async fn mount_search(&self, email: &str, users: Value, times: u64) {
        call(
            "GET",
            "/rest/api/2/user/assignable/search",
            &[("issueKey", ISSUE), ("username", email)],
        )
        .respond_with(ResponseTemplate::new(200).set_body_json(users))
        .expect(times)
        .mount(&self.server)
        .await;
    }

    /// `PUT …/assignee` with `body` answers 204, once.
    async fn mount_assign(&self, body: Value) {
        call("PUT", &format!("{ISSUE_PATH}/assignee"), &[])
            .and(body_json(body))
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&self.server)
            .await;
    }

    /// `GET …/transitions?expand=transitions.fields` answers `transitions`, once.
    async fn mount_transitions(&self, transitions: Value) {
        call(
            "GET",
            &format!("{ISSUE_PATH}/transitions"),
            &[("expand", "transitions.fields")],
        )
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"expand": "transitions", "transitions": transitions})),
        )
        .expect(1)
        .mount(&self.server)
        .await;
    }

    /// A user with `emails` (address, verified) in this order; not mapped.
    async fn user(&self, username: &str, emails: &[(&str, bool)]) -> PushUser {
        let id: i64 = self
            .db
            .query_one(
                "INSERT INTO users (username) VALUES ($1) RETURNING id",
                &[&username],
            )
            .await
            .expect("user")
            .get(0);
        for (email, verified) in emails {
            self.db
                .execute(
                    "INSERT INTO user_emails (user_id, email, is_verified) VALUES ($1, $2, $3)",
                    &[&id, email, verified],
                )
                .await
                .expect("user email");
        }
        PushUser {
            id,
            username: username.to_owned(),
        }
    }

    /// Maps the Jira user `entry` of the integration to `user`.
    async fn map(&self, entry: &str, user: &PushUser) {
        self.db
            .execute(
                "INSERT INTO jira_user_mappings (integration_id, jira_user, user_id) VALUES ($1, $2, $3)",
                &[&self.integration, &entry, &user.id],
            )
            .await
            .expect("user map entry");
    }

    /// Maps the statuses of project `project` (a key or id) for the organization.
    async fn map_statuses(
        &self,
        project: &str,
        resolved: Option<&str>,
        unresolved: Option<&str>,
        resolution: Option<&str>,
    ) {
        self.db
            .execute(
                "INSERT INTO integration_external_projects
                        (organization_integration_id, external_id, resolved_status, unresolved_status, resolution)
                 SELECT id, $3, $4, $5, $6 FROM organization_integrations
                  WHERE organization_id = $1 AND integration_id = $2",
                &[&self.org.id, &self.integration, &project, &resolved, &unresolved, &resolution],
            )
            .await
            .expect("status mapping");
    }

    /// Plans the push of `assignee`.
    async fn plan_assignee(&self, assignee: &Assignee) -> Result<Plan, PlanError> {
        let db = self.pool.get().await.expect("a connection");
        plan_assignee(&db, &self.jira, &self.users, &self.target(), assignee).await
    }

    /// Plans the push of the status (`resolved` or not).
    async fn plan_status(&self, resolved: bool) -> Result<Plan, PlanError> {
        let db = self.pool.get().await.expect("a connection");
        plan_status(&db, &self.jira, &self.target(), resolved).await
    }

    /// Checks that every mock got the calls it expects and nothing else was called.
    async fn finish(self) {
        self.server.verify().await;
    }
}

/// The write a plan asks for; panics on a decision or an error.
fn write(plan: Result<Plan, PlanError>) -> Write {
    match plan {
        Ok(Plan::Write(write)) => write,
        other => panic!("expected a write, got {other:?}"),
    }
}

/// The decision of a plan that writes nothing, with Jira's `updated`.
fn decided(plan: Result<Plan, PlanError>) -> (Pushed, Option<DateTime<Utc>>) {
    match plan {
        Ok(Plan::Decided(pushed, updated)) => (pushed, updated),
        other => panic!("expected a decision, got {other:?}"),
    }
}

/// The assignee decision for `user` in the scene's group, as far as the plan fills it.
fn assigning(s: &Scene, user: &PushUser) -> Pushed {
    Pushed {
        kind: PushKind::Assignee,
        group_id: s.org.group_id,
        change: PushChange::Assign,
        user: Some(user.clone()),
        ..Pushed::default()
    }
}

#[tokio::test]
async fn a_user_map_entry_confirmed_by_jira_is_pushed_by_the_name_jira_answers() {
    let s = scene().await;
    let amy = s.user("amy", &[("amy@example.org", true)]).await;
    s.map("Amy.Jones", &amy).await;
    s.mount_user(
        "username",
        "Amy.Jones",
        200,
        jira_user("amy.jones", "amy@example.org", true),
    )
    .await;
    s.mount_reads(&[
        issue(Some("bob"), ("1", "Open"), BEFORE),
        issue(Some("amy.jones"), ("1", "Open"), AFTER),
        issue(Some("amy.jones"), ("1", "Open"), AFTER),
    ])
    .await;
    s.mount_assign(json!({"name": "amy.jones"})).await;

    let write = write(s.plan_assignee(&Assignee::User(amy.clone())).await);
    assert_eq!(write.value, "amy.jones");
    let expected = Pushed {
        outcome: PushOutcome::Pushed,
        jira_user: Some("amy.jones".into()),
        via: Some(JiraUserVia::UserMap),
        from: Some("bob".into()),
        to: Some("amy.jones".into()),
        ..assigning(&s, &amy)
    };
    assert_eq!(write.pushed(), &expected);
    let (pushed, updated) = write.send(&s.jira).await.expect("Jira takes the write");
    assert_eq!(pushed, expected);
    assert_eq!(
        updated,
        time(AFTER),
        "Jira's updated read back after the write"
    );

    // Jira's answer about the user is reused; the issue now holds them.
    let (pushed, updated) = decided(s.plan_assignee(&Assignee::User(amy.clone())).await);
    assert_eq!(pushed.outcome, PushOutcome::Unchanged);
    assert_eq!(updated, time(AFTER));
    s.finish().await;
}

#[tokio::test]
async fn a_user_map_entry_holding_a_key_is_sent_as_the_name_jira_answers() {
    let s = scene().await;
    let amy = s.user("amy", &[]).await;
    s.map("JIRAUSER10420", &amy).await;
    s.mount_user(
        "username",
        "JIRAUSER10420",
        404,
        json!({"errorMessages": ["The user named 'JIRAUSER10420' does not exist"], "errors": {}}),
    )
    .await;
    s.mount_user(
        "key",
        "JIRAUSER10420",
        200,
        jira_user("amy.jones", "", true),
    )
    .await;
    s.mount_reads(&[
        issue(None, ("1", "Open"), BEFORE),
        issue(Some("amy.jones"), ("1", "Open"), AFTER),
    ])
    .await;
    s.mount_assign(json!({"name": "amy.jones"})).await;

    let write = write(s.plan_assignee(&Assignee::User(amy.clone())).await);
    assert_eq!(write.value, "amy.jones");
    let (pushed, updated) = write.send(&s.jira).await.expect("Jira takes the write");
    assert_eq!(
        pushed,
        Pushed {
            jira_user: Some("amy.jones".into()),
            via: Some(JiraUserVia::UserMap),
            to: Some("amy.jones".into()),
            ..assigning(&s, &amy)
        },
        "no one assigned before: no `from`"
    );
    assert_eq!(updated, time(AFTER));
    s.finish().await;
}

#[tokio::test]
async fn a_verified_email_finds_the_first_active_assignable_user_with_exactly_that_address() {
    let s = scene().await;
    let eve = s
        .user(
            "eve",
            &[
                ("eve@old.example.org", true),
                ("eve@unverified.example.org", false),
                ("Eve@Example.org", true),
            ],
        )
        .await;
    s.mount_reads(&[
        issue(Some("bob"), ("1", "Open"), BEFORE),
        issue(Some("eve"), ("1", "Open"), AFTER),
    ])
    .await;
    s.mount_search("eve@old.example.org", json!([]), 1).await;
    s.mount_search(
        "Eve@Example.org",
        json!([
            jira_user("eve.au", "eve@example.org.au", true),
            jira_user("eve.gone", "eve@example.org", false),
            jira_user("eve", "EVE@example.org", true),
            jira_user("eve.second", "eve@example.org", true),
        ]),
        1,
    )
    .await;
    s.mount_assign(json!({"name": "eve"})).await;

    let write = write(s.plan_assignee(&Assignee::User(eve.clone())).await);
    assert_eq!(write.value, "eve");
    let (pushed, _) = write.send(&s.jira).await.expect("Jira takes the write");
    assert_eq!(
        pushed,
        Pushed {
            jira_user: Some("eve".into()),
            via: Some(JiraUserVia::Email),
            from: Some("bob".into()),
            to: Some("eve".into()),
            ..assigning(&s, &eve)
        }
    );
    s.finish().await;
}

#[tokio::test]
async fn one_assignable_search_serves_the_other_issues_of_its_project() {
    let s = scene().await;
    let eve = s.user("eve", &[("eve@example.org", true)]).await;
    // OUT-1 and OUT-2, both of project OUT, both held by bob in Jira.
    s.mount_reads(&[issue(Some("bob"), ("1", "Open"), BEFORE)])
        .await;
    let mut second = issue(Some("bob"), ("1", "Open"), BEFORE);
    second["key"] = json!("OUT-2");
    call(
        "GET",
        "/rest/api/2/issue/OUT-2",
        &[("fields", "assignee,status,project,updated")],
    )
    .respond_with(ResponseTemplate::new(200).set_body_json(second))
    .expect(1)
    .mount(&s.server)
    .await;
    // Asked once, for the first issue: who may take an issue is the project's.
    s.mount_search(
        "eve@example.org",
        json!([jira_user("eve", "eve@example.org", true)]),
        1,
    )
    .await;

    let db = s.pool.get().await.expect("a connection");
    let assignee = Assignee::User(eve);
    for key in [ISSUE, "OUT-2"] {
        let target = Target {
            issue_key: key,
            ..s.target()
        };
        let write = write(plan_assignee(&db, &s.jira, &s.users, &target, &assignee).await);
        assert_eq!(write.value, "eve", "{key}");
    }
    drop(db);
    s.finish().await;
}

#[tokio::test]
async fn an_unverified_address_is_never_sent_to_jira() {
    let s = scene().await;
    let ursula = s.user("ursula", &[("ursula@example.org", false)]).await;
    s.mount_reads(&[issue(Some("bob"), ("1", "Open"), BEFORE)])
        .await;
    // Jira has a user with that address: asking would find them.
    s.mount_search(
        "ursula@example.org",
        json!([jira_user("ursula", "ursula@example.org", true)]),
        0,
    )
    .await;

    let (pushed, updated) = decided(s.plan_assignee(&Assignee::User(ursula.clone())).await);
    assert_eq!(
        pushed,
        Pushed {
            outcome: PushOutcome::NoJiraUser,
            from: Some("bob".into()),
            emails_tried: Some(vec![]),
            ..assigning(&s, &ursula)
        }
    );
    assert_eq!(updated, time(BEFORE));
    s.finish().await;
}

#[tokio::test]
async fn an_address_jira_matches_only_as_a_prefix_is_not_the_user() {
    let s = scene().await;
    let eve = s.user("eve", &[("eve@example.org", true)]).await;
    s.mount_reads(&[issue(None, ("1", "Open"), BEFORE)]).await;
    s.mount_search(
        "eve@example.org",
        json!([jira_user("eve.au", "eve@example.org.au", true)]),
        1,
    )
    .await;

    let (pushed, _) = decided(s.plan_assignee(&Assignee::User(eve.clone())).await);
    assert_eq!(pushed.outcome, PushOutcome::NoJiraUser);
    assert_eq!(pushed.jira_user, None, "eve.au is not sent");
    assert_eq!(
        pushed.emails_tried,
        Some(vec!["eve@example.org".to_owned()])
    );
    s.finish().await;
}

#[tokio::test]
async fn no_jira_user_names_the_map_entry_and_the_addresses_tried() {
    let s = scene().await;
    let gus = s
        .user(
            "gus",
            &[("gus@example.org", true), ("gus@example.net", true)],
        )
        .await;
    s.map("ghost", &gus).await;
    let missing = json!({"errorMessages": ["The user named 'ghost' does not exist"], "errors": {}});
    s.mount_user("username", "ghost", 404, missing.clone())
        .await;
    s.mount_user("key", "ghost", 404, missing).await;
    s.mount_reads(&[issue(Some("bob"), ("1", "Open"), BEFORE)])
        .await;
    s.mount_search("gus@example.org", json!([]), 1).await;
    s.mount_search("gus@example.net", json!([]), 1).await;

    let (pushed, updated) = decided(s.plan_assignee(&Assignee::User(gus.clone())).await);
    assert_eq!(
        pushed,
        Pushed {
            outcome: PushOutcome::NoJiraUser,
            from: Some("bob".into()),
            user_map: Some("ghost".into()),
            emails_tried: Some(vec!["gus@example.org".into(), "gus@example.net".into()]),
            ..assigning(&s, &gus)
        }
    );
    assert_eq!(updated, time(BEFORE));
    s.finish().await;
}

#[tokio::test]
async fn a_team_assignment_sends_nothing_to_jira() {
    let s = scene().await;
    let (pushed, updated) = decided(s.plan_assignee(&Assignee::Team("t".into())).await);
    assert_eq!(
        pushed,
        Pushed {
            kind: PushKind::Assignee,
            outcome: PushOutcome::TeamAssignee,
            group_id: s.org.group_id,
            change: PushChange::Assign,
            team: Some("t".into()),
            ..Pushed::default()
        }
    );
    assert_eq!(updated, None, "Jira was not read");
    assert!(
        s.server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
    s.finish().await;
}

#[tokio::test]
async fn a_group_without_an_assignee_unassigns_the_issue() {
    let s = scene().await;
    s.mount_reads(&[
        issue(Some("bob"), ("1", "Open"), BEFORE),
        issue(None, ("1", "Open"), AFTER),
    ])
    .await;
    s.mount_assign(json!({"name": null})).await;

    let db = s.pool.get().await.expect("a connection");
    let now = assignee::current(&db, s.org.group_id).await.expect("read");
    assert_eq!(now, Some(Assignee::Nobody));
    let write = write(s.plan_assignee(&Assignee::Nobody).await);
    assert_eq!(write.value, "", "an unassignment is recorded as ''");
    let (pushed, updated) = write.send(&s.jira).await.expect("Jira takes the write");
    assert_eq!(
        pushed,
        Pushed {
            kind: PushKind::Assignee,
            group_id: s.org.group_id,
            change: PushChange::Unassign,
            from: Some("bob".into()),
            ..Pushed::default()
        }
    );
    assert_eq!(updated, time(AFTER));
    s.finish().await;
}

#[tokio::test]
async fn an_issue_that_holds_the_target_already_is_left_unchanged() {
    let s = scene().await;
    let amy = s.user("amy", &[]).await;
    s.map("amy.jones", &amy).await;
    s.mount_user(
        "username",
        "amy.jones",
        200,
        jira_user("amy.jones", "", true),
    )
    .await;
    // Jira Server's user names ignore case.
    s.mount_reads(&[
        issue(Some("Amy.Jones"), ("1", "Open"), BEFORE),
        issue(None, ("1", "Open"), AFTER),
    ])
    .await;

    let (pushed, updated) = decided(s.plan_assignee(&Assignee::User(amy.clone())).await);
    assert_eq!(
        pushed,
        Pushed {
            outcome: PushOutcome::Unchanged,
            jira_user: Some("amy.jones".into()),
            via: Some(JiraUserVia::UserMap),
            from: Some("Amy.Jones".into()),
            to: Some("amy.jones".into()),
            ..assigning(&s, &amy)
        }
    );
    assert_eq!(updated, time(BEFORE));

    let (pushed, updated) = decided(s.plan_assignee(&Assignee::Nobody).await);
    assert_eq!(
        (pushed.outcome, pushed.change),
        (PushOutcome::Unchanged, PushChange::Unassign),
        "no one to unassign"
    );
    assert_eq!(updated, time(AFTER));
    s.finish().await;
}

#[tokio::test]
async fn a_push_reads_the_groups_assignee_and_status_as_they_are_now() {
    let s = scene().await;
    let db = s.pool.get().await.expect("a connection");
    let amy = s.user("amy", &[]).await;
    let group = s.org.group_id;
    let assign = |user: Option<i64>, team: Option<i64>| {
        let db = &s.db;
        let project = s.org.project_id;
        async move {
            db.execute("DELETE FROM group_assignees WHERE group_id = $1", &[&group])
                .await
                .expect("clear");
            db.execute(
                "INSERT INTO group_assignees (group_id, project_id, user_id, team_id) VALUES ($1, $2, $3, $4)",
                &[&group, &project, &user, &team],
            )
            .await
            .expect("assign");
        }
    };
    assign(Some(amy.id), None).await;
    assert_eq!(
        assignee::current(&db, group).await.expect("read"),
        Some(Assignee::User(amy.clone()))
    );
    assign(None, Some(s.org.team_id)).await;
    assert_eq!(
        assignee::current(&db, group).await.expect("read"),
        Some(Assignee::Team("t".into()))
    );
    for (group_status, expected) in [
        ("resolved", Some(true)),
        ("unresolved", Some(false)),
        ("ignored", None),
        ("pending_deletion", None),
    ] {
        s.db.execute(
            "UPDATE groups SET status = $2 WHERE id = $1",
            &[&group, &group_status],
        )
        .await
        .expect("status");
        assert_eq!(
            status::current(&db, group).await.expect("read"),
            expected,
            "case {group_status}"
        );
    }
    assert_eq!(
        assignee::current(&db, group).await.expect("read"),
        None,
        "a group being deleted pushes nothing"
    );
    s.db.execute("DELETE FROM groups WHERE id = $1", &[&group])
        .await
        .expect("delete");
    assert_eq!(assignee::current(&db, group).await.expect("read"), None);
    assert_eq!(status::current(&db, group).await.expect("read"), None);
    s.finish().await;
}

/// The workflow of the fake Jira's issue: to In Progress, and to Done with
/// `fields` on its screen.
fn workflow(done_fields: Value) -> Value {
    json!([
        {"id": "4", "name": "Start Progress", "to": {"id": "3", "name": "In Progress"}, "fields": {}},
        {"id": "5", "name": "Resolve Issue", "to": {"id": "10001", "name": "Done"}, "fields": done_fields},
    ])
}

/// The status decision for a resolved group, as far as the plan fills it.
fn resolving(s: &Scene) -> Pushed {
    Pushed {
        kind: PushKind::Status,
        group_id: s.org.group_id,
        change: PushChange::Resolve,
        ..Pushed::default()
    }
}

#[tokio::test]
async fn a_resolved_group_takes_the_transition_to_the_mapped_status_with_the_resolution() {
    let s = scene().await;
    // The project by key in another case, the status by name in another case.
    s.map_statuses("out", Some("DONE"), Some("Open"), Some("Fixed"))
        .await;
    s.mount_reads(&[
        issue(None, ("1", "Open"), BEFORE),
        issue(None, ("10001", "Done"), AFTER),
    ])
    .await;
    s.mount_transitions(workflow(json!({
        "resolution": {"required": true, "name": "Resolution", "hasDefaultValue": false,
                       "allowedValues": [{"name": "Fixed"}, {"name": "Won't Fix"}]}
    })))
    .await;
    call("POST", &format!("{ISSUE_PATH}/transitions"), &[])
        .and(body_json(json!({
            "transition": {"id": "5"},
            "fields": {"resolution": {"name": "Fixed"}}
        })))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&s.server)
        .await;

    let write = write(s.plan_status(true).await);
    assert_eq!(write.value, "10001", "the target status id");
    let (pushed, updated) = write
        .send(&s.jira)
        .await
        .expect("Jira takes the transition");
    assert_eq!(
        pushed,
        Pushed {
            from: Some("Open".into()),
            to: Some("Done".into()),
            transition: Some("Resolve Issue".into()),
            ..resolving(&s)
        }
    );
    assert_eq!(updated, time(AFTER));
    s.finish().await;
}

#[tokio::test]
async fn a_status_mapped_by_project_id_that_jira_holds_already_is_unchanged() {
    let s = scene().await;
    s.map_statuses("10000", Some("Done"), Some("1"), None).await;
    s.mount_reads(&[issue(None, ("1", "Open"), BEFORE)]).await;

    let (pushed, updated) = decided(s.plan_status(false).await);
    assert_eq!(
        pushed,
        Pushed {
            outcome: PushOutcome::Unchanged,
            change: PushChange::Unresolve,
            from: Some("Open".into()),
            to: Some("Open".into()),
            ..resolving(&s)
        }
    );
    assert_eq!(updated, time(BEFORE));
    s.finish().await;
}

#[tokio::test]
async fn a_project_without_a_status_for_the_direction_is_not_mapped() {
    let s = scene().await;
    s.mount_reads(&[
        issue(None, ("1", "Open"), BEFORE),
        issue(None, ("1", "Open"), AFTER),
    ])
    .await;
    let (pushed, updated) = decided(s.plan_status(true).await);
    assert_eq!(
        pushed,
        Pushed {
            outcome: PushOutcome::NotMapped,
            from: Some("Open".into()),
            ..resolving(&s)
        },
        "no mapping at all"
    );
    assert_eq!(updated, time(BEFORE));

    s.map_statuses("OUT", None, Some("Open"), None).await;
    let (pushed, _) = decided(s.plan_status(true).await);
    assert_eq!(
        pushed.outcome,
        PushOutcome::NotMapped,
        "only unresolved mapped"
    );
    s.finish().await;
}

#[tokio::test]
async fn no_transition_names_the_current_status_and_the_transitions_offered() {
    let s = scene().await;
    s.map_statuses("OUT", Some("Closed"), None, None).await;
    s.mount_reads(&[issue(None, ("1", "Open"), BEFORE)]).await;
    s.mount_transitions(workflow(json!({}))).await;

    let (pushed, updated) = decided(s.plan_status(true).await);
    assert_eq!(
        pushed,
        Pushed {
            outcome: PushOutcome::NoTransition,
            from: Some("Open".into()),
            to: Some("Closed".into()),
            transition: Some("Start Progress → In Progress, Resolve Issue → Done".into()),
            ..resolving(&s)
        }
    );
    assert_eq!(updated, time(BEFORE));
    s.finish().await;
}

#[tokio::test]
async fn a_transition_that_requires_a_field_jirasync_cannot_fill_is_refused() {
    let s = scene().await;
    s.map_statuses("OUT", Some("10001"), None, Some("Fixed"))
        .await;
    s.mount_reads(&[issue(None, ("1", "Open"), BEFORE)]).await;
    s.mount_transitions(workflow(json!({
        "resolution": {"required": true, "name": "Resolution", "hasDefaultValue": false},
        "customfield_10100": {"required": true, "name": "Root cause", "hasDefaultValue": false},
    })))
    .await;

    let Err(PlanError::Jira(error, pushed)) = s.plan_status(true).await else {
        panic!("the transition is refused");
    };
    assert!(error.is_refusal(), "{error}");
    assert!(!error.is_transient(), "{error}");
    assert_eq!(
        *pushed,
        Pushed {
            outcome: PushOutcome::Refused,
            from: Some("Open".into()),
            to: Some("Done".into()),
            transition: Some("Resolve Issue".into()),
            jira_message: Some(
                "transition Resolve Issue (5) requires Root cause (customfield_10100)".into()
            ),
            ..resolving(&s)
        }
    );
    s.finish().await;
}

#[tokio::test]
async fn a_transition_jira_answers_400_is_refused_with_jiras_own_message() {
    let s = scene().await;
    s.map_statuses("OUT", Some("Done"), None, None).await;
    s.mount_reads(&[issue(None, ("1", "Open"), BEFORE)]).await;
    s.mount_transitions(workflow(json!({}))).await;
    call("POST", &format!("{ISSUE_PATH}/transitions"), &[])
        .and(body_json(json!({"transition": {"id": "5"}})))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "errorMessages": ["Root cause is required"],
            "errors": {"customfield_10100": "Pick a root cause.\nAny will do."}
        })))
        .expect(1)
        .mount(&s.server)
        .await;

    let write = write(s.plan_status(true).await);
    let error = write.send(&s.jira).await.expect_err("Jira refuses");
    assert!(error.is_refusal(), "{error}");
    assert_eq!(error.status(), Some(400));
    let message = "Root cause is required; customfield_10100: Pick a root cause. Any will do.";
    assert_eq!(error.jira_message().as_deref(), Some(message));
    assert_eq!(
        write.failed(&error),
        Pushed {
            outcome: PushOutcome::Refused,
            from: Some("Open".into()),
            to: Some("Done".into()),
            transition: Some("Resolve Issue".into()),
            status: Some(400),
            jira_message: Some(message.into()),
            ..resolving(&s)
        }
    );
    s.finish().await;
}

#[tokio::test]
async fn jiras_answers_to_the_read_are_refusals_or_passing_failures_with_their_retry_after() {
    let s = scene().await;
    let in_30_s = (Utc::now() + chrono::Duration::seconds(30))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let cases = [
        ("404", ResponseTemplate::new(404).set_body_json(json!({"errorMessages": ["Issue Does Not Exist"], "errors": {}}))),
        ("403", ResponseTemplate::new(403).set_body_json(json!({"errorMessages": ["You do not have the permission to see the specified issue."]}))),
        ("503", ResponseTemplate::new(503)),
        ("429 in seconds", ResponseTemplate::new(429).insert_header("Retry-After", "7")),
        ("429 as a date", ResponseTemplate::new(429).insert_header("Retry-After", in_30_s.as_str())),
        ("429 without", ResponseTemplate::new(429)),
    ];
    for (case, answer) in cases {
        s.server.reset().await;
        s.refuse_unexpected_calls().await;
        call(
            "GET",
            ISSUE_PATH,
            &[("fields", "assignee,status,project,updated")],
        )
        .respond_with(answer)
        .expect(1)
        .mount(&s.server)
        .await;
        let Err(PlanError::Jira(error, pushed)) = s.plan_assignee(&Assignee::Nobody).await else {
            panic!("case {case}: the read fails");
        };
        s.server.verify().await;
        let refusal = matches!(case, "404" | "403");
        assert_eq!(error.is_refusal(), refusal, "case {case}: {error}");
        assert_eq!(error.is_transient(), !refusal, "case {case}: {error}");
        let outcome = if refusal {
            PushOutcome::Refused
        } else {
            PushOutcome::Failed
        };
        assert_eq!(pushed.outcome, outcome, "case {case}");
        match case {
            "404" => assert_eq!(
                (pushed.status, pushed.jira_message.as_deref()),
                (Some(404), Some("Issue Does Not Exist")),
                "case {case}"
            ),
            "403" => assert_eq!(pushed.status, Some(403), "case {case}"),
            "503" => assert_eq!(error.retry_after(), None, "case {case}"),
            "429 in seconds" => {
                assert_eq!(
                    error.retry_after(),
                    Some(Duration::from_secs(7)),
                    "case {case}"
                );
            }
            "429 as a date" => {
                let wait = error.retry_after().unwrap_or_default();
                assert!(
                    (Duration::from_secs(25)..=Duration::from_secs(30)).contains(&wait),
                    "case {case}: {wait:?}"
                );
            }
            _ => assert_eq!(
                error.retry_after(),
                Some(Duration::from_secs(5)),
                "case {case}"
            ),
        }
        assert!(
            !format!("{error} {pushed:?}").contains(PAT),
            "case {case}: no token"
        );
    }
    s.finish().await;
}
