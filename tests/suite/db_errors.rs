//! Database errors say what failed (docs/reference.md §4): a dead letter's
//! `x-jirasync-error` and a failed OAuth session carry the SQLSTATE and Postgres's
//! message, and point at Postgres, not at Jira. A real Postgres, a real schema
//! broken on purpose (a table renamed away), the real worker.

use std::time::Duration;

use jirasync::commands::oauth;
use jirasync::queue::message::{ATTEMPTS, ERROR, header_int, header_str};

use crate::common::app::{T1, WAIT};
use crate::common::fake_oauth2::{
    CLIENT_SECRET, FakeOAuth2, SecretFile, mount_jira, oauth2_start_args,
};
use crate::common::seed::{assignee_changed, jira_user};
use crate::common::{self, TestApp};

#[tokio::test]
async fn a_webhook_failing_on_a_database_error_is_dead_lettered_with_its_sqlstate() {
    let app = TestApp::builder().concurrency(1).start().await;
    let org = app.seed().org(app.integration, true, "DB-1").await;
    app.seed().teammate(&org, "db@example.org").await;
    app.db
        .batch_execute("ALTER TABLE group_assignees RENAME TO group_assignees_gone")
        .await
        .expect("break the schema");

    app.send(&assignee_changed("DB-1", jira_user("db@example.org"), T1))
        .await;
    let dead = common::get_one(&app.channel, &common::names(&app.settings).dead(), WAIT)
        .await
        .expect("dead-lettered");
    let error = header_str(&dead.delivery.properties, ERROR).expect("the reason");
    assert!(error.contains("database error 42P01"), "{error}");
    assert!(error.contains("group_assignees"), "{error}");
    assert!(
        !error.contains("db error"),
        "not tokio-postgres's bare Display: {error}"
    );
    assert_eq!(
        header_int(&dead.delivery.properties, ATTEMPTS),
        Some(1),
        "a missing table is not retried"
    );
    app.finish().await;
}

/// The error of session `id` once it has failed.
async fn failed_with(app: &TestApp, id: uuid::Uuid) -> Option<Option<String>> {
    let row = app
        .db
        .query_one(
            "SELECT state, error FROM oauth_sessions WHERE id = $1",
            &[&id],
        )
        .await
        .expect("session");
    (row.get::<_, String>(0) == "failed").then(|| row.get(1))
}

#[tokio::test]
async fn an_oauth_job_failing_on_the_database_points_at_postgres_not_jira() {
    let app = TestApp::builder().concurrency(1).ingress().start().await;
    let fake = FakeOAuth2::new(Duration::from_secs(300));
    mount_jira(&app, &fake, 10).await;
    let secret = SecretFile::new(CLIENT_SECRET);
    app.db
        .batch_execute("ALTER TABLE integration_credentials RENAME TO credentials_gone")
        .await
        .expect("break the schema");

    let started = oauth::start(&oauth2_start_args(&app, &secret))
        .await
        .expect("oauth start");
    let authorized = fake.authorize(started.authorize_url.as_deref().expect("URL"));
    let callback = app.ingress().url(&format!(
        "/extensions/jira-server/oauth2/callback?code={}&state={}",
        authorized.code, authorized.state
    ));
    assert_eq!(reqwest::get(callback).await.expect("GET").status(), 200);

    let session = started.session_id;
    common::eventually("the session failed", WAIT, || async {
        failed_with(&app, session).await.is_some()
    })
    .await;
    let error = failed_with(&app, session)
        .await
        .flatten()
        .expect("an error");
    assert!(error.contains("database error 42P01"), "{error}");
    assert!(
        error.contains("check that Postgres is reachable"),
        "{error}"
    );
    assert!(!error.contains("Jira is reachable"), "{error}");
    app.finish().await;
}
