//! `jirasync status-map set|list|remove`: which Jira status a group's issue moves
//! to when the group is resolved or unresolved, per organization, integration and
//! Jira project (docs/reference.md §10.6). `set` checks the statuses with the
//! integration's Jira first (`GET /rest/api/2/status`, its own auth).

use anyhow::Context;
use clap::builder::NonEmptyStringValueParser;
use serde_json::json;

use crate::config::DatabaseSettings;
use crate::db::DbPool;
use crate::integration::{self, Integration};
use crate::jira::status::JiraStatus;
use crate::outbound::mapping::{self, Mapping, is_status};

/// `jirasync status-map …`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Map a Jira project's statuses for resolved and unresolved groups.
    Set(SetArgs),
    /// Show the mappings.
    List(ListArgs),
    /// Remove a project's mapping.
    Remove(RemoveArgs),
}

/// The arguments of `status-map set`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(
    clap::ArgGroup::new("statuses")
        .args(["resolved", "unresolved"])
        .required(true)
        .multiple(true)
))]
pub struct SetArgs {
    /// The integration (`jirasync integration list`).
    #[arg(long, value_name = "ID")]
    pub integration: i64,
    /// The organization (its slug) whose groups are pushed.
    #[arg(long, value_name = "SLUG")]
    pub organization: String,
    /// The Jira project: its key (e.g. ACC), or its id.
    #[arg(long, value_name = "KEY", value_parser = NonEmptyStringValueParser::new())]
    pub project: String,
    /// The status (id, or name in any case) a resolved group's issue moves to.
    #[arg(long, value_name = "STATUS", value_parser = NonEmptyStringValueParser::new())]
    pub resolved: Option<String>,
    /// The status (id, or name in any case) an unresolved group's issue moves to.
    #[arg(long, value_name = "STATUS", value_parser = NonEmptyStringValueParser::new())]
    pub unresolved: Option<String>,
    /// The resolution (its name) to fill when a transition asks for one.
    #[arg(long, value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
    pub resolution: Option<String>,
    /// Store the statuses without asking Jira whether it has them.
    #[arg(long)]
    pub no_check: bool,
    /// Postgres.
    #[command(flatten)]
    pub database: DatabaseSettings,
}

/// The arguments of `status-map list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Only this integration's mappings.
    #[arg(long, value_name = "ID")]
    pub integration: Option<i64>,
    /// Only this organization's mappings (its slug).
    #[arg(long, value_name = "SLUG")]
    pub organization: Option<String>,
    /// One JSON object per mapping.
    #[arg(long)]
    pub json: bool,
    /// Postgres.
    #[command(flatten)]
    pub database: DatabaseSettings,
}

/// The arguments of `status-map remove`.
#[derive(Debug, Clone, clap::Args)]
pub struct RemoveArgs {
    /// The integration.
    #[arg(long, value_name = "ID")]
    pub integration: i64,
    /// The organization (its slug).
    #[arg(long, value_name = "SLUG")]
    pub organization: String,
    /// The Jira project, as mapped (a key in any case, or an id).
    #[arg(long, value_name = "KEY")]
    pub project: String,
    /// Postgres.
    #[command(flatten)]
    pub database: DatabaseSettings,
}

/// Runs the subcommand, printing its result on stdout.
pub async fn run(command: &Command) -> anyhow::Result<()> {
    match command {
        Command::Set(args) => println!("{}", json!(set(args).await?)),
        Command::Remove(args) => {
            let (client, _) = super::database(&args.database).await?;
            let removed =
                mapping::remove(&client, args.integration, &args.organization, &args.project)
                    .await
                    .context("failed to remove the status mapping")?;
            println!("{}", json!({ "removed": removed }));
        }
        Command::List(args) => list(args).await?,
    }
    Ok(())
}

/// Checks the statuses with the integration's Jira (unless `--no-check`), then
/// stores the project's mapping, replacing its earlier one; what was stored.
/// Nothing is stored when a check fails.
pub async fn set(args: &SetArgs) -> anyhow::Result<mapping::Entry> {
    let pool = super::pool(&args.database).await?;
    let (integration, link) = {
        let client = super::connection(&pool).await?;
        let integration = integration::by_id(&client, pool.keys(), args.integration)
            .await
            .context("failed to look up the integration")?
            .with_context(|| {
                format!(
                    "no integration has id {}: list them with `jirasync integration list`",
                    args.integration
                )
            })?;
        let link = mapping::link(&client, args.integration, &args.organization).await?;
        (integration, link)
    };
    let mapping = Mapping {
        // Jira writes project keys in upper case (an id is digits either way).
        project: args.project.to_uppercase(),
        resolved_status: args.resolved.clone(),
        unresolved_status: args.unresolved.clone(),
        resolution: args.resolution.clone(),
    };
    if !args.no_check {
        let wanted: Vec<(&str, &str)> = [
            ("--resolved", &args.resolved),
            ("--unresolved", &args.unresolved),
        ]
        .into_iter()
        .filter_map(|(flag, status)| status.as_deref().map(|status| (flag, status)))
        .collect();
        check(&pool, &integration, &wanted).await?;
    }
    let client = super::connection(&pool).await?;
    mapping::set(&client, &link, &mapping)
        .await
        .context("failed to store the status mapping")
}

/// Fails unless the integration's Jira lists each of `wanted` (flag, status),
/// naming the ones it does not and the statuses it has.
async fn check(
    pool: &DbPool,
    integration: &Integration,
    wanted: &[(&str, &str)],
) -> anyhow::Result<()> {
    let base_url = &integration.metadata.base_url;
    let unchecked = "run this again once Jira answers, or pass --no-check to store the \
                     mapping without checking; nothing was stored";
    let statuses = integration
        .with_jira(pool, |jira| async move { jira.get_statuses().await })
        .await
        .map_err(|error| {
            let error = anyhow::Error::new(error);
            anyhow::anyhow!(
                "failed to read the statuses of Jira at {base_url} to check them: {error:#}; {unchecked}"
            )
        })?
        .with_context(|| {
            format!(
                "integration {} cannot call Jira at {base_url} to check the statuses: it has no \
                 access token; connect it (`jirasync oauth start`) and run this again, or pass \
                 --no-check to store the mapping without checking; nothing was stored",
                integration.id
            )
        })?;
    let missing = unlisted(wanted, &statuses);
    if missing.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "Jira at {base_url} has no status {}: a status is given by its id, or its name in any \
         case; its statuses are {}; nothing was stored",
        missing.join(", nor "),
        listed(&statuses)
    )
}

/// Of `wanted` (flag, status), those `statuses` do not hold, as `"X" (--flag)`.
fn unlisted(wanted: &[(&str, &str)], statuses: &[JiraStatus]) -> Vec<String> {
    wanted
        .iter()
        .filter(|(_, status)| {
            !statuses
                .iter()
                .any(|jira| is_status(status, &jira.id, &jira.name))
        })
        .map(|(flag, status)| format!("{status:?} ({flag})"))
        .collect()
}

/// `statuses` as `Open (1), Done (10001)`, or `none` when Jira has none.
fn listed(statuses: &[JiraStatus]) -> String {
    if statuses.is_empty() {
        return "none".to_owned();
    }
    let named: Vec<String> = statuses
        .iter()
        .map(|status| format!("{} ({})", status.name, status.id))
        .collect();
    named.join(", ")
}

/// Prints the mappings: a table, or one JSON object per line with `--json`.
async fn list(args: &ListArgs) -> anyhow::Result<()> {
    let (client, _) = super::database(&args.database).await?;
    let entries = mapping::list(&client, args.integration, args.organization.as_deref())
        .await
        .context("failed to list the status mappings")?;
    if args.json {
        for entry in &entries {
            println!("{}", json!(entry));
        }
        return Ok(());
    }
    if entries.is_empty() {
        println!("no status mapping: add one with `jirasync status-map set`");
        return Ok(());
    }
    println!(
        "{:>11}  {:<20}  {:<12}  {:<20}  {:<20}  resolution",
        "integration", "organization", "project", "resolved", "unresolved"
    );
    let or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    for entry in &entries {
        let m = &entry.mapping;
        println!(
            "{:>11}  {:<20}  {:<12}  {:<20}  {:<20}  {}",
            entry.integration_id,
            entry.organization,
            m.project,
            or_dash(&m.resolved_status),
            or_dash(&m.unresolved_status),
            or_dash(&m.resolution),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: &str, name: &str) -> JiraStatus {
        JiraStatus {
            id: id.to_owned(),
            name: name.to_owned(),
            status_category: None,
        }
    }

    #[test]
    fn a_status_jira_does_not_list_is_named_with_its_flag() {
        let statuses = [status("1", "Open"), status("10001", "Done")];
        let wanted = [("--resolved", "done"), ("--unresolved", "1")];
        assert!(unlisted(&wanted, &statuses).is_empty());
        let wanted = [("--resolved", "Closed"), ("--unresolved", "Open")];
        assert_eq!(unlisted(&wanted, &statuses), ["\"Closed\" (--resolved)"]);
        assert_eq!(listed(&statuses), "Open (1), Done (10001)");
        assert_eq!(listed(&[]), "none");
    }

    #[test]
    fn set_needs_a_status_for_at_least_one_direction() {
        use clap::Parser;
        let set = |extra: &[&str]| {
            let mut args = vec!["jirasync", "status-map", "set", "--integration", "1"];
            args.extend(["--organization", "acme", "--project", "ACC"]);
            args.extend(extra);
            crate::cli::Cli::try_parse_from(args)
        };
        let error = set(&["--resolution", "Fixed"]).expect_err("no status");
        assert_eq!(
            error.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        assert!(set(&["--unresolved", "Open"]).is_ok());
        assert!(set(&["--resolved", "Done", "--unresolved", "Open"]).is_ok());
        assert!(set(&["--resolved", ""]).is_err(), "an empty status");
    }
}
