//! The worker keeps each integration's row for a while rather than read it for
//! every webhook (`worker::lookups::integrations`). What an admin changes in the
//! row still acts on the very next webhook: a disabled integration's webhooks
//! are dropped, and a changed webhook secret accepts the new tokens and no
//! longer the old ones, whatever the kept row says.

use crate::common;
use common::Captured;

use common::TestApp;
use common::app::T1;
use common::seed::{SECRET, assignee_changed, jira_user, token};
use serde_json::json;

/// A worker taking one message at a time, beside a second Data Center
/// integration whose row the tests change.
struct Scene {
    /// What this test's thread logged (the worker runs on it).
    logs: Captured,
    _logging: tracing::subscriber::DefaultGuard,
    app: TestApp,
    integration: i64,
    external_id: String,
}

async fn scene() -> Scene {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let logging = tracing::subscriber::set_default(subscriber);
    let app = TestApp::builder().concurrency(1).start().await;
    let (integration, external_id) = app.seed().integration(json!({})).await;
    Scene {
        logs,
        _logging: logging,
        app,
        integration,
        external_id,
    }
}

impl Scene {
    /// Sends the assignment of a new issue `key` of the integration to its
    /// teammate, with a token signed by `secret`; (group, teammate).
    async fn assign(&self, key: &str, secret: &str) -> (i64, i64) {
        let org = self.app.seed().org(self.integration, true, key).await;
        let email = format!("{}@example.org", key.to_lowercase());
        let user = self.app.seed().teammate(&org, &email).await;
        let body = assignee_changed(key, jira_user(&email), T1).to_string();
        let token = token(&self.external_id, secret);
        self.app.send_with(&token, body.as_bytes(), None).await;
        (org.group_id, user)
    }

    /// Sets the integration's webhook secret (no overlap: the old one is no
    /// longer accepted).
    async fn set_secret(&self, secret: &str) {
        self.app
            .db
            .execute(
                "UPDATE integrations SET metadata = metadata || jsonb_build_object('webhook_secret', $2::text)
                  WHERE id = $1",
                &[&self.integration, &secret],
            )
            .await
            .expect("set the webhook secret");
    }

    /// Sets the integration's status (as `integration disable` and `enable` do).
    async fn set_status(&self, status: &str) {
        self.app
            .db
            .execute(
                "UPDATE integrations SET status = $2 WHERE id = $1",
                &[&self.integration, &status],
            )
            .await
            .expect("set the status");
    }

    /// How many messages the worker handled with `outcome`.
    fn handled(&self, outcome: &str) -> usize {
        let needle = format!("outcome=\"{outcome}\"");
        self.logs.text().matches(&needle).count()
    }
}

#[tokio::test]
async fn a_disabled_integration_s_next_webhooks_are_dropped_though_its_row_was_kept() {
    let s = scene().await;
    // Applied: the worker now keeps the integration's row.
    let (group, user) = s.assign("KEPT-1", SECRET).await;
    s.app.wait_assignee(group, Some(user)).await;

    s.set_status("disabled").await;
    // A webhook that changes nothing (it writes nothing either way): dropped,
    // not counted as nothing to sync.
    let nothing = json!({"webhookEvent": "jira:issue_updated", "issue": {"key": "KEPT-1"},
                         "changelog": {"items": [{"field": "summary"}]}})
    .to_string();
    let token = token(&s.external_id, SECRET);
    s.app.send_with(&token, nothing.as_bytes(), None).await;
    s.app.settle().await;
    assert_eq!(s.handled("invalid_token"), 1, "{}", s.logs.text());
    // Kept again, then disabled again: a change to apply is dropped.
    s.set_status("active").await;
    let (group, user) = s.assign("KEPT-2", SECRET).await;
    s.app.wait_assignee(group, Some(user)).await;
    s.set_status("disabled").await;
    let (after, _) = s.assign("KEPT-3", SECRET).await;
    s.app.settle().await;

    assert_eq!(s.app.assignee(after).await, None, "{}", s.logs.text());
    assert_eq!(s.handled("invalid_token"), 2, "{}", s.logs.text());
    assert_eq!(s.handled("nothing_to_sync"), 0, "{}", s.logs.text());
    assert_eq!(s.app.dead_letters().await, 0);

    // Enabled again: taken again at once.
    s.set_status("active").await;
    let (group, user) = s.assign("KEPT-4", SECRET).await;
    s.app.wait_assignee(group, Some(user)).await;
    s.app.finish().await;
}

#[tokio::test]
async fn a_changed_webhook_secret_acts_on_the_next_webhook_though_the_row_was_kept() {
    let s = scene().await;
    let (first, second) = ("first-webhook-secret", "second-webhook-secret");
    s.set_secret(first).await;
    let (group, user) = s.assign("SECRET-1", first).await;
    s.app.wait_assignee(group, Some(user)).await;

    // The kept row would reject the new secret's token: it is read again.
    s.set_secret(second).await;
    let (group, user) = s.assign("SECRET-2", second).await;
    s.app.wait_assignee(group, Some(user)).await;

    // The kept row (now the second secret's) would accept its token: the
    // batch finds the row changed, and the webhook is rejected.
    s.set_secret(first).await;
    let (stale, _) = s.assign("SECRET-3", second).await;
    s.app.settle().await;
    assert_eq!(s.app.assignee(stale).await, None, "{}", s.logs.text());
    assert_eq!(s.handled("invalid_token"), 1, "{}", s.logs.text());
    assert_eq!(s.app.dead_letters().await, 0);
    s.app.finish().await;
}
