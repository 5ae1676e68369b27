//! Shared test harness: each test's own database and queue prefix ([`Isolated`],
//! removed when dropped, also when the test fails), the [`TestApp`] most tests
//! run against, the ingress and worker in this process or as child processes,
//! AMQP helpers and polling waits.

pub mod app;
pub mod browser;
pub mod console;
pub mod fake_cloud;
#[path = "../../fixtures/fake_jira.rs"]
pub mod fake_jira;
pub mod fake_oauth2;
pub mod private_broker;
pub mod private_cluster;
pub mod private_pg;
pub mod proxy;
pub mod seed;
pub mod test_ca;
pub mod webhook_load;

use std::future::Future;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use jirasync::config::{Settings, format_duration};
use jirasync::queue::Names;
use jirasync::shutdown::Shutdown;
use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Channel, Connection, ConnectionProperties};

pub use app::TestApp;

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

/// A test's settings: a unique queue prefix and a unique database name (`jst_…`).
/// Dropping it deletes the queues and the exchanges and drops the database, on
/// the servers the settings name and on the shared ones, whether the test
/// passed or panicked. Derefs to [`Settings`]; a clone is plain `Settings`.
pub struct Isolated(Settings);

impl Deref for Isolated {
    type Target = Settings;
    fn deref(&self) -> &Settings {
        &self.0
    }
}

impl DerefMut for Isolated {
    fn deref_mut(&mut self) -> &mut Settings {
        &mut self.0
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        let settings = self.0.clone();
        // A runtime of its own on a thread of its own: Drop may run inside the
        // test's runtime (also while a panic unwinds), which cannot be blocked on.
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(cleanup(&settings));
            }
        })
        .join();
    }
}

/// Settings with a unique queue prefix and a unique (not yet created) database.
pub fn settings() -> Isolated {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let id = unique();
    let mut settings = Settings::defaults();
    settings.broker.url = amqp_url();
    settings.database.url = format!("{}/jst_{id}", postgres_server());
    settings.broker.queue_prefix = format!("jst_{id}");
    settings.http.listen = "127.0.0.1:0".parse().expect("valid address");
    // Two tiers keep each test's broker footprint small (ten quorum queues).
    settings.retries.delays = "1s,2s".parse().expect("valid delays");
    // No reconcile scheduler (as the processes get): its own broker link declares
    // the topology, and one still connecting at teardown would declare it anew.
    // The tests of the scheduler turn it on.
    settings.worker.reconcile_interval = Duration::ZERO;
    Isolated(settings)
}

/// Settings whose database is migrated and whose topology is declared.
pub async fn migrated() -> Isolated {
    let settings = settings();
    migrate(&settings, true)
        .await
        .expect("migrate a fresh database");
    settings
}

/// `jirasync migrate [--create-database]` on these settings.
pub async fn migrate(settings: &Settings, create_database: bool) -> anyhow::Result<()> {
    jirasync::commands::migrate::migrate(&settings.services(), create_database).await
}

/// Declares the topology of these settings (no database).
pub async fn declare_topology(settings: &Settings) -> anyhow::Result<()> {
    jirasync::commands::migrate::declare_topology(&settings.broker, &settings.retries).await
}

/// The queue names of these settings.
pub fn names(settings: &Settings) -> Names {
    jirasync::integration::messages::names(&settings.broker)
}

/// A running ingress on port 0; stopped when dropped.
pub struct Ingress {
    pub address: SocketAddr,
    pub shutdown: Shutdown,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Ingress {
    /// `http://address` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Stops it and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
        }
    }
}

impl Drop for Ingress {
    fn drop(&mut self) {
        self.shutdown.cancel();
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
        jirasync::ingress::Args::from(settings),
        listener,
        shutdown.clone(),
    ));
    let ingress = Ingress {
        address,
        shutdown,
        task: Some(task),
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

/// A running worker; stopped when dropped.
pub struct Worker {
    pub shutdown: Shutdown,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Worker {
    /// Whether it has stopped.
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|task| task.is_finished())
    }

    /// Waits until it has stopped by itself: its result, or how its task ended.
    pub async fn join(mut self) -> Result<anyhow::Result<()>, tokio::task::JoinError> {
        match self.task.take() {
            Some(task) => task.await,
            None => Ok(Ok(())),
        }
    }

    /// Stops it and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }
}

impl Drop for Worker {
    /// Cancelled and aborted: it never runs again, so it cannot declare its
    /// queues anew after the test's teardown deleted them.
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Starts a worker process (in this process) on these settings.
pub fn spawn_worker(settings: &Settings) -> Worker {
    spawn_worker_draining(settings, jirasync::queue::consumer::DRAIN_DEADLINE)
}

/// Starts a worker with a chosen drain deadline.
pub fn spawn_worker_draining(settings: &Settings, drain: Duration) -> Worker {
    let shutdown = Shutdown::new();
    let task = tokio::spawn(jirasync::worker::serve(
        jirasync::worker::Args::from(settings),
        drain,
        shutdown.clone(),
    ));
    Worker {
        shutdown,
        task: Some(task),
    }
}

/// A `jirasync` child process; killed when dropped (also when the test panics).
pub struct Process(Child);

impl Process {
    /// Starts `command`.
    pub fn spawn(command: &mut Command) -> Self {
        Self(command.spawn().expect("start a jirasync process"))
    }

    /// Its stdout, when it was piped (once).
    pub fn stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.0.stdout.take()
    }

    /// Its pid.
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }

    /// `kill -9`.
    pub fn kill(&mut self) -> std::io::Result<()> {
        self.0.kill()
    }

    /// Waits for it to exit.
    pub fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.0.wait()
    }

    /// (VmRSS, VmHWM) in kB.
    pub fn memory_kb(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.id())).expect("proc status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `jirasync <command>` on these settings (database, broker, prefix, retry tiers,
/// public URL; reconciliation off, warnings only, output discarded), with `extra`
/// variables.
pub fn process(command: &str, settings: &Settings, extra: &[(&str, String)]) -> Process {
    let mut jirasync = jirasync(&[command], settings, extra);
    Process::spawn(jirasync.stdout(Stdio::null()).stderr(Stdio::null()))
}

/// A token the ingress lets through (HS256, a string `id`) that names no integration.
pub const SHAPED_TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJpZCI6ImppcmE6a2V5In0.c2lnbmF0dXJl";

/// The webhook route with `token`.
pub fn webhook_path(token: &str) -> String {
    format!("/extensions/jira-server/issue-updated/{token}/")
}

/// `jirasync ingress` as a process listening on a port of its own, once it is
/// ready: the process and its base URL.
pub async fn ingress_process(settings: &Settings) -> (Process, String) {
    serving_process("ingress", settings, &[]).await
}

/// `jirasync <command>` (`ingress` or `run`) as a process whose ingress listens
/// on a port of its own, once it is ready, with `extra` variables: the process
/// and the ingress's base URL.
pub async fn serving_process(
    command: &str,
    settings: &Settings,
    extra: &[(&str, String)],
) -> (Process, String) {
    let port = private_pg::free_port();
    let mut variables = vec![("JIRASYNC_LISTEN", format!("127.0.0.1:{port}"))];
    variables.extend(extra.iter().cloned());
    let process = process(command, settings, &variables);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let url = format!("{base}/readyz");
    eventually(
        "the ingress process is ready",
        Duration::from_secs(20),
        || {
            let request = client.get(&url).send();
            async move { matches!(request.await, Ok(r) if r.status() == 200) }
        },
    )
    .await;
    (process, base)
}

/// As [`process`], its log (stderr) written to `log`.
pub fn process_logged(
    command: &str,
    settings: &Settings,
    extra: &[(&str, String)],
    log: &std::path::Path,
) -> Process {
    let file = std::fs::File::create(log).expect("create the log file");
    let mut jirasync = jirasync(&[command], settings, extra);
    Process::spawn(jirasync.stdout(Stdio::null()).stderr(file))
}

/// Runs `jirasync ARGS…` to its end on these settings: what it printed and how
/// it exited.
pub fn output(args: &[&str], settings: &Settings) -> std::process::Output {
    jirasync(args, settings, &[])
        .output()
        .expect("run jirasync")
}

/// `jirasync ARGS…` on these settings' database, broker, prefix, retry tiers and
/// public URL (reconciliation off, warnings only), with `extra` variables.
pub fn jirasync(args: &[&str], settings: &Settings, extra: &[(&str, String)]) -> Command {
    let delays: Vec<String> = settings
        .retries
        .delays
        .0
        .iter()
        .map(|d| format_duration(*d))
        .collect();
    let mut jirasync = Command::new(env!("CARGO_BIN_EXE_jirasync"));
    jirasync
        .args(args)
        .env_clear()
        .env("DATABASE_URL", &settings.database.url)
        .env("AMQP_URL", &settings.broker.url)
        .env("JIRASYNC_QUEUE_PREFIX", &settings.broker.queue_prefix)
        .env("JIRASYNC_RETRY_DELAYS", delays.join(","))
        .env("JIRASYNC_PUBLIC_URL", &settings.public.url)
        .env("JIRASYNC_RECONCILE_INTERVAL", "0")
        .env("RUST_LOG", "warn");
    for (name, key) in [
        ("JIRASYNC_SECRET_KEY", &settings.database.secret_key),
        ("JIRASYNC_SECRET_KEY_OLD", &settings.database.secret_key_old),
    ] {
        if let Some(key) = key {
            jirasync.env(name, key);
        }
    }
    jirasync.envs(extra.iter().map(|(k, v)| (k, v)));
    jirasync
}

/// Two keys for `JIRASYNC_SECRET_KEY` (32 bytes of base64 each).
pub const SECRET_KEY_A: &str = "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=";
/// The other one.
pub const SECRET_KEY_B: &str = "YmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmI=";

/// Everything the test database holds, as `pg_dump --data-only` writes it: what
/// a backup (or a read-only user) would see.
pub fn pg_dump(settings: &Settings) -> String {
    let output = Command::new("pg_dump")
        .args(["--data-only", "--dbname", &settings.database.url])
        .output()
        .expect("run pg_dump");
    assert!(
        output.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("pg_dump writes UTF-8")
}

/// Panics naming each of `secrets` that `dump` holds in the clear.
pub fn assert_none_in(dump: &str, secrets: &[&str]) {
    let found: Vec<&&str> = secrets
        .iter()
        .filter(|secret| !secret.is_empty() && dump.contains(**secret))
        .collect();
    assert!(found.is_empty(), "the dump holds in the clear: {found:?}");
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

/// `rabbitmqctl <list> -q --no-table-headers <first> <second>` on the shared
/// broker, run off the test's runtime (which may run a worker too): each row's
/// two columns, trimmed.
pub async fn rabbitmqctl_rows(
    list: &'static str,
    [first, second]: [&'static str; 2],
) -> Vec<(String, String)> {
    let output = tokio::task::spawn_blocking(move || {
        Command::new("rabbitmqctl")
            .args([list, "-q", "--no-table-headers", first, second])
            .output()
    })
    .await
    .expect("the task ran")
    .expect("rabbitmqctl runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(first, second)| (first.trim().to_owned(), second.trim().to_owned()))
        .collect()
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
        tokio_postgres::connect(&settings.database.url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
    tokio::spawn(connection);
    client
}

/// Whether a backend of the test database waits on a lock (a handler blocked on a
/// row the test holds).
pub async fn a_backend_waits_on_a_lock(db: &tokio_postgres::Client) -> bool {
    backends_waiting_on_locks(db).await > 0
}

/// How many backends of the test's database wait on a lock.
pub async fn backends_waiting_on_locks(db: &tokio_postgres::Client) -> i64 {
    db.query_one(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock'",
        &[],
    )
    .await
    .expect("pg_stat_activity")
    .get(0)
}

/// The database name of these settings.
fn database_name(settings: &Settings) -> String {
    settings
        .database
        .url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A connection to the `postgres` database of the server `url` names.
async fn admin(url: &str) -> Option<tokio_postgres::Client> {
    let mut config: tokio_postgres::Config = url.parse().ok()?;
    config
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(5));
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.ok()?;
    tokio::spawn(connection);
    Some(client)
}

/// Makes the test's database refuse new connections and ends the open ones
/// (`allow` false), or accept connections again (`allow` true).
pub async fn allow_connections(settings: &Settings, allow: bool) {
    let db_name = database_name(settings);
    let admin = admin(&settings.database.url)
        .await
        .expect("admin connection");
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

/// Deletes the test's queues and exchanges (on its broker and the shared one) and
/// drops its database (on its server and the shared one). Best effort: what is
/// unreachable (a stopped private node) is skipped.
async fn cleanup(settings: &Settings) {
    let names = names(settings);
    let mut brokers = vec![amqp_url()];
    if settings.broker.url != brokers[0] {
        brokers.push(settings.broker.url.clone());
    }
    let queues = names.all_queues(&settings.retries.delays.0);
    // The shared broker, busy with the other tests' quorum queues, can be slow
    // to answer: a few tries. A test's own broker or proxy (behind which is the
    // shared one, or a private node removed with the test) gets one.
    let tries = |url: &str| if url == brokers[0] { 3 } else { 1 };
    for url in &brokers {
        for _ in 0..tries(url) {
            if delete_topology(url, &names, &queues).await {
                break;
            }
        }
    }
    let drop_database = format!(
        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
        database_name(settings)
    );
    let mut servers = vec![postgres_server()];
    if !settings.database.url.starts_with(&servers[0]) {
        servers.push(settings.database.url.clone());
    }
    for url in servers {
        if let Some(admin) = admin(&url).await {
            let _ = admin.batch_execute(&drop_database).await;
        }
    }
}

/// Deletes `queues` and the exchanges on the broker at `url`; false when it could
/// not connect or a delete failed (deleting what is not there succeeds).
async fn delete_topology(url: &str, names: &Names, queues: &[String]) -> bool {
    let connect = Connection::connect(url, ConnectionProperties::default());
    let Ok(Ok(connection)) = tokio::time::timeout(Duration::from_secs(5), connect).await else {
        return false;
    };
    let mut deleted = true;
    for queue in queues {
        // A failed delete closes the channel: use one per queue.
        deleted &= match connection.create_channel().await {
            Ok(channel) => channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await
                .is_ok(),
            Err(_) => false,
        };
    }
    for exchange in names.all_exchanges() {
        if let Ok(channel) = connection.create_channel().await {
            let _ = channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
    }
    let _ = connection.close(200, "done".into()).await;
    deleted
}

/// Publishes a webhook message like the ingress does, waiting for the confirm.
pub async fn publish_webhook(
    channel: &Channel,
    settings: &Settings,
    token: &str,
    body: &[u8],
    hub_signature: Option<&str>,
) {
    let request = jirasync::integration::messages::WebhookRequest {
        token,
        content_type: Some("application/json"),
        webhook_identifier: None,
        hub_signature,
    };
    let (_, props) =
        jirasync::integration::messages::webhook_properties(&request, std::time::SystemTime::now());
    publish(
        channel,
        settings,
        jirasync::integration::messages::WEBHOOK,
        body,
        props,
    )
    .await;
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
        names(settings).exchange(),
        key,
        body,
        props,
    )
    .await
    .expect("publish confirmed");
}

/// A `MakeWriter` appending log lines to a shared buffer, for the tests that
/// search what was logged.
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

/// The text of the `/metrics` a process serves on 127.0.0.1:`port`.
pub async fn metrics_text(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text")
}

/// The value of the sample `name{labels}` on the `/metrics` a process serves on
/// 127.0.0.1:`port`; `None` while it does not answer or does not show it.
pub async fn metric_sample(port: u16, name_and_labels: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines().find_map(|line| {
        let value = line.strip_prefix(name_and_labels)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}
