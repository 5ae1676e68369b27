//! Applies one assignee change to every linked group, in one transaction
//! (Sentry `sync_group_assignee_inbound`, plus the link-type, deletion-status and
//! ordering fixes of docs/reference.md §5.6).

use deadpool_postgres::Transaction;

use super::{Email, IssueEvent, Reach};
use crate::db::sync::{self as q, Watermark};

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
    /// The organizations and groups reached, and the stale organizations.
    pub reach: Reach,
    /// Groups whose assignee was set or changed.
    pub assigned: usize,
    /// Groups whose assignee was removed.
    pub unassigned: usize,
    /// Groups where no matching user could be assigned.
    pub assignee_not_found: usize,
}

/// Applies `action` for `event`'s issue inside `tx` (the caller commits).
pub async fn apply(
    tx: &Transaction<'_>,
    event: IssueEvent<'_>,
    action: &Action,
) -> Result<Report, tokio_postgres::Error> {
    let mut report = Report::default();
    let integration_id = event.integration_id;
    let issues = super::admitted(tx, Watermark::Assignee, event, &mut report.reach).await?;
    for group in super::groups_of(tx, &issues, &mut report.reach).await? {
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
    Ok(report)
}
