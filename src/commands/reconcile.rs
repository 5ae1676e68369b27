//! `jirasync reconcile [--integration ID] [--since DURATION]`: enqueues one
//! `jira_server.reconcile` job per selected integration (confirmed by RabbitMQ)
//! and prints what was enqueued as JSON.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use serde_json::{Value, json};

use super::job::JobPublisher;
use crate::config::{Services, parse_duration};
use crate::db::reconcile;
use crate::integration::{self, Integration};
use crate::queue::message::millis;
use crate::worker::jobs::Reconcile;

/// The arguments of `reconcile`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Only this integration.
    #[arg(long)]
    pub integration: Option<i64>,
    /// How far back to look (e.g. 1h).
    #[arg(long, value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// Postgres and RabbitMQ.
    #[command(flatten)]
    pub services: Services,
}

/// Runs the command and prints its result on stdout.
pub async fn run(args: &Args) -> anyhow::Result<()> {
    let enqueued = enqueue(args).await?;
    println!("{enqueued:#}");
    Ok(())
}

/// Enqueues the jobs: for `--integration`, or else for every active
/// integration (Data Center or Cloud) with an organization that has sync on. Returns
/// `{"enqueued":[{"integration_id":…,"message_id":…}],"since_ms":…}`.
pub async fn enqueue(args: &Args) -> anyhow::Result<Value> {
    let (client, keys) = super::database(&args.services.database).await?;
    let ids = match args.integration {
        Some(id) => {
            let active = integration::by_id(&client, &keys, id)
                .await
                .context("failed to look up the integration")?
                .is_some_and(|integration| Integration::is_active(&integration));
            if !active {
                anyhow::bail!(
                    "no active integration with id {id}; list them with `jirasync integration list`"
                );
            }
            vec![id]
        }
        None => reconcile::syncing_integrations(&client, &integration::PROVIDERS)
            .await
            .context("failed to list the integrations with sync on")?,
    };
    drop(client);
    let since_ms = args.since.map(|since| {
        millis(
            SystemTime::now()
                .checked_sub(since)
                .unwrap_or(SystemTime::UNIX_EPOCH),
        )
    });
    let publisher = JobPublisher::connect(&args.services).await?;
    let mut enqueued = Vec::new();
    for integration_id in ids {
        let job = Reconcile {
            integration_id,
            since_ms,
        };
        let message_id = publisher.publish(&job).await?;
        enqueued
            .push(json!({"integration_id": integration_id, "message_id": message_id.to_string()}));
    }
    publisher.close().await;
    Ok(json!({"enqueued": enqueued, "since_ms": since_ms}))
}
