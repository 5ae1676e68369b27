//! Connecting a Jira Cloud site (docs/reference.md §11.1–§11.3): `jirasync
//! integration add --cloud` run as a process against a fake Atlassian (site,
//! API gateway, authorization server) — an API token at the site or through the
//! gateway, a service account, what a wrong `--site` or token says (nothing
//! saved), the admin webhook and its refusal, connecting again — and a service
//! account's token renewed by `Integration::with_jira`.

use std::process::Output;

use jirasync::integration::{self, Credentials, Integration};
use serde_json::Value;

use crate::common::fake_cloud::{
    API_TOKEN, CLIENT_ID, CLIENT_SECRET, CLOUD_ID, EMAIL, FakeCloud, SCOPED_TOKEN, WEBHOOK_ID,
    WEBHOOK_PATH, basic, data_center,
};
use crate::common::fake_oauth2::SecretFile;
use crate::common::{self, TestApp};

/// `jirasync integration add --cloud --site SITE ARGS…` against `fake`, logging
/// at debug: what it printed and how it exited.
fn add(app: &TestApp, fake: &FakeCloud, site: &str, args: &[&str]) -> Output {
    let mut all = vec!["integration", "add", "--cloud", "--site", site];
    all.extend_from_slice(args);
    let mut env = fake.env();
    env.push(("RUST_LOG", "debug".to_owned()));
    common::jirasync(&all, &app.settings, &env)
        .output()
        .expect("run jirasync")
}

/// `add` with the API token in `token`.
fn add_token(app: &TestApp, fake: &FakeCloud, token: &SecretFile, extra: &[&str]) -> Output {
    let file = token.0.to_string_lossy().into_owned();
    let mut args = vec!["--email", EMAIL, "--api-token-file", &file];
    args.extend_from_slice(extra);
    add(app, fake, &fake.site.uri(), &args)
}

/// `add` as the fake's service account.
fn add_service(app: &TestApp, fake: &FakeCloud, secret: &SecretFile, extra: &[&str]) -> Output {
    let file = secret.0.to_string_lossy().into_owned();
    let mut args = vec!["--client-id", CLIENT_ID, "--client-secret-file", &file];
    args.extend_from_slice(extra);
    add(app, fake, &fake.site.uri(), &args)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The JSON a successful `add` printed.
fn added(output: &Output) -> Value {
    assert!(output.status.success(), "add failed: {}", stderr(output));
    serde_json::from_str(&stdout(output)).expect("add prints JSON")
}

/// None of `secrets` appears in what `output` printed (stdout and its log).
fn shows_none(output: &Output, secrets: &[&str]) {
    let (out, err) = (stdout(output), stderr(output));
    for secret in secrets {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret} shown: {out}\n{err}"
        );
    }
}

/// The stored integration, through the library.
async fn stored(app: &TestApp, id: i64) -> (Integration, Option<integration::Stored>) {
    let pool = jirasync::db::connect(&app.settings.database, 1)
        .await
        .expect("pool");
    let client = pool.get().await.expect("a connection");
    let found = integration::by_id(&client, pool.keys(), id)
        .await
        .expect("by_id")
        .expect("the integration");
    let credentials = integration::credentials(&client, pool.keys(), id)
        .await
        .expect("credentials");
    (found, credentials)
}

async fn cloud_rows(app: &TestApp) -> i64 {
    app.db
        .query_one(
            "SELECT count(*) FROM integrations WHERE provider = 'jira_cloud'",
            &[],
        )
        .await
        .expect("count")
        .get(0)
}

/// `integration status ID --json`.
fn status(app: &TestApp, id: i64) -> (Value, Output) {
    let output = common::output(
        &["integration", "status", &id.to_string(), "--json"],
        &app.settings,
    );
    let json = serde_json::from_slice(&output.stdout).expect("status prints JSON");
    (json, output)
}

#[tokio::test]
async fn an_api_token_the_site_takes_is_saved_with_the_site_as_base_and_a_manual_webhook() {
    let app = TestApp::builder().no_worker().start().await;
    let fake = FakeCloud::start().await;
    let token = SecretFile::new(API_TOKEN);

    let output = add_token(&app, &fake, &token, &[]);
    let json = added(&output);
    assert_eq!(json["external_id"], CLOUD_ID);
    assert_eq!(json["site"], fake.site.uri());
    assert_eq!(json["auth_method"], "api_token");
    let webhook_url = json["webhook_url"].as_str().expect("a webhook URL");
    assert!(
        webhook_url.contains("/extensions/jira-cloud/issue-updated/"),
        "{webhook_url}"
    );
    assert!(json.get("webhook").is_none(), "{json}");
    let manual = &json["manual_webhook"];
    assert_eq!(manual["url"], webhook_url);
    assert_eq!(
        manual["events"],
        serde_json::json!(["jira:issue_created", "jira:issue_updated"])
    );
    // The secret to paste is the one deliveries are verified with.
    let id = json["id"].as_i64().expect("id");
    let (integration, credentials) = stored(&app, id).await;
    let hmac = integration
        .metadata
        .webhook_hmac_secret
        .clone()
        .expect("an HMAC secret");
    assert!(hmac.len() >= 32, "{hmac}");
    assert_eq!(manual["secret"], hmac.as_str());
    assert_eq!(
        integration.metadata.base_url,
        fake.site.uri(),
        "the site answered"
    );
    assert_eq!(integration.provider, integration::Provider::Cloud);
    assert!(matches!(
        credentials.map(|c| c.credentials),
        Some(Credentials::ApiToken { email, token }) if email == EMAIL && token == API_TOKEN
    ));
    assert!(
        FakeCloud::requests(&fake.api, &format!("/ex/jira/{CLOUD_ID}/rest/api/3/myself"))
            .await
            .is_empty(),
        "the gateway is asked only when the site refuses"
    );
    shows_none(&output, &[API_TOKEN]);

    let (summary, shown) = status(&app, id);
    assert_eq!(summary["provider"], "jira_cloud");
    assert_eq!(summary["site"], fake.site.uri());
    assert_eq!(summary["cloud_id"], CLOUD_ID);
    assert_eq!(summary["auth_method"], "api_token");
    assert_eq!(summary["state"], "active");
    assert_eq!(summary["webhook"]["kind"], Value::Null, "not registered");
    shows_none(&shown, &[API_TOKEN, &hmac]);
    let list = common::output(&["integration", "list", "--json"], &app.settings);
    let listed = stdout(&list);
    assert!(listed.contains(r#""provider":"jira_server""#), "{listed}");
    assert!(listed.contains(r#""provider":"jira_cloud""#), "{listed}");
    shows_none(&list, &[API_TOKEN, &hmac]);
}

#[tokio::test]
async fn a_scoped_token_the_site_refuses_is_kept_with_the_gateway_as_base() {
    let app = TestApp::builder().no_worker().start().await;
    let fake = FakeCloud::start().await;
    let token = SecretFile::new(SCOPED_TOKEN);

    let output = add_token(&app, &fake, &token, &[]);
    let json = added(&output);
    let (integration, _) = stored(&app, json["id"].as_i64().expect("id")).await;
    assert_eq!(integration.metadata.base_url, fake.gateway());
    let asked =
        FakeCloud::requests(&fake.api, &format!("/ex/jira/{CLOUD_ID}/rest/api/3/myself")).await;
    assert_eq!(asked.len(), 1);
    assert_eq!(
        asked[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some(basic(EMAIL, SCOPED_TOKEN).as_str())
    );
    shows_none(&output, &[SCOPED_TOKEN]);
}

#[tokio::test]
async fn a_token_refused_at_the_site_and_the_gateway_names_the_email_and_saves_nothing() {
    let app = TestApp::builder().no_worker().start().await;
    let fake = FakeCloud::start().await;
    let wrong = SecretFile::new("atl-wrong-token-0000");

    let output = add_token(&app, &fake, &wrong, &["--register-webhook"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    let line = err
        .lines()
        .find(|line| line.starts_with("error:"))
        .expect("an error line");
    assert!(line.contains(EMAIL), "{line}");
    assert!(
        line.contains("id.atlassian.com → Security → API tokens"),
        "{line}"
    );
    assert!(line.contains("nothing was saved"), "{line}");
    shows_none(&output, &["atl-wrong-token-0000"]);
    assert!(stdout(&output).is_empty());
    assert_eq!(cloud_rows(&app).await, 0);
    assert!(
        FakeCloud::requests(&fake.site, WEBHOOK_PATH)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_data_center_given_as_site_says_to_use_base_url() {
    let app = TestApp::builder().no_worker().start().await;
    let fake = FakeCloud::start().await;
    let dc = data_center().await;
    let token = SecretFile::new(API_TOKEN);
    let file = token.0.to_string_lossy().into_owned();

    let output = add(
        &app,
        &fake,
        &dc.uri(),
        &["--email", EMAIL, "--api-token-file", &file],
    );
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("is a Jira Data Center"), "{err}");
    assert!(err.contains("integration add --base-url"), "{err}");
    assert_eq!(cloud_rows(&app).await, 0);
    let sent_token = dc
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .any(|request| request.headers.contains_key("authorization"));
    assert!(
        !sent_token,
        "no credential goes to a site that is not Cloud"
    );
}

#[tokio::test]
async fn a_url_without_jira_is_not_a_jira_site() {
    let app = TestApp::builder().no_worker().start().await;
    let fake = FakeCloud::start().await;
    let nothing = wiremock::MockServer::start().await;
    let token = SecretFile::new(API_TOKEN);
    let file = token.0.to_string_lossy().into_owned();

    let output = add(
        &app,
        &fake,
        &nothing.uri(),
        &["--email", EMAIL, "--api-token-file", &file],
    );
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("is not a Jira site"), "{err}");
    assert!(!err.contains("Data Center"), "{err}");
    assert_eq!(cloud_rows(&app).await, 0);
}

#[tokio::test]
async fn plain_http_is_refused_for_the_site_and_atlassians_urls_unless_loopback() {
    let app = TestApp::builder().no_worker().start().await;
    let fake = FakeCloud::start().await;
    let token = SecretFile::new(API_TOKEN);
    let file = token.0.to_string_lossy().into_owned();
    let args = ["--email", EMAIL, "--api-token-file", &file];

    let output = add(&app, &fake, "http://acme.atlassian.net", &args);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("--site") && err.contains("https://"), "{err}");

    let mut all = vec![
        "integration",
        "add",
        "--cloud",
        "--site",
        "https://acme.atlassian.net",
    ];
    all.extend_from_slice(&args);
    let env = [(
        "JIRASYNC_ATLASSIAN_API_URL",
        "http://api.example.org".to_owned(),
    )];
    let output = common::jirasync(&all, &app.settings, &env)
        .output()
        .expect("run jirasync");
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("JIRASYNC_ATLASSIAN_API_URL"), "{err}");
    assert_eq!(cloud_rows(&app).await, 0);
}

#[tokio::test]
async fn registering_the_admin_webhook_records_its_id_and_status_shows_it_signed() {
    let app = TestApp::builder().no_worker().start().await;
    let fake = FakeCloud::start().await;
    let token = SecretFile::new(API_TOKEN);

    let output = add_token(&app, &fake, &token, &["--register-webhook"]);
    let json = added(&output);
    assert_eq!(
        json["webhook"],
        serde_json::json!({"kind": "admin", "id": WEBHOOK_ID, "hmac_signed": true})
    );
    assert!(json.get("manual_webhook").is_none(), "{json}");
    let id = json["id"].as_i64().expect("id");
    let (integration, _) = stored(&app, id).await;
    let hmac = integration
        .metadata
        .webhook_hmac_secret
        .clone()
        .expect("hmac");
    let registered = FakeCloud::requests(&fake.site, WEBHOOK_PATH).await;
    assert_eq!(registered.len(), 1);
    let body: Value = serde_json::from_slice(&registered[0].body).expect("JSON");
    assert_eq!(
        body,
        serde_json::json!({
            "name": "jirasync",
            "url": json["webhook_url"],
            "events": ["jira:issue_created", "jira:issue_updated"],
            "filters": {"issue-related-events-section": ""},
            "excludeBody": false,
            "secret": hmac,
        })
    );
    shows_none(&output, &[API_TOKEN, &hmac]);

    let (summary, shown) = status(&app, id);
    let webhook = &summary["webhook"];
    assert_eq!(webhook["kind"], "admin", "{summary}");
    assert_eq!(webhook["id"], WEBHOOK_ID);
    assert_eq!(webhook["hmac_signed"], true);
    assert_eq!(
        webhook["expires_at"],
        Value::Null,
        "admin webhooks do not expire"
    );
    assert!(webhook["refreshed_at"].is_string(), "{summary}");
    shows_none(&shown, &[API_TOKEN, &hmac]);
}

#[tokio::test]
async fn a_refused_registration_keeps_the_integration_and_says_admin_rights_are_missing() {
    let app = TestApp::builder().no_worker().start().await;
    let fake = FakeCloud::start().await;
    fake.not_admin();
    let token = SecretFile::new(API_TOKEN);

    let output = add_token(&app, &fake, &token, &["--register-webhook"]);
    assert!(!output.status.success(), "a refused registration fails");
    let err = stderr(&output);
    assert!(err.contains("admin rights"), "{err}");
    assert!(err.contains("403"), "{err}");
    let json: Value = serde_json::from_str(&stdout(&output)).expect("the JSON is printed still");
    assert!(json["manual_webhook"]["secret"].is_string(), "{json}");
    assert_eq!(cloud_rows(&app).await, 1, "the integration is kept");
    let (summary, _) = status(&app, json["id"].as_i64().expect("id"));
    assert_eq!(summary["webhook"]["kind"], Value::Null);
    shows_none(&output, &[API_TOKEN]);
}

#[tokio::test]
async fn connecting_a_site_again_updates_it_keeps_both_secrets_and_clears_needs_reauth() {
    let app = TestApp::builder().no_worker().start().await;
    let fake = FakeCloud::start().await;
    let token = SecretFile::new(API_TOKEN);
    let first = added(&add_token(&app, &fake, &token, &[]));
    let id = first["id"].as_i64().expect("id");
    let (before, _) = stored(&app, id).await;
    app.db
        .execute(
            "UPDATE integration_credentials SET needs_reauth_at = now(), auth_error = 'refused'
              WHERE integration_id = $1",
            &[&id],
        )
        .await
        .expect("mark needs_reauth");
    assert_eq!(status(&app, id).0["state"], "needs_reauth");

    let scoped = SecretFile::new(SCOPED_TOKEN);
    let again = added(&add_token(&app, &fake, &scoped, &[]));
    assert_eq!(again["id"], id, "one integration per site");
    assert_eq!(
        again["webhook_url"], first["webhook_url"],
        "its URL is kept"
    );
    assert_eq!(
        again["manual_webhook"]["secret"],
        first["manual_webhook"]["secret"]
    );
    let (after, credentials) = stored(&app, id).await;
    assert_eq!(
        after.metadata.webhook_secret,
        before.metadata.webhook_secret
    );
    assert_eq!(
        after.metadata.webhook_hmac_secret,
        before.metadata.webhook_hmac_secret
    );
    assert_eq!(after.metadata.base_url, fake.gateway(), "updated");
    assert!(matches!(
        credentials.map(|c| c.credentials),
        Some(Credentials::ApiToken { token, .. }) if token == SCOPED_TOKEN
    ));
    assert_eq!(status(&app, id).0["state"], "active");
    assert_eq!(cloud_rows(&app).await, 1);
}

#[tokio::test]
async fn a_service_account_gets_a_token_checks_it_through_the_gateway_and_registers_nothing() {
    let app = TestApp::builder().no_worker().start().await;
    let fake = FakeCloud::start().await;
    let secret = SecretFile::new(CLIENT_SECRET);

    let output = add_service(&app, &fake, &secret, &["--register-webhook"]);
    let json = added(&output);
    assert_eq!(json["auth_method"], "client_credentials");
    assert!(json["manual_webhook"]["secret"].is_string(), "{json}");
    assert!(json.get("webhook").is_none(), "{json}");
    let err = stderr(&output);
    assert!(
        err.lines()
            .any(|line| line.contains("--register-webhook is ignored")),
        "{err}"
    );
    assert!(
        FakeCloud::requests(&fake.site, WEBHOOK_PATH)
            .await
            .is_empty()
    );
    assert!(
        FakeCloud::requests(&fake.api, &format!("/ex/jira/{CLOUD_ID}{WEBHOOK_PATH}"))
            .await
            .is_empty()
    );
    let asked = FakeCloud::requests(&fake.auth, "/oauth/token").await;
    assert_eq!(asked.len(), 1);
    let body: Value = serde_json::from_slice(&asked[0].body).expect("JSON body");
    assert_eq!(
        body,
        serde_json::json!({
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        })
    );
    let checked =
        FakeCloud::requests(&fake.api, &format!("/ex/jira/{CLOUD_ID}/rest/api/3/myself")).await;
    assert_eq!(checked.len(), 1, "checked through the gateway");
    assert!(
        FakeCloud::requests(&fake.site, "/rest/api/3/myself")
            .await
            .is_empty()
    );

    let id = json["id"].as_i64().expect("id");
    let (integration, credentials) = stored(&app, id).await;
    assert_eq!(integration.metadata.base_url, fake.gateway());
    let Some(Credentials::ClientCredentials {
        access_token,
        expires_at,
        ..
    }) = credentials.map(|c| c.credentials)
    else {
        panic!("client credentials stored");
    };
    let lifetime = expires_at.expect("an expiry") - chrono::Utc::now();
    assert!(
        lifetime.num_minutes() > 55 && lifetime.num_minutes() <= 60,
        "{lifetime}"
    );
    shows_none(&output, &[CLIENT_SECRET, &access_token]);
    let (summary, shown) = status(&app, id);
    assert_eq!(summary["auth_method"], "client_credentials");
    shows_none(&shown, &[CLIENT_SECRET, &access_token]);
}

#[tokio::test]
async fn a_service_account_token_is_obtained_again_when_expiring_and_once_on_a_401() {
    let app = TestApp::builder().no_worker().start().await;
    let fake = FakeCloud::start().await;
    let secret = SecretFile::new(CLIENT_SECRET);
    let json = added(&add_service(&app, &fake, &secret, &[]));
    let id = json["id"].as_i64().expect("id");
    assert_eq!(fake.issued(), 1);
    let pool = jirasync::db::connect(&app.settings.database, 2)
        .await
        .expect("pool");
    let (integration, _) = stored(&app, id).await;
    let server_info = |integration: Integration| {
        let pool = pool.clone();
        async move {
            integration
                .with_jira(&pool, |jira| async move { jira.server_info().await })
                .await
        }
    };

    // The stored token has expired: a new one before the call.
    app.db
        .execute(
            "UPDATE integration_credentials SET access_token_expires_at = now() - interval '1 minute'
              WHERE integration_id = $1",
            &[&id],
        )
        .await
        .expect("expire the token");
    let info = server_info(integration.clone()).await.expect("the call");
    assert!(info.is_some(), "called");
    assert_eq!(fake.issued(), 2, "one new token");
    let (_, credentials) = stored(&app, id).await;
    let Some(Credentials::ClientCredentials { expires_at, .. }) =
        credentials.map(|c| c.credentials)
    else {
        panic!("client credentials");
    };
    assert!(expires_at.expect("expiry") > chrono::Utc::now() + chrono::TimeDelta::minutes(55));

    // Atlassian refuses the token early: one new token, the call again.
    fake.revoke_access_tokens();
    server_info(integration.clone())
        .await
        .expect("the call after a 401");
    assert_eq!(fake.issued(), 3);
    assert_eq!(status(&app, id).0["state"], "active");

    // The credential itself is revoked: needs_reauth, no loop.
    fake.revoke_access_tokens();
    fake.revoke_credential();
    let error = server_info(integration.clone())
        .await
        .expect_err("refused for good");
    assert!(
        matches!(error, integration::AccessError::NeedsReauth { .. }),
        "{error}"
    );
    assert!(!error.to_string().contains(CLIENT_SECRET), "{error}");
    assert_eq!(status(&app, id).0["state"], "needs_reauth");
    assert_eq!(fake.issued(), 3);
}

#[tokio::test]
async fn status_warns_when_a_webhook_expires_within_7_days() {
    let app = TestApp::builder().no_worker().start().await;
    let fake = FakeCloud::start().await;
    let token = SecretFile::new(API_TOKEN);
    let id = added(&add_token(&app, &fake, &token, &[]))["id"]
        .as_i64()
        .expect("id");
    let expires = |days: i64| {
        let at = (chrono::Utc::now() + chrono::TimeDelta::days(days)).to_rfc3339();
        let db = &app.db;
        async move {
            db.execute(
                "UPDATE integrations SET metadata = metadata
                        || jsonb_build_object('webhook_kind', 'dynamic', 'webhook_expires_at', $2::text)
                  WHERE id = $1",
                &[&id, &at],
            )
            .await
            .expect("set the expiry");
        }
    };

    expires(20).await;
    let (summary, output) = status(&app, id);
    assert!(summary["webhook"]["expires_at"].is_string(), "{summary}");
    assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));

    expires(3).await;
    let (summary, output) = status(&app, id);
    assert_eq!(summary["webhook"]["kind"], "dynamic");
    assert_eq!(
        summary["webhook"]["hmac_signed"], false,
        "a JWT signs dynamic ones"
    );
    let err = stderr(&output);
    assert!(
        err.contains(&format!("integration {id}'s webhook expires")),
        "{err}"
    );
    assert!(err.contains("under 7 days"), "{err}");
    let list = common::output(&["integration", "list"], &app.settings);
    assert!(stderr(&list).contains("under 7 days"), "{}", stderr(&list));
}

#[tokio::test]
async fn registering_again_updates_the_recorded_webhook_and_registers_anew_once_it_is_gone() {
    let app = TestApp::builder().no_worker().start().await;
    let fake = FakeCloud::start().await;
    let token = SecretFile::new(API_TOKEN);
    let first = added(&add_token(&app, &fake, &token, &["--register-webhook"]));
    let id = first["id"].as_i64().expect("id");
    let updates = format!("{WEBHOOK_PATH}/{WEBHOOK_ID}");

    let again = added(&add_token(&app, &fake, &token, &["--register-webhook"]));
    assert_eq!(again["webhook"]["id"], WEBHOOK_ID);
    assert_eq!(
        FakeCloud::requests(&fake.site, WEBHOOK_PATH).await.len(),
        1,
        "no second webhook"
    );
    let updated = FakeCloud::requests(&fake.site, &updates).await;
    assert_eq!(updated.len(), 1);
    let body: Value = serde_json::from_slice(&updated[0].body).expect("JSON");
    let (integration, _) = stored(&app, id).await;
    assert_eq!(body["url"], first["webhook_url"]);
    assert_eq!(
        body["secret"].as_str(),
        integration.metadata.webhook_hmac_secret.as_deref()
    );

    // An admin deleted it in Jira: a new registration.
    fake.delete_webhook();
    let third = added(&add_token(&app, &fake, &token, &["--register-webhook"]));
    assert_eq!(third["webhook"]["kind"], "admin");
    assert_eq!(FakeCloud::requests(&fake.site, WEBHOOK_PATH).await.len(), 2);
    assert_eq!(status(&app, id).0["webhook"]["id"], WEBHOOK_ID);
}

#[tokio::test]
async fn cloud_credentials_and_webhook_secrets_are_stored_sealed() {
    let app = TestApp::builder()
        .no_worker()
        .secret_key(common::SECRET_KEY_A)
        .start()
        .await;
    let fake = FakeCloud::start().await;
    let token = SecretFile::new(API_TOKEN);
    let by_token = added(&add_token(&app, &fake, &token, &[]));
    let hmac_secret = by_token["manual_webhook"]["secret"]
        .as_str()
        .expect("the secret to paste")
        .to_owned();
    // The same site connected again with a service account: new credentials,
    // the same webhook secrets.
    let secret = SecretFile::new(CLIENT_SECRET);
    let by_service = added(&add_service(&app, &fake, &secret, &[]));
    assert_eq!(by_service["id"], by_token["id"]);
    assert_eq!(by_service["manual_webhook"]["secret"], hmac_secret.as_str());

    let id = by_token["id"].as_i64().expect("an id");
    let row = app
        .db
        .query_one(
            "SELECT c.access_token, c.client_secret, i.metadata->>'webhook_secret',
                    i.metadata->>'webhook_hmac_secret'
               FROM integration_credentials c JOIN integrations i ON i.id = c.integration_id
              WHERE i.id = $1",
            &[&id],
        )
        .await
        .expect("the stored row");
    for column in 0..4 {
        let stored: String = row.get(column);
        assert!(stored.starts_with("jsenc2:"), "column {column} is sealed");
    }
    let dump = common::pg_dump(&app.settings);
    common::assert_none_in(&dump, &[API_TOKEN, CLIENT_SECRET, &hmac_secret]);
    app.finish().await;
}
