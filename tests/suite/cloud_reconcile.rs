//! Reconciliation of a Jira Cloud integration (docs/reference.md §11) against the
//! real RabbitMQ and Postgres and a fake Jira Cloud site that answers
//! `POST /rest/api/3/search/jql` only to the integration's Basic API-token
//! header: pages followed by `nextPageToken`, a `429` waited out, keys Jira no
//! longer knows dropped and asked once more.

use crate::common;

use std::time::{Duration, Instant};

use common::TestApp as Scene;
use common::app::{T1, WAIT};
use common::fake_cloud;
use common::seed::jira_user;
use jirasync::integration::Credentials;
use jirasync::queue::job::Job;
use jirasync::worker::jobs::Reconcile;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

const SEARCH_JQL: &str = "/rest/api/3/search/jql";
const EMAIL: &str = "admin@example.org";
const API_TOKEN: &str = "atl-cloud-token";

/// A Cloud site (the fake) with its integration, beside the test app's own
/// Data Center one; no worker yet.
struct Cloud {
    scene: Scene,
    site: MockServer,
    integration: i64,
}

/// Matches a search body that carries no `nextPageToken`: the first page.
struct FirstPage;

impl Match for FirstPage {
    fn matches(&self, request: &Request) -> bool {
        serde_json::from_slice::<Value>(&request.body)
            .is_ok_and(|body| body.get("nextPageToken").is_none())
    }
}

/// Matches a search whose JQL names `key`.
struct Names(&'static str);

impl Match for Names {
    fn matches(&self, request: &Request) -> bool {
        serde_json::from_slice::<Value>(&request.body).is_ok_and(|body| {
            body["jql"]
                .as_str()
                .is_some_and(|jql| jql.contains(&format!("\"{}\"", self.0)))
        })
    }
}

fn basic() -> String {
    fake_cloud::basic(EMAIL, API_TOKEN)
}

/// One issue of a search answer.
fn issue(key: &str, assignee: Value) -> Value {
    json!({"id": "10001", "key": key, "fields": {"assignee": assignee, "updated": T1}})
}

/// A search that only the integration's credentials may make.
fn search() -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path(SEARCH_JQL))
        .and(header("authorization", basic().as_str()))
        .and(body_partial_json(
            json!({"fields": ["assignee", "updated"], "maxResults": 100}),
        ))
}

impl Cloud {
    async fn start() -> Self {
        let scene = Scene::builder()
            .no_worker()
            .configure(|settings| {
                settings.worker.reconcile_interval = Duration::ZERO;
                // A search failing would wait 10 minutes in the retry tier: what
                // these tests see is done in the job's own run.
                settings.retries.delays = "10m".parse().expect("delays");
            })
            .start()
            .await;
        let site = MockServer::start().await;
        let credentials = Credentials::ApiToken {
            email: EMAIL.into(),
            token: API_TOKEN.into(),
        };
        let saved = fake_cloud::connected_site(
            &scene.settings,
            &site.uri(),
            "7c3f6a5e-0000-4000-8000-000000000001",
            &credentials,
        )
        .await;
        Self {
            scene,
            site,
            integration: saved.id,
        }
    }

    async fn reconcile(&self) {
        let job = Reconcile {
            integration_id: self.integration,
            since_ms: None,
        };
        let (_, body, props) = job.to_message();
        common::publish(
            &self.scene.channel,
            &self.scene.settings,
            Reconcile::TYPE,
            &body,
            props,
        )
        .await;
    }

    /// The bodies of the searches the site received, in order.
    async fn searches(&self) -> Vec<Value> {
        self.site
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|request| request.url.path() == SEARCH_JQL)
            .map(|request| serde_json::from_slice(&request.body).expect("JSON body"))
            .collect()
    }

    async fn wait_reconciled(&self) {
        common::eventually("the reconciliation is recorded", WAIT, || async {
            self.scene
                .db
                .query_opt(
                    "SELECT 1 FROM integration_reconciliations
                      WHERE integration_id = $1 AND reconciled_at IS NOT NULL",
                    &[&self.integration],
                )
                .await
                .expect("integration_reconciliations")
                .is_some()
        })
        .await;
    }
}

#[tokio::test]
async fn a_cloud_reconciliation_follows_next_page_tokens_with_the_api_token() {
    let cloud = Cloud::start().await;
    let seed = cloud.scene.seed();
    let first = seed.org(cloud.integration, true, "CLD-1").await;
    let second = seed.org(cloud.integration, true, "CLD-2").await;
    let first_user = seed.teammate(&first, "one@example.org").await;
    let second_user = seed.teammate(&second, "two@example.org").await;
    // Cloud may answer fewer issues than asked: one per page here.
    search()
        .and(FirstPage)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issues": [issue("CLD-1", jira_user("one@example.org"))],
            "nextPageToken": "page-2"
        })))
        .mount(&cloud.site)
        .await;
    search()
        .and(body_partial_json(json!({"nextPageToken": "page-2"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issues": [issue("CLD-2", jira_user("two@example.org"))],
            "isLast": true
        })))
        .mount(&cloud.site)
        .await;
    let worker = common::spawn_worker(&cloud.scene.settings);

    cloud.reconcile().await;
    cloud
        .scene
        .wait_assignee(first.group_id, Some(first_user))
        .await;
    cloud
        .scene
        .wait_assignee(second.group_id, Some(second_user))
        .await;
    cloud.wait_reconciled().await;

    let searches = cloud.searches().await;
    assert_eq!(searches.len(), 2, "two pages: {searches:?}");
    let jql = searches[0]["jql"].as_str().expect("jql");
    assert!(
        jql.starts_with(r#"key in ("CLD-1", "CLD-2") AND updated >= "-"#),
        "{jql}"
    );
    let keys: Vec<&str> = searches[0]
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["fields", "jql", "maxResults"],
        "the first page's body"
    );
    assert_eq!(searches[1]["jql"], searches[0]["jql"]);
    let activities = cloud.scene.activities(first.group_id).await;
    assert!(
        activities
            .iter()
            .any(|(_, data)| data["integration"] == json!("jira_cloud")),
        "the activity names Jira Cloud: {activities:?}"
    );

    worker.stop().await;
    cloud.scene.finish().await;
}

#[tokio::test]
async fn a_cloud_429_is_waited_out_and_the_search_asked_again() {
    let cloud = Cloud::start().await;
    let org = cloud
        .scene
        .seed()
        .org(cloud.integration, true, "RATE-1")
        .await;
    let user = cloud.scene.seed().teammate(&org, "rate@example.org").await;
    search()
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&cloud.site)
        .await;
    search()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issues": [issue("RATE-1", jira_user("rate@example.org"))]
        })))
        .mount(&cloud.site)
        .await;
    let worker = common::spawn_worker(&cloud.scene.settings);
    let started = Instant::now();

    cloud.reconcile().await;
    cloud.scene.wait_assignee(org.group_id, Some(user)).await;
    cloud.wait_reconciled().await;

    let requests = cloud.site.received_requests().await.unwrap_or_default();
    assert_eq!(requests.len(), 2, "one 429, then the search again");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was waited"
    );
    assert_eq!(
        common::depth(
            &cloud.scene.channel,
            &common::names(&cloud.scene.settings).dead()
        )
        .await,
        0
    );

    worker.stop().await;
    cloud.scene.finish().await;
}

#[tokio::test]
async fn keys_cloud_no_longer_knows_are_dropped_and_the_rest_searched() {
    let cloud = Cloud::start().await;
    let seed = cloud.scene.seed();
    let gone = seed.org(cloud.integration, true, "GONE-1").await;
    let kept = seed.org(cloud.integration, true, "KEPT-1").await;
    let user = seed.teammate(&kept, "kept@example.org").await;
    search()
        .and(Names("GONE-1"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "errorMessages": ["The issue key 'GONE-1' for field 'key' is invalid."],
            "errors": {}
        })))
        .mount(&cloud.site)
        .await;
    search()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issues": [issue("KEPT-1", jira_user("kept@example.org"))]
        })))
        .mount(&cloud.site)
        .await;
    let worker = common::spawn_worker(&cloud.scene.settings);

    cloud.reconcile().await;
    cloud.scene.wait_assignee(kept.group_id, Some(user)).await;
    cloud.wait_reconciled().await;

    let searches = cloud.searches().await;
    assert_eq!(searches.len(), 2, "{searches:?}");
    let again = searches[1]["jql"].as_str().expect("jql");
    assert!(
        again.starts_with(r#"key in ("KEPT-1") AND"#),
        "asked once more without the key: {again}"
    );
    assert_eq!(cloud.scene.assignee(gone.group_id).await, None);

    worker.stop().await;
    cloud.scene.finish().await;
}
