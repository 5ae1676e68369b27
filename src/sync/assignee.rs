//! Applies one assignee change to every linked group, in one transaction
//! (Sentry `sync_group_assignee_inbound`, plus the link-type, deletion-status and
//! ordering fixes of CONTRACT §5.6).

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;

use super::{Email, IssueKey};
use crate::db::sync as q;

/// What to do to the linked groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Assign the user with this email.
    Assign(Email),
    /// Remove the assignee.
    Unassign,
}

/// What one change did, summed over organizations and groups.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Organizations with sync on that know the issue.
    pub organizations: usize,
    /// Organizations skipped because a later change was already applied.
    pub stale: usize,
    /// Groups reached.
    pub groups: usize,
    /// Groups whose assignee was set or changed.
    pub assigned: usize,
    /// Groups whose assignee was removed.
    pub unassigned: usize,
    /// Groups where no matching user could be assigned.
    pub assignee_not_found: usize,
}

impl Report {
    /// The outcome label of the whole change, for metrics and the log line.
    pub fn outcome(&self) -> &'static str {
        if self.assigned > 0 {
            "assigned"
        } else if self.unassigned > 0 {
            "unassigned"
        } else if self.assignee_not_found > 0 {
            "assignee_not_found"
        } else if self.stale > 0 && self.stale == self.organizations {
            "stale"
        } else {
            "unchanged"
        }
    }
}

/// Applies `action` for issue `key` of `integration_id` inside `tx` (the caller commits).
pub async fn apply(
    tx: &Transaction<'_>,
    integration_id: i64,
    key: &IssueKey,
    action: &Action,
    event_time: Option<DateTime<Utc>>,
) -> Result<Report, tokio_postgres::Error> {
    let mut report = Report::default();
    for issue in q::lock_external_issues(tx, integration_id, key.as_str()).await? {
        report.organizations += 1;
        let synced_at = issue.assignee_synced_at;
        if !super::admit(tx, &issue, synced_at, q::Watermark::Assignee, event_time).await? {
            report.stale += 1;
            continue;
        }
        for group in q::linked_groups(tx, &issue).await? {
            report.groups += 1;
            match action {
                Action::Unassign => {
                    if q::unassign(tx, group, integration_id).await? {
                        report.unassigned += 1;
                    }
                }
                Action::Assign(email) => match q::find_assignee(tx, group, email.as_str()).await? {
                    Some((user_id, stored)) => {
                        if q::assign(tx, group, user_id, &stored, integration_id).await? {
                            report.assigned += 1;
                        }
                    }
                    None => {
                        report.assignee_not_found += 1;
                        tracing::info!(group.id = group.group_id, "assignee-not-found");
                    }
                },
            }
        }
    }
    Ok(report)
}
