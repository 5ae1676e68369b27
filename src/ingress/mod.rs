//! The HTTP ingress (CONTRACT §3): accepts Jira's webhooks and puts them, raw,
//! on RabbitMQ; answers 202 only after the broker confirmed. No database here.

mod error;
mod health;
mod oauth_callback;
mod webhook;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

use crate::config::Settings;
use crate::queue::Names;
use crate::queue::publisher::Broker;
use crate::shutdown::Shutdown;

pub use error::ApiError;
pub use webhook::is_jwt_shaped;

/// How long in-flight requests may take to finish after shutdown is requested.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    broker: Arc<Broker>,
}

/// `jirasync ingress`: binds `JIRASYNC_LISTEN` and serves until shutdown.
pub async fn run(settings: Settings, shutdown: Shutdown) -> anyhow::Result<()> {
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("failed to listen on {} (JIRASYNC_LISTEN)", settings.listen))?;
    serve(settings, listener, shutdown).await
}

/// Serves on an already bound listener (tests bind port 0).
pub async fn serve(
    settings: Settings,
    listener: TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let address = listener
        .local_addr()
        .context("failed to read the listen address")?;
    crate::telemetry::prometheus();
    // The broker link outlives the HTTP server so in-flight requests can finish.
    let broker_stop = CancellationToken::new();
    let (broker, broker_task) = Broker::start(
        settings.amqp_url.clone(),
        Names::new(settings.queue_prefix.clone()),
        settings.retry_delays.0.clone(),
        "ingress",
        broker_stop.clone(),
    );
    let app = router(AppState { broker }, settings.max_body_bytes);
    tracing::info!(%address, "ingress listening");

    let graceful = shutdown.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        graceful.cancelled().await;
    });
    let server = tokio::spawn(async move { server.await });
    shutdown.cancelled().await;
    // with_graceful_shutdown waits for every connection forever: bound it.
    match tokio::time::timeout(DRAIN_DEADLINE, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "ingress server failed"),
        Ok(Err(e)) => tracing::error!(error = %e, "ingress server task failed"),
        Err(_) => tracing::warn!("in-flight requests did not finish within the drain deadline"),
    }
    broker_stop.cancel();
    let _ = broker_task.await;
    tracing::info!("ingress stopped");
    Ok(())
}

/// The routes of CONTRACT §3.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let webhook = post(webhook::receive).layer(DefaultBodyLimit::max(max_body_bytes));
    Router::new()
        .route("/extensions/jira-server/issue-updated/{token}", webhook.clone())
        .route("/extensions/jira-server/issue-updated/{token}/", webhook)
        .route(
            "/extensions/jira-server/oauth/callback",
            get(oauth_callback::receive),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .layer(middleware::from_fn(count_requests))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            // The path carries the webhook token: log the route template only.
            let route = request
                .extensions()
                .get::<MatchedPath>()
                .map_or("unmatched", MatchedPath::as_str);
            tracing::info_span!("http.request", http.method = %request.method(), http.route = route)
        })
        // A 503 is the ingress working as designed (broker down, blocked, not ready
        // yet): the handler says why; a warning, not an error, per failed response.
        .on_failure(DefaultOnFailure::new().level(Level::WARN)))
        .with_state(state)
}

async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("jirasync_http_requests_total", "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("jirasync_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
