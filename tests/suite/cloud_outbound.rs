//! Outbound sync to Jira Cloud (docs/reference.md §11, §10) end to end: the
//! application assigns, Postgres captures it, the worker pushes through REST API
//! v3 by `accountId` to a fake Cloud site that answers only the integration's
//! Basic API-token header and fails the test on any call it does not expect —
//! the user found by verified email through the assignable search (`query=`),
//! a user map entry confirmed by `accountId`, an email Cloud hides never used,
//! unassigning with `{"accountId":null}`, a resolution through the v3
//! transitions, and a `429` stored, not waited out.

use std::time::Duration;

use jirasync::integration::Credentials;
use jirasync::outbound::mapping::{self, Mapping};
use serde_json::{Value, json};
use wiremock::matchers::{any, body_json, header, method, path};
use wiremock::{Match, Mock, MockBuilder, MockServer, Request, ResponseTemplate};

use crate::common::{TestApp as Scene, eventually, fake_cloud};

const EMAIL: &str = "admin@example.org";
const API_TOKEN: &str = "atl-outbound-token";
const WAIT: Duration = Duration::from_secs(20);
const BEFORE: &str = "2024-01-01T10:00:00.000+0000";
const AFTER: &str = "2024-01-01T10:05:00.000+0000";

/// The test app's worker and a Cloud site (the fake) with its integration.
struct Cloud {
    scene: Scene,
    site: MockServer,
    integration: i64,
}

/// Matches a request whose query is exactly these pairs (any order).
struct QueryIs(Vec<(&'static str, String)>);

impl Match for QueryIs {
    fn matches(&self, request: &Request) -> bool {
        let mut asked: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
        let mut expected: Vec<(String, String)> = self
            .0
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect();
        asked.sort();
        expected.sort();
        asked == expected
    }
}

/// A call to the site: `verb` on `route` with exactly `query`, with the API token.
fn call(verb: &str, route: &str, query: &[(&'static str, &str)]) -> MockBuilder {
    let basic = fake_cloud::basic(EMAIL, API_TOKEN);
    let query = query
        .iter()
        .map(|(name, value)| (*name, (*value).to_owned()))
        .collect();
    Mock::given(method(verb))
        .and(path(route))
        .and(QueryIs(query))
        .and(header("authorization", basic.as_str()))
}

/// Cloud's issue `key`, assigned to `account` (or nobody), at `updated`.
fn issue(key: &str, account: Option<&str>, updated: &str) -> Value {
    let assignee = account.map(|id| json!({"accountId": id, "displayName": id, "active": true}));
    json!({"id": "10001", "key": key, "fields": {
        "assignee": assignee,
        "status": {"id": "1", "name": "To Do"},
        "project": {"id": "10000", "key": "CLO"},
        "updated": updated,
    }})
}

impl Cloud {
    async fn start() -> Self {
        let scene = Scene::builder()
            .configure(|settings| settings.retries.delays = "10m".parse().expect("delays"))
            .start()
            .await;
        let site = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(599))
            .with_priority(u8::MAX)
            .named("a call the test does not expect")
            .expect(0)
            .mount(&site)
            .await;
        let credentials = Credentials::ApiToken {
            email: EMAIL.into(),
            token: API_TOKEN.into(),
        };
        let saved = fake_cloud::connected_site(
            &scene.settings,
            &site.uri(),
            "7c3f6a5e-0000-4000-8000-0000000000b2",
            &credentials,
        )
        .await;
        Self {
            scene,
            site,
            integration: saved.id,
        }
    }

    /// The issue reads answer `answers`, each once and in order (the plan's
    /// read, the read-back after the write).
    async fn mount_reads(&self, key: &str, answers: &[Value]) {
        for answer in answers {
            call(
                "GET",
                &format!("/rest/api/3/issue/{key}"),
                &[("fields", "assignee,status,project,updated")],
            )
            .respond_with(ResponseTemplate::new(200).set_body_json(answer))
            .up_to_n_times(1)
            .expect(1)
            .mount(&self.site)
            .await;
        }
    }

    /// `PUT /rest/api/3/issue/{key}/assignee` with `body` answers 204, once.
    async fn mount_assign(&self, key: &str, body: Value) {
        call("PUT", &format!("/rest/api/3/issue/{key}/assignee"), &[])
            .and(body_json(body))
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&self.site)
            .await;
    }

    /// The outcome of the last outbound decision about `key`, once there is one
    /// with `outcome`; its detail.
    async fn wait_outbound(&self, key: &str, outcome: &str) -> Value {
        let find = || async {
            self.scene
                .db
                .query_opt(
                    "SELECT detail FROM sync_events
                      WHERE issue_key = $1 AND kind = 'assignee_outbound' AND outcome = $2
                      ORDER BY id DESC LIMIT 1",
                    &[&key, &outcome],
                )
                .await
                .expect("sync events")
                .map(|row| row.get::<_, Value>(0))
        };
        eventually(&format!("{key} recorded {outcome}"), WAIT, || async {
            find().await.is_some()
        })
        .await;
        find().await.unwrap_or_default()
    }

    async fn finish(self) {
        self.site.verify().await;
        self.scene.finish().await;
    }
}

#[tokio::test]
async fn an_assignment_is_pushed_to_cloud_by_the_account_id_its_verified_email_finds() {
    let cloud = Cloud::start().await;
    let key = "CLO-1";
    let org = cloud.scene.seed().org(cloud.integration, true, key).await;
    cloud.scene.forward_assignments(org.id).await;
    let user = cloud.scene.seed().teammate(&org, "amy@example.org").await;
    cloud
        .mount_reads(
            key,
            &[issue(key, None, BEFORE), issue(key, Some("acc-amy"), AFTER)],
        )
        .await;
    call(
        "GET",
        "/rest/api/3/user/assignable/search",
        &[("issueKey", key), ("query", "amy@example.org")],
    )
    .respond_with(ResponseTemplate::new(200).set_body_json(json!([
        // Cloud matches prefixes: only the exact address is taken.
        {"accountId": "acc-amyx", "emailAddress": "amy@example.org.uk", "active": true},
        {"accountId": "acc-amy", "emailAddress": "Amy@Example.org", "active": true}
    ])))
    .expect(1)
    .mount(&cloud.site)
    .await;
    cloud
        .mount_assign(key, json!({"accountId": "acc-amy"}))
        .await;

    cloud
        .scene
        .host_assigns(org.group_id, org.project_id, user)
        .await;
    let detail = cloud.wait_outbound(key, "pushed").await;
    assert_eq!(detail["jira_user"], json!("acc-amy"), "{detail}");
    assert_eq!(detail["via"], json!("email"), "{detail}");

    cloud.finish().await;
}

#[tokio::test]
async fn a_user_map_account_id_is_confirmed_and_a_hidden_email_never_matches() {
    let cloud = Cloud::start().await;
    let (mapped_key, hidden_key) = ("CLO-2", "CLO-3");
    let seed = cloud.scene.seed();
    let mapped_org = seed.org(cloud.integration, true, mapped_key).await;
    let hidden_org = seed.org(cloud.integration, true, hidden_key).await;
    cloud.scene.forward_assignments(mapped_org.id).await;
    cloud.scene.forward_assignments(hidden_org.id).await;
    let mapped = seed.teammate(&mapped_org, "bo@example.org").await;
    let hidden = seed.teammate(&hidden_org, "cy@example.org").await;
    cloud
        .scene
        .db
        .execute(
            "INSERT INTO jira_user_mappings (integration_id, jira_user, user_id) VALUES ($1, 'acc-bo', $2)",
            &[&cloud.integration, &mapped],
        )
        .await
        .expect("user map entry");
    call("GET", "/rest/api/3/user", &[("accountId", "acc-bo")])
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"accountId": "acc-bo", "active": true})),
        )
        .expect(1)
        .mount(&cloud.site)
        .await;
    cloud
        .mount_reads(
            mapped_key,
            &[
                issue(mapped_key, None, BEFORE),
                issue(mapped_key, Some("acc-bo"), AFTER),
            ],
        )
        .await;
    cloud
        .mount_assign(mapped_key, json!({"accountId": "acc-bo"}))
        .await;
    cloud
        .mount_reads(hidden_key, &[issue(hidden_key, None, BEFORE)])
        .await;
    // Cy hides her email: Cloud answers her account without it.
    call(
        "GET",
        "/rest/api/3/user/assignable/search",
        &[("issueKey", hidden_key), ("query", "cy@example.org")],
    )
    .respond_with(
        ResponseTemplate::new(200).set_body_json(json!([{"accountId": "acc-cy", "active": true}])),
    )
    .expect(1)
    .mount(&cloud.site)
    .await;

    cloud
        .scene
        .host_assigns(mapped_org.group_id, mapped_org.project_id, mapped)
        .await;
    cloud
        .scene
        .host_assigns(hidden_org.group_id, hidden_org.project_id, hidden)
        .await;
    let detail = cloud.wait_outbound(mapped_key, "pushed").await;
    assert_eq!(detail["jira_user"], json!("acc-bo"), "{detail}");
    assert_eq!(detail["via"], json!("user_map"), "{detail}");
    let detail = cloud.wait_outbound(hidden_key, "no_jira_user").await;
    assert_eq!(
        detail["emails_tried"],
        json!(["cy@example.org"]),
        "{detail}"
    );

    cloud.finish().await;
}

#[tokio::test]
async fn an_unassignment_sends_a_null_account_id() {
    let cloud = Cloud::start().await;
    let key = "CLO-4";
    let org = cloud.scene.seed().org(cloud.integration, true, key).await;
    cloud.scene.forward_assignments(org.id).await;
    let user = cloud.scene.seed().teammate(&org, "di@example.org").await;
    // First the application assigns Di, whom Cloud holds already: nothing is
    // written. Then it unassigns her.
    cloud
        .mount_reads(
            key,
            &[
                issue(key, Some("acc-di"), BEFORE),
                issue(key, Some("acc-di"), BEFORE),
                issue(key, None, AFTER),
            ],
        )
        .await;
    call(
        "GET",
        "/rest/api/3/user/assignable/search",
        &[("issueKey", key), ("query", "di@example.org")],
    )
    .respond_with(ResponseTemplate::new(200).set_body_json(json!([
        {"accountId": "acc-di", "emailAddress": "di@example.org", "active": true}
    ])))
    .expect(1)
    .mount(&cloud.site)
    .await;
    cloud.mount_assign(key, json!({"accountId": null})).await;

    cloud
        .scene
        .host_assigns(org.group_id, org.project_id, user)
        .await;
    cloud.wait_outbound(key, "unchanged").await;
    cloud
        .scene
        .db
        .execute(
            "DELETE FROM group_assignees WHERE group_id = $1",
            &[&org.group_id],
        )
        .await
        .expect("unassigned");
    let detail = cloud.wait_outbound(key, "pushed").await;
    assert_eq!(detail["change"], json!("unassign"), "{detail}");

    cloud.finish().await;
}

#[tokio::test]
async fn a_cloud_429_on_a_push_is_stored_for_every_worker_not_waited_out() {
    let cloud = Cloud::start().await;
    let key = "CLO-5";
    let org = cloud.scene.seed().org(cloud.integration, true, key).await;
    cloud.scene.forward_assignments(org.id).await;
    let user = cloud.scene.seed().teammate(&org, "ed@example.org").await;
    call(
        "GET",
        &format!("/rest/api/3/issue/{key}"),
        &[("fields", "assignee,status,project,updated")],
    )
    .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "30"))
    .expect(1)
    .mount(&cloud.site)
    .await;

    cloud
        .scene
        .host_assigns(org.group_id, org.project_id, user)
        .await;
    eventually("the 429 is stored for every worker", WAIT, || async {
        cloud
            .scene
            .db
            .query_opt(
                "SELECT 1 FROM outbound_throttles
                  WHERE integration_id = $1 AND until > now() + interval '20 seconds'",
                &[&cloud.integration],
            )
            .await
            .expect("throttles")
            .is_some()
    })
    .await;
    // One call only: the push did not wait the 30 s out and call again.
    assert_eq!(
        cloud
            .site
            .received_requests()
            .await
            .unwrap_or_default()
            .len(),
        1
    );

    cloud.finish().await;
}

#[tokio::test]
async fn a_resolution_moves_the_cloud_issue_by_the_transition_to_the_mapped_status() {
    let cloud = Cloud::start().await;
    let key = "CLO-6";
    let org = cloud.scene.seed().org(cloud.integration, true, key).await;
    cloud
        .scene
        .db
        .execute(
            r#"UPDATE organization_integrations
                SET config = config || '{"sync_status_forward": true}'
              WHERE organization_id = $1"#,
            &[&org.id],
        )
        .await
        .expect("forward statuses");
    let slug: String = cloud
        .scene
        .db
        .query_one("SELECT slug FROM organizations WHERE id = $1", &[&org.id])
        .await
        .expect("slug")
        .get(0);
    let pool = jirasync::db::connect(&cloud.scene.settings.database, 1)
        .await
        .expect("pool");
    let db = pool.get().await.expect("connection");
    let link = mapping::link(&db, cloud.integration, &slug)
        .await
        .expect("the organization is linked");
    let map = Mapping {
        project: "CLO".into(),
        resolved_status: Some("Done".into()),
        unresolved_status: None,
        resolution: None,
    };
    mapping::set(&db, &link, &map).await.expect("status map");
    let mut done = issue(key, None, AFTER);
    done["fields"]["status"] = json!({"id": "10002", "name": "Done"});
    cloud
        .mount_reads(key, &[issue(key, None, BEFORE), done])
        .await;
    call(
        "GET",
        &format!("/rest/api/3/issue/{key}/transitions"),
        &[("expand", "transitions.fields")],
    )
    .respond_with(
        ResponseTemplate::new(200).set_body_json(json!({"transitions": [
            {"id": "21", "name": "Start", "to": {"id": "3", "name": "In Progress"}, "fields": {}},
            {"id": "31", "name": "Finish", "to": {"id": "10002", "name": "Done"}, "fields": {}}
        ]})),
    )
    .expect(1)
    .mount(&cloud.site)
    .await;
    call("POST", &format!("/rest/api/3/issue/{key}/transitions"), &[])
        .and(body_json(json!({"transition": {"id": "31"}})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&cloud.site)
        .await;

    cloud
        .scene
        .db
        .execute(
            "UPDATE groups SET status = 'resolved' WHERE id = $1",
            &[&org.group_id],
        )
        .await
        .expect("resolved");
    eventually("the resolution is pushed", WAIT, || async {
        cloud
            .scene
            .db
            .query_opt(
                "SELECT 1 FROM sync_events
                  WHERE issue_key = $1 AND kind = 'status_outbound' AND outcome = 'pushed'",
                &[&key],
            )
            .await
            .expect("sync events")
            .is_some()
    })
    .await;

    cloud.finish().await;
}
