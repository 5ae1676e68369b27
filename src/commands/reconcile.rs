//! `jirasync reconcile [--integration ID] [--since DURATION]`: enqueues one
//! `jira_server.reconcile` job per selected integration (confirmed by RabbitMQ)
//! and prints what was enqueued as JSON.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use serde_json::{Value, json};

use crate::commands::job::JobPublisher;
use crate::config::{Settings, redact_url};
use crate::db::reconcile;
use crate::queue::RECONCILE;
use crate::queue::message::millis;

/// Runs the command and prints its result on stdout.
pub async fn run(
    settings: &Settings,
    integration: Option<i64>,
    since: Option<Duration>,
) -> anyhow::Result<()> {
    let enqueued = enqueue(settings, integration, since).await?;
    println!("{enqueued:#}");
    Ok(())
}

/// Enqueues the jobs: for `integration`, or else for every active `jira_server`
/// integration with an organization that has sync on. Returns
/// `{"enqueued":[{"integration_id":…,"message_id":…}],"since_ms":…}`.
pub async fn enqueue(
    settings: &Settings,
    integration: Option<i64>,
    since: Option<Duration>,
) -> anyhow::Result<Value> {
    let pool = crate::db::connect(&settings.database_url, 1).await?;
    let client = pool.get().await.with_context(|| {
        format!(
            "failed to connect to Postgres at {}",
            redact_url(&settings.database_url)
        )
    })?;
    let ids = match integration {
        Some(id) => {
            if !reconcile::is_active_jira_server(&client, id)
                .await
                .context("failed to look up the integration")?
            {
                anyhow::bail!(
                    "no active jira_server integration with id {id}; list them with `SELECT id, name FROM integrations`"
                );
            }
            vec![id]
        }
        None => reconcile::syncing_integrations(&client)
            .await
            .context("failed to list the integrations with sync on")?,
    };
    drop(client);
    let since_ms = since.map(|since| {
        millis(
            SystemTime::now()
                .checked_sub(since)
                .unwrap_or(SystemTime::UNIX_EPOCH),
        )
    });
    let publisher = JobPublisher::connect(settings).await?;
    let mut enqueued = Vec::new();
    for id in ids {
        let mut body = json!({ "integration_id": id });
        if let Some(since_ms) = since_ms {
            body["since_ms"] = json!(since_ms);
        }
        let message_id = publisher.publish(RECONCILE, &body).await?;
        enqueued.push(json!({"integration_id": id, "message_id": message_id.to_string()}));
    }
    publisher.close().await;
    Ok(json!({"enqueued": enqueued, "since_ms": since_ms}))
}
