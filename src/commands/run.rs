//! `jirasync run`: the local default — `migrate --create-database`, then the
//! ingress and a worker in one process until shutdown.

use anyhow::Context;

use crate::config::Settings;
use crate::shutdown::Shutdown;

/// The arguments of `run`: every setting.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Every setting.
    #[command(flatten)]
    pub settings: Settings,
}

/// Runs migrate, ingress and worker; whichever part fails first stops the other.
pub async fn run(args: Args, shutdown: Shutdown) -> anyhow::Result<()> {
    let settings = args.settings;
    super::migrate::migrate(&settings.services(), true).await?;
    // One metrics listener for the process, the worker's: it renders the
    // ingress's metrics too.
    let metrics = match settings.metrics.listen {
        Some(_) => crate::ingress::MetricsAt::Elsewhere,
        None => crate::ingress::MetricsAt::ThisPort,
    };
    let ingress = tokio::spawn(crate::ingress::run_with(
        crate::ingress::Args::from(&settings),
        metrics,
        shutdown.clone(),
    ));
    let worker = tokio::spawn(crate::worker::run(
        crate::worker::Args::from(&settings),
        shutdown.clone(),
    ));
    let (ingress, worker) = tokio::join!(ingress, worker);
    shutdown.cancel();
    ingress.context("the ingress task panicked")??;
    worker.context("the worker task panicked")??;
    Ok(())
}
