//! The Jira Cloud OAuth 2.0 (3LO) install and its rotating refresh tokens
//! (docs/reference.md §11.2; CONTRACT §11.3b), through the real binary's
//! `oauth start --cloud`, the ingress's Cloud callback, RabbitMQ and the
//! worker's `jira_cloud.oauth2_token`, against the fake Atlassian
//! (`common/fake_cloud.rs`): its consent screen issues the code, its token
//! endpoint checks every grant's body, its gateway lists the sites and takes
//! the dynamic webhook. Also a grant lacking a scope, several sites, a refusal
//! at the consent screen, a code used twice, and refreshes: ahead of expiry,
//! single-flight, and a dead refresh token (`needs_reauth`).

use std::process::{Output, Stdio};

use jirasync::integration::{self, Credentials, Integration};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::common::app::{T1, WAIT};
use crate::common::fake_cloud::{APP_CLIENT_ID, APP_CLIENT_SECRET, CLOUD_ID, Consent, FakeCloud};
use crate::common::fake_oauth2::SecretFile;
use crate::common::seed::{assignee_changed, token_with};
use crate::common::{self, Captured, TestApp};

const CALLBACK_PATH: &str = "/extensions/jira-cloud/oauth2/callback";

/// The app (worker one message at a time, ingress) pointed at `fake`'s
/// authorization server and gateway, its log captured on this test's thread.
struct World {
    logs: Captured,
    _logging: tracing::subscriber::DefaultGuard,
    app: TestApp,
    fake: FakeCloud,
    secret: SecretFile,
}

async fn world() -> World {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("info,jirasync=trace")
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let logging = tracing::subscriber::set_default(subscriber);
    let fake = FakeCloud::start().await;
    let (auth, api) = (fake.auth.uri(), fake.api.uri());
    let app = TestApp::builder()
        .concurrency(1)
        .ingress()
        .configure(move |settings| {
            settings.atlassian.auth_url = auth;
            settings.atlassian.api_url = api;
        })
        .start()
        .await;
    World {
        logs,
        _logging: logging,
        app,
        fake,
        secret: SecretFile::new(APP_CLIENT_SECRET),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl World {
    /// `jirasync oauth start --cloud …ARGS` as a process: what it printed.
    fn start(&self, extra: &[&str]) -> Output {
        let file = self.secret.0.to_string_lossy().into_owned();
        let mut args = vec![
            "oauth",
            "start",
            "--cloud",
            "--client-id",
            APP_CLIENT_ID,
            "--client-secret-file",
            &file,
        ];
        args.extend_from_slice(extra);
        common::jirasync(&args, &self.app.settings, &self.fake.env())
            .output()
            .expect("run jirasync")
    }

    /// A started session: its id and authorize URL.
    fn started(&self, extra: &[&str]) -> (Uuid, String) {
        let output = self.start(extra);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let json: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        let id = json["session_id"].as_str().expect("a session id");
        let url = json["authorize_url"].as_str().expect("an authorize URL");
        (id.parse().expect("a UUID"), url.to_owned())
    }

    /// The browser coming back to the Cloud callback with `query`.
    async fn callback(&self, query: &str) -> reqwest::Response {
        let url = self.app.ingress().url(&format!("{CALLBACK_PATH}{query}"));
        reqwest::get(url).await.expect("GET the callback")
    }

    /// The consent screen accepted, and the browser sent back with its code.
    async fn consent(&self, authorize_url: &str) -> Consent {
        let consent = self.fake.authorize(authorize_url);
        let query = format!("?code={}&state={}", consent.code, consent.state);
        assert_eq!(self.callback(&query).await.status(), 200);
        consent
    }

    /// (state, error, integration) of session `id`.
    async fn session(&self, id: Uuid) -> (String, Option<String>, Option<i64>) {
        let row = self
            .app
            .db
            .query_one(
                "SELECT state, error, integration_id FROM oauth_sessions WHERE id = $1",
                &[&id],
            )
            .await
            .expect("session row");
        (row.get(0), row.get(1), row.get(2))
    }

    async fn wait_state(&self, id: Uuid, expected: &str) -> (Option<String>, Option<i64>) {
        common::eventually(&format!("session {id} is {expected}"), WAIT, || async {
            self.session(id).await.0 == expected
        })
        .await;
        let (_, error, integration) = self.session(id).await;
        (error, integration)
    }

    /// A whole install: the integration's id.
    async fn install(&self) -> i64 {
        let (id, url) = self.started(&[]);
        self.consent(&url).await;
        let (error, integration) = self.wait_state(id, "installed").await;
        assert_eq!(error, None);
        integration.expect("the session names its integration")
    }

    async fn cloud_integrations(&self) -> i64 {
        self.app
            .db
            .query_one(
                "SELECT count(*) FROM integrations WHERE provider = 'jira_cloud'",
                &[],
            )
            .await
            .expect("count")
            .get(0)
    }

    /// The integration and its credentials, through the library.
    async fn stored(&self, id: i64) -> (Integration, Credentials) {
        let pool = jirasync::db::connect(&self.app.settings.database, 1)
            .await
            .expect("pool");
        let client = pool.get().await.expect("a connection");
        let found = integration::by_id(&client, pool.keys(), id)
            .await
            .expect("by_id")
            .expect("the integration");
        let stored = integration::credentials(&client, pool.keys(), id)
            .await
            .expect("credentials")
            .expect("stored credentials");
        (found, stored.credentials)
    }

    /// Makes the stored access token expire now.
    async fn expire(&self, id: i64) {
        self.app
            .db
            .execute(
                "UPDATE integration_credentials
                    SET access_token_expires_at = now() - interval '1 minute'
                  WHERE integration_id = $1",
                &[&id],
            )
            .await
            .expect("expire the token");
    }

    /// `GET serverInfo` through the gateway with the integration's token, as
    /// any call of the worker makes it.
    async fn call(&self, integration: &Integration) -> Result<(), String> {
        let pool = jirasync::db::connect(&self.app.settings.database, 2)
            .await
            .expect("pool");
        integration
            .with_jira(&pool, |jira| async move { jira.server_info().await })
            .await
            .map(|answered| assert!(answered.is_some(), "credentials that call REST"))
            .map_err(|error| error.to_string())
    }
}

fn refresh_token(credentials: &Credentials) -> String {
    match credentials {
        Credentials::OAuth2 { refresh_token, .. } => refresh_token.clone().expect("a refresh"),
        other => panic!("not OAuth 2.0: {other:?}"),
    }
}

/// A delivery JWT as Atlassian signs a 3LO app's dynamic webhook deliveries:
/// HS256 under the app's client secret.
fn delivery_jwt() -> String {
    let exp = chrono::Utc::now().timestamp() + 600;
    let claims = json!({"iss": "atlassian", "exp": exp, "aud": APP_CLIENT_ID});
    token_with(Algorithm::HS256, claims, APP_CLIENT_SECRET)
}

#[tokio::test]
async fn a_3lo_install_connects_the_site_through_the_gateway_with_a_dynamic_webhook_whose_deliveries_apply()
 {
    let w = world().await;
    let file = w.secret.0.to_string_lossy().into_owned();
    let args = [
        "oauth",
        "start",
        "--cloud",
        "--client-id",
        APP_CLIENT_ID,
        "--client-secret-file",
        &file,
        "--wait",
        "30",
    ];
    let stderr = SecretFile::new("");
    let mut command = common::jirasync(&args, &w.app.settings, &w.fake.env());
    command
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr.0).expect("a file for stderr"));
    let mut start = common::Process::spawn(&mut command);
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
    let mut next = async || -> Value {
        let line = tokio::time::timeout(WAIT, lines.recv())
            .await
            .expect("a line in time")
            .expect("a line");
        serde_json::from_str(&line).expect("JSON")
    };
    let first = next().await;
    let url = first["authorize_url"].as_str().expect("the URL at once");
    let consent = w.consent(url).await;
    assert_eq!(
        consent.redirect_uri,
        format!("{}{CALLBACK_PATH}", w.app.settings.public.url)
    );
    assert_eq!(consent.state.len(), 43, "a fresh 43-character state");
    let last = next().await;
    assert_eq!(last["state"], "installed", "{last}");
    assert_eq!(last["flow"], "oauth2_cloud", "{last}");
    assert_eq!(last["session_id"], first["session_id"]);
    assert!(start.wait().expect("exit").success());
    assert_eq!(w.fake.grants(), (1, 0), "one code exchanged");

    let id = last["integration_id"].as_i64().expect("an integration");
    let (saved, credentials) = w.stored(id).await;
    assert_eq!(saved.provider, integration::Provider::Cloud);
    assert_eq!(saved.external_id, CLOUD_ID);
    assert_eq!(
        saved.metadata.base_url,
        w.fake.gateway(),
        "REST through the gateway"
    );
    assert_eq!(
        saved.metadata.site.as_deref(),
        Some(w.fake.site.uri().as_str())
    );
    assert_eq!(
        saved.metadata.auth_url.as_deref(),
        Some(w.fake.auth.uri().as_str())
    );
    assert_eq!(saved.metadata.webhook_kind.as_deref(), Some("dynamic"));
    assert_eq!(credentials.method().as_str(), "oauth2");
    let Credentials::OAuth2 {
        client_id,
        client_secret,
        ..
    } = &credentials
    else {
        panic!("OAuth 2.0 credentials: {credentials:?}");
    };
    assert_eq!(
        (client_id.as_str(), client_secret.as_str()),
        (APP_CLIENT_ID, APP_CLIENT_SECRET)
    );
    assert_eq!(w.fake.live_refresh_tokens(), [refresh_token(&credentials)]);

    // The dynamic webhook points at the integration's Cloud webhook URL.
    let webhooks = w.fake.dynamic_webhooks();
    assert_eq!(webhooks.len(), 1, "{webhooks:?}");
    let (webhook_id, webhook) = &webhooks[0];
    let webhook_url = saved
        .webhook_url(&w.app.settings.public.url)
        .expect("a URL");
    assert_eq!(webhook.url, webhook_url);
    assert!(webhook_url.contains("/extensions/jira-cloud/issue-updated/"));
    assert_eq!(webhook.jql, "project != NULL");
    assert_eq!(saved.metadata.webhook_id, Some(webhook_id.to_string()));

    // A delivery signed with a delivery JWT under the client secret applies.
    let org = w.app.seed().org(id, true, "ACME-31").await;
    let mia = w.app.seed().teammate(&org, "mia.31@acme.example").await;
    let assignee = json!({"accountId": "acc-mia31", "emailAddress": "mia.31@acme.example",
                          "displayName": "Mia", "active": true});
    let body = assignee_changed("ACME-31", assignee, T1).to_string();
    let response = reqwest::Client::new()
        .post(&webhook.url)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", delivery_jwt()))
        .header("x-atlassian-webhook-identifier", "3lo-delivery-1")
        .body(body)
        .send()
        .await
        .expect("POST the delivery");
    assert_eq!(response.status(), 202);
    w.app.wait_assignee(org.group_id, Some(mia)).await;

    // No client secret, code or token in what the command printed or the
    // worker and ingress logged.
    let printed = format!(
        "{first}\n{last}\n{}",
        std::fs::read_to_string(&stderr.0).expect("stderr")
    );
    assert!(
        printed.contains("owner"),
        "the owner rule is said: {printed}"
    );
    let logged = w.logs.text();
    assert!(logged.contains("dynamic webhook registered"), "{logged}");
    let mut secrets = w.fake.app_secrets();
    secrets.push(APP_CLIENT_SECRET.to_owned());
    assert!(secrets.iter().any(|s| s == &consent.code));
    for secret in &secrets {
        assert!(
            !printed.contains(secret.as_str()),
            "{secret} printed: {printed}"
        );
        assert!(!logged.contains(secret.as_str()), "{secret} logged");
    }
    assert_eq!(w.app.dead_letters().await, 0);
    w.app.finish().await;
}

#[tokio::test]
async fn a_grant_lacking_manage_jira_webhook_fails_the_session_naming_the_scope_and_saves_nothing()
{
    let w = world().await;
    w.fake
        .grant_scope("read:jira-user read:jira-work write:jira-work offline_access");
    let (id, url) = w.started(&[]);
    w.consent(&url).await;
    let (error, integration) = w.wait_state(id, "failed").await;
    let error = error.expect("an error");
    assert!(error.contains("manage:jira-webhook"), "{error}");
    assert!(
        error.contains("developer console") && error.contains("Permissions"),
        "{error}"
    );
    assert_eq!(integration, None);
    assert_eq!(w.cloud_integrations().await, 0, "nothing saved");
    assert!(w.fake.dynamic_webhooks().is_empty());

    let status = common::output(&["oauth", "status", &id.to_string()], &w.app.settings);
    let status: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(status["flow"], "oauth2_cloud");
    assert_eq!(status["state"], "failed");
    assert_eq!(status["site"], Value::Null);
    assert!(!status.to_string().contains(APP_CLIENT_SECRET));
    w.app.finish().await;
}

#[tokio::test]
async fn several_sites_fail_naming_them_unless_site_chooses_one() {
    let w = world().await;
    let beta = "https://beta.atlassian.net";
    w.fake.set_sites(&[
        (&w.fake.site.uri(), CLOUD_ID),
        (beta, "9a8b7c6d-0000-4000-8000-000000000002"),
    ]);
    let (id, url) = w.started(&[]);
    w.consent(&url).await;
    let error = w.wait_state(id, "failed").await.0.expect("an error");
    assert!(
        error.contains("2 sites") && error.contains("--site"),
        "{error}"
    );
    assert!(
        error.contains(beta) && error.contains(&w.fake.site.uri()),
        "{error}"
    );
    assert_eq!(w.cloud_integrations().await, 0, "nothing saved");

    // A bad --site records nothing.
    let sessions = || async {
        let row = w
            .app
            .db
            .query_one("SELECT count(*) FROM oauth_sessions", &[])
            .await;
        row.expect("count").get::<_, i64>(0)
    };
    let before = sessions().await;
    let refused = w.start(&["--site", "http://acme.atlassian.net"]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("--site"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(sessions().await, before, "nothing recorded");

    let site = w.fake.site.uri();
    let (id, url) = w.started(&["--site", &site]);
    let status = common::output(&["oauth", "status", &id.to_string()], &w.app.settings);
    let status: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(status["site"], site.as_str());
    w.consent(&url).await;
    let integration = w.wait_state(id, "installed").await.1.expect("installed");
    assert_eq!(w.stored(integration).await.0.external_id, CLOUD_ID);
    w.app.finish().await;
}

#[tokio::test]
async fn a_refusal_at_the_consent_screen_fails_the_session_and_a_code_is_used_once() {
    let w = world().await;
    // The user declines.
    let (denied, url) = w.started(&[]);
    let state = w.fake.authorize(&url).state;
    let page = w
        .callback(&format!(
            "?error=access_denied&error_description=User+declined&state={state}"
        ))
        .await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.expect("a page");
    assert!(
        page.contains("access_denied") && page.contains("--cloud"),
        "{page}"
    );
    let error = w.wait_state(denied, "failed").await.0.expect("an error");
    assert!(
        error.contains("error=access_denied") && error.contains("User declined"),
        "{error}"
    );
    assert!(error.contains("did not accept"), "{error}");

    // An install, then its callback once more: nothing exchanged again.
    let (first, url) = w.started(&[]);
    let consent = w.consent(&url).await;
    w.wait_state(first, "installed").await;
    let again = format!("?code={}&state={}", consent.code, consent.state);
    assert_eq!(w.callback(&again).await.status(), 200);
    let finished = common::output(
        &[
            "oauth",
            "finish",
            &first.to_string(),
            "--code",
            &consent.code,
        ],
        &w.app.settings,
    );
    let finished: Value = serde_json::from_slice(&finished.stdout).expect("finish JSON");
    assert_eq!(finished["state"], "installed", "{finished}");

    // Another session brought the spent code by hand: Atlassian refuses it.
    let (late, _) = w.started(&[]);
    let output = common::output(
        &[
            "oauth",
            "finish",
            &late.to_string(),
            "--code",
            &consent.code,
        ],
        &w.app.settings,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let error = w.wait_state(late, "failed").await.0.expect("an error");
    assert!(
        error.contains("invalid_grant") && error.contains("used"),
        "{error}"
    );
    assert!(!error.contains(&consent.code), "{error}");
    assert_eq!(w.fake.grants().0, 1, "the code was exchanged once");
    assert_eq!(w.cloud_integrations().await, 1);
    assert_eq!(w.app.dead_letters().await, 0);
    w.app.finish().await;
}

#[tokio::test]
async fn an_expiring_token_is_refreshed_before_the_call_and_the_rotated_refresh_token_is_stored() {
    let w = world().await;
    let id = w.install().await;
    let (saved, before) = w.stored(id).await;
    w.expire(id).await;
    w.call(&saved).await.expect("the call succeeds");
    assert_eq!(w.fake.grants().1, 1, "one refresh");
    let (_, after) = w.stored(id).await;
    let rotated = refresh_token(&after);
    assert_ne!(rotated, refresh_token(&before));
    assert_eq!(
        w.fake.live_refresh_tokens(),
        [rotated],
        "the stored one is the live one"
    );
    assert_ne!(after.access_token(), before.access_token());
    // Fresh now: the next call refreshes nothing.
    w.call(&saved).await.expect("the call succeeds");
    assert_eq!(w.fake.grants().1, 1);
    let logged = w.logs.text();
    assert!(
        logged.contains("OAuth 2.0 access token refreshed"),
        "{logged}"
    );
    for secret in w.fake.app_secrets() {
        assert!(!logged.contains(&secret), "{secret} logged");
    }
    w.app.finish().await;
}

#[tokio::test]
async fn two_calls_finding_the_token_expired_at_once_refresh_once_and_both_succeed() {
    let w = world().await;
    let id = w.install().await;
    let (saved, _) = w.stored(id).await;
    w.expire(id).await;
    let (one, two) = tokio::join!(w.call(&saved), w.call(&saved));
    assert_eq!((one, two), (Ok(()), Ok(())));
    assert_eq!(w.fake.grants().1, 1, "exactly one refresh call");
    let (_, after) = w.stored(id).await;
    assert_eq!(w.fake.live_refresh_tokens(), [refresh_token(&after)]);
    w.app.finish().await;
}

#[tokio::test]
async fn a_revoked_refresh_token_needs_reauth_and_the_integrations_message_fails_saying_so() {
    let w = world().await;
    let id = w.install().await;
    let (saved, _) = w.stored(id).await;
    // Atlassian refuses every token: the user lookup answers 401, the refresh
    // `403 invalid_grant`.
    w.fake.revoke_refresh_tokens();
    w.fake.revoke_access_tokens();
    Mock::given(method("GET"))
        .and(path(format!("/ex/jira/{CLOUD_ID}/rest/api/3/user")))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"errorMessages": []})))
        .mount(&w.fake.api)
        .await;
    let org = w.app.seed().org(id, true, "ACME-41").await;
    let hidden = json!({"accountId": "acc-hidden", "displayName": "H", "active": true});
    let body = assignee_changed("ACME-41", hidden, T1).to_string();
    let url = saved
        .webhook_url(&w.app.settings.public.url)
        .expect("a URL");
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", delivery_jwt()))
        .body(body)
        .send()
        .await
        .expect("POST the delivery");
    assert_eq!(response.status(), 202);
    common::eventually("the message is dead-lettered", WAIT, || async {
        w.app.dead_letters().await == 1
    })
    .await;
    assert_eq!(w.app.assignee(org.group_id).await, None);
    let logged = w.logs.text();
    assert!(logged.contains("needs to be connected again"), "{logged}");
    let needs_reauth: bool = w
        .app
        .db
        .query_one(
            "SELECT needs_reauth_at IS NOT NULL FROM integration_credentials WHERE integration_id = $1",
            &[&id],
        )
        .await
        .expect("credentials")
        .get(0);
    assert!(needs_reauth);
    let error = w.call(&saved).await.expect_err("needs reauth");
    assert!(error.contains("needs to be connected again"), "{error}");
    assert!(error.contains("invalid_grant"), "{error}");
    assert_eq!(w.fake.grants().1, 0, "the dead token refreshed nothing");
    for secret in w.fake.app_secrets() {
        assert!(
            !logged.contains(&secret) && !error.contains(&secret),
            "{secret} shown"
        );
    }
    w.app.finish().await;
}

#[tokio::test]
async fn connecting_the_site_again_keeps_its_one_dynamic_webhook() {
    let w = world().await;
    let first = w.install().await;
    let webhooks = w.fake.dynamic_webhooks();
    assert_eq!(webhooks.len(), 1, "{webhooks:?}");
    let refreshes = w.fake.dynamic_refreshes();

    // The admin runs the install again with the same app.
    let again = w.install().await;
    assert_eq!(again, first, "the same integration, updated");
    assert_eq!(w.cloud_integrations().await, 1);
    let now = w.fake.dynamic_webhooks();
    assert_eq!(
        now.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        webhooks.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        "the webhook registered first, not a second one"
    );
    assert_eq!(
        w.fake.dynamic_refreshes(),
        refreshes + 1,
        "refreshed instead"
    );
    w.app.finish().await;
}

#[tokio::test]
async fn a_refused_webhook_registration_fails_the_session_saying_the_integration_was_saved() {
    let w = world().await;
    w.fake.refuse_dynamic_webhooks();
    let (id, url) = w.started(&[]);
    w.consent(&url).await;
    let (error, integration) = w.wait_state(id, "failed").await;
    let error = error.expect("an error");
    let saved = integration.expect("the session names the saved integration");
    assert!(
        error.contains(&format!("integration {saved} was saved")),
        "{error}"
    );
    assert!(
        error.contains("403") && error.contains("scope does not match"),
        "Jira's answer quoted: {error}"
    );
    assert!(
        error.contains("owner") && error.contains("manage:jira-webhook"),
        "{error}"
    );
    assert!(!error.contains(APP_CLIENT_SECRET), "{error}");
    assert_eq!(w.cloud_integrations().await, 1, "the integration stays");
    assert!(w.fake.dynamic_webhooks().is_empty());
    w.app.finish().await;
}
