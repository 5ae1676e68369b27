//! `jirasync integration rotate-webhook-secret` (docs/reference.md §1, §5.1–5.2,
//! §6.3): a fresh webhook URL and HMAC secret; the webhook jirasync registered in
//! Jira is updated to them (`PUT <resource>/<id>`, checked on the fake Jira); the old
//! URL and bodies signed with the old HMAC secret are accepted until the overlap
//! ends and rejected after; `integration webhook-url` prints the new URL at once.
//! A Jira that refuses the update, or a webhook registered by hand, gets
//! `manual_webhook` and a line saying what to change in Jira.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jirasync::commands::integration;
use serde_json::Value;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, ResponseTemplate};

use crate::common::app::{T1, WAIT};
use crate::common::fake_oauth2::{
    FakeOAuth2, JIRA10_WEBHOOK_ID, JIRA10_WEBHOOK_PATH, LEGACY_WEBHOOK_ID, LEGACY_WEBHOOK_PATH,
    PAT, SecretFile, mount_jira,
};
use crate::common::seed::{assignee_changed, hub_signature, jira_user};
use crate::common::{self, TestApp};

/// An app with the ingress as public URL, and a Jira `major` that knows the PAT.
async fn app_with_jira(major: u32) -> (TestApp, std::sync::Arc<FakeOAuth2>) {
    let app = TestApp::builder().concurrency(1).ingress().start().await;
    let fake = FakeOAuth2::new(Duration::from_secs(300));
    mount_jira(&app, &fake, major).await;
    (app, fake)
}

/// `integration add --pat-file … --register-webhook`: the integration's id and
/// webhook URL.
async fn add_with_webhook(app: &TestApp) -> (i64, String) {
    let pat = SecretFile::new(PAT);
    let added = integration::add(&crate::pat::add_args(app, &pat, true))
        .await
        .expect("integration add");
    assert!(
        matches!(added.registration, Some(Ok(_))),
        "{:?}",
        added.registration
    );
    (added.id, added.webhook_url)
}

/// The JSON bodies the fake Jira received on `request_path`, by method.
async fn bodies(app: &TestApp, verb: &str, request_path: &str) -> Vec<Value> {
    app.requests_to(request_path)
        .await
        .iter()
        .filter(|request| request.method.as_str() == verb)
        .map(|request| serde_json::from_slice(&request.body).unwrap_or(Value::Null))
        .collect()
}

/// `jirasync integration rotate-webhook-secret ID --overlap OVERLAP`: what it
/// printed (JSON) and said on stderr; it must exit 0.
fn rotate(app: &TestApp, id: i64, overlap: &str) -> (Value, String) {
    let id = id.to_string();
    let output = common::output(
        &[
            "integration",
            "rotate-webhook-secret",
            &id,
            "--overlap",
            overlap,
        ],
        &app.settings,
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    let printed = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    (printed, stderr)
}

/// `jirasync integration webhook-url ID`.
fn webhook_url(app: &TestApp, id: i64) -> String {
    let output = common::output(
        &["integration", "webhook-url", &id.to_string()],
        &app.settings,
    );
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Posts the assignment of `key` to its teammate to `url`, signed with `hmac`.
async fn post(url: &str, key: &str, hmac: &str) {
    let email = format!("{}@example.org", key.to_lowercase());
    let body = assignee_changed(key, jira_user(&email), T1).to_string();
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("x-hub-signature", hub_signature(hmac, body.as_bytes()))
        .body(body)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 202, "the ingress takes {key}");
}

/// An issue `key` of `integration` linked to a group, and its teammate: (group, user).
async fn issue(app: &TestApp, integration: i64, key: &str) -> (i64, i64) {
    let org = app.seed().org(integration, true, key).await;
    let user = app
        .seed()
        .teammate(&org, &format!("{}@example.org", key.to_lowercase()))
        .await;
    (org.group_id, user)
}

#[tokio::test]
async fn both_urls_and_hmac_secrets_work_during_the_overlap_and_only_the_new_ones_after() {
    let (app, _fake) = app_with_jira(10).await;
    let (id, old_url) = add_with_webhook(&app).await;
    let registered = bodies(&app, "POST", JIRA10_WEBHOOK_PATH).await;
    let old_hmac = registered[0]["configuration"]["SECRET"]
        .as_str()
        .expect("a signed registration")
        .to_owned();
    let (group, user) = issue(&app, id, "ROT-0").await;
    post(&old_url, "ROT-0", &old_hmac).await;
    app.wait_assignee(group, Some(user)).await;

    let (printed, stderr) = rotate(&app, id, "10s");
    assert_eq!(printed["id"], id, "{printed}");
    assert!(
        printed.get("manual_webhook").is_none(),
        "{printed} {stderr}"
    );
    let new_url = printed["webhook_url"].as_str().expect("URL").to_owned();
    assert_ne!(new_url, old_url);
    let until: DateTime<Utc> = printed["previous_valid_until"]
        .as_str()
        .and_then(|at| at.parse().ok())
        .expect("previous_valid_until");
    assert_eq!(webhook_url(&app, id), new_url, "webhook-url at once");

    // Jira's webhook now posts to the new URL, signed with a new secret.
    let updates = bodies(
        &app,
        "PUT",
        &format!("{JIRA10_WEBHOOK_PATH}/{JIRA10_WEBHOOK_ID}"),
    )
    .await;
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0]["url"], new_url.as_str());
    assert_eq!(updates[0]["events"], registered[0]["events"]);
    let new_hmac = updates[0]["configuration"]["SECRET"]
        .as_str()
        .expect("the new secret")
        .to_owned();
    assert_ne!(new_hmac, old_hmac);
    assert!(!new_hmac.is_empty());

    // During the overlap, every combination of old and new.
    for (key, url, hmac) in [
        ("ROT-1", &old_url, &old_hmac),
        ("ROT-2", &new_url, &new_hmac),
        ("ROT-3", &new_url, &old_hmac),
        ("ROT-4", &old_url, &new_hmac),
    ] {
        let (group, user) = issue(&app, id, key).await;
        post(url, key, hmac).await;
        app.wait_assignee(group, Some(user)).await;
    }
    assert!(
        Utc::now() < until,
        "the overlap lasted the checks above (slow machine?)"
    );

    // After it: the old URL and the old HMAC secret are rejected.
    common::eventually("the overlap ends", WAIT, || async { Utc::now() > until }).await;
    let old_url_after = issue(&app, id, "ROT-5").await;
    post(&old_url, "ROT-5", &new_hmac).await;
    let old_hmac_after = issue(&app, id, "ROT-6").await;
    post(&new_url, "ROT-6", &old_hmac).await;
    let (group, user) = issue(&app, id, "ROT-7").await;
    post(&new_url, "ROT-7", &new_hmac).await;
    app.wait_assignee(group, Some(user)).await;
    assert_eq!(app.assignee(old_url_after.0).await, None, "old URL after");
    assert_eq!(app.assignee(old_hmac_after.0).await, None, "old HMAC after");
    assert_eq!(app.dead_letters().await, 0, "rejected, not dead-lettered");
    app.finish().await;
}

#[tokio::test]
async fn a_jira_that_refuses_the_update_or_a_webhook_registered_by_hand_gets_the_manual_webhook() {
    let (app, _fake) = app_with_jira(10).await;
    let (id, old_url) = add_with_webhook(&app).await;
    Mock::given(method("PUT"))
        .and(path_regex("^/rest/jira-webhook/1.0/webhooks/.*"))
        .respond_with(ResponseTemplate::new(403).set_body_string("not an administrator"))
        .with_priority(1)
        .mount(&app.server)
        .await;

    let (printed, stderr) = rotate(&app, id, "1h");
    let manual = &printed["manual_webhook"];
    let new_url = printed["webhook_url"].as_str().expect("URL");
    assert_ne!(new_url, old_url);
    assert_eq!(manual["url"], new_url, "{printed}");
    let registered = bodies(&app, "POST", JIRA10_WEBHOOK_PATH).await;
    let secret = manual["secret"].as_str().expect("the new HMAC secret");
    assert_ne!(secret, registered[0]["configuration"]["SECRET"]);
    for expected in [
        "HTTP 403",
        "Administration > System > WebHooks",
        "manual_webhook.url and its Secret to manual_webhook.secret",
        "before ",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in {stderr}");
    }
    assert!(printed["previous_valid_until"].is_string(), "{printed}");
    assert_eq!(webhook_url(&app, id), new_url);

    // The test app's own integration was seeded by hand: nothing recorded to update.
    let (printed, stderr) = rotate(&app, app.integration, "24h");
    assert_eq!(
        printed["manual_webhook"]["url"], printed["webhook_url"],
        "{printed}"
    );
    assert_eq!(printed["manual_webhook"]["secret"], Value::Null);
    assert!(stderr.contains("no record of registering"), "{stderr}");
    assert!(!stderr.contains("Secret to"), "unsigned: {stderr}");

    // A second rotation during the overlap: the secret it replaces is the previous
    // one now, and the one before that stops working at once.
    let first = token_of(printed["webhook_url"].as_str().expect("URL"));
    let (again, _) = rotate(&app, app.integration, "24h");
    let second = token_of(again["webhook_url"].as_str().expect("URL"));
    let mut groups = Vec::new();
    for (key, token) in [("GEN-0", &app.token), ("GEN-1", &first), ("GEN-2", &second)] {
        let (group, user) = issue(&app, app.integration, key).await;
        let email = format!("{}@example.org", key.to_lowercase());
        let body = assignee_changed(key, jira_user(&email), T1).to_string();
        app.send_with(token, body.as_bytes(), None).await;
        groups.push((group, user));
    }
    // Concurrency 1: once the last is applied, the others were handled.
    app.wait_assignee(groups[2].0, Some(groups[2].1)).await;
    assert_eq!(
        app.assignee(groups[0].0).await,
        None,
        "the first secret is dropped"
    );
    assert_eq!(
        app.assignee(groups[1].0).await,
        Some(groups[1].1),
        "the replaced one overlaps"
    );
    app.finish().await;
}

/// The token in a webhook URL (`…/issue-updated/<token>/`).
fn token_of(url: &str) -> String {
    url.trim_end_matches('/')
        .rsplit('/')
        .next()
        .expect("a token")
        .to_owned()
}

#[tokio::test]
async fn on_a_jira_before_10_the_legacy_webhook_is_updated_without_a_secret() {
    let (app, _fake) = app_with_jira(9).await;
    let (id, _) = add_with_webhook(&app).await;
    let (printed, stderr) = rotate(&app, id, "1h");
    assert!(
        printed.get("manual_webhook").is_none(),
        "{printed} {stderr}"
    );
    let updates = bodies(
        &app,
        "PUT",
        &format!("{LEGACY_WEBHOOK_PATH}/{LEGACY_WEBHOOK_ID}"),
    )
    .await;
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["url"], printed["webhook_url"]);
    assert_eq!(updates[0]["excludeBody"], false);
    assert!(updates[0].get("configuration").is_none(), "{}", updates[0]);
    app.finish().await;
}

#[tokio::test]
async fn a_jira_cloud_integration_is_not_rotated_and_keeps_its_secrets() {
    let app = TestApp::builder().no_worker().start().await;
    let credentials = jirasync::integration::Credentials::ApiToken {
        email: "admin@acme.example".into(),
        token: "atl-rotation-token".into(),
    };
    let cloud = crate::common::fake_cloud::connected_site(
        &app.settings,
        "http://127.0.0.1:9",
        "7c3f6a5e-0000-4000-8000-0000000000c4",
        &credentials,
    )
    .await;
    let metadata = || async {
        app.db
            .query_one(
                "SELECT metadata FROM integrations WHERE id = $1",
                &[&cloud.id],
            )
            .await
            .expect("metadata")
            .get::<_, Value>(0)
    };
    let before = metadata().await;

    let id = cloud.id.to_string();
    let output = common::output(
        &["integration", "rotate-webhook-secret", &id],
        &app.settings,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("rotating a Jira Cloud integration's webhook secrets is not supported"),
        "{stderr}"
    );
    assert_eq!(metadata().await, before, "nothing changed");
    app.finish().await;
}
