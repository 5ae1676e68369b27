//! The commands that combine parts: `migrate` (database and broker) and `run`
//! (everything in one process, the local default); the admin commands live in
//! one submodule each.

pub mod integration;
pub mod job;
pub mod oauth;
pub mod reconcile;

use anyhow::Context;

use crate::config::Settings;
use crate::queue::{Names, connection, publisher, topology};
use crate::shutdown::Shutdown;

/// `jirasync migrate`: migrations (creating the database first when asked), then the topology.
pub async fn migrate(settings: &Settings, create_database: bool) -> anyhow::Result<()> {
    if create_database {
        crate::db::migrate::create_database(&settings.database_url).await?;
    }
    crate::db::migrate::run(&settings.database_url).await?;
    declare_topology(settings).await?;
    tracing::info!(prefix = %settings.queue_prefix, "database migrated and topology declared");
    Ok(())
}

/// Declares the RabbitMQ topology of CONTRACT §4 under the configured prefix.
pub async fn declare_topology(settings: &Settings) -> anyhow::Result<()> {
    let connection = connection::connect(&settings.amqp_url, "migrate").await?;
    let channel = publisher::confirm_channel(&connection).await?;
    topology::declare(
        &channel,
        &Names::new(settings.queue_prefix.clone()),
        &settings.retry_delays.0,
    )
    .await?;
    let _ = channel.close(200, "done".into()).await;
    connection
        .close(200, "done".into())
        .await
        .context("failed to close the RabbitMQ connection")?;
    Ok(())
}

/// `jirasync run`: migrate --create-database, then ingress and worker until shutdown.
pub async fn run(settings: Settings, shutdown: Shutdown) -> anyhow::Result<()> {
    migrate(&settings, true).await?;
    let ingress = tokio::spawn(crate::ingress::run(settings.clone(), shutdown.clone()));
    let worker = tokio::spawn(crate::worker::run(settings, shutdown.clone()));
    let (ingress, worker) = tokio::join!(ingress, worker);
    // Whichever part failed first stops the other too.
    shutdown.cancel();
    ingress.context("the ingress task panicked")??;
    worker.context("the worker task panicked")??;
    Ok(())
}
