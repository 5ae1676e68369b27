//! The OAuth install flow against the real Postgres and RabbitMQ and a fake Jira
//! Server (`tests/fixtures/fake_jira.rs`, which verifies every RSA-SHA1 signature
//! with the public key): `oauth start` → request-token job → callback on the
//! ingress → access-token job → webhook registered → `installed`, then a webhook
//! sent to the registered URL passes the worker's token check. Also refusals,
//! retries, the Jira 10 webhook path, `oauth finish` and `integration add`.

use crate::common::{self, TestApp};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::fake_jira::{CONSUMER_KEY, FakeJira};
use common::seed::Seed;
use jirasync::commands::AppLink;
use jirasync::commands::integration::{self, AddArgs};
use jirasync::commands::oauth::{self, StartArgs, Started};
use jirasync::config::Settings;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

const WAIT: Duration = Duration::from_secs(20);
const KEY_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/jira_test_key.pem"
);
const PUBLIC_KEY_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/jira_test_key.pub.pem"
);
const REQUEST_TOKEN_PATH: &str = "/plugins/servlet/oauth/request-token";
const ACCESS_TOKEN_PATH: &str = "/plugins/servlet/oauth/access-token";
const LEGACY_WEBHOOK_PATH: &str = "/rest/webhooks/1.0/webhook";
const JIRA10_WEBHOOK_PATH: &str = "/rest/jira-webhook/1.0/webhooks";
const CALLBACK_PATH: &str = "/extensions/jira-server/oauth/callback";
const ISSUE_UPDATED: &[u8] = include_bytes!("../fixtures/issue_updated.json");

/// A migrated database, an ingress, a worker whose public URL is that ingress,
/// and a fake Jira.
type Flow = TestApp;

async fn flow(concurrency: u16) -> Flow {
    TestApp::builder()
        .concurrency(concurrency)
        .ingress()
        .start()
        .await
}

/// `oauth start --wait 20` for the Jira at `base_url` on these settings.
fn start_args(settings: &Settings, base_url: &str, consumer_key: &str) -> StartArgs {
    StartArgs {
        link: AppLink {
            base_url: base_url.to_owned(),
            consumer_key: Some(consumer_key.to_owned()),
            private_key_file: Some(KEY_FILE.into()),
            no_verify_ssl: false,
        },
        cloud: false,
        site: None,
        client_id: None,
        client_secret_file: None,
        scope: None,
        wait: Some(WAIT),
        services: settings.services(),
        public: settings.public.clone(),
        atlassian: settings.atlassian.clone(),
    }
}

/// Answers the request-token step like Jira: verifies, then issues a new token each time.
struct IssueRequestTokens {
    jira: Arc<FakeJira>,
    issued: AtomicUsize,
}

impl Respond for IssueRequestTokens {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if let Err(problem) = self.jira.verify(request) {
            return ResponseTemplate::new(401).set_body_string(format!("oauth_problem={problem}"));
        }
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200).set_body_string(format!(
            "oauth_token=req-{n}&oauth_token_secret=req-secret-{n}&oauth_callback_confirmed=true"
        ))
    }
}

impl Flow {
    async fn mount_request_token(&self) {
        Mock::given(method("POST"))
            .and(path(REQUEST_TOKEN_PATH))
            .respond_with(IssueRequestTokens {
                jira: Arc::clone(&self.jira),
                issued: AtomicUsize::new(0),
            })
            .mount(&self.server)
            .await;
    }

    async fn mount_access_token(&self) {
        Mock::given(method("POST"))
            .and(path(ACCESS_TOKEN_PATH))
            .respond_with(
                self.jira.verified(
                    ResponseTemplate::new(200)
                        .set_body_string("oauth_token=acc-tok&oauth_token_secret=acc-secret"),
                ),
            )
            .mount(&self.server)
            .await;
    }

    async fn mount_webhook(&self, webhook_path: &str, status: u16) {
        Mock::given(method("POST"))
            .and(path(webhook_path))
            .respond_with(
                self.jira
                    .verified(ResponseTemplate::new(status).set_body_json(json!({"id": 7}))),
            )
            .mount(&self.server)
            .await;
    }

    /// A Jira that issues tokens and takes the webhook, and an `oauth start --wait`
    /// against it: the session and its request token, awaiting authorization.
    async fn start_awaiting_authorization(&self) -> (Started, String) {
        self.mount_request_token().await;
        self.mount_access_token().await;
        self.mount_webhook(LEGACY_WEBHOOK_PATH, 201).await;
        let started = self.start(CONSUMER_KEY).await.expect("oauth start --wait");
        let (_, request_token, _, _) = self.session(started.session_id).await;
        (started, request_token.expect("request token stored"))
    }

    async fn start(&self, consumer_key: &str) -> anyhow::Result<Started> {
        oauth::start(&start_args(
            &self.settings,
            &self.server.uri(),
            consumer_key,
        ))
        .await
    }

    async fn status(&self, session_id: uuid::Uuid) -> anyhow::Result<Value> {
        oauth::status(&oauth::StatusArgs {
            session_id,
            database: self.settings.database.clone(),
        })
        .await
    }

    async fn finish_session(
        &self,
        session_id: uuid::Uuid,
        verifier: &str,
    ) -> anyhow::Result<Value> {
        oauth::finish(&oauth::FinishArgs {
            session_id,
            verifier: Some(verifier.to_owned()),
            code: None,
            services: self.settings.services(),
        })
        .await
    }

    async fn webhook_url(&self, id: i64) -> anyhow::Result<String> {
        integration::webhook_url(&integration::WebhookUrlArgs {
            id,
            database: self.settings.database.clone(),
            public: self.settings.public.clone(),
        })
        .await
    }

    async fn session(
        &self,
        id: uuid::Uuid,
    ) -> (String, Option<String>, Option<String>, Option<i64>) {
        let row = self
            .db
            .query_one(
                "SELECT state, request_token, error, integration_id FROM oauth_sessions WHERE id = $1",
                &[&id],
            )
            .await
            .expect("session row");
        (row.get(0), row.get(1), row.get(2), row.get(3))
    }

    async fn wait_state(&self, id: uuid::Uuid, expected: &str) {
        common::eventually(
            &format!("session {id} is {expected}"),
            WAIT,
            || async move { self.session(id).await.0 == expected },
        )
        .await;
    }

    /// Every request the fake Jira received on `request_path`, as JSON bodies.
    async fn bodies(&self, request_path: &str) -> Vec<Value> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|request| request.url.path() == request_path)
            .map(|request| serde_json::from_slice(&request.body).unwrap_or(Value::Null))
            .collect()
    }

    /// Links DEMO-1 of `integration` to a group whose team has jane@example.org,
    /// POSTs the real-shaped webhook to `url` and waits for the assignment.
    async fn webhook_is_accepted(&self, integration: i64, url: &str) {
        let seed = Seed { db: &self.db };
        let org = seed.org(integration, true, "DEMO-1").await;
        let jane = seed.teammate(&org, "jane@example.org").await;
        let response = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(ISSUE_UPDATED)
            .send()
            .await
            .expect("POST the webhook");
        assert_eq!(response.status(), 202, "the ingress takes the webhook");
        common::eventually(
            "the worker accepts the token and assigns jane",
            WAIT,
            || async { common::assignee(&self.db, org.group_id).await == Some(jane) },
        )
        .await;
    }
}

fn param<'a>(
    signed: &'a std::collections::BTreeMap<String, String>,
    name: &str,
) -> Option<&'a str> {
    signed.get(name).map(String::as_str)
}

#[tokio::test]
async fn a_request_token_makes_the_session_await_authorization() {
    let f = flow(4).await;
    f.mount_request_token().await;

    let started = f.start(CONSUMER_KEY).await.expect("oauth start --wait");

    assert_eq!(
        started.authorize_url.as_deref(),
        Some(
            format!(
                "{}/plugins/servlet/oauth/authorize?oauth_token=req-1",
                f.server.uri()
            )
            .as_str()
        )
    );
    let (state, request_token, error, _) = f.session(started.session_id).await;
    assert_eq!(state, "awaiting_authorization");
    assert_eq!(request_token.as_deref(), Some("req-1"));
    assert_eq!(error, None);
    let signed = f.jira.verified_requests();
    assert_eq!(signed.len(), 1);
    assert_eq!(
        param(&signed[0], "oauth_callback"),
        Some(format!("{}{CALLBACK_PATH}", f.settings.public.url).as_str())
    );
    let status = f
        .status(started.session_id)
        .await
        .expect("oauth status")
        .to_string();
    assert!(
        status.contains("\"state\":\"awaiting_authorization\""),
        "{status}"
    );
    for secret in [
        "PRIVATE KEY",
        "req-secret-1",
        "private_key",
        "request_token_secret",
    ] {
        assert!(!status.contains(secret), "status shows {secret}: {status}");
    }
    f.finish().await;
}

#[tokio::test]
async fn a_refused_consumer_key_fails_the_session_with_what_to_check() {
    // One message at a time, so the sentinel below is handled after the refusal settled.
    let f = flow(1).await;
    f.mount_request_token().await;

    let error = f
        .start("not-linked")
        .await
        .expect_err("Jira refuses the consumer key");

    let text = format!("{error:#}");
    assert!(
        text.contains("oauth_problem=consumer_key_unknown"),
        "{text}"
    );
    assert!(
        text.contains("check the consumer key of the application link"),
        "{text}"
    );
    let row =
        f.db.query_one("SELECT state, error FROM oauth_sessions", &[])
            .await
            .expect("the session");
    assert_eq!(row.get::<_, String>(0), "failed");
    let stored: String = row.get(1);
    assert!(stored.contains("consumer_key_unknown"), "{stored}");
    assert!(stored.contains(&f.server.uri()), "names the Jira: {stored}");

    f.start(CONSUMER_KEY)
        .await
        .expect("the sentinel session works");
    assert_eq!(
        f.dead_letters().await,
        0,
        "a refusal is acked, not dead-lettered"
    );
    f.finish().await;
}

#[tokio::test]
async fn a_503_is_retried_with_a_fresh_nonce_and_then_succeeds() {
    let f = flow(4).await;
    // Mounted first, so it answers the first try only.
    Mock::given(method("POST"))
        .and(path(REQUEST_TOKEN_PATH))
        .respond_with(
            f.jira
                .verified(ResponseTemplate::new(503).set_body_string("maintenance")),
        )
        .up_to_n_times(1)
        .mount(&f.server)
        .await;
    f.mount_request_token().await;

    let started = f.start(CONSUMER_KEY).await.expect("succeeds after a retry");

    assert!(started.authorize_url.is_some());
    let signed = f.jira.verified_requests();
    assert_eq!(signed.len(), 2, "one 503, one success");
    assert_ne!(
        param(&signed[0], "oauth_nonce"),
        param(&signed[1], "oauth_nonce"),
        "each try is signed afresh"
    );
    f.finish().await;
}

#[tokio::test]
async fn when_retries_run_out_the_session_fails_and_the_job_is_dead_lettered() {
    let f = flow(4).await;
    Mock::given(method("POST"))
        .and(path(REQUEST_TOKEN_PATH))
        .respond_with(ResponseTemplate::new(503))
        .mount(&f.server)
        .await;

    // Tiers 1s,2s: three deliveries, then P.dead.
    let error = f.start(CONSUMER_KEY).await.expect_err("Jira never answers");

    let text = format!("{error:#}");
    assert!(text.contains("gave up after 3 attempts"), "{text}");
    assert!(text.contains("HTTP 503"), "{text}");
    common::eventually("the job is dead-lettered", WAIT, || async {
        f.dead_letters().await == 1
    })
    .await;
    f.finish().await;
}

#[tokio::test]
async fn start_callback_install_then_a_webhook_to_the_registered_url_is_accepted() {
    let f = flow(1).await;
    let (started, request_token) = f.start_awaiting_authorization().await;

    // Jira redirects the browser to the callback after the user allowed access.
    let callback = f.ingress().url(&format!(
        "{CALLBACK_PATH}?oauth_token={request_token}&oauth_verifier=verif-1"
    ));
    let page = reqwest::get(&callback).await.expect("GET the callback");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("page").contains("close this tab"));
    f.wait_state(started.session_id, "installed").await;

    let signed = f.jira.verified_requests();
    let exchange = signed
        .iter()
        .find(|s| param(s, "oauth_verifier").is_some())
        .expect("a signed access-token request");
    assert_eq!(param(exchange, "oauth_token"), Some(request_token.as_str()));
    assert_eq!(param(exchange, "oauth_verifier"), Some("verif-1"));
    assert_eq!(
        param(signed.last().expect("registration"), "oauth_token"),
        Some("acc-tok"),
        "the webhook is registered with the access token"
    );
    let registrations = f.bodies(LEGACY_WEBHOOK_PATH).await;
    assert_eq!(registrations.len(), 1);
    assert_eq!(
        registrations[0]["events"],
        json!(["jira:issue_created", "jira:issue_updated"])
    );
    let url = registrations[0]["url"]
        .as_str()
        .expect("registered URL")
        .to_owned();
    assert!(
        url.starts_with(&format!(
            "{}/extensions/jira-server/issue-updated/",
            f.settings.public.url
        )),
        "{url}"
    );

    let (_, _, _, integration) = f.session(started.session_id).await;
    let integration = integration.expect("the session names its integration");
    let port = f.server.address().port();
    let row =
        f.db.query_one(
            "SELECT i.provider, i.external_id, i.name, i.metadata, i.status, c.consumer_key,
                    c.access_token, c.access_token_secret, c.private_key
               FROM integrations i JOIN integration_credentials c ON c.integration_id = i.id
              WHERE i.id = $1",
            &[&integration],
        )
        .await
        .expect("integration and credentials");
    assert_eq!(row.get::<_, String>(0), "jira_server");
    assert_eq!(
        row.get::<_, String>(1),
        format!("127.0.0.1:{port}:{CONSUMER_KEY}")
    );
    assert_eq!(row.get::<_, String>(2), format!("127.0.0.1:{port}"));
    let metadata: Value = row.get(3);
    assert_eq!(metadata["base_url"], json!(f.server.uri()));
    assert_eq!(metadata["domain_name"], json!(format!("127.0.0.1:{port}")));
    assert_eq!(metadata["verify_ssl"], json!(true));
    assert_eq!(metadata["webhook_secret"].as_str().map(str::len), Some(64));
    assert_eq!(row.get::<_, String>(4), "active");
    assert_eq!(row.get::<_, String>(5), CONSUMER_KEY);
    assert_eq!(row.get::<_, Option<String>>(6).as_deref(), Some("acc-tok"));
    assert_eq!(
        row.get::<_, Option<String>>(7).as_deref(),
        Some("acc-secret")
    );
    assert!(row.get::<_, String>(8).contains("BEGIN RSA PRIVATE KEY"));

    // A second redirect (a reload) is a no-op: the sentinel session behind it
    // is handled only after it settled (one message at a time).
    assert_eq!(
        reqwest::get(&callback).await.expect("GET again").status(),
        200
    );
    f.start(CONSUMER_KEY).await.expect("sentinel session");
    assert_eq!(
        f.bodies(LEGACY_WEBHOOK_PATH).await.len(),
        1,
        "registered once"
    );
    assert_eq!(f.session(started.session_id).await.0, "installed");
    assert_eq!(f.dead_letters().await, 0);

    f.webhook_is_accepted(integration, &url).await;
    f.finish().await;
}

#[tokio::test]
async fn on_jira_10_the_webhook_is_registered_on_the_new_path_after_a_404() {
    let f = flow(4).await;
    f.mount_request_token().await;
    f.mount_access_token().await;
    f.mount_webhook(LEGACY_WEBHOOK_PATH, 404).await;
    f.mount_webhook(JIRA10_WEBHOOK_PATH, 200).await;
    let started = f.start(CONSUMER_KEY).await.expect("oauth start --wait");

    // The verifier Jira showed, entered by hand instead of the callback.
    let finished = f
        .finish_session(started.session_id, "verif-10")
        .await
        .expect("oauth finish");
    assert!(finished["message_id"].is_string(), "{finished}");
    f.wait_state(started.session_id, "installed").await;

    assert_eq!(f.bodies(LEGACY_WEBHOOK_PATH).await.len(), 1);
    let registrations = f.bodies(JIRA10_WEBHOOK_PATH).await;
    assert_eq!(registrations.len(), 1);
    let url = registrations[0]["url"]
        .as_str()
        .expect("registered URL")
        .to_owned();
    let exchange = f
        .jira
        .verified_requests()
        .into_iter()
        .find(|s| param(s, "oauth_verifier").is_some())
        .expect("a signed access-token request");
    assert_eq!(param(&exchange, "oauth_verifier"), Some("verif-10"));
    let (_, _, _, integration) = f.session(started.session_id).await;
    let integration = integration.expect("integration");
    assert_eq!(
        f.webhook_url(integration).await.expect("webhook-url"),
        url,
        "`integration webhook-url` prints the registered URL"
    );
    f.webhook_is_accepted(integration, &url).await;
    f.finish().await;
}

#[tokio::test]
async fn a_refused_exchange_fails_the_session_and_oauth_finish_can_retry_it() {
    let f = flow(4).await;
    f.mount_request_token().await;
    Mock::given(method("POST"))
        .and(path(ACCESS_TOKEN_PATH))
        .respond_with(ResponseTemplate::new(401).set_body_string("oauth_problem=permission_denied"))
        .up_to_n_times(1)
        .mount(&f.server)
        .await;
    f.mount_access_token().await;
    f.mount_webhook(LEGACY_WEBHOOK_PATH, 201).await;
    let started = f.start(CONSUMER_KEY).await.expect("oauth start --wait");

    f.finish_session(started.session_id, "denied")
        .await
        .expect("oauth finish");
    f.wait_state(started.session_id, "failed").await;
    let (_, _, error, _) = f.session(started.session_id).await;
    let error = error.expect("an error");
    assert!(error.contains("oauth_problem=permission_denied"), "{error}");
    assert!(error.contains("authorize again"), "{error}");

    f.finish_session(started.session_id, "verif-2")
        .await
        .expect("oauth finish again");
    f.wait_state(started.session_id, "installed").await;
    assert_eq!(f.dead_letters().await, 0);
    f.finish().await;
}

#[tokio::test]
async fn integration_add_then_webhook_url_yields_a_url_the_worker_accepts() {
    let f = flow(4).await;
    let args = AddArgs {
        link: AppLink {
            base_url: "https://jira.example.org:8443/jira/".into(),
            consumer_key: Some("manual-key".into()),
            private_key_file: Some(KEY_FILE.into()),
            no_verify_ssl: false,
        },
        pat_file: None,
        register_webhook: false,
        access_token: None,
        access_token_secret: None,
        name: None,
        database: f.settings.database.clone(),
        public: f.settings.public.clone(),
    };

    let added = integration::add(&args).await.expect("integration add");

    assert_eq!(added.external_id, "jira.example.org:8443:manual-key");
    let url = f
        .webhook_url(added.id)
        .await
        .expect("integration webhook-url");
    assert_eq!(url, added.webhook_url);
    // Adding again (now with a token and a name) updates the row and keeps the URL valid.
    let again = integration::add(&AddArgs {
        access_token: Some("tok".into()),
        access_token_secret: Some("sec".into()),
        name: Some("Example Jira".into()),
        ..args.clone()
    })
    .await
    .expect("integration add again");
    assert_eq!(
        (again.id, &again.webhook_url),
        (added.id, &added.webhook_url)
    );
    let row =
        f.db.query_one(
            "SELECT i.name, i.metadata->>'base_url', c.access_token
               FROM integrations i JOIN integration_credentials c ON c.integration_id = i.id
              WHERE i.id = $1",
            &[&added.id],
        )
        .await
        .expect("integration");
    assert_eq!(row.get::<_, String>(0), "Example Jira");
    assert_eq!(
        row.get::<_, String>(1),
        "https://jira.example.org:8443/jira"
    );
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("tok"));

    f.webhook_is_accepted(added.id, &url).await;

    let bad_key = integration::add(&AddArgs {
        link: AppLink {
            private_key_file: Some(PUBLIC_KEY_FILE.into()),
            ..args.link.clone()
        },
        ..args.clone()
    })
    .await
    .expect_err("a public key is not a private key");
    let text = format!("{bad_key:#}");
    assert!(text.contains("jira_test_key.pub.pem"), "{text}");
    assert!(text.contains("BEGIN RSA PRIVATE KEY"), "{text}");
    let missing = f
        .webhook_url(added.id + 1000)
        .await
        .expect_err("no such integration");
    assert!(
        missing.to_string().contains("no integration has id"),
        "{missing}"
    );
    f.finish().await;
}

#[tokio::test]
async fn the_callback_enqueues_the_job_or_answers_400_and_503() {
    let settings = common::settings();
    common::declare_topology(&settings)
        .await
        .expect("declare topology");
    let ingress = common::spawn_ingress(&settings, true).await;
    let (_connection, channel) = common::amqp().await;
    let jobs = common::names(&settings).jobs();

    let ok = reqwest::get(ingress.url(&format!(
        "{CALLBACK_PATH}?oauth_token=req%2B1&oauth_verifier=v-1"
    )))
    .await
    .expect("GET");
    assert_eq!(ok.status(), 200);
    let got = common::get_one(&channel, &jobs, Duration::from_secs(5))
        .await
        .expect("the job is on P.jobs");
    assert_eq!(
        jirasync::queue::message::message_type(&got.delivery.properties),
        "jira_server.oauth_access_token"
    );
    let body: Value = serde_json::from_slice(&got.delivery.data).expect("JSON body");
    assert_eq!(
        body,
        json!({"oauth_token": "req+1", "oauth_verifier": "v-1"})
    );

    for query in ["", "?oauth_verifier=v", "?oauth_token="] {
        let response = reqwest::get(ingress.url(&format!("{CALLBACK_PATH}{query}")))
            .await
            .expect("GET");
        assert_eq!(response.status(), 400, "case {query:?}");
    }

    // The queue disappears behind the ingress's back: the job is unroutable.
    channel
        .queue_delete(jobs.as_str().into(), Default::default())
        .await
        .expect("delete P.jobs");
    let refused = reqwest::get(ingress.url(&format!("{CALLBACK_PATH}?oauth_token=t")))
        .await
        .expect("GET");
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    ingress.stop().await;
}

#[tokio::test]
async fn oauth_start_names_the_service_it_cannot_reach() {
    let settings = common::migrated().await;
    let mut args = start_args(&settings, "https://jira.example.org", CONSUMER_KEY);
    args.wait = None;
    args.services.broker.url = "amqp://guest:hunter2@127.0.0.1:1/%2f".into();
    let error = format!("{:#}", oauth::start(&args).await.expect_err("no broker"));
    assert!(
        error.contains("cannot connect to RabbitMQ at amqp://guest:***@127.0.0.1:1/"),
        "{error}"
    );
    assert!(!error.contains("hunter2"), "{error}");

    args.services.broker.url = settings.broker.url.clone();
    args.services.database.url = "postgres://postgres:hunter2@127.0.0.1:1/jirasync".into();
    let error = format!("{:#}", oauth::start(&args).await.expect_err("no database"));
    assert!(
        error
            .contains("cannot connect to Postgres at postgres://postgres:***@127.0.0.1:1/jirasync"),
        "{error}"
    );

    let db = common::db(&settings).await;
    let sessions: i64 = db
        .query_one("SELECT count(*) FROM oauth_sessions", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        sessions, 0,
        "nothing is recorded when a service is unreachable"
    );
}

#[tokio::test]
async fn with_a_secret_key_an_oauth1_install_leaves_no_key_or_token_in_a_pg_dump() {
    let f = TestApp::builder()
        .concurrency(1)
        .ingress()
        .secret_key(common::SECRET_KEY_A)
        .start()
        .await;
    let (started, request_token) = f.start_awaiting_authorization().await;
    let dump = common::pg_dump(&f.settings);
    common::assert_none_in(&dump, &["PRIVATE KEY", "req-secret-1"]);

    let callback = f.ingress().url(&format!(
        "{CALLBACK_PATH}?oauth_token={request_token}&oauth_verifier=verif-1"
    ));
    assert_eq!(
        reqwest::get(&callback).await.expect("callback").status(),
        200
    );
    f.wait_state(started.session_id, "installed").await;
    let url = f.bodies(LEGACY_WEBHOOK_PATH).await[0]["url"]
        .as_str()
        .expect("registered URL")
        .to_owned();
    let token = url.trim_end_matches('/').rsplit('/').next().expect("token");
    let dump = common::pg_dump(&f.settings);
    // The webhook secret is the key of the URL's token: a token minted with
    // a secret found in the dump would verify.
    let candidates = dump
        .split(|c: char| !c.is_ascii_hexdigit())
        .filter(|word| word.len() == 64);
    for candidate in candidates {
        assert!(
            !token_verifies(token, candidate),
            "the dump holds the webhook secret in the clear"
        );
    }
    common::assert_none_in(
        &dump,
        &["PRIVATE KEY", "acc-tok", "acc-secret", "req-secret-1"],
    );
    let (_, _, _, integration) = f.session(started.session_id).await;
    f.webhook_is_accepted(integration.expect("integration"), &url)
        .await;
    f.finish().await;
}

/// Whether `token` (a webhook URL's JWT) is signed with `secret`.
fn token_verifies(token: &str, secret: &str) -> bool {
    let metadata: jirasync::integration::Metadata =
        serde_json::from_value(json!({ "webhook_secret": secret })).expect("metadata");
    jirasync::integration::token::verify(token, &metadata).is_ok()
}
