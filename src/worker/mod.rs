//! The worker: consumes `P.webhooks` and `P.jobs` and applies them.

use crate::config::Settings;
use crate::shutdown::Shutdown;

/// `jirasync worker`.
pub async fn run(_settings: Settings, shutdown: Shutdown) -> anyhow::Result<()> {
    tracing::warn!("the worker is not implemented yet; it only waits for shutdown");
    shutdown.cancelled().await;
    Ok(())
}
