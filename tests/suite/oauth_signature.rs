//! The Jira client against a fake Jira Server (wiremock) that verifies every
//! RSA-SHA1 signature with the public key, using its own base-string code
//! (`tests/fixtures/fake_jira.rs`), and refuses replayed nonces.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::fake_jira::{CONSUMER_KEY, FakeJira};
use jirasync::jira::{
    Auth, ClientOptions, ISSUE_EVENTS, JiraClient, JiraError, OAuthParams, Signer, UserRef,
    WebhookApi,
};
use serde_json::json;
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = include_str!("../fixtures/jira_test_key.pem");
const OTHER_KEY: &str = include_str!("../fixtures/jira_other_key.pem");
const PUBLIC_KEY: &str = include_str!("../fixtures/jira_test_key.pub.pem");
const CALLBACK: &str = "http://127.0.0.1:8080/extensions/jira-server/oauth/callback";
const HOOK_URL: &str = "http://127.0.0.1:8080/extensions/jira-server/issue-updated/a.b.c/";

struct Setup {
    server: MockServer,
    jira: Arc<FakeJira>,
}

async fn setup() -> Setup {
    Setup {
        server: MockServer::start().await,
        jira: FakeJira::new(),
    }
}

/// A client whose REST calls are signed with the access token `acc-tok` (the
/// install flow's steps are signed with their own tokens).
fn client_with(base: &str, consumer_key: &str, pem: &str, timeout: Duration) -> JiraClient {
    let signer = Signer::from_pem(consumer_key, pem).expect("key loads");
    let options = ClientOptions {
        request_timeout: timeout,
        ..ClientOptions::default()
    };
    let auth = Auth::oauth1(signer).with_access_token("acc-tok");
    JiraClient::new(base, auth, &options).expect("client builds")
}

fn client(setup: &Setup) -> JiraClient {
    client_with(
        &setup.server.uri(),
        CONSUMER_KEY,
        KEY,
        Duration::from_secs(5),
    )
}

fn form(body: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_string(body)
}

#[tokio::test]
async fn request_token_is_a_signed_post_carrying_the_callback() {
    let setup = setup().await;
    Mock::given(method("POST"))
        .and(path("/plugins/servlet/oauth/request-token"))
        .respond_with(setup.jira.verified(form(
            "oauth_token=req%2Btok&oauth_token_secret=req-secret&oauth_callback_confirmed=true",
        )))
        .expect(1)
        .mount(&setup.server)
        .await;

    let token = client(&setup)
        .request_token(CALLBACK)
        .await
        .expect("request token");

    assert_eq!(
        (token.token.as_str(), token.secret.as_str()),
        ("req+tok", "req-secret")
    );
    let signed = setup.jira.verified_requests();
    assert_eq!(signed.len(), 1);
    assert_eq!(
        signed[0].get("oauth_callback").map(String::as_str),
        Some(CALLBACK)
    );
    assert!(!signed[0].contains_key("oauth_token"));
}

#[tokio::test]
async fn access_token_is_signed_with_the_request_token_and_verifier() {
    let setup = setup().await;
    Mock::given(method("POST"))
        .and(path("/plugins/servlet/oauth/access-token"))
        .respond_with(setup.jira.verified(form(
            "oauth_token=acc-tok&oauth_token_secret=acc-secret&oauth_expires_in=157680000",
        )))
        .expect(1)
        .mount(&setup.server)
        .await;

    let token = client(&setup)
        .access_token("req-tok", "req-secret", "verif/1")
        .await
        .expect("access token");

    assert_eq!(
        (token.token.as_str(), token.secret.as_str()),
        ("acc-tok", "acc-secret")
    );
    let signed = &setup.jira.verified_requests()[0];
    assert_eq!(
        signed.get("oauth_token").map(String::as_str),
        Some("req-tok")
    );
    assert_eq!(
        signed.get("oauth_verifier").map(String::as_str),
        Some("verif/1")
    );
}

#[tokio::test]
async fn webhook_registers_on_the_legacy_path() {
    let setup = setup().await;
    Mock::given(method("POST"))
        .and(path("/rest/webhooks/1.0/webhook"))
        .and(body_json(json!({
            "name": "jirasync",
            "url": HOOK_URL,
            "events": ["jira:issue_created", "jira:issue_updated"],
            "excludeBody": false,
        })))
        .respond_with(
            setup
                .jira
                .verified(ResponseTemplate::new(201).set_body_json(json!({
                    "name": "jirasync",
                    "self": format!("{}/rest/webhooks/1.0/webhook/7", setup.server.uri()),
                }))),
        )
        .expect(1)
        .mount(&setup.server)
        .await;

    let registered = client(&setup)
        .register_webhook(WebhookApi::Legacy, HOOK_URL, &ISSUE_EVENTS, None)
        .await
        .expect("registered");

    assert_eq!(registered.api, WebhookApi::Legacy);
    assert_eq!(registered.id.as_deref(), Some("7"));
    let signed = &setup.jira.verified_requests()[0];
    assert_eq!(
        signed.get("oauth_token").map(String::as_str),
        Some("acc-tok")
    );
}

#[tokio::test]
async fn webhook_falls_back_to_the_jira_10_path_on_404() {
    let setup = setup().await;
    Mock::given(method("POST"))
        .and(path("/rest/webhooks/1.0/webhook"))
        .respond_with(setup.jira.verified(ResponseTemplate::new(404)))
        .expect(1)
        .mount(&setup.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/jira-webhook/1.0/webhooks"))
        .and(body_json(WebhookApi::Jira10.body(
            HOOK_URL,
            &ISSUE_EVENTS,
            None,
        )))
        .respond_with(setup.jira.verified(
            ResponseTemplate::new(200).set_body_json(json!({"id": 12, "name": "jirasync"})),
        ))
        .expect(1)
        .mount(&setup.server)
        .await;

    let registered = client(&setup)
        .register_webhook(WebhookApi::Legacy, HOOK_URL, &ISSUE_EVENTS, None)
        .await
        .expect("registered");

    assert_eq!(registered.api, WebhookApi::Jira10);
    assert_eq!(registered.id.as_deref(), Some("12"));
    // Both tries verified, so each carried its own nonce (the fake refuses replays).
    let signed = setup.jira.verified_requests();
    assert_eq!(signed.len(), 2);
    assert_ne!(signed[0].get("oauth_nonce"), signed[1].get("oauth_nonce"));
}

#[tokio::test]
async fn user_lookup_signs_its_query_parameters() {
    let setup = setup().await;
    let username = "jörg o'neil+1";
    Mock::given(method("GET"))
        .and(path("/rest/api/2/user"))
        .and(query_param("username", username))
        .respond_with(
            setup
                .jira
                .verified(ResponseTemplate::new(200).set_body_json(json!({
                    "name": username,
                    "key": "JIRAUSER10100",
                    "emailAddress": "jorg@example.com",
                    "displayName": "Jörg",
                    "active": true,
                }))),
        )
        .mount(&setup.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/2/user"))
        .and(query_param("key", "nobody"))
        .respond_with(setup.jira.verified(ResponseTemplate::new(404)))
        .mount(&setup.server)
        .await;

    let client = client(&setup);
    let user = client
        .get_user(UserRef::Username(username))
        .await
        .expect("lookup")
        .expect("user exists");
    let missing = client
        .get_user(UserRef::Key("nobody"))
        .await
        .expect("lookup");

    assert_eq!(user.email_address.as_deref(), Some("jorg@example.com"));
    assert!(missing.is_none());
    assert_eq!(setup.jira.verified_requests().len(), 2);
}

#[tokio::test]
async fn an_unknown_consumer_key_is_a_permanent_refusal_with_a_hint() {
    let setup = setup().await;
    Mock::given(method("POST"))
        .and(path("/plugins/servlet/oauth/request-token"))
        .respond_with(
            setup
                .jira
                .verified(form("oauth_token=t&oauth_token_secret=s")),
        )
        .mount(&setup.server)
        .await;
    let client = client_with(
        &setup.server.uri(),
        "not-linked",
        KEY,
        Duration::from_secs(5),
    );

    let error = client.request_token(CALLBACK).await.expect_err("refused");

    let JiraError::Refused { problem, hint } = &error else {
        panic!("expected Refused, got {error:?}");
    };
    assert_eq!(problem, "consumer_key_unknown");
    assert!(
        hint.contains("consumer key of the application link"),
        "{hint}"
    );
    assert!(!error.is_transient());
}

#[tokio::test]
async fn a_private_key_that_does_not_match_jira_is_refused_as_signature_invalid() {
    let setup = setup().await;
    Mock::given(method("POST"))
        .and(path("/plugins/servlet/oauth/access-token"))
        .respond_with(
            setup
                .jira
                .verified(form("oauth_token=t&oauth_token_secret=s")),
        )
        .mount(&setup.server)
        .await;
    let client = client_with(
        &setup.server.uri(),
        CONSUMER_KEY,
        OTHER_KEY,
        Duration::from_secs(5),
    );

    let error = client
        .access_token("req-tok", "s", "v")
        .await
        .expect_err("refused");

    assert!(
        matches!(&error, JiraError::Refused { problem, hint }
            if problem == "signature_invalid" && hint.contains("public key")),
        "{error:?}"
    );
    assert!(setup.jira.verified_requests().is_empty());
    assert!(!error.to_string().contains("req-tok"), "{error}");
}

#[tokio::test]
async fn a_rejected_access_token_on_a_rest_call_is_a_refusal() {
    let setup = setup().await;
    Mock::given(method("POST"))
        .and(path("/rest/webhooks/1.0/webhook"))
        .respond_with(ResponseTemplate::new(401).insert_header(
            "WWW-Authenticate",
            r#"OAuth realm="http%3A%2F%2Fjira", oauth_problem="token_rejected""#,
        ))
        .mount(&setup.server)
        .await;

    let error = client(&setup)
        .register_webhook(WebhookApi::Legacy, HOOK_URL, &ISSUE_EVENTS, None)
        .await
        .expect_err("refused");

    assert!(
        matches!(&error, JiraError::Refused { problem, .. } if problem == "token_rejected"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_503_is_transient() {
    let setup = setup().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("maintenance"))
        .mount(&setup.server)
        .await;

    let error = client(&setup)
        .request_token(CALLBACK)
        .await
        .expect_err("unavailable");

    assert!(matches!(error, JiraError::Unavailable { .. }), "{error:?}");
    assert!(error.is_transient());
}

#[tokio::test]
async fn a_hang_longer_than_the_timeout_is_transient() {
    let setup = setup().await;
    Mock::given(method("POST"))
        .respond_with(form("oauth_token=t&oauth_token_secret=s").set_delay(Duration::from_secs(10)))
        .mount(&setup.server)
        .await;
    let client = client_with(
        &setup.server.uri(),
        CONSUMER_KEY,
        KEY,
        Duration::from_millis(300),
    );

    let started = Instant::now();
    let error = client.request_token(CALLBACK).await.expect_err("timed out");

    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(error, JiraError::Unavailable { .. }), "{error:?}");
    assert!(error.is_transient());
}

#[tokio::test]
async fn an_unreachable_jira_is_transient() {
    // A port that was free a moment ago: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    drop(listener);
    let client = client_with(&base, CONSUMER_KEY, KEY, Duration::from_secs(5));

    let error = client
        .request_token(CALLBACK)
        .await
        .expect_err("unreachable");

    assert!(error.is_transient(), "{error:?}");
    assert!(error.to_string().contains(&base), "{error}");
}

#[tokio::test]
async fn the_fake_jira_refuses_a_replayed_nonce() {
    let setup = setup().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/2/myself"))
        .respond_with(setup.jira.verified(ResponseTemplate::new(200)))
        .mount(&setup.server)
        .await;
    let signer = Signer::from_pem(CONSUMER_KEY, KEY).expect("key loads");
    let url =
        reqwest::Url::parse(&format!("{}/rest/api/2/myself", setup.server.uri())).expect("URL");
    let params = OAuthParams {
        token: Some("acc-tok"),
        nonce: Some("same-nonce"),
        ..OAuthParams::default()
    };
    let header = signer
        .authorization_header(&reqwest::Method::GET, &url, &[], &params)
        .expect("signs");

    let http = reqwest::Client::new();
    let mut answers = Vec::new();
    for _ in 0..2 {
        let response = http
            .get(url.clone())
            .header("Authorization", &header)
            .send()
            .await;
        let response = response.expect("fake Jira answers");
        answers.push((
            response.status().as_u16(),
            response.text().await.expect("body"),
        ));
    }

    assert_eq!(answers[0].0, 200);
    assert_eq!(answers[1].0, 401);
    assert!(
        answers[1].1.starts_with("oauth_problem=nonce_used"),
        "{}",
        answers[1].1
    );
}

#[test]
fn keys_in_other_formats_get_an_error_naming_the_accepted_ones() {
    for (name, pem) in [("public key", PUBLIC_KEY), ("not PEM", "ssh-rsa AAAAB3Nza")] {
        let error = Signer::from_pem(CONSUMER_KEY, pem)
            .expect_err(name)
            .to_string();
        assert!(
            error.contains("PKCS#1 (-----BEGIN RSA PRIVATE KEY-----)"),
            "{name}: {error}"
        );
        assert!(
            error.contains("PKCS#8 (-----BEGIN PRIVATE KEY-----)"),
            "{name}: {error}"
        );
    }
    let pkcs8 = include_str!("../fixtures/jira_test_key_pkcs8.pem");
    assert!(Signer::from_pem(CONSUMER_KEY, pkcs8).is_ok());
}
