//! Shared test harness: fresh database and queue prefix per test, the ingress on
//! port 0, AMQP helpers, a TCP proxy that can cut the broker, and polling waits.
#![allow(dead_code)]

#[path = "../fixtures/fake_jira.rs"]
pub mod fake_jira;
pub mod jira_scene;
pub mod private_broker;
pub mod private_pg;
pub mod proxy;
pub mod seed;
pub mod webhook_load;

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use jirasync::config::Settings;
use jirasync::queue::Names;
use jirasync::shutdown::Shutdown;
use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Channel, Connection, ConnectionProperties};

/// The broker tests use (AMQP_URL overrides).
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// The Postgres server tests use, without a database name (TEST_POSTGRES_URL overrides).
pub fn postgres_server() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A unique short id for names.
pub fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// Settings with a unique queue prefix and a unique (not yet created) database.
pub fn settings() -> Settings {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let id = unique();
    let mut settings = Settings::defaults();
    settings.amqp_url = amqp_url();
    settings.database_url = format!("{}/jst_{id}", postgres_server());
    settings.queue_prefix = format!("jst_{id}");
    settings.listen = "127.0.0.1:0".parse().expect("valid address");
    // Two tiers keep each test's broker footprint small (seven quorum queues).
    settings.retry_delays = "1s,2s".parse().expect("valid delays");
    settings
}

/// Settings whose database is migrated and whose topology is declared.
pub async fn migrated() -> Settings {
    let settings = settings();
    jirasync::commands::migrate(&settings, true)
        .await
        .expect("migrate a fresh database");
    settings
}

/// The queue names of these settings.
pub fn names(settings: &Settings) -> Names {
    Names::new(settings.queue_prefix.clone())
}

/// A running ingress on port 0.
pub struct Ingress {
    pub address: SocketAddr,
    pub shutdown: Shutdown,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Ingress {
    /// `http://address` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Stops it and waits for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.task).await;
    }
}

/// Starts the ingress and waits until it is ready (or returns at once when `wait_ready` is false).
pub async fn spawn_ingress(settings: &Settings, wait_ready: bool) -> Ingress {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let address = listener.local_addr().expect("local address");
    let shutdown = Shutdown::new();
    let task = tokio::spawn(jirasync::ingress::serve(
        settings.clone(),
        listener,
        shutdown.clone(),
    ));
    let ingress = Ingress {
        address,
        shutdown,
        task,
    };
    if wait_ready {
        let client = reqwest::Client::new();
        let url = ingress.url("/readyz");
        eventually("the ingress becomes ready", Duration::from_secs(15), || {
            let request = client.get(&url).send();
            async move { matches!(request.await, Ok(r) if r.status() == 200) }
        })
        .await;
    }
    ingress
}

/// Polls `check` every 50 ms until it is true; panics naming `what` after `deadline`.
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A connection and channel of the test's own.
pub async fn amqp() -> (Connection, Channel) {
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("connect to RabbitMQ");
    let channel = connection.create_channel().await.expect("open a channel");
    (connection, channel)
}

/// Takes one message from `queue`, waiting up to `deadline` for one to arrive.
pub async fn get_one(
    channel: &Channel,
    queue: &str,
    deadline: Duration,
) -> Option<BasicGetMessage> {
    let start = Instant::now();
    loop {
        let got = channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .expect("basic.get");
        if let Some(message) = got {
            message
                .delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .expect("ack");
            return Some(message);
        }
        if start.elapsed() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many messages are ready in `queue`.
pub async fn depth(channel: &Channel, queue: &str) -> u32 {
    channel
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .expect("queue exists")
        .message_count()
}

/// A client on the test database.
pub async fn db(settings: &Settings) -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect(&settings.database_url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
    tokio::spawn(connection);
    client
}

/// Whether a backend of the test database waits on a lock (a handler blocked on a
/// row the test holds).
pub async fn a_backend_waits_on_a_lock(db: &tokio_postgres::Client) -> bool {
    db.query_one(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock'",
        &[],
    )
    .await
    .expect("pg_stat_activity")
    .get::<_, i64>(0)
        > 0
}

/// Makes the test's database refuse new connections and ends the open ones
/// (`allow` false), or accept connections again (`allow` true).
pub async fn allow_connections(settings: &Settings, allow: bool) {
    let db_name = settings
        .database_url
        .rsplit('/')
        .next()
        .expect("a database name")
        .to_owned();
    let (admin, connection) = tokio_postgres::connect(
        &format!("{}/postgres", postgres_server()),
        tokio_postgres::NoTls,
    )
    .await
    .expect("admin connection");
    tokio::spawn(connection);
    let mut sql = format!("ALTER DATABASE \"{db_name}\" ALLOW_CONNECTIONS {allow};");
    if !allow {
        sql.push_str(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = '{db_name}' AND pid <> pg_backend_pid();"
        ));
    }
    admin
        .batch_execute(&sql)
        .await
        .expect("change ALLOW_CONNECTIONS");
}

/// Activities that repeat the one before them for the same group: a change
/// written twice.
pub async fn doubled_activities(db: &tokio_postgres::Client) -> i64 {
    db.query_one(
        "SELECT count(*) FROM (
           SELECT type, data, lag(type) OVER w AS prev_type, lag(data) OVER w AS prev_data
             FROM activities WINDOW w AS (PARTITION BY group_id ORDER BY id)
         ) a WHERE type = prev_type AND data = prev_data",
        &[],
    )
    .await
    .expect("activities")
    .get(0)
}

/// The user assigned to `group`, if any.
pub async fn assignee(db: &tokio_postgres::Client, group: i64) -> Option<i64> {
    db.query_opt(
        "SELECT user_id FROM group_assignees WHERE group_id = $1",
        &[&group],
    )
    .await
    .expect("group_assignees")
    .and_then(|row| row.get(0))
}

/// The group's activities as (type, data), oldest first.
pub async fn activities(
    db: &tokio_postgres::Client,
    group: i64,
) -> Vec<(String, serde_json::Value)> {
    db.query(
        "SELECT type, data FROM activities WHERE group_id = $1 ORDER BY id",
        &[&group],
    )
    .await
    .expect("activities")
    .iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect()
}

/// Deletes the test's queues and exchange and drops its database.
pub async fn cleanup(settings: &Settings) {
    let names = names(settings);
    if let Ok(connection) = Connection::connect(&amqp_url(), ConnectionProperties::default()).await
    {
        for queue in names.all_queues(&settings.retry_delays.0) {
            // A failed delete closes the channel: use one per queue.
            if let Ok(channel) = connection.create_channel().await {
                let _ = channel
                    .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
        }
        if let Ok(channel) = connection.create_channel().await {
            let _ = channel
                .exchange_delete(
                    names.exchange().as_str().into(),
                    ExchangeDeleteOptions::default(),
                )
                .await;
        }
        let _ = connection.close(200, "done".into()).await;
    }
    let db_name = settings
        .database_url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    if let Ok((client, connection)) = tokio_postgres::connect(
        &format!("{}/postgres", postgres_server()),
        tokio_postgres::NoTls,
    )
    .await
    {
        tokio::spawn(connection);
        let _ = client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)"
            ))
            .await;
    }
}

/// A running worker.
pub struct Worker {
    pub shutdown: Shutdown,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Worker {
    /// Stops it and waits for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

/// Starts a worker process (in this process) on these settings.
pub fn spawn_worker(settings: &Settings) -> Worker {
    let shutdown = Shutdown::new();
    let task = tokio::spawn(jirasync::worker::run(settings.clone(), shutdown.clone()));
    Worker { shutdown, task }
}

/// Publishes a webhook message like the ingress does, waiting for the confirm.
pub async fn publish_webhook(
    channel: &Channel,
    settings: &Settings,
    token: &str,
    body: &[u8],
    hub_signature: Option<&str>,
) {
    let request = jirasync::queue::message::WebhookRequest {
        token,
        content_type: Some("application/json"),
        webhook_identifier: None,
        hub_signature,
    };
    let (_, props) =
        jirasync::queue::message::webhook_properties(&request, std::time::SystemTime::now());
    publish(channel, settings, jirasync::queue::WEBHOOK, body, props).await;
}

/// Publishes to `P` with a routing key and properties, waiting for the confirm.
pub async fn publish(
    channel: &Channel,
    settings: &Settings,
    key: &str,
    body: &[u8],
    props: lapin::BasicProperties,
) {
    channel
        .confirm_select(Default::default())
        .await
        .expect("confirm mode");
    jirasync::queue::publisher::publish_confirmed(
        channel,
        &names(settings).exchange(),
        key,
        body,
        props,
    )
    .await
    .expect("publish confirmed");
}

/// Starts a worker with a chosen drain deadline.
pub fn spawn_worker_draining(settings: &Settings, drain: Duration) -> Worker {
    let shutdown = Shutdown::new();
    let task = tokio::spawn(jirasync::worker::serve(
        settings.clone(),
        drain,
        shutdown.clone(),
    ));
    Worker { shutdown, task }
}
