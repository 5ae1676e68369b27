//! `jirasync explain ISSUE_KEY`: why an issue's groups are (or are not) assigned,
//! resolved or re-keyed — its recent `sync_events` (docs/reference.md §5.9),
//! newest first, one sentence each (the decision's, `sync::audit`), as a Jira
//! admin would ask it.

use anyhow::Context;
use serde_json::json;

use crate::config::DatabaseSettings;
use crate::sync::audit::{self, RETENTION_DAYS};

/// The arguments of `explain`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The Jira issue key, e.g. DEMO-12.
    #[arg(value_name = "ISSUE_KEY")]
    pub issue_key: String,
    /// Only this integration's history.
    #[arg(long, value_name = "ID")]
    pub integration: Option<i64>,
    /// At most this many events.
    #[arg(long, default_value = "20", value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub limit: i64,
    /// One JSON object per event (with its sentence as `text`).
    #[arg(long)]
    pub json: bool,
    /// Postgres.
    #[command(flatten)]
    pub database: DatabaseSettings,
}

/// Prints the issue's history.
pub async fn run(args: &Args) -> anyhow::Result<()> {
    let (client, _) = super::database(&args.database).await?;
    let events = audit::recent(&client, &args.issue_key, args.integration, args.limit)
        .await
        .context("failed to read the sync history")?;
    if events.is_empty() {
        let message = format!(
            "no sync history for {} in the last {RETENTION_DAYS} days: check that the issue is \
             linked to a group of an organization with sync on, that Jira sends webhooks to \
             jirasync (Administration > System > WebHooks), and `jirasync dlq list` for webhooks \
             that failed",
            args.issue_key
        );
        if args.json {
            eprintln!("{message}");
        } else {
            println!("{message}");
        }
        return Ok(());
    }
    for event in &events {
        if args.json {
            let mut object = json!(event);
            object["text"] = json!(event.sentence().to_string());
            println!("{object}");
        } else {
            println!(
                "{} {} [message {}]",
                event.at.format("%Y-%m-%d %H:%M:%S UTC"),
                event.sentence(),
                event.message_id.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(())
}
