//! Connecting with a personal access token (docs/reference.md §7): `integration
//! add --pat-file` checks the token with Jira before it saves anything, registers
//! the webhook on the resource of the Jira's version, and a token Jira refuses
//! later leaves the integration `needs_reauth`; also a registration Jira refuses,
//! which keeps the integration and says how to register the webhook by hand.

use std::time::Duration;

use jirasync::commands::AppLink;
use jirasync::commands::dlq;
use jirasync::commands::integration::{self, AddArgs};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::common::app::{T1, WAIT};
use crate::common::fake_oauth2::{
    FakeOAuth2, JIRA10_WEBHOOK_PATH, LEGACY_WEBHOOK_PATH, PAT, PAT_USER, SecretFile, mount_jira,
    mount_user,
};
use crate::common::seed::assignee_changed;
use crate::common::{self, TestApp};

/// The arguments of `integration add --pat-file PAT [--register-webhook]`
/// against the test's fake Jira.
pub fn add_args(app: &TestApp, pat: &SecretFile, register_webhook: bool) -> AddArgs {
    AddArgs {
        link: AppLink {
            base_url: app.server.uri(),
            consumer_key: None,
            private_key_file: None,
            no_verify_ssl: false,
        },
        access_token: None,
        access_token_secret: None,
        pat_file: Some(pat.0.clone()),
        name: None,
        register_webhook,
        database: app.settings.database.clone(),
        public: app.settings.public.clone(),
    }
}

/// `jirasync integration add --base-url … --pat-file FILE [--register-webhook]`.
fn add_command(app: &TestApp, pat: &SecretFile, register: bool) -> std::process::Output {
    let base_url = app.server.uri();
    let file = pat.0.to_string_lossy().into_owned();
    let mut args = vec![
        "integration",
        "add",
        "--base-url",
        &base_url,
        "--pat-file",
        &file,
    ];
    if register {
        args.push("--register-webhook");
    }
    common::output(&args, &app.settings)
}

async fn credential_rows(app: &TestApp) -> i64 {
    app.db
        .query_one(
            "SELECT count(*) FROM integration_credentials WHERE auth_method = 'pat'",
            &[],
        )
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
async fn a_pat_is_checked_saved_and_registers_an_unsigned_webhook_on_jira_9() {
    let app = TestApp::builder().no_worker().start().await;
    let fake = FakeOAuth2::new(Duration::from_secs(300));
    mount_jira(&app, &fake, 9).await;
    let pat = SecretFile::new(PAT);

    let output = add_command(&app, &pat, true);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let added: Value = serde_json::from_str(&stdout).expect("add prints JSON");
    let port = app.server.address().port();
    assert_eq!(
        added["external_id"],
        format!("127.0.0.1:{port}:pat:{PAT_USER}")
    );
    assert_eq!(
        added["webhook"],
        json!({"path": LEGACY_WEBHOOK_PATH, "id": "7", "hmac_signed": false})
    );
    assert!(!stdout.contains(PAT), "the token is never printed");

    let registered = app.requests_to(LEGACY_WEBHOOK_PATH).await;
    assert_eq!(registered.len(), 1, "Jira 9: the legacy resource");
    assert!(app.requests_to(JIRA10_WEBHOOK_PATH).await.is_empty());
    let body: Value = serde_json::from_slice(&registered[0].body).expect("JSON body");
    assert_eq!(body["url"], added["webhook_url"]);
    assert!(
        body.get("configuration").is_none(),
        "no secret before Jira 10"
    );
    assert_eq!(
        registered[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some(format!("Bearer {PAT}").as_str())
    );

    let id = added["id"].as_i64().expect("id").to_string();
    let status = common::output(&["integration", "status", &id, "--json"], &app.settings);
    let text = String::from_utf8_lossy(&status.stdout);
    let summary: Value = serde_json::from_str(&text).expect("status prints JSON");
    assert_eq!(summary["auth_method"], "pat");
    assert_eq!(summary["state"], "active");
    assert_eq!(summary["jira_version"], "9.3.1");
    assert_eq!(summary["webhook"]["hmac_signed"], false);
    assert!(!text.contains(PAT), "status shows no token");
    let list = common::output(&["integration", "list"], &app.settings);
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(listed.contains(&format!("pat:{PAT_USER}")), "{listed}");
    assert!(!listed.contains(PAT));
}

#[tokio::test]
async fn a_pat_jira_refuses_saves_nothing_and_says_what_to_check() {
    let app = TestApp::builder().no_worker().start().await;
    let fake = FakeOAuth2::new(Duration::from_secs(300));
    mount_jira(&app, &fake, 10).await;
    let wrong = SecretFile::new("not-a-token-jira-knows");

    let output = add_command(&app, &wrong, false);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refused the personal access token"),
        "{stderr}"
    );
    assert!(stderr.contains("Personal Access Tokens"), "{stderr}");
    assert!(stderr.contains("nothing was saved"), "{stderr}");
    assert!(!stderr.contains("not-a-token-jira-knows"), "{stderr}");
    assert_eq!(credential_rows(&app).await, 0);
    let integrations: i64 = app
        .db
        .query_one("SELECT count(*) FROM integrations", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(integrations, 1, "only the app's own");
}

#[tokio::test]
async fn a_registration_jira_refuses_keeps_the_integration_and_says_how_to_register_by_hand() {
    let app = TestApp::builder().no_worker().start().await;
    let fake = FakeOAuth2::new(Duration::from_secs(300));
    // Not an administrator: both webhook resources answer 403.
    for webhook_path in [JIRA10_WEBHOOK_PATH, LEGACY_WEBHOOK_PATH] {
        Mock::given(method("POST"))
            .and(path(webhook_path))
            .respond_with(ResponseTemplate::new(403))
            .mount(&app.server)
            .await;
    }
    mount_jira(&app, &fake, 10).await;
    let pat = SecretFile::new(PAT);

    let output = add_command(&app, &pat, true);
    assert!(
        !output.status.success(),
        "a failed registration fails the command"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("was saved"), "{stderr}");
    assert!(stderr.contains("by hand"), "{stderr}");
    assert!(stderr.contains("403"), "{stderr}");
    let added: Value =
        serde_json::from_slice(&output.stdout).expect("the webhook URL is printed still");
    assert!(added["webhook_url"].as_str().is_some(), "{added}");
    assert_eq!(credential_rows(&app).await, 1, "the integration is kept");
}

#[tokio::test]
async fn a_pat_jira_refuses_later_needs_reauth_until_added_again_and_its_webhooks_replay() {
    let app = TestApp::builder().concurrency(1).start().await;
    let fake = FakeOAuth2::new(Duration::from_secs(300));
    mount_jira(&app, &fake, 10).await;
    mount_user(&app, &fake, "who", "who@example.org").await;
    let pat = SecretFile::new(PAT);
    let added = integration::add(&add_args(&app, &pat, false))
        .await
        .expect("integration add");
    let org = app.seed().org(added.id, true, "PAT-1").await;
    let who = app.seed().teammate(&org, "who@example.org").await;
    let token = added
        .webhook_url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .expect("the URL ends in its token")
        .to_owned();

    // The token is revoked in Jira: the lookup is refused and dead-lettered.
    fake.revoke_pat(true);
    let hidden = json!({"name": "who", "key": "JIRAUSER-who", "active": true});
    let webhook = assignee_changed("PAT-1", hidden, T1).to_string();
    app.send_with(&token, webhook.as_bytes(), None).await;
    common::eventually("the webhook is dead-lettered", WAIT, || async {
        app.dead_letters().await == 1
    })
    .await;
    let letters = dlq::list(&app.settings.broker, 10).await.expect("dlq list");
    let error = &letters[0].error;
    assert!(
        error.contains("refused the personal access token (HTTP 401)"),
        "{error}"
    );
    assert!(error.contains("needs to be connected again"), "{error}");
    let status = common::output(
        &["integration", "status", &added.id.to_string(), "--json"],
        &app.settings,
    );
    let summary: Value = serde_json::from_slice(&status.stdout).expect("status prints JSON");
    assert_eq!(summary["state"], "needs_reauth", "{summary}");

    // The admin adds a valid token again, then replays: the webhook applies.
    fake.revoke_pat(false);
    let again = integration::add(&add_args(&app, &pat, false))
        .await
        .expect("integration add again");
    assert_eq!(again.id, added.id, "the same integration");
    assert_eq!(
        again.webhook_url, added.webhook_url,
        "its webhook URL is kept"
    );
    assert_eq!(
        dlq::replay(&app.settings.broker, None)
            .await
            .expect("replay"),
        1
    );
    app.wait_assignee(org.group_id, Some(who)).await;
    app.finish().await;
}
