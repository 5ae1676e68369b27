//! Jira Cloud deliveries end to end (docs/reference.md §11.4–§11.5), through the real
//! ingress, RabbitMQ, worker and Postgres: the Cloud route and its headers, the
//! signature a delivery must carry (HMAC, or a delivery JWT for an `oauth2`
//! integration), duplicates of one `X-Atlassian-Webhook-Identifier`, and
//! assignees named by `accountId` — their email from the payload, the fake Cloud
//! site's user API (which checks the Basic header), or the user map.

use crate::common;
use common::Captured;

use common::TestApp;
use common::app::{T1, WAIT};
use common::fake_cloud;
use common::seed::{Org, assignee_changed, hub_signature, token_with};
use jirasync::integration::Credentials;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

const EMAIL: &str = "admin@acme.example";
const API_TOKEN: &str = "cloud-api-token-value";
const CLIENT_SECRET: &str = "cloud-oauth-client-secret";
const USER_PATH: &str = "/rest/api/3/user";

/// A test app with a Jira Cloud integration whose site (and REST base) is the
/// app's wiremock server.
struct Cloud {
    /// What this test's thread logged (the worker and ingress run on it).
    logs: Captured,
    _logging: tracing::subscriber::DefaultGuard,
    app: TestApp,
    integration: i64,
    token: String,
    hmac_secret: String,
    client: reqwest::Client,
}

/// The app, with the ingress, and a Cloud integration connected with `credentials`.
async fn cloud(credentials: Credentials) -> Cloud {
    let logs = Captured::default();
    // This thread's subscriber (the test runs on one thread): the binary's
    // global one is `secrets.rs`'s.
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("info,jirasync=trace")
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let logging = tracing::subscriber::set_default(subscriber);
    let app = TestApp::builder().concurrency(1).ingress().start().await;
    let cloud_id = uuid::Uuid::new_v4().to_string();
    let site = app.server.uri();
    let saved = fake_cloud::connected_site(&app.settings, &site, &cloud_id, &credentials).await;
    let metadata = &saved.metadata;
    let secret = metadata.webhook_secret.clone().expect("a webhook secret");
    Cloud {
        token: token_with(Algorithm::HS256, json!({ "id": cloud_id }), &secret),
        hmac_secret: metadata
            .webhook_hmac_secret
            .clone()
            .expect("an HMAC secret"),
        integration: saved.id,
        logs,
        _logging: logging,
        app,
        client: reqwest::Client::new(),
    }
}

fn api_token() -> Credentials {
    Credentials::ApiToken {
        email: EMAIL.to_owned(),
        token: API_TOKEN.to_owned(),
    }
}

fn oauth2() -> Credentials {
    Credentials::OAuth2 {
        client_id: "cloud-client".to_owned(),
        client_secret: CLIENT_SECRET.to_owned(),
        access_token: "cloud-access-token".to_owned(),
        refresh_token: Some("cloud-refresh-token".to_owned()),
        expires_at: Some(chrono::Utc::now() + chrono::TimeDelta::hours(1)),
        refreshed_at: Some(chrono::Utc::now()),
    }
}

/// A Cloud assignee object: an accountId, and an email unless hidden.
fn account(account_id: &str, email: Option<&str>) -> Value {
    let mut user = json!({"accountId": account_id, "displayName": "Mia", "active": true,
                          "accountType": "atlassian"});
    if let Some(email) = email {
        user["emailAddress"] = json!(email);
    }
    user
}

/// The Basic header the integration's API token makes.
fn basic() -> String {
    fake_cloud::basic(EMAIL, API_TOKEN)
}

/// What a delivery carries besides its body.
#[derive(Default)]
struct Headers<'a> {
    signature: Option<String>,
    bearer: Option<String>,
    identifier: Option<&'a str>,
}

impl Cloud {
    /// POSTs `body` to the Cloud route with `headers`; the response.
    async fn post(&self, body: &[u8], headers: Headers<'_>) -> reqwest::Response {
        let path = format!("/extensions/jira-cloud/issue-updated/{}/", self.token);
        let mut request = self
            .client
            .post(self.app.ingress().url(&path))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(signature) = headers.signature {
            request = request.header("x-hub-signature", signature);
        }
        if let Some(bearer) = headers.bearer {
            request = request.header("authorization", format!("Bearer {bearer}"));
        }
        if let Some(identifier) = headers.identifier {
            request = request.header("x-atlassian-webhook-identifier", identifier);
        }
        request.send().await.expect("POST")
    }

    /// POSTs `body` signed with the integration's HMAC secret; the message id.
    async fn deliver(&self, body: &Value, identifier: Option<&str>) -> String {
        let body = body.to_string();
        let headers = Headers {
            signature: Some(hub_signature(&self.hmac_secret, body.as_bytes())),
            identifier,
            ..Headers::default()
        };
        accepted(self.post(body.as_bytes(), headers).await).await
    }

    /// An organization syncing assignees back with `key` linked to a group.
    async fn org(&self, key: &str) -> Org {
        self.app.seed().org(self.integration, true, key).await
    }

    /// Every message sent before is handled (the worker takes one at a time).
    async fn settle(&self) {
        self.app.settle().await;
    }

    /// The Cloud integration's `sync_events` rows as (kind, outcome,
    /// organization, issue key, detail, message id), oldest first.
    async fn events(&self) -> Vec<(String, String, Option<i64>, String, Value, Option<String>)> {
        self.app
            .db
            .query(
                "SELECT kind, outcome, organization_id, issue_key, detail, message_id
                   FROM sync_events WHERE integration_id = $1 ORDER BY id",
                &[&self.integration],
            )
            .await
            .expect("sync events")
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
            .collect()
    }

    /// `GET /rest/api/3/user?accountId=<id>` with the integration's Basic
    /// header answers `status` with `body`.
    async fn mount_user(&self, account_id: &str, status: u16, body: Value) {
        Mock::given(method("GET"))
            .and(path(USER_PATH))
            .and(query_param("accountId", account_id))
            .and(header("authorization", basic().as_str()))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&self.app.server)
            .await;
    }

    /// The user lookups the fake site received, each checked for the Basic header.
    async fn user_lookups(&self) -> usize {
        let requests = self.app.requests_to(USER_PATH).await;
        for request in &requests {
            assert_eq!(
                request
                    .headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok()),
                Some(basic().as_str()),
                "the lookup authenticates with the API token"
            );
        }
        requests.len()
    }
}

impl Cloud {
    /// How many messages the worker logged as handled with `outcome`.
    fn handled(&self, outcome: &str) -> usize {
        let needle = format!("outcome=\"{outcome}\"");
        self.logs.text().matches(&needle).count()
    }
}

/// The message id of a `202`.
async fn accepted(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 202);
    response.json::<Value>().await.expect("JSON")["id"]
        .as_str()
        .expect("the message id")
        .to_owned()
}

#[tokio::test]
async fn an_hmac_signed_delivery_assigns_the_group_and_says_where_the_email_came_from() {
    let s = cloud(api_token()).await;
    let org = s.org("ACME-1").await;
    let mia = s.app.seed().teammate(&org, "mia@acme.example").await;
    let body = assignee_changed("ACME-1", account("acc-mia", Some("Mia@Acme.example")), T1);
    s.deliver(&body, Some("delivery-1")).await;
    s.app.wait_assignee(org.group_id, Some(mia)).await;

    let activities = s.app.activities(org.group_id).await;
    assert_eq!(activities.len(), 1, "{activities:?}");
    assert_eq!(activities[0].1["integration"], "jira_cloud");
    assert_eq!(activities[0].1["integration_id"], s.integration);
    let events = s.events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    let (kind, outcome, _, _, detail, _) = &events[0];
    assert_eq!((kind.as_str(), outcome.as_str()), ("assignee", "assigned"));
    assert_eq!(detail["account_id"], "acc-mia");
    assert_eq!(detail["email_source"], "payload");
    assert_eq!(s.user_lookups().await, 0, "the payload's email is enough");

    // An issue no organization links: the guard's decision names the account too.
    let unlinked = assignee_changed(
        "ACME-NONE",
        account("acc-mia", Some("mia@acme.example")),
        T1,
    );
    s.deliver(&unlinked, Some("delivery-2")).await;
    s.settle().await;
    let events = s.events().await;
    let (_, outcome, _, key, detail, _) = events.last().expect("a decision");
    assert_eq!(
        (outcome.as_str(), key.as_str()),
        ("not_linked", "ACME-NONE")
    );
    assert_eq!(detail["account_id"], "acc-mia");
    assert_eq!(detail["email_source"], "payload");
    s.app.finish().await;
}

#[tokio::test]
async fn a_delivery_with_a_bad_or_no_signature_is_dropped_and_changes_nothing() {
    let s = cloud(api_token()).await;
    let org = s.org("ACME-2").await;
    let _mia = s.app.seed().teammate(&org, "mia@acme.example").await;
    let body =
        assignee_changed("ACME-2", account("acc-mia", Some("mia@acme.example")), T1).to_string();
    let cases = [
        (
            "signed with another secret",
            Some(hub_signature("not-the-secret", body.as_bytes())),
        ),
        (
            "a signature of another body",
            Some(hub_signature(&s.hmac_secret, b"{}")),
        ),
        ("no signature at all", None),
    ];
    for (case, signature) in cases {
        let headers = Headers {
            signature,
            identifier: Some(case),
            ..Headers::default()
        };
        let response = s.post(body.as_bytes(), headers).await;
        assert_eq!(response.status(), 202, "{case}: the worker judges it");
    }
    s.settle().await;
    assert_eq!(s.app.assignee(org.group_id).await, None);
    assert!(s.app.activities(org.group_id).await.is_empty());
    assert!(s.events().await.is_empty(), "no decision was made");
    let recorded: i64 = s
        .app
        .db
        .query_one("SELECT count(*) FROM cloud_webhook_deliveries", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        recorded, 0,
        "a delivery that was not verified is not recorded"
    );
    assert_eq!(s.app.dead_letters().await, 0, "dropped, not dead-lettered");
    assert_eq!(s.handled("invalid_token"), 3, "{}", s.logs.text());
    s.app.finish().await;
}

#[tokio::test]
async fn a_delivery_jwt_signs_an_oauth2_integrations_delivery_and_a_bad_one_is_dropped() {
    let s = cloud(oauth2()).await;
    let now = chrono::Utc::now().timestamp();
    let org_bad = s.org("ACME-3").await;
    let bad_user = s.app.seed().teammate(&org_bad, "mia@acme.example").await;
    let bad =
        assignee_changed("ACME-3", account("acc-mia", Some("mia@acme.example")), T1).to_string();
    for (case, jwt) in [
        (
            "expired",
            token_with(Algorithm::HS256, json!({"exp": now - 600}), CLIENT_SECRET),
        ),
        (
            "signed with another secret",
            token_with(
                Algorithm::HS256,
                json!({"exp": now + 600}),
                "another-secret",
            ),
        ),
        (
            "signed with the URL token's secret",
            token_with(Algorithm::HS256, json!({}), "test-webhook-secret"),
        ),
    ] {
        let headers = Headers {
            bearer: Some(jwt),
            identifier: Some(case),
            ..Headers::default()
        };
        accepted(s.post(bad.as_bytes(), headers).await).await;
    }
    s.settle().await;
    assert_eq!(s.app.assignee(org_bad.group_id).await, None, "{bad_user}");
    assert_eq!(s.handled("invalid_token"), 3, "{}", s.logs.text());

    let org = s.org("ACME-4").await;
    let mia = s.app.seed().teammate(&org, "mia.4@acme.example").await;
    let body = assignee_changed(
        "ACME-4",
        account("acc-mia4", Some("mia.4@acme.example")),
        T1,
    )
    .to_string();
    let jwt = token_with(
        Algorithm::HS256,
        json!({"iss": "atlassian", "exp": now + 600, "aud": "whatever"}),
        CLIENT_SECRET,
    );
    let headers = Headers {
        bearer: Some(jwt),
        identifier: Some("jwt-good"),
        ..Headers::default()
    };
    accepted(s.post(body.as_bytes(), headers).await).await;
    s.app.wait_assignee(org.group_id, Some(mia)).await;
    assert_eq!(s.app.assignee(org_bad.group_id).await, None);
    s.app.finish().await;
}

#[tokio::test]
async fn the_same_delivery_again_changes_nothing_even_after_the_group_changed() {
    let s = cloud(api_token()).await;
    let org = s.org("ACME-5").await;
    let mia = s.app.seed().teammate(&org, "mia@acme.example").await;
    let bob = s.app.seed().teammate(&org, "bob@acme.example").await;
    let body = assignee_changed("ACME-5", account("acc-mia", Some("mia@acme.example")), T1);
    let first = s.deliver(&body, Some("same-delivery")).await;
    s.app.wait_assignee(org.group_id, Some(mia)).await;
    // The app assigns someone else meanwhile; equal event times would not be
    // stale, so only the identifier keeps the redelivery from undoing it.
    s.app.host_assigns(org.group_id, org.project_id, bob).await;

    let again = s.deliver(&body, Some("same-delivery")).await;
    s.settle().await;
    assert_eq!(s.app.assignee(org.group_id).await, Some(bob));
    assert_eq!(s.app.activities(org.group_id).await.len(), 1);
    let events = s.events().await;
    let duplicates: Vec<_> = events
        .iter()
        .filter(|(kind, ..)| kind == "delivery")
        .collect();
    assert_eq!(duplicates.len(), 1, "{events:?}");
    let (_, outcome, organization, key, detail, message_id) = duplicates[0];
    assert_eq!(outcome, "duplicate");
    assert_eq!(*organization, None);
    assert_eq!(key, "ACME-5");
    assert_eq!(
        *detail,
        json!({"webhook_identifier": "same-delivery", "first_message_id": first})
    );
    assert_eq!(message_id.as_deref(), Some(again.as_str()));

    // A delivery that changes nothing is recorded too: its redelivery is a
    // duplicate as well.
    let nothing = json!({"webhookEvent": "jira:issue_updated", "issue": {"key": "ACME-5"},
                         "changelog": {"items": [{"field": "summary"}]}});
    let first_nothing = s.deliver(&nothing, Some("changes-nothing")).await;
    s.deliver(&nothing, Some("changes-nothing")).await;
    s.settle().await;
    let events = s.events().await;
    let details: Vec<&Value> = events
        .iter()
        .filter(|(kind, ..)| kind == "delivery")
        .map(|(.., detail, _)| detail)
        .collect();
    assert_eq!(details.len(), 2, "{events:?}");
    assert_eq!(details[1]["first_message_id"], first_nothing);
    assert_eq!(s.handled("duplicate"), 2, "{}", s.logs.text());
    assert_eq!(s.handled("nothing_to_sync"), 1, "{}", s.logs.text());
    s.app.finish().await;
}

#[tokio::test]
async fn the_same_message_delivered_again_is_not_a_duplicate_of_itself() {
    use jirasync::integration::Provider;
    use jirasync::integration::messages::{
        CLOUD_WEBHOOK, CloudDelivery, WebhookRequest, provider_webhook_properties,
    };
    let s = cloud(api_token()).await;
    let org = s.org("ACME-10").await;
    let mia = s.app.seed().teammate(&org, "mia@acme.example").await;
    let body =
        assignee_changed("ACME-10", account("acc-mia", Some("mia@acme.example")), T1).to_string();
    let signature = hub_signature(&s.hmac_secret, body.as_bytes());
    let request = WebhookRequest {
        token: &s.token,
        content_type: Some("application/json"),
        webhook_identifier: Some("crash-1"),
        hub_signature: Some(&signature),
    };
    let (_, props) = provider_webhook_properties(
        Provider::Cloud,
        &request,
        CloudDelivery::default(),
        std::time::SystemTime::now(),
    );
    // As after a worker crashed between its commit and its ack: the same message twice.
    for _ in 0..2 {
        common::publish(
            &s.app.channel,
            &s.app.settings,
            CLOUD_WEBHOOK,
            body.as_bytes(),
            props.clone(),
        )
        .await;
    }
    s.app.wait_assignee(org.group_id, Some(mia)).await;
    s.settle().await;
    let events = s.events().await;
    assert!(
        events.iter().all(|(kind, ..)| kind == "assignee"),
        "no duplicate row: {events:?}"
    );
    assert_eq!(s.handled("duplicate"), 0, "{}", s.logs.text());
    assert_eq!(s.handled("unchanged"), 1, "{}", s.logs.text());
    assert_eq!(s.app.activities(org.group_id).await.len(), 1);
    s.app.finish().await;
}

#[tokio::test]
async fn a_hidden_email_is_looked_up_by_account_id_on_the_site() {
    let s = cloud(api_token()).await;
    let org = s.org("ACME-6").await;
    let mia = s.app.seed().teammate(&org, "mia@acme.example").await;
    s.mount_user(
        "acc-hidden",
        200,
        json!({"accountId": "acc-hidden", "emailAddress": "Mia@Acme.example", "active": true}),
    )
    .await;
    let body = assignee_changed("ACME-6", account("acc-hidden", None), T1);
    s.deliver(&body, Some("lookup-1")).await;
    s.app.wait_assignee(org.group_id, Some(mia)).await;
    assert_eq!(s.user_lookups().await, 1);
    let events = s.events().await;
    assert_eq!(events[0].4["email_source"], "lookup", "{events:?}");
    assert_eq!(events[0].4["account_id"], "acc-hidden");
    s.app.finish().await;
}

#[tokio::test]
async fn an_email_hidden_everywhere_is_found_through_the_user_map_by_account_id() {
    let s = cloud(api_token()).await;
    let org = s.org("ACME-7").await;
    let mia = s.app.seed().teammate(&org, "mia@acme.example").await;
    // As the `explain` sentence of a missing email says: the command takes a
    // Cloud integration and an accountId.
    let username = s.app.username(mia).await;
    let integration = s.integration.to_string();
    let mapped = common::output(
        &[
            "user-map",
            "set",
            "--integration",
            &integration,
            "--jira-user",
            "acc-mapped",
            "--user",
            &username,
        ],
        &s.app.settings,
    );
    assert!(
        mapped.status.success(),
        "{}",
        String::from_utf8_lossy(&mapped.stderr)
    );
    s.mount_user(
        "acc-mapped",
        200,
        json!({"accountId": "acc-mapped", "active": true}),
    )
    .await;
    let body = assignee_changed("ACME-7", account("acc-mapped", None), T1);
    s.deliver(&body, Some("map-1")).await;
    s.app.wait_assignee(org.group_id, Some(mia)).await;
    assert_eq!(s.user_lookups().await, 1);
    let events = s.events().await;
    let detail = &events[0].4;
    assert_eq!(detail["email_source"], "user_map", "{events:?}");
    assert_eq!(detail["groups"][0]["via"], "user_map");
    s.app.finish().await;
}

#[tokio::test]
async fn an_account_without_an_email_anywhere_is_explained_with_the_command_that_fixes_it() {
    let s = cloud(api_token()).await;
    let org = s.org("ACME-8").await;
    let _mia = s.app.seed().teammate(&org, "mia@acme.example").await;
    s.mount_user("acc-nobody", 404, json!({"errorMessages": ["no user"]}))
        .await;
    let body = assignee_changed("ACME-8", account("acc-nobody", None), T1);
    s.deliver(&body, Some("missing-1")).await;
    s.settle().await;
    assert_eq!(s.app.assignee(org.group_id).await, None);
    assert_eq!(s.user_lookups().await, 1);
    let events = s.events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    let (kind, outcome, _, _, detail, _) = &events[0];
    assert_eq!(
        (kind.as_str(), outcome.as_str()),
        ("assignee", "missing_email")
    );
    let fix = format!(
        "jirasync user-map set --integration {} --jira-user acc-nobody --user USERNAME",
        s.integration
    );
    assert_eq!(detail["account_id"], "acc-nobody");
    assert_eq!(detail["email_source"], Value::Null);
    assert_eq!(
        detail["sources_tried"],
        json!([{"source": "payload", "result": "hidden"},
               {"source": "lookup", "result": "not_found"},
               {"source": "user_map", "result": "no_mapping"}])
    );
    assert_eq!(detail["fix"], fix.as_str());

    let output = common::output(&["explain", "ACME-8"], &s.app.settings);
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(text.contains("acc-nobody"), "{text}");
    assert!(text.contains(&fix), "{text}");
    assert!(text.contains("lookup: not_found"), "{text}");
    s.app.finish().await;
}

#[tokio::test]
async fn the_cloud_route_carries_the_headers_and_refuses_an_over_long_bearer_token() {
    let app = TestApp::builder().no_worker().ingress().start().await;
    let client = reqwest::Client::new();
    let token = token_with(Algorithm::HS256, json!({"id": "cloud-id"}), "s");
    let url = |slash: &str| {
        app.ingress().url(&format!(
            "/extensions/jira-cloud/issue-updated/{token}{slash}"
        ))
    };
    let body = br#"{"webhookEvent":"jira:issue_updated"}"#;
    let long = "a".repeat(4097);
    let response = client
        .post(url("/"))
        .header("authorization", format!("Bearer {long}"))
        .body(body.to_vec())
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.expect("JSON");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("bearer token is longer than 4096 bytes")),
        "{error}"
    );
    let webhooks = common::names(&app.settings).webhooks();
    assert_eq!(common::depth(&app.channel, &webhooks).await, 0);

    for slash in ["/", ""] {
        let response = client
            .post(url(slash))
            .header("content-type", "application/json")
            .header("authorization", "Bearer x.y.z")
            .header("x-hub-signature", "sha256=00ff")
            .header("x-atlassian-webhook-identifier", "ident-9")
            .body(body.to_vec())
            .send()
            .await
            .expect("POST");
        let id = accepted(response).await;
        let message = common::get_one(&app.channel, &webhooks, WAIT)
            .await
            .expect("the message is on P.webhooks");
        let props = &message.delivery.properties;
        use jirasync::queue::message::{header_str, message_id, message_type};
        assert_eq!(message_type(props), "jira_cloud.webhook");
        assert_eq!(message_id(props), id);
        assert_eq!(
            message.delivery.routing_key.as_str(),
            "jira_cloud.webhook",
            "routed by its own key"
        );
        for (name, value) in [
            ("token", token.as_str()),
            ("delivery-jwt", "x.y.z"),
            ("x-hub-signature", "sha256=00ff"),
            ("x-atlassian-webhook-identifier", "ident-9"),
        ] {
            assert_eq!(header_str(props, name).as_deref(), Some(value), "{name}");
        }
        assert_eq!(message.delivery.data, body.to_vec());
    }
    app.finish().await;
}

#[tokio::test]
async fn no_token_signature_or_secret_of_a_cloud_delivery_is_logged() {
    let s = cloud(oauth2()).await;
    let org = s.org("ACME-9").await;
    let mia = s.app.seed().teammate(&org, "mia@acme.example").await;
    let body = assignee_changed("ACME-9", account("acc-mia", Some("mia@acme.example")), T1);
    let text = body.to_string();
    let good_jwt = token_with(Algorithm::HS256, json!({}), CLIENT_SECRET);
    let bad_jwt = token_with(Algorithm::HS256, json!({}), "forged");
    let bad_signature = hub_signature("forged", text.as_bytes());
    for (bearer, signature) in [
        (Some(bad_jwt.clone()), None),
        (None, Some(bad_signature.clone())),
        (Some(good_jwt.clone()), None),
    ] {
        let headers = Headers {
            bearer,
            signature,
            identifier: Some("logged-1"),
        };
        accepted(s.post(text.as_bytes(), headers).await).await;
    }
    s.app.wait_assignee(org.group_id, Some(mia)).await;
    s.settle().await;
    let good_signature = hub_signature(&s.hmac_secret, text.as_bytes());
    let logged = s.logs.text();
    assert!(logged.contains("webhook rejected"), "{logged}");
    assert_eq!(s.handled("invalid_token"), 2, "{logged}");
    let part = |t: &str| t.rsplit('.').next().expect("three parts").to_owned();
    for (what, value) in [
        ("the URL token", s.token.clone()),
        ("the URL token's signature", part(&s.token)),
        ("the delivery JWT", good_jwt.clone()),
        ("the delivery JWT's signature", part(&good_jwt)),
        ("the forged JWT", bad_jwt.clone()),
        ("the forged signature", bad_signature),
        ("the HMAC of the body", good_signature),
        ("the HMAC secret", s.hmac_secret.clone()),
        ("the client secret", CLIENT_SECRET.to_owned()),
        ("the assignee's email", "mia@acme.example".to_owned()),
    ] {
        assert!(!logged.contains(&value), "{what} appears in the logs");
    }
    s.app.finish().await;
}

#[tokio::test]
async fn the_webhook_of_a_push_to_cloud_is_its_echo_and_starts_no_push() {
    let s = cloud(api_token()).await;
    let key = "ACME-ECHO";
    let (before, after) = (T1, "2024-01-01T10:05:00.000+0000");
    let org = s.org(key).await;
    s.app.forward_assignments(org.id).await;
    let mia = s.app.seed().teammate(&org, "mia@acme.example").await;
    let issue = |account: Option<&str>, updated: &str| {
        json!({"id": "10001", "key": key, "fields": {
            "assignee": account.map(|id| json!({"accountId": id, "active": true})),
            "status": {"id": "1", "name": "To Do"},
            "project": {"id": "10000", "key": "ACME"},
            "updated": updated,
        }})
    };
    let issue_path = format!("/rest/api/3/issue/{key}");
    for answer in [issue(None, before), issue(Some("acc-mia"), after)] {
        Mock::given(method("GET"))
            .and(path(issue_path.as_str()))
            .and(header("authorization", basic().as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(answer))
            .up_to_n_times(1)
            .mount(&s.app.server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/rest/api/3/user/assignable/search"))
        .and(query_param("query", "mia@acme.example"))
        .and(header("authorization", basic().as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([account("acc-mia", Some("mia@acme.example"))])),
        )
        .mount(&s.app.server)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("{issue_path}/assignee")))
        .and(body_json(json!({"accountId": "acc-mia"})))
        .and(header("authorization", basic().as_str()))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&s.app.server)
        .await;

    s.app.host_assigns(org.group_id, org.project_id, mia).await;
    common::eventually("the assignment is pushed to Cloud", WAIT, || async {
        s.events()
            .await
            .iter()
            .any(|(kind, outcome, ..)| kind == "assignee_outbound" && outcome == "pushed")
    })
    .await;
    // Cloud's webhook for jirasync's own write.
    let echo = assignee_changed(key, account("acc-mia", Some("mia@acme.example")), after);
    s.deliver(&echo, Some("echo-delivery")).await;
    s.settle().await;

    let events = s.events().await;
    let decision = events
        .iter()
        .find(|(kind, ..)| kind == "assignee")
        .expect("the webhook's decision");
    assert_eq!(decision.1, "echo", "{events:?}");
    assert_eq!(decision.4["echo_of"], "acc-mia", "{:?}", decision.4);
    let pushes: i64 = s
        .app
        .db
        .query_one(
            "SELECT count(*) FROM sync_events
              WHERE integration_id = $1 AND kind = 'assignee_outbound'",
            &[&s.integration],
        )
        .await
        .expect("pushes")
        .get(0);
    assert_eq!(pushes, 1, "the echo started no push");
    s.app.finish().await;
}
