//! The HTTP ingress (docs/reference.md §3): accepts Jira's webhooks and puts
//! them, raw, on RabbitMQ; answers 202 only after the broker confirmed. No
//! database here.

mod admission;
pub mod client;
mod connections;
mod edge;
mod error;
mod expiring;
mod health;
mod oauth2_callback;
mod oauth_callback;
mod rate;
mod route_state;
pub mod server;
mod state;
pub mod verdicts;
mod webhook_route;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{BrokerSettings, HttpSettings, MetricsSettings, RetrySettings, Settings};
use crate::integration::routes;
use crate::queue::publisher::Broker;
use crate::shutdown::Shutdown;

pub use error::ApiError;
use server::Admission;
use state::AppState;

/// How long in-flight requests may take to finish after shutdown is requested.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// The arguments of `jirasync ingress`: the broker and the HTTP listener (it has
/// no database).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// RabbitMQ.
    #[command(flatten)]
    pub broker: BrokerSettings,
    /// The retry tiers of the topology it declares.
    #[command(flatten)]
    pub retries: RetrySettings,
    /// The listener.
    #[command(flatten)]
    pub http: HttpSettings,
    /// Where `/metrics` is served.
    #[command(flatten)]
    pub metrics: MetricsSettings,
}

impl From<&Settings> for Args {
    fn from(settings: &Settings) -> Self {
        Self {
            broker: settings.broker.clone(),
            retries: settings.retries.clone(),
            http: settings.http.clone(),
            metrics: settings.metrics.clone(),
        }
    }
}

/// Where the ingress's `/metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsAt {
    /// On the port Jira posts to (`JIRASYNC_METRICS_LISTEN` unset).
    ThisPort,
    /// On a listener of its own, with `/healthz` and `/readyz`.
    Own(std::net::SocketAddr),
    /// By someone else in this process (`jirasync run`: the worker's listener).
    Elsewhere,
}

impl MetricsAt {
    /// What `JIRASYNC_METRICS_LISTEN` says for an ingress on its own.
    pub fn of(metrics: &MetricsSettings) -> Self {
        metrics.listen.map_or(Self::ThisPort, Self::Own)
    }
}

/// `jirasync ingress`: binds `JIRASYNC_LISTEN` and serves until shutdown.
pub async fn run(args: Args, shutdown: Shutdown) -> anyhow::Result<()> {
    let metrics = MetricsAt::of(&args.metrics);
    run_with(args, metrics, shutdown).await
}

/// [`run`] with `/metrics` where `metrics` says.
pub async fn run_with(args: Args, metrics: MetricsAt, shutdown: Shutdown) -> anyhow::Result<()> {
    let listen = args.http.listen;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("failed to listen on {listen} (JIRASYNC_LISTEN)"))?;
    serve_with(args, listener, metrics, shutdown).await
}

/// Serves on an already bound listener (tests bind port 0).
pub async fn serve(args: Args, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    let metrics = MetricsAt::of(&args.metrics);
    serve_with(args, listener, metrics, shutdown).await
}

async fn serve_with(
    args: Args,
    listener: TcpListener,
    metrics: MetricsAt,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let address = listener
        .local_addr()
        .context("failed to read the listen address")?;
    crate::telemetry::prometheus();
    let limits = server::Limits::of(&args.http);
    // The broker link outlives the HTTP server so in-flight requests can finish.
    let broker_stop = CancellationToken::new();
    let names = crate::integration::messages::names(&args.broker);
    let (broker, broker_task) = Broker::start(
        &args.broker,
        names,
        &args.retries,
        "ingress",
        broker_stop.clone(),
    );
    let metrics_task = match metrics {
        MetricsAt::Own(metrics_address) => {
            let ready = Arc::clone(&broker);
            let readiness = crate::health::Readiness {
                ready: Box::new(move || ready.is_ready()),
                ready_text: health::READY,
                not_ready_text: health::NOT_READY,
            };
            // The probes' port: the same connection limits; it has no use for
            // `X-Forwarded-For`.
            let probes = server::Limits {
                trusted_proxies: Arc::default(),
                ..limits.clone()
            };
            let spawned =
                crate::health::spawn_with(metrics_address, readiness, probes, shutdown.clone());
            match spawned.await {
                Ok(task) => Some(task),
                Err(error) => {
                    broker_stop.cancel();
                    let _ = broker_task.await;
                    return Err(error);
                }
            }
        }
        MetricsAt::ThisPort | MetricsAt::Elsewhere => None,
    };
    // Verdicts only refuse requests: they need not outlive the HTTP server.
    let verdicts = Arc::new(verdicts::Verdicts::new(args.http.client_max_rejects));
    let verdicts_task = tokio::spawn(verdicts::listen(
        args.broker.url.clone(),
        broker.names().verdicts(),
        Arc::clone(&verdicts),
        shutdown.child_token(),
    ));
    let app = router(
        AppState {
            broker,
            max_body_bytes: args.http.max_body_bytes,
            admission: Admission::new(args.http.max_body_bytes, args.http.client_max_in_flight),
            tokens: Arc::default(),
            publishes: Arc::default(),
            verdicts,
        },
        metrics == MetricsAt::ThisPort,
    );
    tracing::info!(%address, "ingress listening");
    server::serve(listener, app, limits, shutdown, DRAIN_DEADLINE).await;
    broker_stop.cancel();
    let _ = broker_task.await;
    let _ = verdicts_task.await;
    if let Some(task) = metrics_task {
        // Scrapers keep connections open; do not wait for them for long.
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    tracing::info!("ingress stopped");
    Ok(())
}

/// The routes of docs/reference.md §3; `/metrics` only with `with_metrics`.
pub fn router(state: AppState, with_metrics: bool) -> Router {
    let admission = state.admission.clone();
    // One bucket per client for the callbacks.
    let rate = server::RateLimit::callbacks();
    let callbacks = |rate: &server::RateLimit| {
        let rate = rate.clone();
        middleware::from_fn(move |request, next| server::rate_limited(rate.clone(), request, next))
    };
    let webhook = post(webhook_route::receive);
    let [bare, slashed] = routes::webhook_routes();
    let cloud_webhook = post(webhook_route::receive_cloud);
    let [cloud_bare, cloud_slashed] = routes::cloud_webhook_routes();
    let mut routes = Router::new()
        .route(&bare, webhook.clone())
        .route(&slashed, webhook)
        .route(&cloud_bare, cloud_webhook.clone())
        .route(&cloud_slashed, cloud_webhook)
        .route(
            routes::OAUTH_CALLBACK_PATH,
            get(oauth_callback::receive).layer(callbacks(&rate)),
        )
        .route(
            routes::OAUTH2_CALLBACK_PATH,
            get(oauth2_callback::receive).layer(callbacks(&rate)),
        )
        .route(
            routes::CLOUD_OAUTH2_CALLBACK_PATH,
            get(oauth2_callback::receive_cloud).layer(callbacks(&rate)),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz));
    let mut templates = vec![
        bare.as_str(),
        slashed.as_str(),
        cloud_bare.as_str(),
        cloud_slashed.as_str(),
        routes::OAUTH_CALLBACK_PATH,
        routes::OAUTH2_CALLBACK_PATH,
        routes::CLOUD_OAUTH2_CALLBACK_PATH,
        "/healthz",
        "/readyz",
    ];
    if with_metrics {
        routes = routes.route("/metrics", get(crate::health::metrics));
        templates.push("/metrics");
    }
    let edge = Arc::new(edge::Edge::new(admission, templates));
    routes
        .layer(middleware::from_fn(move |request, next| {
            edge::edge(Arc::clone(&edge), request, next)
        }))
        .with_state(state)
}
