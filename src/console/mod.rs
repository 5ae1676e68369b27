//! The operator console (docs/reference.md §12): a small authenticated web
//! application on `JIRASYNC_CONSOLE_LISTEN` — overview, issue history, sync
//! events, dead letters with Replay, the user map, and the same data as JSON
//! under `/api/`. Served by `jirasync console` and inside `jirasync run`, on the
//! ingress's accept loop (connection limits, client per `JIRASYNC_TRUSTED_PROXIES`).

mod api;
mod auth;
mod data;
mod guard;
mod login;
mod pages;
mod records;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::config::{
    BrokerSettings, ConsoleAuth, DatabaseSettings, PasswordCheck, RetrySettings, TrustedProxies,
};
use crate::db::DbPool;
use crate::ingress::server::Limits;
use crate::shutdown::Shutdown;

pub use auth::{FAILURE_WINDOW, MAX_FAILURES, SESSION_LIFETIME};

/// How long requests in progress may take to finish after shutdown.
const DRAIN: Duration = Duration::from_secs(5);

/// What the console serves from.
pub struct Config {
    /// Postgres.
    pub database: DatabaseSettings,
    /// RabbitMQ.
    pub broker: BrokerSettings,
    /// The retry tiers (their queues are shown).
    pub retries: RetrySettings,
    /// Whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// The password check and API token ([`ConsoleSettings::auth`](crate::config::ConsoleSettings::auth)).
    pub auth: ConsoleAuth,
}

/// The console's shared state.
#[derive(Clone)]
pub struct Console(Arc<Inner>);

/// What the handlers share.
pub struct Inner {
    pool: DbPool,
    broker: BrokerSettings,
    delays: Vec<Duration>,
    gate: auth::Gate,
    /// Cookies carry `Secure` unless the console listens on loopback.
    secure_cookies: bool,
    /// One broker connection for the queue depths and `/readyz`, made again when
    /// it broke. A tokio lock: held across the connect.
    amqp: tokio::sync::Mutex<Option<lapin::Connection>>,
}

impl std::ops::Deref for Console {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Binds `address`, tells a made-up password once on stderr, and serves until
/// `shutdown`.
pub async fn run(config: Config, address: SocketAddr, shutdown: Shutdown) -> anyhow::Result<()> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("failed to listen on {address} (JIRASYNC_CONSOLE_LISTEN)"))?;
    let bound = listener
        .local_addr()
        .context("failed to read the listen address")?;
    if let PasswordCheck::Generated(password) = &config.auth.password {
        // Outside the log on purpose: said once, to whoever started the process.
        eprintln!(
            "jirasync console: http://{bound}/ — password for this run: {password}\n\
             (set JIRASYNC_CONSOLE_PASSWORD or JIRASYNC_CONSOLE_PASSWORD_HASH to choose one)"
        );
    }
    serve(config, listener, shutdown).await
}

/// Serves on an already bound listener (tests bind port 0) until `shutdown`.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let address = listener
        .local_addr()
        .context("failed to read the listen address")?;
    let pool = crate::db::connect(&config.database, 4).await?;
    let console = Console(Arc::new(Inner {
        pool,
        broker: config.broker,
        delays: config.retries.delays.0.clone(),
        gate: auth::Gate::new(config.auth),
        secure_cookies: !address.ip().is_loopback(),
        amqp: tokio::sync::Mutex::default(),
    }));
    let limits = Limits {
        trusted_proxies: Arc::new(config.trusted_proxies),
        ..Limits::default()
    };
    tracing::info!(%address, "console listening");
    crate::ingress::server::serve(listener, router(console.clone()), limits, shutdown, DRAIN).await;
    if let Some(connection) = console.amqp.lock().await.take() {
        let _ = connection.close(200, "done".into()).await;
    }
    tracing::info!("console stopped");
    Ok(())
}

/// The routes of docs/reference.md §12.3–§12.8.
fn router(console: Console) -> Router {
    let pages = Router::new()
        .route("/", get(pages::overview::page))
        .route("/issues", get(pages::history::issue))
        .route("/events", get(pages::history::events))
        .route("/dead-letters", get(pages::dead_letters::page))
        .route("/dead-letters/replay", post(pages::dead_letters::replay))
        .route(
            "/user-map",
            get(pages::user_map::page).post(pages::user_map::set),
        )
        .route("/user-map/remove", post(pages::user_map::remove))
        .route("/logout", post(login::logout))
        .route_layer(middleware::from_fn_with_state(
            console.clone(),
            guard::page_access,
        ));
    let api = Router::new()
        .route("/api/integrations", get(api::integrations))
        .route("/api/queues", get(api::queues))
        .route("/api/outbound", get(api::outbound))
        .route("/api/issues/{key}/events", get(api::issue_events))
        .route("/api/events", get(api::events))
        .route("/api/dead-letters", get(api::dead_letters))
        .route("/api/dead-letters/replay", post(api::replay))
        .route("/api/user-map", get(api::user_map))
        .route_layer(middleware::from_fn_with_state(
            console.clone(),
            guard::api_access,
        ));
    Router::new()
        .route("/login", get(login::form).post(login::submit))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(api::readyz))
        .route("/static/console.css", get(pages::css))
        .route("/static/console.js", get(pages::js))
        .merge(pages)
        .merge(api)
        .fallback(guard::not_found)
        .layer(middleware::from_fn(guard::cross_site))
        .layer(middleware::from_fn(guard::headers))
        .with_state(console)
}

/// What a replay is asked to move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayAsked {
    /// Every dead letter with this message id.
    Id(String),
    /// Every dead letter, as `jirasync dlq replay`.
    All,
}

impl Console {
    /// Replays as `dlq replay` does (by id: `dlq::replay_id`), and logs it.
    async fn replay(&self, asked: &ReplayAsked) -> anyhow::Result<records::ReplayOne> {
        let done = match asked {
            ReplayAsked::Id(id) => records::replay_id(&self.broker, id).await?,
            ReplayAsked::All => {
                records::ReplayOne::Moved(crate::commands::dlq::replay(&self.broker, None).await?)
            }
        };
        tracing::info!(asked = ?asked, done = ?done, "console replayed dead letters");
        Ok(done)
    }
}
