//! `jirasync run`: the local default — `migrate --create-database`, then the
//! ingress, a worker and the operator console (unless `JIRASYNC_CONSOLE_LISTEN`
//! is `off`) in one process until shutdown.

use anyhow::Context;

use crate::config::{ConsoleListen, Settings};
use crate::shutdown::Shutdown;

/// The arguments of `run`: every setting.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Every setting.
    #[command(flatten)]
    pub settings: Settings,
}

/// Runs migrate, ingress, worker and console; whichever part fails first stops
/// the others.
pub async fn run(args: Args, shutdown: Shutdown) -> anyhow::Result<()> {
    let settings = args.settings;
    // Refused before anything starts: one address for two listeners, or a
    // console setting that cannot stand.
    settings.console.distinct_from(&[
        ("JIRASYNC_LISTEN", Some(settings.http.listen)),
        ("JIRASYNC_METRICS_LISTEN", settings.metrics.listen),
    ])?;
    let console = match settings.console.listen {
        ConsoleListen::At(address) => Some((address, settings.console.auth(address)?)),
        ConsoleListen::Off => None,
    };
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
    let console = console.map(|(address, auth)| {
        let config = crate::console::Config {
            database: settings.database.clone(),
            broker: settings.broker.clone(),
            retries: settings.retries.clone(),
            trusted_proxies: settings.http.trusted_proxies.clone(),
            auth,
        };
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let served = crate::console::run(config, address, shutdown.clone()).await;
            if served.is_err() {
                shutdown.cancel();
            }
            served
        })
    });
    let console = async move {
        match console {
            Some(task) => task.await.context("the console task panicked")?,
            None => Ok(()),
        }
    };
    let (ingress, worker, console) = tokio::join!(ingress, worker, console);
    shutdown.cancel();
    ingress.context("the ingress task panicked")??;
    worker.context("the worker task panicked")??;
    console
}
