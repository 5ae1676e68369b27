//! The worker's optional HTTP listener (`JIRASYNC_METRICS_LISTEN`): `/metrics` for
//! Prometheus, `/healthz` while the process runs, `/readyz` while it consumes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;

use crate::shutdown::Shutdown;

/// Binds `address` and serves until `shutdown`.
pub async fn spawn(
    address: SocketAddr,
    consuming: Arc<AtomicBool>,
    shutdown: Shutdown,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("failed to listen on {address} (JIRASYNC_METRICS_LISTEN)"))?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let ready = consuming.load(Ordering::Acquire);
                async move {
                    if ready {
                        (StatusCode::OK, "consuming\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not consuming\n")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    crate::telemetry::prometheus().render(),
                )
            }),
        );
    tracing::info!(%address, "worker metrics listening");
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "worker metrics listener failed");
        }
    }))
}
