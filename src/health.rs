//! The metrics and health listener of `JIRASYNC_METRICS_LISTEN`, apart from the
//! port Jira posts to: `/metrics` for Prometheus, `/healthz` while the process
//! runs, `/readyz` while it can do its work (a worker consumes, an ingress can
//! publish), on the ingress's accept loop and its connection limits.
//! `jirasync run` serves one for both.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::ingress::server::{Limits, serve};
use crate::shutdown::Shutdown;

/// How long scrapes in progress may take to finish after shutdown is requested.
const DRAIN: Duration = Duration::from_secs(5);

/// Whether the process can do its work, and how `/readyz` says so.
pub struct Readiness {
    /// Asked on each `/readyz`.
    pub ready: Box<dyn Fn() -> bool + Send + Sync>,
    /// The body of a 200.
    pub ready_text: &'static str,
    /// The body of a 503.
    pub not_ready_text: &'static str,
}

/// Prometheus text format: the process's metrics.
pub async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::prometheus().render(),
    )
}

/// Binds `address` and serves until `shutdown`, with the default connection limits.
pub async fn spawn(
    address: SocketAddr,
    readiness: Readiness,
    shutdown: Shutdown,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    spawn_with(address, readiness, Limits::default(), shutdown).await
}

/// Binds `address` and serves until `shutdown` on the ingress's accept loop,
/// under `limits` (connections overall and per client, idle and header
/// timeouts): the probes' port must answer whatever the clients of the other do.
pub async fn spawn_with(
    address: SocketAddr,
    readiness: Readiness,
    limits: Limits,
    shutdown: Shutdown,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("failed to listen on {address} (JIRASYNC_METRICS_LISTEN)"))?;
    let readiness = Arc::new(readiness);
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let readiness = Arc::clone(&readiness);
                async move {
                    if (readiness.ready)() {
                        (StatusCode::OK, readiness.ready_text)
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, readiness.not_ready_text)
                    }
                }
            }),
        )
        .route("/metrics", get(metrics));
    tracing::info!(%address, "metrics listening");
    Ok(tokio::spawn(serve(listener, app, limits, shutdown, DRAIN)))
}
