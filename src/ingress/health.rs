//! `/healthz` and `/readyz` on the ingress's port (`/metrics` is
//! `crate::health`'s, here or on `JIRASYNC_METRICS_LISTEN`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::state::AppState;

/// `/readyz`'s body when the broker connection is usable.
pub const READY: &str = "ready\n";
/// `/readyz`'s body when it is not.
pub const NOT_READY: &str = "broker unavailable\n";

/// 200 while the process runs.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 when the broker connection is usable, else 503.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.broker.is_ready() {
        (StatusCode::OK, READY)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, NOT_READY)
    }
}
