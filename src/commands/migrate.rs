//! `jirasync migrate [--create-database]`: applies the SQL migrations (creating
//! the database first when asked), then declares the RabbitMQ topology.

use anyhow::Context;

use crate::config::{BrokerSettings, RetrySettings, Services};
use crate::queue::{connection, topology};

/// The arguments of `migrate`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Create the database named in DATABASE_URL first when it is missing.
    #[arg(long)]
    pub create_database: bool,
    /// Postgres and RabbitMQ.
    #[command(flatten)]
    pub services: Services,
}

/// Runs `migrate`.
pub async fn run(args: &Args) -> anyhow::Result<()> {
    migrate(&args.services, args.create_database).await
}

/// Migrations (creating the database first when asked), then the topology.
pub async fn migrate(services: &Services, create_database: bool) -> anyhow::Result<()> {
    let url = &services.database.url;
    if create_database {
        crate::db::migrate::create_database(url).await?;
    }
    crate::db::migrate::run(url).await?;
    declare_topology(&services.broker, &services.retries).await?;
    tracing::info!(prefix = %services.broker.queue_prefix, "database migrated and topology declared");
    Ok(())
}

/// Declares the RabbitMQ topology of docs/reference.md §4 under the configured prefix.
pub async fn declare_topology(
    broker: &BrokerSettings,
    retries: &RetrySettings,
) -> anyhow::Result<()> {
    let connection = connection::connect(&broker.url, "migrate").await?;
    topology::declare(
        &connection,
        &crate::integration::messages::names(broker),
        &retries.delays.0,
    )
    .await?;
    connection
        .close(200, "done".into())
        .await
        .context("failed to close the RabbitMQ connection")?;
    Ok(())
}
