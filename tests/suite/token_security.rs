//! Token security against the real worker, RabbitMQ and Postgres (docs/reference.md §5.1):
//! forged, confused, tampered, expired, audience-bound and oversized tokens are all
//! dropped — nothing written, nothing dead-lettered. Like tests/worker.rs, the
//! worker runs with concurrency 1 and a sentinel webhook proves the rest was handled.

use crate::common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::seed::{self, SECRET, Seed, assignee_changed, jira_user};
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
const T1: &str = "2024-01-01T10:00:00.000+0000";

/// `header.claims.signature` with an HMAC-SHA256 signature under `secret`,
/// whatever `alg` the header claims.
fn hs256_under_any_header(header: &Value, claims: &Value, secret: &str) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// `token` with its claims replaced and its original signature kept.
fn with_claims(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    )
}

async fn assignee_rows(db: &tokio_postgres::Client) -> i64 {
    db.query_one("SELECT count(*) FROM group_assignees", &[])
        .await
        .expect("group_assignees")
        .get(0)
}

async fn activity_rows(db: &tokio_postgres::Client) -> i64 {
    db.query_one("SELECT count(*) FROM activities", &[])
        .await
        .expect("activities")
        .get(0)
}

#[tokio::test]
async fn forged_confused_tampered_expired_and_oversized_tokens_are_dropped_without_a_trace() {
    let mut settings = common::migrated().await;
    settings.worker.concurrency = 1;
    let db = common::db(&settings).await;
    let seed = Seed { db: &db };
    let (integration, external_id) = seed.integration(json!({})).await;
    let (_other, other_external_id) = seed
        .integration(json!({"webhook_secret": "the-other-integrations-secret"}))
        .await;
    let org = seed.org(integration, true, "SEC-1").await;
    seed.teammate(&org, "victim@example.org").await;
    let (_connection, channel) = common::amqp().await;
    let worker = common::spawn_worker(&settings);

    let id = json!({ "id": external_id });
    let valid = seed::token(&external_id, SECRET);
    let now = jsonwebtoken::get_current_timestamp();
    let tokens: Vec<(&str, String)> = vec![
        (
            "alg none, no signature",
            format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
                URL_SAFE_NO_PAD.encode(id.to_string())
            ),
        ),
        (
            "alg None with a valid HS256 signature",
            hs256_under_any_header(&json!({"alg": "None", "typ": "JWT"}), &id, SECRET),
        ),
        (
            "HS512 with the secret",
            seed::token_with(Algorithm::HS512, id.clone(), SECRET),
        ),
        (
            "HS384 with the secret",
            seed::token_with(Algorithm::HS384, id.clone(), SECRET),
        ),
        (
            "RS256 header, HMAC-SHA256 with the secret as key",
            hs256_under_any_header(&json!({"alg": "RS256", "typ": "JWT"}), &id, SECRET),
        ),
        (
            "signed with another integration's secret, naming this one",
            seed::token(&external_id, "the-other-integrations-secret"),
        ),
        (
            "signed with this secret, naming the other integration",
            seed::token(&other_external_id, SECRET),
        ),
        (
            "tampered claims, original signature",
            with_claims(&valid, &json!({"id": external_id, "admin": true})),
        ),
        (
            "tampered id, original signature",
            with_claims(&valid, &json!({ "id": other_external_id })),
        ),
        (
            "expired exp",
            seed::token_with(
                Algorithm::HS256,
                json!({"id": external_id, "exp": now - 3_600}),
                SECRET,
            ),
        ),
        (
            "aud present",
            seed::token_with(
                Algorithm::HS256,
                json!({"id": external_id, "aud": "jirasync"}),
                SECRET,
            ),
        ),
        (
            "aud as a list",
            seed::token_with(
                Algorithm::HS256,
                json!({"id": external_id, "aud": ["jirasync"]}),
                SECRET,
            ),
        ),
        (
            "signature stripped",
            format!("{}.", valid.rsplit_once('.').expect("three parts").0),
        ),
        (
            // AMQP carries headers in one frame (frame_max 128 KiB; RabbitMQ closes the
            // connection with frame_too_large), so a 4 MB token
            // cannot reach the queue at all; the largest that can is refused by length.
            "about 107 KB, validly signed",
            seed::token_with(
                Algorithm::HS256,
                json!({"id": external_id, "pad": "x".repeat(80_000)}),
                SECRET,
            ),
        ),
    ];
    let body = assignee_changed("SEC-1", jira_user("victim@example.org"), T1).to_string();
    for (_, token) in &tokens {
        common::publish_webhook(&channel, &settings, token, body.as_bytes(), None).await;
    }

    // The sentinel: a valid webhook behind all of them.
    let sentinel = seed.org(integration, true, "SEC-SENTINEL").await;
    let user = seed.teammate(&sentinel, "sentinel@example.org").await;
    let sentinel_body =
        assignee_changed("SEC-SENTINEL", jira_user("sentinel@example.org"), T1).to_string();
    common::publish_webhook(&channel, &settings, &valid, sentinel_body.as_bytes(), None).await;
    common::eventually("the sentinel is applied", WAIT, || {
        let db = &db;
        async move { common::assignee(db, sentinel.group_id).await == Some(user) }
    })
    .await;

    assert_eq!(assignee_rows(&db).await, 1, "only the sentinel assigned");
    assert_eq!(activity_rows(&db).await, 1, "only the sentinel's activity");
    let names = common::names(&settings);
    assert_eq!(
        common::depth(&channel, &names.dead()).await,
        0,
        "none dead-lettered"
    );
    assert_eq!(
        common::depth(&channel, &names.webhooks()).await,
        0,
        "none left"
    );
    worker.stop().await;
}

#[tokio::test]
async fn a_four_megabyte_token_is_refused_at_the_ingress_and_nothing_is_published() {
    let settings = common::migrated().await;
    let ingress = common::spawn_ingress(&settings, true).await;
    let (_connection, channel) = common::amqp().await;
    let token = seed::token_with(
        Algorithm::HS256,
        json!({"id": "jira.example.org:x", "pad": "x".repeat(3_000_000)}),
        SECRET,
    );
    assert!(token.len() > 4_000_000);
    let response = reqwest::Client::new()
        .post(ingress.url(&common::webhook_path(&token)))
        .body("{}")
        .send()
        .await;
    // hyper refuses a request head this large before routing (431), or drops the
    // connection; either way it is never a 202.
    if let Ok(response) = response {
        assert!(
            response.status().is_client_error(),
            "status {}",
            response.status()
        );
    }
    // The ingress still works, and published nothing.
    let small = seed::token("jira.example.org:x", SECRET);
    let ok = reqwest::Client::new()
        .post(ingress.url(&common::webhook_path(&small)))
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(ok.status(), 202);
    let names = common::names(&settings);
    assert_eq!(
        common::depth(&channel, &names.webhooks()).await,
        1,
        "only the small one"
    );
    ingress.stop().await;
}
