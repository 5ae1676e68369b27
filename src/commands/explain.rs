//! `jirasync explain ISSUE_KEY`: why an issue's groups are (or are not) assigned,
//! resolved or re-keyed — its recent `sync_events` (docs/reference.md §5.9),
//! newest first, one sentence each, as a Jira admin would ask it.

use anyhow::Context;
use serde_json::{Value, json};

use crate::config::DatabaseSettings;
use crate::db::sync_events::{self, SyncEvent};

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
    let events = sync_events::recent(&client, &args.issue_key, args.integration, args.limit)
        .await
        .context("failed to read the sync history")?;
    if events.is_empty() {
        let message = format!(
            "no sync history for {} in the last 30 days: check that the issue is linked to a group \
             of an organization with sync on, that Jira sends webhooks to jirasync (Administration > \
             System > WebHooks), and `jirasync dlq list` for webhooks that failed",
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
            object["text"] = json!(sentence(event));
            println!("{object}");
        } else {
            println!(
                "{} {} [message {}]",
                event.at.format("%Y-%m-%d %H:%M:%S UTC"),
                sentence(event),
                event.message_id.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(())
}

/// What the event says, as a sentence, with what the bounded clock did
/// (docs/reference.md §5.6): an event time clamped to the receive time, a
/// watermark left by an older version replaced.
pub fn sentence(event: &SyncEvent) -> String {
    let mut sentence = decision(event);
    let detail = &event.detail;
    if let Some(jira) = detail["event_time_clamped_from"].as_str() {
        sentence.push_str(&format!(
            "; Jira's event time {jira} lay beyond the time jirasync received the change plus \
             JIRASYNC_MAX_EVENT_SKEW, so the receive time was used"
        ));
    }
    if let Some(reset) = detail["watermark_reset_from"].as_str() {
        sentence.push_str(&format!(
            "; the watermark there, {reset}, lay beyond any receive time (set before event times \
             were bounded) and was replaced"
        ));
    }
    sentence
}

/// The decision itself, as a sentence.
fn decision(event: &SyncEvent) -> String {
    let detail = &event.detail;
    let text = |value: &Value| value.as_str().unwrap_or("?").to_owned();
    let org = match (&event.organization, event.organization_id) {
        (Some(slug), _) => format!(" in {slug}"),
        (None, Some(id)) => format!(" in organization {id}"),
        (None, None) => String::new(),
    };
    let key = &event.issue_key;
    match (event.kind.as_str(), event.outcome.as_str()) {
        ("key", "stale") => format!(
            "left {} as it is{org}: a later move (Jira time {}) was applied there already; this \
             move to {} is from {}",
            text(&detail["from"]),
            text(&detail["applied_up_to"]),
            text(&detail["to"]),
            text(&detail["event_time"])
        ),
        (_, "stale") => format!(
            "skipped{org}: a later change of {key} (Jira time {}) was applied there already; this \
             one is from {}",
            text(&detail["applied_up_to"]),
            text(&detail["event_time"])
        ),
        ("assignee", "not_linked") | ("status", "not_linked") => format!(
            "changed nothing: no organization with {} on has {key} linked to a group",
            text(&detail["sync_flag"])
        ),
        ("assignee", outcome) => assignee_sentence(outcome, &org, detail),
        ("status", "not_synced") => match detail["reason"].as_str() {
            Some("no_access_token") => "left the status alone: the integration has no access \
                 token to read Jira's statuses (connect it with OAuth or a PAT)"
                .to_owned(),
            _ => "left the status alone: no organization syncs statuses back \
                  (sync_status_reverse) for this issue"
                .to_owned(),
        },
        ("status", "unchanged") if detail["reason"] == "no_done_boundary" => format!(
            "left the status alone{org}: the change does not move into or out of Jira's done \
             category"
        ),
        ("status", outcome) => {
            let groups = groups_with(detail, outcome);
            match outcome {
                "resolved" | "unresolved" => format!(
                    "{outcome} {}{org}: the Jira status moved {} the done category",
                    plural_groups(&groups),
                    if outcome == "resolved" {
                        "into"
                    } else {
                        "out of"
                    }
                ),
                _ => format!(
                    "left the status alone{org}: the linked groups are {} already, or ignored",
                    text(&detail["to"])
                ),
            }
        }
        ("key", "rekeyed") => {
            let mut sentence = format!(
                "re-keyed {} to {}{org}: the issue moved to another project",
                text(&detail["from"]),
                text(&detail["to"])
            );
            if !detail["merged_into"].is_null() {
                sentence.push_str(&format!(
                    "; merged into the existing {} ({} links moved, {} duplicates dropped)",
                    text(&detail["to"]),
                    detail["links_moved"],
                    detail["duplicate_links_dropped"]
                ));
            }
            sentence
        }
        ("key", _) => format!(
            "move of {} to {}: nothing to re-key (no organization with a sync flag on had the \
             old key; moved already?)",
            text(&detail["from"]),
            text(&detail["to"])
        ),
        (kind, outcome) => format!("{kind}: {outcome}{org}"),
    }
}

/// The sentence of an assignee decision in one organization.
fn assignee_sentence(outcome: &str, org: &str, detail: &Value) -> String {
    let email = detail["email"].as_str();
    let jira_user = detail["jira_user"].as_str();
    let groups = detail["groups"].as_array().cloned().unwrap_or_default();
    if groups.is_empty() {
        return format!("changed nothing{org}: no group there is linked to the issue");
    }
    match outcome {
        "assigned" | "unchanged" => {
            let assigned = groups_with(detail, "assigned");
            let (verb, shown) = if outcome == "assigned" {
                ("assigned", assigned)
            } else {
                ("kept", groups_with(detail, "unchanged"))
            };
            let Some(first) = groups.iter().find(|g| !g["user"].is_null()) else {
                return format!(
                    "changed nothing{org}: the Jira issue has no assignee and {} had none",
                    plural_groups(&shown)
                );
            };
            let user = &first["user"];
            let who = format!(
                "{} (user {})",
                user["username"].as_str().unwrap_or("?"),
                user["id"]
            );
            let why = match first["via"].as_str() {
                Some("user_map") => format!(
                    "Jira user {} is mapped to them (jirasync user-map)",
                    jira_user.unwrap_or("?")
                ),
                _ => format!(
                    "the Jira assignee's email {} is their verified email",
                    email.unwrap_or("?")
                ),
            };
            let team = format!(
                ", and they are on team {}, which has project {}",
                user["team"].as_str().unwrap_or("?"),
                first["project"].as_str().unwrap_or("?")
            );
            let already = if outcome == "unchanged" {
                " (already assigned)"
            } else {
                ""
            };
            format!(
                "{verb} {who}{already} to {}{org}: {why}{team}",
                plural_groups(&shown)
            )
        }
        "unassigned" => format!(
            "unassigned {}{org}: the Jira issue has no assignee now",
            plural_groups(&groups_with(detail, "unassigned"))
        ),
        "no_candidate" => {
            let rejected: Vec<String> = groups
                .iter()
                .flat_map(|g| g["rejected"].as_array().cloned().unwrap_or_default())
                .map(|r| {
                    format!(
                        "{} (user {}): {}",
                        r["username"].as_str().unwrap_or("?"),
                        r["user_id"],
                        r["reason"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            let by = match email {
                Some(email) => format!("the Jira assignee's email {email}"),
                None => format!("Jira user {}", jira_user.unwrap_or("?")),
            };
            let why = if rejected.is_empty() {
                "no user has that email verified, and no user-map entry names the Jira user"
                    .to_owned()
            } else {
                format!("turned away {}", rejected.join("; "))
            };
            format!(
                "assigned nobody to {}{org}: nobody eligible has {by}; {why}",
                plural_groups(&groups_with(detail, "no_candidate"))
            )
        }
        "missing_email" => format!(
            "assigned nobody{org}: Jira did not give the assignee's email (hidden by its privacy \
             settings, or no access token to ask) and Jira user {} is not mapped (`jirasync \
             user-map set`)",
            jira_user.unwrap_or("(unnamed)")
        ),
        other => format!("assignee: {other}{org}"),
    }
}

/// The ids of the detail's groups whose result is `result`.
fn groups_with(detail: &Value, result: &str) -> Vec<i64> {
    detail["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|group| group["result"] == result)
        .filter_map(|group| group["group_id"].as_i64())
        .collect()
}

/// `group 5` or `groups 5, 6`.
fn plural_groups(ids: &[i64]) -> String {
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    match list.len() {
        1 => format!("group {}", list[0]),
        _ => format!("groups {}", list.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn event(kind: &str, outcome: &str, detail: Value) -> SyncEvent {
        SyncEvent {
            id: 1,
            at: Utc::now(),
            message_id: None,
            integration_id: Some(1),
            issue_key: "OPS-7".to_owned(),
            kind: kind.to_owned(),
            event_time: None,
            organization_id: Some(3),
            organization: Some("acme".to_owned()),
            outcome: outcome.to_owned(),
            detail,
        }
    }

    #[test]
    fn a_clamped_event_time_and_a_replaced_watermark_are_told() {
        let detail = json!({"groups": [], "event_time_clamped_from": "9999-12-31T23:59:59Z",
            "watermark_reset_from": "9999-01-01T00:00:00Z"});
        let text = sentence(&event("assignee", "unchanged", detail));
        assert!(
            text.contains("Jira's event time 9999-12-31T23:59:59Z lay beyond")
                && text.contains("so the receive time was used")
                && text.contains("the watermark there, 9999-01-01T00:00:00Z, lay beyond"),
            "{text}"
        );
    }

    #[test]
    fn a_stale_move_says_which_key_stays() {
        let detail = json!({"from": "OPS-7", "to": "DEMO-1", "event_time": "2024-01-01T10:00:00Z",
            "applied_up_to": "2024-01-01T11:00:00Z"});
        let text = sentence(&event("key", "stale", detail));
        assert_eq!(
            text,
            "left OPS-7 as it is in acme: a later move (Jira time 2024-01-01T11:00:00Z) was \
             applied there already; this move to DEMO-1 is from 2024-01-01T10:00:00Z"
        );
    }
}
