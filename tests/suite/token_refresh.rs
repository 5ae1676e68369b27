//! Keeping an OAuth 2.0 token fresh (docs/reference.md §7) against the real
//! Postgres and RabbitMQ, real `jirasync worker` processes and the fake Jira Data
//! Center authorization server (`common/fake_oauth2.rs`), which rotates refresh
//! tokens and refuses one used twice: many workers finding the token expired at
//! once refresh it once; a token Jira refuses before its expiry is refreshed and
//! the call retried; a revoked refresh token leaves the integration
//! `needs_reauth` — lookups dead-lettered with what to do, webhooks that need no
//! Jira still applied.

use std::sync::Arc;
use std::time::Duration;

use jirasync::queue::message::{ERROR, header_str};
use serde_json::{Value, json};

use crate::common::app::{T1, WAIT};
use crate::common::fake_oauth2::{CLIENT_SECRET, FakeOAuth2, mount_token_endpoint, mount_user};
use crate::common::private_pg::free_port;
use crate::common::seed::{assignee_changed, jira_user};
use crate::common::{self, Process, TestApp};

/// Users whose webhooks arrive at once, each looked up in Jira.
const BURST: usize = 20;

/// Jira's assignee object with the email hidden.
fn hidden(name: &str) -> Value {
    json!({"name": name, "key": format!("JIRAUSER-{name}"), "displayName": name, "active": true})
}

/// An app (no worker of its own) whose integration holds OAuth 2.0 tokens of
/// `fake` that expired a second ago (at Jira and as stored), and the fake's
/// token endpoint.
async fn expired_oauth2(fake: &Arc<FakeOAuth2>) -> (TestApp, (String, String)) {
    let app = TestApp::builder().no_worker().start().await;
    mount_token_endpoint(&app, fake).await;
    let tokens = fake.grant();
    fake.expire_access_tokens();
    app.seed()
        .oauth2_credentials(app.integration, &tokens, -1.0)
        .await;
    (app, tokens)
}

/// `jirasync worker` on the app's settings with 8 tasks (9 database
/// connections), its metrics on a port of its own.
fn worker(app: &TestApp) -> (Process, u16) {
    let port = free_port();
    let listen = ("JIRASYNC_METRICS_LISTEN", format!("127.0.0.1:{port}"));
    let tasks = ("JIRASYNC_WORKER_CONCURRENCY", "8".to_owned());
    (
        common::process("worker", &app.settings, &[listen, tasks]),
        port,
    )
}

/// The worker's `/metrics` lines starting with `name`, once it answers.
async fn metric_lines(port: u16, name: &str) -> Vec<String> {
    let text = common::metrics_text(port).await;
    text.lines()
        .filter(|line| line.starts_with(name))
        .map(str::to_owned)
        .collect()
}

/// The stored (access token, refresh token, expires in the future).
async fn stored_tokens(app: &TestApp) -> (String, String, bool) {
    let row = app
        .db
        .query_one(
            "SELECT access_token, refresh_token, access_token_expires_at > now()
               FROM integration_credentials WHERE integration_id = $1",
            &[&app.integration],
        )
        .await
        .expect("credentials");
    (row.get(0), row.get(1), row.get(2))
}

/// Sends `BURST` webhooks of users whose emails Jira hides (round `round`).
async fn burst(app: &TestApp, fake: &Arc<FakeOAuth2>, round: usize) -> Vec<(i64, i64)> {
    let mut groups = Vec::with_capacity(BURST);
    for n in 0..BURST {
        let (key, name) = (format!("BURST-{round}-{n}"), format!("burst{round}x{n}"));
        let org = app.seed().org(app.integration, true, &key).await;
        let email = format!("{name}@example.org");
        let user = app.seed().teammate(&org, &email).await;
        mount_user(app, fake, &name, &email).await;
        app.send(&assignee_changed(&key, hidden(&name), T1)).await;
        groups.push((org.group_id, user));
    }
    groups
}

#[tokio::test]
async fn two_workers_under_bursts_right_after_expiry_refresh_once_per_expiry() {
    let fake = FakeOAuth2::new(Duration::from_secs(300));
    let (app, seeded) = expired_oauth2(&fake).await;
    let first = burst(&app, &fake, 1).await;
    // Both workers start on a full queue: their tasks find the token expired together.
    let _workers = [worker(&app), worker(&app)];
    for (group, user) in first {
        app.wait_assignee(group, Some(user)).await;
    }
    assert_eq!(
        fake.counts().1,
        1,
        "one refresh for both workers and every task"
    );
    let (access, refresh, live) = stored_tokens(&app).await;
    assert_ne!(access, seeded.0, "the new access token is stored");
    assert_ne!(refresh, seeded.1, "the rotated refresh token is stored");
    assert!(live, "with its new expiry");

    // The refreshed token expires in turn, at Jira and as stored (made so: jirasync
    // believes no lifetime under a minute, docs/reference.md §6.2); a second burst
    // lands just after.
    fake.expire_access_tokens();
    app.db
        .execute(
            "UPDATE integration_credentials
                SET access_token_expires_at = now() - interval '1 second'
              WHERE integration_id = $1",
            &[&app.integration],
        )
        .await
        .expect("expire the stored token");
    assert!(!stored_tokens(&app).await.2);
    for (group, user) in burst(&app, &fake, 2).await {
        app.wait_assignee(group, Some(user)).await;
    }

    let (exchanges, refreshes, invalid_grants, rejected) = fake.counts();
    assert_eq!(refreshes, 2, "one refresh per expiry");
    assert_eq!(invalid_grants, 0, "no refresh token was used twice");
    assert_eq!(rejected, 0, "no call went out with an expired token");
    assert_eq!(exchanges, 0);
    assert_eq!(app.dead_letters().await, 0);
}

#[tokio::test]
async fn a_token_jira_refuses_before_its_stored_expiry_is_refreshed_and_the_lookup_retried() {
    let fake = FakeOAuth2::new(Duration::from_secs(300));
    let app = TestApp::builder().concurrency(1).start().await;
    mount_token_endpoint(&app, &fake).await;
    let tokens = fake.grant();
    app.seed()
        .oauth2_credentials(app.integration, &tokens, 3600.0)
        .await;
    // Revoked at Jira while the stored expiry says it has an hour left.
    fake.expire_access_tokens();
    let org = app.seed().org(app.integration, true, "REVOKED-1").await;
    let user = app.seed().teammate(&org, "late@example.org").await;
    mount_user(&app, &fake, "late", "late@example.org").await;

    app.send(&assignee_changed("REVOKED-1", hidden("late"), T1))
        .await;
    app.wait_assignee(org.group_id, Some(user)).await;

    let (_, refreshes, invalid_grants, rejected) = fake.counts();
    assert_eq!(rejected, 1, "the first try carried the refused token");
    assert_eq!(refreshes, 1, "refreshed once on the 401");
    assert_eq!(invalid_grants, 0);
    assert_ne!(stored_tokens(&app).await.0, tokens.0);
    assert_eq!(app.dead_letters().await, 0);
    app.finish().await;
}

#[tokio::test]
async fn a_revoked_refresh_token_leaves_the_integration_needs_reauth_and_loses_nothing() {
    let fake = FakeOAuth2::new(Duration::from_secs(300));
    let (app, tokens) = expired_oauth2(&fake).await;
    fake.revoke_refresh_tokens();
    let hidden_org = app.seed().org(app.integration, true, "LOCKED-1").await;
    app.seed().teammate(&hidden_org, "locked@example.org").await;
    mount_user(&app, &fake, "locked", "locked@example.org").await;
    let visible_org = app.seed().org(app.integration, true, "OPEN-1").await;
    let visible = app.seed().teammate(&visible_org, "open@example.org").await;
    let (_worker, metrics) = worker(&app);

    app.send(&assignee_changed("LOCKED-1", hidden("locked"), T1))
        .await;
    let names = common::names(&app.settings);
    let dead = common::get_one(&app.channel, &names.dead(), WAIT)
        .await
        .expect("the lookup that needs Jira is dead-lettered");
    let error = header_str(&dead.delivery.properties, ERROR).expect("the reason");
    assert!(error.contains("needs to be connected again"), "{error}");
    assert!(error.contains("invalid_grant"), "{error}");
    assert!(error.contains("jirasync dlq replay"), "{error}");

    // A webhook whose assignee shows the email needs no Jira: applied.
    app.send(&assignee_changed(
        "OPEN-1",
        jira_user("open@example.org"),
        T1,
    ))
    .await;
    app.wait_assignee(visible_org.group_id, Some(visible)).await;
    // A second lookup does not try the dead refresh token again.
    app.send(&assignee_changed("LOCKED-1", hidden("locked"), T1))
        .await;
    assert!(
        common::get_one(&app.channel, &names.dead(), WAIT)
            .await
            .is_some()
    );
    assert_eq!(
        fake.counts().2,
        1,
        "invalid_grant once, then no more refreshes"
    );

    let integration = app.integration.to_string();
    let status = common::output(
        &["integration", "status", &integration, "--json"],
        &app.settings,
    );
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let text = String::from_utf8_lossy(&status.stdout);
    let summary: Value = serde_json::from_str(&text).expect("status prints JSON");
    assert_eq!(summary["state"], "needs_reauth");
    assert_eq!(summary["auth_method"], "oauth2");
    assert_eq!(summary["can_call_jira"], false);
    assert!(
        summary["auth_error"]
            .as_str()
            .is_some_and(|e| e.contains("invalid_grant")),
        "{summary}"
    );
    for secret in [tokens.0.as_str(), &tokens.1, CLIENT_SECRET] {
        assert!(!text.contains(secret), "status shows no secret");
    }

    assert_eq!(
        metric_lines(metrics, "jirasync_needs_reauth_total").await,
        ["jirasync_needs_reauth_total 1"]
    );
    let refreshes = metric_lines(metrics, "jirasync_token_refreshes_total").await;
    assert_eq!(
        refreshes,
        [r#"jirasync_token_refreshes_total{outcome="invalid_grant"} 1"#]
    );
}
