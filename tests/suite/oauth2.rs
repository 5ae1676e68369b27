//! The OAuth 2.0 install against the real Postgres, RabbitMQ, ingress and worker
//! and a fake Jira Data Center authorization server (`common/fake_oauth2.rs`):
//! `oauth start --client-id` → authorize URL with PKCE S256 → the browser's part →
//! the callback on the ingress → `jira_server.oauth2_token` → code exchanged with
//! the verifier → webhook registered on the resource of the Jira's version, signed
//! on Jira 10 → `installed`. Also states used twice, unknown or expired, Jira's
//! `?error=`, and the token endpoint's refusals and 5xx.

use std::time::Duration;

use jirasync::commands::oauth;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::common::app::T1;
use crate::common::fake_oauth2::{
    CLIENT_ID, CLIENT_SECRET, FakeOAuth2, JIRA10_WEBHOOK_PATH, LEGACY_WEBHOOK_PATH, SecretFile,
    TOKEN_PATH, mount_jira, mount_user, oauth2_start_args,
};
use crate::common::seed::{assignee_changed, hub_signature};
use crate::common::{self, TestApp};

const WAIT: Duration = Duration::from_secs(20);
const CALLBACK_PATH: &str = "/extensions/jira-server/oauth2/callback";
const ISSUE_UPDATED: &[u8] = include_bytes!("../fixtures/issue_updated.json");

async fn session(app: &TestApp, id: uuid::Uuid) -> (String, Option<String>, Option<i64>) {
    let row = app
        .db
        .query_one(
            "SELECT state, error, integration_id FROM oauth_sessions WHERE id = $1",
            &[&id],
        )
        .await
        .expect("session row");
    (row.get(0), row.get(1), row.get(2))
}

async fn wait_state(app: &TestApp, id: uuid::Uuid, expected: &str) {
    common::eventually(
        &format!("session {id} is {expected}"),
        WAIT,
        || async move { session(app, id).await.0 == expected },
    )
    .await;
}

/// The browser coming back to the ingress's callback with `query`.
async fn callback(app: &TestApp, query: &str) -> reqwest::Response {
    reqwest::get(app.ingress().url(&format!("{CALLBACK_PATH}{query}")))
        .await
        .expect("GET the callback")
}

/// Starts a session, authorizes it and calls back; the session id and what the
/// browser's part saw.
async fn install(
    app: &TestApp,
    fake: &FakeOAuth2,
    secret: &SecretFile,
) -> (uuid::Uuid, crate::common::fake_oauth2::Authorized) {
    let started = oauth::start(&oauth2_start_args(app, secret))
        .await
        .expect("oauth start");
    let authorized = fake.authorize(started.authorize_url.as_deref().expect("an authorize URL"));
    let page = callback(
        app,
        &format!("?code={}&state={}", authorized.code, authorized.state),
    )
    .await;
    assert_eq!(page.status(), 200);
    (started.session_id, authorized)
}

/// Bodies the fake Jira received on `request_path`.
async fn bodies(app: &TestApp, request_path: &str) -> Vec<Value> {
    app.requests_to(request_path)
        .await
        .iter()
        .map(|request| serde_json::from_slice(&request.body).unwrap_or(Value::Null))
        .collect()
}

/// POSTs the real-shaped webhook to `url`, signed as Jira 10 signs it with
/// `hmac_secret`, and checks that the ingress takes it.
async fn post_signed(url: &str, hmac_secret: &str) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("x-hub-signature", hub_signature(hmac_secret, ISSUE_UPDATED))
        .body(ISSUE_UPDATED)
        .send()
        .await
        .expect("POST the webhook");
    assert_eq!(response.status(), 202);
}

/// The PKCE verifier the first code exchange sent (the session no longer holds
/// it once installed).
async fn exchanged_verifier(app: &TestApp) -> String {
    let exchange = &app.requests_to(TOKEN_PATH).await[0];
    let form = String::from_utf8_lossy(&exchange.body).into_owned();
    reqwest::Url::parse(&format!("http://form/?{form}"))
        .expect("a form")
        .query_pairs()
        .find(|(name, _)| name == "code_verifier")
        .map(|(_, value)| value.into_owned())
        .expect("the exchange sent the verifier")
}

#[tokio::test]
async fn an_oauth2_install_on_jira_10_registers_a_signed_webhook_whose_webhooks_apply() {
    let app = TestApp::builder().concurrency(1).ingress().start().await;
    let fake = FakeOAuth2::new(Duration::from_secs(300));
    mount_jira(&app, &fake, 10).await;
    let secret = SecretFile::new(CLIENT_SECRET);

    let started = oauth::start(&oauth2_start_args(&app, &secret))
        .await
        .expect("oauth start");
    let (state, _, _) = session(&app, started.session_id).await;
    assert_eq!(
        state, "awaiting_authorization",
        "no job: the URL is there at once"
    );
    let authorized = fake.authorize(started.authorize_url.as_deref().expect("URL"));
    assert_eq!(
        authorized.redirect_uri,
        format!("{}{CALLBACK_PATH}", app.settings.public.url)
    );
    assert_eq!(authorized.scope, "ADMIN");
    let page = callback(
        &app,
        &format!("?code={}&state={}", authorized.code, authorized.state),
    )
    .await;
    assert_eq!(page.status(), 200);
    wait_state(&app, started.session_id, "installed").await;

    assert_eq!(fake.counts().0, 1, "the code was exchanged once");
    let registrations = bodies(&app, JIRA10_WEBHOOK_PATH).await;
    assert_eq!(registrations.len(), 1, "Jira 10's resource");
    assert!(bodies(&app, LEGACY_WEBHOOK_PATH).await.is_empty());
    let registered = &registrations[0];
    assert_eq!(
        registered["events"],
        json!(["jira:issue_created", "jira:issue_updated"])
    );
    let url = registered["url"].as_str().expect("URL").to_owned();
    let hmac_secret = registered["configuration"]["SECRET"]
        .as_str()
        .expect("a webhook secret is registered on Jira 10")
        .to_owned();

    let integration = session(&app, started.session_id)
        .await
        .2
        .expect("integration");
    let row = app
        .db
        .query_one(
            "SELECT i.external_id, i.metadata, c.auth_method, c.client_id, c.refresh_token,
                    c.access_token_expires_at IS NOT NULL
               FROM integrations i JOIN integration_credentials c ON c.integration_id = i.id
              WHERE i.id = $1",
            &[&integration],
        )
        .await
        .expect("integration and credentials");
    let port = app.server.address().port();
    assert_eq!(
        row.get::<_, String>(0),
        format!("127.0.0.1:{port}:{CLIENT_ID}")
    );
    let metadata: Value = row.get(1);
    assert_eq!(metadata["webhook_hmac_secret"], json!(hmac_secret));
    assert_eq!(metadata["jira_version"], json!("10.3.1"));
    assert_eq!(metadata["webhook_path"], json!(JIRA10_WEBHOOK_PATH));
    assert_eq!(metadata["webhook_id"], json!("42"));
    assert_eq!(row.get::<_, String>(2), "oauth2");
    assert_eq!(row.get::<_, Option<String>>(3).as_deref(), Some(CLIENT_ID));
    assert!(row.get::<_, Option<String>>(4).is_some(), "a refresh token");
    assert!(row.get::<_, bool>(5), "the expiry");

    // A webhook to the registered URL, signed as Jira 10 signs it, is applied.
    let org = app.seed().org(integration, true, "DEMO-1").await;
    let jane = app.seed().teammate(&org, "jane@example.org").await;
    post_signed(&url, &hmac_secret).await;
    app.wait_assignee(org.group_id, Some(jane)).await;

    // The same state and code once more: nothing is exchanged again. A second
    // install behind it (one message at a time) shows it was handled.
    let again = callback(
        &app,
        &format!("?code={}&state={}", authorized.code, authorized.state),
    )
    .await;
    assert_eq!(again.status(), 200);
    let (sentinel, _) = install(&app, &fake, &secret).await;
    wait_state(&app, sentinel, "installed").await;
    assert_eq!(fake.counts().0, 2, "the sentinel's exchange only");
    assert_eq!(fake.counts().2, 0, "no code was offered twice");
    assert_eq!(session(&app, started.session_id).await.0, "installed");
    assert_eq!(app.dead_letters().await, 0);
    app.finish().await;
}

#[tokio::test]
async fn missing_unknown_and_expired_states_exchange_nothing_and_an_error_fails_the_session() {
    let app = TestApp::builder().concurrency(1).ingress().start().await;
    let fake = FakeOAuth2::new(Duration::from_secs(300));
    mount_jira(&app, &fake, 9).await;
    let secret = SecretFile::new(CLIENT_SECRET);

    for query in [
        "",
        "?code=c",
        "?code=c&state=short",
        "?state=",
        &format!("?state={}", "a".repeat(43)),
    ] {
        assert_eq!(callback(&app, query).await.status(), 400, "case {query:?}");
    }
    // A well-formed state no session holds is taken, and changes nothing.
    let unknown = jirasync::jira::oauth2_flow::fresh_secret();
    assert_eq!(
        callback(&app, &format!("?code=c&state={unknown}"))
            .await
            .status(),
        200
    );

    // A state that comes back more than 10 minutes after `oauth start`.
    let expired = oauth::start(&oauth2_start_args(&app, &secret))
        .await
        .expect("start");
    let authorized = fake.authorize(expired.authorize_url.as_deref().expect("URL"));
    app.db
        .execute(
            "UPDATE oauth_sessions SET created_at = now() - interval '11 minutes' WHERE id = $1",
            &[&expired.session_id],
        )
        .await
        .expect("age the session");
    callback(
        &app,
        &format!("?code={}&state={}", authorized.code, authorized.state),
    )
    .await;

    // Jira's `?error=`: the session fails with what it means.
    let denied = oauth::start(&oauth2_start_args(&app, &secret))
        .await
        .expect("start");
    let denied_state = fake
        .authorize(denied.authorize_url.as_deref().expect("URL"))
        .state;
    let page = callback(
        &app,
        &format!("?error=access_denied&error_description=User+said+no&state={denied_state}"),
    )
    .await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("page").contains("access_denied"));
    wait_state(&app, denied.session_id, "failed").await;
    let error = session(&app, denied.session_id).await.1.expect("an error");
    assert!(
        error.contains("access_denied") && error.contains("User said no"),
        "{error}"
    );
    assert!(error.contains("did not allow access"), "{error}");

    let (sentinel, _) = install(&app, &fake, &secret).await;
    wait_state(&app, sentinel, "installed").await;
    assert_eq!(fake.counts().0, 1, "only the sentinel's code was exchanged");
    assert_eq!(
        session(&app, expired.session_id).await.0,
        "awaiting_authorization",
        "an expired state fails nothing"
    );
    assert_eq!(
        bodies(&app, LEGACY_WEBHOOK_PATH).await.len(),
        1,
        "Jira 9: the legacy resource"
    );
    let legacy = &bodies(&app, LEGACY_WEBHOOK_PATH).await[0];
    assert!(
        legacy.get("configuration").is_none(),
        "no secret on Jira 9: {legacy}"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_503_from_the_token_endpoint_is_retried_and_invalid_client_fails_with_what_to_check() {
    let app = TestApp::builder().concurrency(1).ingress().start().await;
    let fake = FakeOAuth2::new(Duration::from_secs(300));
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&app.server)
        .await;
    mount_jira(&app, &fake, 10).await;

    let wrong = SecretFile::new("not-the-secret");
    let (refused, _) = install(&app, &fake, &wrong).await;
    wait_state(&app, refused, "failed").await;
    let error = session(&app, refused).await.1.expect("an error");
    assert!(error.contains("error=invalid_client"), "{error}");
    assert!(
        error.contains("check the client id and the client secret"),
        "{error}"
    );
    assert!(
        !error.contains("not-the-secret"),
        "the secret is never shown: {error}"
    );

    let secret = SecretFile::new(CLIENT_SECRET);
    let (installed, _) = install(&app, &fake, &secret).await;
    wait_state(&app, installed, "installed").await;
    assert_eq!(
        app.requests_to(TOKEN_PATH).await.len(),
        3,
        "503, then invalid_client, then the exchange"
    );
    assert_eq!(app.dead_letters().await, 0);
    app.finish().await;
}

#[tokio::test]
async fn no_secret_of_an_install_a_refresh_or_a_refusal_appears_in_the_workers_log() {
    let app = TestApp::builder().ingress().no_worker().start().await;
    let fake = FakeOAuth2::new(Duration::from_secs(300));
    mount_jira(&app, &fake, 10).await;
    let secret = SecretFile::new(CLIENT_SECRET);
    let log = SecretFile::new("");
    let filter = ("RUST_LOG", "info,jirasync=trace".to_owned());
    let worker = common::process_logged("worker", &app.settings, &[filter], &log.0);

    let (session_id, authorized) = install(&app, &fake, &secret).await;
    wait_state(&app, session_id, "installed").await;
    let integration = session(&app, session_id).await.2.expect("integration");
    let registered = &bodies(&app, JIRA10_WEBHOOK_PATH).await[0];
    let url = registered["url"].as_str().expect("URL").to_owned();
    let token = url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .expect("token")
        .to_owned();
    let hmac_secret = registered["configuration"]["SECRET"]
        .as_str()
        .expect("secret")
        .to_owned();
    let org = app.seed().org(integration, true, "LOG-1").await;
    let send = |name: &str| {
        let body = assignee_changed("LOG-1", json!({"name": name, "active": true}), T1).to_string();
        let signature = hub_signature(&hmac_secret, body.as_bytes());
        let (app, token) = (&app, token.clone());
        async move {
            app.send_with(&token, body.as_bytes(), Some(&signature))
                .await
        }
    };

    // A token Jira refuses: refreshed, and the lookup retried.
    let user = app.seed().teammate(&org, "logged@example.org").await;
    mount_user(&app, &fake, "logged", "logged@example.org").await;
    fake.expire_access_tokens();
    send("logged").await;
    app.wait_assignee(org.group_id, Some(user)).await;
    // The refresh token revoked: needs_reauth, the lookup dead-lettered.
    mount_user(&app, &fake, "refused", "refused@example.org").await;
    fake.revoke_refresh_tokens();
    fake.expire_access_tokens();
    send("refused").await;
    common::eventually("the lookup is dead-lettered", WAIT, || async {
        app.dead_letters().await == 1
    })
    .await;

    // Stopped before the app is finished: `finish` removes the queues, which a
    // live worker would declare again.
    drop(worker);
    let text = std::fs::read_to_string(&log.0).expect("the worker's log");
    for expected in [
        "OAuth 2.0 access token refreshed",
        "needs to be connected again",
    ] {
        assert!(
            text.contains(expected),
            "the worker logged {expected:?}:\n{text}"
        );
    }
    let verifier = exchanged_verifier(&app).await;
    let mut forbidden = fake.issued();
    forbidden.extend([
        CLIENT_SECRET.to_owned(),
        verifier,
        authorized.state,
        hmac_secret,
        token,
        "logged@example.org".to_owned(),
    ]);
    for value in &forbidden {
        assert!(
            !text.contains(value.as_str()),
            "{value} appears in the log:\n{text}"
        );
    }
    app.finish().await;
}

/// The next line `lines` brings, as JSON.
async fn next_json(lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> Value {
    let line = tokio::time::timeout(WAIT, lines.recv())
        .await
        .expect("a line in time")
        .expect("a line");
    serde_json::from_str(&line).expect("JSON")
}

#[tokio::test]
async fn oauth_start_with_wait_prints_the_authorize_url_at_once_then_the_installed_session() {
    let app = TestApp::builder().concurrency(1).ingress().start().await;
    let fake = FakeOAuth2::new(Duration::from_secs(300));
    mount_jira(&app, &fake, 10).await;
    let secret = SecretFile::new(CLIENT_SECRET);
    let (base_url, secret_file) = (app.server.uri(), secret.0.to_string_lossy().into_owned());
    let args = [
        "oauth",
        "start",
        "--base-url",
        &base_url,
        "--client-id",
        CLIENT_ID,
        "--client-secret-file",
        &secret_file,
        "--wait",
        "30",
    ];
    let mut command = common::jirasync(&args, &app.settings, &[]);
    command.stdout(std::process::Stdio::piped());
    let mut start = common::Process::spawn(command.stderr(std::process::Stdio::null()));
    let stdout = start.stdout().expect("piped stdout");
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let first = next_json(&mut lines).await;
    let url = first["authorize_url"]
        .as_str()
        .expect("the authorize URL at once");
    let authorized = fake.authorize(url);
    let page = callback(
        &app,
        &format!("?code={}&state={}", authorized.code, authorized.state),
    )
    .await;
    assert_eq!(page.status(), 200);
    let last = next_json(&mut lines).await;
    assert_eq!(last["state"], "installed", "{last}");
    assert_eq!(last["flow"], "oauth2", "{last}");
    assert_eq!(last["session_id"], first["session_id"]);
    assert!(start.wait().expect("exit").success());
    assert!(!last.to_string().contains(CLIENT_SECRET));
    app.finish().await;
}

#[tokio::test]
async fn with_a_secret_key_an_install_leaves_no_secret_in_a_pg_dump_and_its_webhooks_apply() {
    let app = TestApp::builder()
        .concurrency(1)
        .ingress()
        .secret_key(common::SECRET_KEY_A)
        .start()
        .await;
    let fake = FakeOAuth2::new(Duration::from_secs(300));
    mount_jira(&app, &fake, 10).await;
    let secret = SecretFile::new(CLIENT_SECRET);
    let (session_id, _) = install(&app, &fake, &secret).await;
    wait_state(&app, session_id, "installed").await;

    let registered = bodies(&app, JIRA10_WEBHOOK_PATH).await;
    let url = registered[0]["url"].as_str().expect("URL").to_owned();
    let hmac_secret = registered[0]["configuration"]["SECRET"]
        .as_str()
        .expect("a webhook secret")
        .to_owned();
    let verifier = exchanged_verifier(&app).await;
    let integration = session(&app, session_id).await.2.expect("integration");
    let webhook_secret: String = app
        .db
        .query_one(
            "SELECT metadata->>'webhook_secret' FROM integrations WHERE id = $1",
            &[&integration],
        )
        .await
        .expect("metadata")
        .get(0);
    let opened = jirasync::secrets::Keyring::new(
        Some(jirasync::secrets::SecretKey::parse(common::SECRET_KEY_A).expect("key")),
        None,
    )
    .open(
        &jirasync::secrets::Slot::new(jirasync::secrets::place::WEBHOOK_SECRET, integration),
        &webhook_secret,
    )
    .expect("the stored webhook secret opens with the key");
    assert_ne!(opened, webhook_secret, "it is stored sealed");

    let dump = common::pg_dump(&app.settings);
    let mut secrets = vec![
        CLIENT_SECRET,
        hmac_secret.as_str(),
        verifier.as_str(),
        opened.as_str(),
    ];
    let issued = fake.issued();
    secrets.extend(issued.iter().map(String::as_str));
    common::assert_none_in(&dump, &secrets);
    assert!(dump.contains("jsenc2:"), "the secrets are there, sealed");
    let ended = app
        .db
        .query_one(
            "SELECT private_key, client_secret, code_verifier FROM oauth_sessions WHERE id = $1",
            &[&session_id],
        )
        .await
        .expect("session");
    assert_eq!(
        (
            ended.get::<_, String>(0),
            ended.get::<_, Option<String>>(1),
            ended.get::<_, Option<String>>(2)
        ),
        (String::new(), None, None),
        "an installed session keeps no secret"
    );

    // The worker opens what it stored: a signed webhook to the registered URL applies.
    let org = app.seed().org(integration, true, "DEMO-1").await;
    let jane = app.seed().teammate(&org, "jane@example.org").await;
    post_signed(&url, &hmac_secret).await;
    app.wait_assignee(org.group_id, Some(jane)).await;
    app.finish().await;
}
