//! Secrets stay secret: every log line of an end-to-end run (ingress and worker;
//! a valid webhook, a rejected token, malformed bodies, dead letters) is captured
//! by a global subscriber (the only one this binary installs) and searched for
//! tokens, webhook secrets and emails. Also `Debug` of the settings and integrations.

use crate::common;
use common::Captured;

use std::time::Duration;

use common::seed::{self, Seed, assignee_changed, jira_user};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);
const T1: &str = "2024-01-01T10:00:00.000+0000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_secret_or_email_appears_in_the_logs_of_an_end_to_end_run() {
    let logs = Captured::default();
    // Everything of ours down to trace; the libraries at the production default.
    tracing_subscriber::fmt()
        .with_env_filter("info,jirasync=trace,tower_http=trace")
        .with_ansi(false)
        .with_writer(logs.clone())
        .init();

    let id = common::unique();
    let secret = format!("webhook-secret-{id}");
    let wrong_secret = format!("wrong-secret-{id}");
    let jane = format!("jane.{id}@example.org");
    let nobody = format!("nobody.{id}@example.org");
    let hidden = format!("in-a-dead-letter.{id}@example.org");

    let mut settings = common::migrated().await;
    settings.worker.concurrency = 1;
    let db = common::db(&settings).await;
    let seed = Seed { db: &db };
    let (integration, external_id) = seed.integration(json!({ "webhook_secret": secret })).await;
    let org = seed.org(integration, true, "SECRET-1").await;
    let jane_id = seed.teammate(&org, &jane).await;
    let ingress = common::spawn_ingress(&settings, true).await;
    let worker = common::spawn_worker(&settings);
    let client = reqwest::Client::new();
    let token = seed::token(&external_id, &secret);
    let forged = seed::token(&external_id, &wrong_secret);
    let post = |token: &str, body: String| {
        client
            .post(ingress.url(&common::webhook_path(token)))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let sends = [
        (&forged, assignee_changed("SECRET-1", jira_user(&jane), T1).to_string()),
        (&token, assignee_changed("SECRET-1", jira_user(&nobody), T1).to_string()),
        (&token, format!("{{not json {hidden}")),
        (
            &token,
            json!({"issue": {"key": "SECRET-1", "email": hidden}, "changelog": {"items": [{"field": "assignee"}]}})
                .to_string(),
        ),
        (&token, assignee_changed("SECRET-1", jira_user(&jane), T1).to_string()),
    ];
    for (token, body) in sends {
        let response = post(token, body).await.expect("POST");
        assert_eq!(response.status(), 202);
    }
    common::eventually("Jane is assigned", WAIT, || {
        let db = &db;
        async move { common::assignee(db, org.group_id).await == Some(jane_id) }
    })
    .await;
    let (_connection, channel) = common::amqp().await;
    let dead = common::names(&settings).dead();
    common::eventually("both malformed bodies are dead-lettered", WAIT, || {
        let channel = &channel;
        let dead = &dead;
        async move { common::depth(channel, dead).await == 2 }
    })
    .await;
    worker.stop().await;
    ingress.stop().await;

    let text = logs.text();
    for expected in [
        "webhook rejected",
        "dead-lettering",
        "assignee-not-found",
        "message handled",
    ] {
        assert!(
            text.contains(expected),
            "the run logged {expected:?}:\n{text}"
        );
    }
    let signature = |t: &str| t.rsplit('.').next().expect("three parts").to_owned();
    let forbidden = [
        ("the token", token.clone()),
        ("the token's signature", signature(&token)),
        ("the forged token", forged.clone()),
        ("the forged token's signature", signature(&forged)),
        ("the webhook secret", secret.clone()),
        ("the forger's secret", wrong_secret.clone()),
        ("the assignee's email", jane.to_lowercase()),
        ("an unknown email", nobody.to_lowercase()),
        ("an email in a dead letter", hidden.to_lowercase()),
    ];
    let lower = text.to_lowercase();
    for (what, value) in &forbidden {
        assert!(
            !lower.contains(&value.to_lowercase()),
            "{what} appears in the logs:\n{text}"
        );
    }

    // Debug of what holds secrets.
    let mut with_passwords = settings.clone();
    with_passwords.database.url = format!("postgres://app:db-{id}@127.0.0.1:5432/x");
    with_passwords.broker.url = format!("amqp://app:mq-{id}@127.0.0.1:5672/%2f");
    let debug = format!("{with_passwords:?}");
    assert!(!debug.contains(&format!("db-{id}")), "{debug}");
    assert!(!debug.contains(&format!("mq-{id}")), "{debug}");
    let integration = jirasync::integration::Integration {
        provider: jirasync::integration::Provider::Server,
        id: 1,
        external_id: external_id.clone(),
        status: "active".into(),
        metadata: serde_json::from_value(
            json!({"webhook_secret": secret, "webhook_hmac_secret": wrong_secret}),
        )
        .expect("metadata reads"),
    };
    let debug = format!("{integration:?}");
    assert!(
        !debug.contains(&secret) && !debug.contains(&wrong_secret),
        "{debug}"
    );
}
