//! `jirasync integration migrate --from DC_ID --to CLOUD_ID`: moves a Data
//! Center integration's issues, links, sync flags, status maps and user map to
//! a Jira Cloud one (docs/reference.md §11.7, `cloud::migrate`), and prints what
//! it did.

use std::time::Duration;

use clap::builder::NonEmptyStringValueParser;

use crate::cloud::migrate::{self, Report, Request};
use crate::config::{DatabaseSettings, parse_duration};

/// The arguments of `integration migrate`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The Data Center (jira_server) integration to move from.
    #[arg(long, value_name = "DC_ID")]
    pub from: i64,
    /// The active Jira Cloud (jira_cloud) integration to move to.
    #[arg(long, value_name = "CLOUD_ID")]
    pub to: i64,
    /// Only the issues of this Jira project (keys KEY-…); repeat for several.
    #[arg(long = "project", value_name = "KEY", value_parser = NonEmptyStringValueParser::new())]
    pub projects: Vec<String>,
    /// Then disable the Data Center integration (its webhooks are dropped).
    #[arg(long)]
    pub disable_source: bool,
    /// Compute and print what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// How far a webhook's event time may lie ahead of its receive time: which
    /// stored watermarks count when two rows merge (as the worker counts them).
    #[arg(
        long,
        value_name = "DURATION",
        env = "JIRASYNC_MAX_EVENT_SKEW",
        default_value = "5m",
        value_parser = parse_duration,
        hide = true
    )]
    pub max_event_skew: Duration,
    /// Postgres.
    #[command(flatten)]
    pub database: DatabaseSettings,
}

/// Runs the migration and prints its report.
pub async fn run(args: &Args) -> anyhow::Result<()> {
    let pool = super::pool(&args.database).await?;
    let request = Request {
        from: args.from,
        to: args.to,
        projects: args.projects.clone(),
        disable_source: args.disable_source,
        dry_run: args.dry_run,
        max_event_skew: args.max_event_skew,
    };
    let progress = |line: &str| eprintln!("{line}");
    let report = migrate::run(&pool, &request, &progress).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", summary(&report));
    }
    Ok(())
}

/// The report as a reader wants it.
fn summary(report: &Report) -> String {
    let mut text = String::new();
    let verb = if report.dry_run {
        "Dry run (nothing changed): would migrate"
    } else {
        "Migrated"
    };
    text.push_str(&format!(
        "{verb} Data Center integration {} to Jira Cloud integration {}\n",
        report.from, report.to
    ));
    let lines = [
        ("issues moved", report.issues_moved),
        ("issues merged", report.issues_merged),
        ("links", report.links),
        ("duplicate links dropped", report.duplicate_links_dropped),
        ("organizations linked", report.organizations_linked),
        ("organizations updated", report.organizations_updated),
        ("user map: translated", report.user_map.translated),
        ("user map: already mapped", report.user_map.already_mapped),
        (
            "user map: unresolved",
            report.user_map.unresolved.len() as u64,
        ),
    ];
    for (what, count) in lines {
        text.push_str(&format!("  {what:<26} {count}\n"));
    }
    for unresolved in &report.user_map.unresolved {
        let reason = serde_json::to_value(unresolved.reason)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        text.push_str(&format!(
            "    {} (user {}): {reason}\n",
            unresolved.jira_user, unresolved.user
        ));
    }
    if !report.user_map.unresolved.is_empty() {
        text.push_str(
            "  map them by hand: jirasync user-map set --integration ID --jira-user <accountId> --user USERNAME\n",
        );
    }
    let source = if report.source_disabled {
        "disabled"
    } else {
        "left as it was"
    };
    text.push_str(&format!("  source integration         {source}\n"));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::migrate::{Reason, Unresolved, UserMap};

    #[test]
    fn the_summary_has_every_count_and_each_unresolved_user_with_its_reason() {
        let report = Report {
            from: 3,
            to: 7,
            dry_run: true,
            issues_moved: 412,
            links: 530,
            organizations_linked: 2,
            user_map: UserMap {
                translated: 5,
                already_mapped: 1,
                unresolved: vec![Unresolved {
                    jira_user: "jdoe".to_owned(),
                    user: "jane".to_owned(),
                    reason: Reason::EmailHidden,
                }],
            },
            ..Report::default()
        };
        let text = summary(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "Dry run (nothing changed): would migrate Data Center integration 3 to Jira Cloud integration 7"
        );
        assert_eq!(lines[1], "  issues moved               412");
        assert_eq!(lines[3], "  links                      530");
        assert_eq!(lines[9], "  user map: unresolved       1");
        assert_eq!(lines[10], "    jdoe (user jane): email_hidden");
        assert!(lines[11].contains("jirasync user-map set"), "{text}");
        assert_eq!(lines[12], "  source integration         left as it was");
    }
}
