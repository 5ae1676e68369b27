//! Applies one Jira status change to every linked group, in one transaction
//! (Sentry `sync_status_inbound`, plus: ignored groups stay ignored, no activity
//! when nothing changes, and the ordering guard on `status_synced_at`).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;

use super::IssueKey;
use crate::db::status_sync as q;
use crate::db::sync::{Watermark, linked_groups};

/// What a status change does to the linked groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Into the `done` category from outside it: unresolved groups become resolved.
    Resolve,
    /// Out of the `done` category: resolved groups become unresolved.
    Unresolve,
}

impl Transition {
    /// The transition from status id `from` to `to`, given the ids of the `done`
    /// category; `None` when the change does not cross that boundary.
    pub fn between(from: Option<&str>, to: Option<&str>, done: &HashSet<String>) -> Option<Self> {
        let is_done = |id: Option<&str>| id.is_some_and(|id| done.contains(id));
        match (is_done(from), is_done(to)) {
            (false, true) => Some(Self::Resolve),
            (true, false) => Some(Self::Unresolve),
            _ => None,
        }
    }

    /// (group status before, after, activity type).
    fn statuses(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Resolve => ("unresolved", "resolved", "set_resolved"),
            Self::Unresolve => ("resolved", "unresolved", "set_unresolved"),
        }
    }
}

/// What one status change did, summed over organizations and groups.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Organizations with status sync on that know the issue.
    pub organizations: usize,
    /// Organizations skipped because a later change was already applied.
    pub stale: usize,
    /// Groups reached.
    pub groups: usize,
    /// Groups whose status changed.
    pub changed: usize,
}

impl Report {
    /// The outcome label of the change, for metrics and the log line.
    pub fn outcome(&self, transition: Option<Transition>) -> &'static str {
        if self.changed > 0 {
            match transition {
                Some(Transition::Resolve) => "resolved",
                Some(Transition::Unresolve) => "unresolved",
                None => "unchanged",
            }
        } else if self.stale > 0 && self.stale == self.organizations {
            "stale"
        } else {
            "unchanged"
        }
    }
}

/// Applies `transition` for issue `key` of `integration_id` inside `tx` (the caller
/// commits). A status change that crosses no boundary (`None`) still moves the
/// ordering watermark, so an older crossing delivered late cannot apply over it.
pub async fn apply(
    tx: &Transaction<'_>,
    integration_id: i64,
    key: &IssueKey,
    transition: Option<Transition>,
    event_time: Option<DateTime<Utc>>,
) -> Result<Report, tokio_postgres::Error> {
    let mut report = Report::default();
    for (issue, synced_at) in q::lock_external_issues(tx, integration_id, key.as_str()).await? {
        report.organizations += 1;
        if !super::admit(tx, &issue, synced_at, Watermark::Status, event_time).await? {
            report.stale += 1;
            continue;
        }
        let Some((from, to, activity)) = transition.map(Transition::statuses) else {
            continue;
        };
        for group in linked_groups(tx, &issue).await? {
            report.groups += 1;
            if q::transition(tx, group, from, to, activity, integration_id).await? {
                report.changed += 1;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_crossing_into_or_out_of_done_does_something() {
        let done: HashSet<String> = ["10001".to_owned(), "6".to_owned()].into();
        let cases = [
            (
                "open to done",
                Some("1"),
                Some("10001"),
                Some(Transition::Resolve),
            ),
            (
                "nothing to done",
                None,
                Some("6"),
                Some(Transition::Resolve),
            ),
            (
                "done to open",
                Some("10001"),
                Some("1"),
                Some(Transition::Unresolve),
            ),
            (
                "done to nothing",
                Some("6"),
                None,
                Some(Transition::Unresolve),
            ),
            ("done to done", Some("10001"), Some("6"), None),
            ("open to in progress", Some("1"), Some("3"), None),
            ("unknown ids", None, None, None),
        ];
        for (name, from, to, expected) in cases {
            assert_eq!(Transition::between(from, to, &done), expected, "{name}");
        }
    }
}
