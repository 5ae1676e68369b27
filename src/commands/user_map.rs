//! `jirasync user-map set|remove|list`: tell jirasync who a Jira user is, for
//! assignees whose email Jira hides or that matches no user (docs/reference.md
//! §5.10). The mapped user is still subject to the membership rules.

use anyhow::Context;
use serde_json::json;

use crate::config::DatabaseSettings;
use crate::db::user_map;

/// `jirasync user-map …`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Map a Jira user (its `name`, else its `key`) to a user.
    Set(SetArgs),
    /// Remove a Jira user's mapping.
    Remove(RemoveArgs),
    /// Show the mappings.
    List(ListArgs),
}

/// The arguments of `user-map set`.
#[derive(Debug, Clone, clap::Args)]
pub struct SetArgs {
    /// The integration (`jirasync integration list`).
    #[arg(long, value_name = "ID")]
    pub integration: i64,
    /// The Jira user's `name` (its user name), else its `key` (e.g. JIRAUSER10100);
    /// on Jira Cloud its `accountId`.
    #[arg(long, value_name = "NAME")]
    pub jira_user: String,
    /// The user (`users.username`) to assign for them.
    #[arg(long, value_name = "USERNAME")]
    pub user: String,
    /// Postgres.
    #[command(flatten)]
    pub database: DatabaseSettings,
}

/// The arguments of `user-map remove`.
#[derive(Debug, Clone, clap::Args)]
pub struct RemoveArgs {
    /// The integration.
    #[arg(long, value_name = "ID")]
    pub integration: i64,
    /// The Jira user's `name` or `key`, as mapped.
    #[arg(long, value_name = "NAME")]
    pub jira_user: String,
    /// Postgres.
    #[command(flatten)]
    pub database: DatabaseSettings,
}

/// The arguments of `user-map list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Only this integration's mappings.
    #[arg(long, value_name = "ID")]
    pub integration: Option<i64>,
    /// One JSON object per mapping.
    #[arg(long)]
    pub json: bool,
    /// Postgres.
    #[command(flatten)]
    pub database: DatabaseSettings,
}

/// Runs the subcommand.
pub async fn run(command: &Command) -> anyhow::Result<()> {
    match command {
        Command::Set(args) => {
            let (client, _) = super::database(&args.database).await?;
            let mapping = user_map::set(&client, args.integration, &args.jira_user, &args.user)
                .await
                .context("failed to map the Jira user")?;
            println!("{}", json!(mapping));
        }
        Command::Remove(args) => {
            let (client, _) = super::database(&args.database).await?;
            let removed = user_map::remove(&client, args.integration, &args.jira_user)
                .await
                .context("failed to remove the mapping")?;
            println!("{}", json!({ "removed": removed }));
        }
        Command::List(args) => {
            let (client, _) = super::database(&args.database).await?;
            let mappings = user_map::list(&client, args.integration)
                .await
                .context("failed to list the mappings")?;
            if args.json {
                for mapping in &mappings {
                    println!("{}", json!(mapping));
                }
            } else if mappings.is_empty() {
                println!("no Jira user is mapped: add one with `jirasync user-map set`");
            } else {
                println!("{:>11}  {:<30}  user", "integration", "jira user");
                for m in &mappings {
                    println!(
                        "{:>11}  {:<30}  {} (user {})",
                        m.integration_id, m.jira_user, m.username, m.user_id
                    );
                }
            }
        }
    }
    Ok(())
}
