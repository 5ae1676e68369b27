//! A worker (or not yet) and an integration whose `base_url` is the
//! signature-verifying fake Jira, shared by the hidden-email, status-sync and
//! reconciliation tests: seeding, sending webhooks, waiting for assignments,
//! settling the queue and counting what the fake Jira received.

use std::sync::Arc;
use std::time::Duration;

use jirasync::config::Settings;
use serde_json::{Value, json};
use wiremock::MockServer;

use super::fake_jira::{CONSUMER_KEY, FakeJira};
use super::seed::{self, SECRET, Seed, assignee_changed, jira_user};

/// How long the waits of these tests wait.
pub const WAIT: Duration = Duration::from_secs(20);
/// The `updated` time of sentinel webhooks.
pub const T1: &str = "2024-01-01T10:00:00.000+0000";

pub struct Scene {
    pub settings: Settings,
    pub db: tokio_postgres::Client,
    pub server: MockServer,
    pub jira: Arc<FakeJira>,
    _connection: lapin::Connection,
    pub channel: lapin::Channel,
    pub worker: Option<super::Worker>,
    pub integration: i64,
    pub token: String,
}

impl Scene {
    /// A worker with `concurrency` and an integration whose credentials carry
    /// `access_token` (or none).
    pub async fn start(concurrency: u16, access_token: Option<&str>) -> Self {
        let mut scene = Self::idle(access_token, |settings| {
            settings.worker_concurrency = concurrency;
        })
        .await;
        scene.worker = Some(super::spawn_worker(&scene.settings));
        scene
    }

    /// The integration on migrated settings changed by `configure`; no worker yet.
    pub async fn idle(access_token: Option<&str>, configure: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = super::migrated().await;
        configure(&mut settings);
        let db = super::db(&settings).await;
        let server = MockServer::start().await;
        let seed = Seed { db: &db };
        let (integration, external_id) = seed.integration(json!({"base_url": server.uri()})).await;
        seed.credentials(integration, CONSUMER_KEY, access_token)
            .await;
        let (connection, channel) = super::amqp().await;
        Self {
            token: seed::token(&external_id, SECRET),
            settings,
            db,
            server,
            jira: FakeJira::new(),
            _connection: connection,
            channel,
            worker: None,
            integration,
        }
    }

    pub fn seed(&self) -> Seed<'_> {
        Seed { db: &self.db }
    }

    /// Publishes `body` as a webhook with the integration's token.
    pub async fn send(&self, body: &Value) {
        super::publish_webhook(
            &self.channel,
            &self.settings,
            &self.token,
            body.to_string().as_bytes(),
            None,
        )
        .await;
    }

    /// The requests the fake Jira received on `path`.
    pub async fn requests_to(&self, path: &str) -> Vec<wiremock::Request> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|request| request.url.path() == path)
            .collect()
    }

    pub async fn assignee(&self, group: i64) -> Option<i64> {
        super::assignee(&self.db, group).await
    }

    pub async fn wait_assignee(&self, group: i64, expected: Option<i64>) {
        super::eventually(
            &format!("group {group} is assigned to {expected:?}"),
            WAIT,
            || async move { self.assignee(group).await == expected },
        )
        .await;
    }

    /// Sends a sentinel assignment (email visible) and waits for it: with
    /// concurrency 1, everything sent before it was handled.
    pub async fn settle(&self) {
        let key = format!("SENTINEL-{}", super::unique());
        let org = self.seed().org(self.integration, true, &key).await;
        let email = format!("{key}@example.org");
        let user = self.seed().teammate(&org, &email).await;
        self.send(&assignee_changed(&key, jira_user(&email), T1))
            .await;
        self.wait_assignee(org.group_id, Some(user)).await;
    }

    pub async fn dead_letters(&self) -> u32 {
        super::depth(&self.channel, &super::names(&self.settings).dead()).await
    }

    /// Stops the worker, if any, and deletes the queues and the database.
    pub async fn finish(self) {
        if let Some(worker) = self.worker {
            worker.stop().await;
        }
        super::cleanup(&self.settings).await;
    }
}
