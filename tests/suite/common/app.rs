//! The test app most tests run against: a migrated database and topology of the
//! test's own, a fake Jira that verifies every OAuth signature, one seeded
//! `jira_server` integration whose `base_url` is that fake, and the worker (and,
//! when asked, the ingress) in this process. Everything goes away when it drops,
//! also when the test fails (see [`Isolated`]).

use std::sync::Arc;
use std::time::Duration;

use jirasync::config::Settings;
use serde_json::{Value, json};
use wiremock::MockServer;

use super::fake_jira::{CONSUMER_KEY, FakeJira};
use super::seed::{self, SECRET, Seed, assignee_changed, jira_user};
use super::{Ingress, Isolated, Worker};

/// How long the waits of these tests wait.
pub const WAIT: Duration = Duration::from_secs(20);
/// The `updated` time of sentinel webhooks.
pub const T1: &str = "2024-01-01T10:00:00.000+0000";

/// One test's world. Fields drop in order: the parts it runs stop before the
/// database and queues they use are removed.
pub struct TestApp {
    pub db: tokio_postgres::Client,
    pub server: MockServer,
    pub jira: Arc<FakeJira>,
    _connection: lapin::Connection,
    pub channel: lapin::Channel,
    pub integration: i64,
    pub external_id: String,
    pub token: String,
    ingress: Option<Ingress>,
    pub worker: Option<Worker>,
    /// Last: dropping it removes the database and the queues.
    pub settings: Isolated,
}

/// A change to the settings before the app starts.
type Configure = Box<dyn FnOnce(&mut Settings) + Send>;

/// What a [`TestApp`] starts with.
pub struct Builder {
    concurrency: u16,
    credentials: Option<Option<String>>,
    ingress: bool,
    worker: bool,
    configure: Option<Configure>,
}

impl TestApp {
    /// A worker with 16 tasks, no ingress, no credentials for the integration.
    pub fn builder() -> Builder {
        Builder {
            concurrency: 16,
            credentials: None,
            ingress: false,
            worker: true,
            configure: None,
        }
    }

    /// The ingress; panics when the builder did not ask for one.
    pub fn ingress(&self) -> &Ingress {
        self.ingress.as_ref().expect("the test app runs an ingress")
    }

    /// A seeder over the test database.
    pub fn seed(&self) -> Seed<'_> {
        Seed { db: &self.db }
    }

    /// Publishes `body` as a webhook with the integration's token.
    pub async fn send(&self, body: &Value) {
        self.send_with(&self.token, body.to_string().as_bytes(), None)
            .await;
    }

    /// Publishes a webhook with any token, body and `x-hub-signature`.
    pub async fn send_with(&self, token: &str, body: &[u8], signature: Option<&str>) {
        super::publish_webhook(&self.channel, &self.settings, token, body, signature).await;
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

    /// The user assigned to `group`.
    pub async fn assignee(&self, group: i64) -> Option<i64> {
        super::assignee(&self.db, group).await
    }

    /// Waits until `group` is assigned to `expected`.
    pub async fn wait_assignee(&self, group: i64, expected: Option<i64>) {
        super::eventually(
            &format!("group {group} is assigned to {expected:?}"),
            WAIT,
            || async move { self.assignee(group).await == expected },
        )
        .await;
    }

    /// The group's activities as (type, data), oldest first.
    pub async fn activities(&self, group: i64) -> Vec<(String, Value)> {
        super::activities(&self.db, group).await
    }

    /// Assigns `user` to `group`, as the application writes its tables.
    pub async fn host_assigns(&self, group: i64, project: i64, user: i64) {
        self.db
            .execute(
                "INSERT INTO group_assignees (group_id, project_id, user_id) VALUES ($1, $2, $3)
                 ON CONFLICT (group_id) DO UPDATE SET user_id = EXCLUDED.user_id, team_id = NULL",
                &[&group, &project, &user],
            )
            .await
            .expect("host assigns");
    }

    /// Turns on pushing the organization's assignments to Jira
    /// (`sync_forward_assignment`): its groups' changes are captured.
    pub async fn forward_assignments(&self, organization_id: i64) {
        self.db
            .execute(
                r#"UPDATE organization_integrations
                    SET config = config || '{"sync_forward_assignment": true}'
                  WHERE organization_id = $1"#,
                &[&organization_id],
            )
            .await
            .expect("forward assignments");
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

    /// Messages in `P.dead`.
    pub async fn dead_letters(&self) -> u32 {
        super::depth(&self.channel, &super::names(&self.settings).dead()).await
    }

    /// The user name of user `user`.
    pub async fn username(&self, user: i64) -> String {
        self.db
            .query_one("SELECT username FROM users WHERE id = $1", &[&user])
            .await
            .expect("user")
            .get(0)
    }

    /// Stops the worker and the ingress gracefully; dropping removes the rest.
    pub async fn finish(mut self) {
        if let Some(worker) = self.worker.take() {
            worker.stop().await;
        }
        if let Some(ingress) = self.ingress.take() {
            ingress.stop().await;
        }
    }
}

impl Builder {
    /// Messages in flight in the worker.
    pub fn concurrency(mut self, concurrency: u16) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Stores credentials of the fake Jira's application link for the
    /// integration, with `access_token` or none.
    pub fn credentials(mut self, access_token: Option<&str>) -> Self {
        self.credentials = Some(access_token.map(str::to_owned));
        self
    }

    /// Also runs the ingress, and makes it the public URL the worker hands Jira.
    pub fn ingress(mut self) -> Self {
        self.ingress = true;
        self
    }

    /// Starts no worker (the test starts its own with `common::spawn_worker`).
    pub fn no_worker(mut self) -> Self {
        self.worker = false;
        self
    }

    /// Seals stored secrets with `key` (`JIRASYNC_SECRET_KEY`).
    pub fn secret_key(self, key: &'static str) -> Self {
        self.configure(move |settings| settings.database.secret_key = Some(key.to_owned()))
    }

    /// Changes the settings before anything starts.
    pub fn configure(mut self, configure: impl FnOnce(&mut Settings) + Send + 'static) -> Self {
        self.configure = Some(Box::new(configure));
        self
    }

    /// Migrates, seeds the integration, starts what was asked for.
    pub async fn start(self) -> TestApp {
        let mut settings = super::settings();
        settings.worker.concurrency = self.concurrency;
        if let Some(configure) = self.configure {
            configure(&mut settings);
        }
        // Configured first: the topology declared is the one torn down.
        super::migrate(&settings, true)
            .await
            .expect("migrate a fresh database");
        let ingress = match self.ingress {
            true => {
                let ingress = super::spawn_ingress(&settings, true).await;
                settings.public.url = ingress.url("");
                Some(ingress)
            }
            false => None,
        };
        let db = super::db(&settings).await;
        let server = MockServer::start().await;
        let seed = Seed { db: &db };
        let (integration, external_id) = seed.integration(json!({"base_url": server.uri()})).await;
        if let Some(access_token) = &self.credentials {
            seed.credentials(integration, CONSUMER_KEY, access_token.as_deref())
                .await;
        }
        let (connection, channel) = super::amqp().await;
        let worker = self.worker.then(|| super::spawn_worker(&settings));
        TestApp {
            token: seed::token(&external_id, SECRET),
            db,
            server,
            jira: FakeJira::new(),
            _connection: connection,
            channel,
            integration,
            external_id,
            ingress,
            worker,
            settings,
        }
    }
}
