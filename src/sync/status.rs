//! Applies one Jira status change to every linked group, in one transaction
//! (Sentry `sync_status_inbound`, plus: ignored groups stay ignored, no activity
//! when nothing changes, and the ordering guard on `status_synced_at`).

use std::collections::HashSet;

use deadpool_postgres::Object;

use super::audit::detail::{GroupStatus, NoDoneBoundary, StatusChange, StatusGroup, StatusResult};
use super::audit::{Audit, Decision};
use super::event::IssueEvent;
use super::guard::{self, Reach};
use super::state::State;
use crate::db::status_sync as q;
use crate::db::sync::Watermark;

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
    fn statuses(self) -> (GroupStatus, GroupStatus, &'static str) {
        match self {
            Self::Resolve => (
                GroupStatus::Unresolved,
                GroupStatus::Resolved,
                "set_resolved",
            ),
            Self::Unresolve => (
                GroupStatus::Resolved,
                GroupStatus::Unresolved,
                "set_unresolved",
            ),
        }
    }
}

/// What one status change did, summed over organizations and groups.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// The organizations and groups reached, and the stale organizations.
    pub reach: Reach,
    /// Groups whose status changed.
    pub changed: usize,
}

/// Applies `transition` for `event`'s issue inside `tx` (the caller commits). A
/// status change that crosses no boundary (`None`) still moves the ordering
/// watermark, so an older crossing delivered late cannot apply over it. Each
/// organization's decision is noted in `audit`. `to`, the Jira status id the
/// issue moved to, tells the echo of a push (`sync::echo`).
pub async fn apply(
    tx: &Object,
    state: &mut State,
    event: IssueEvent<'_>,
    transition: Option<Transition>,
    to: Option<&str>,
    audit: &mut Audit,
) -> Result<Report, tokio_postgres::Error> {
    let mut report = Report::default();
    let watermark = Watermark::Status;
    let issues = guard::admitted(tx, state, watermark, event, to, &mut report.reach, audit);
    let issues = issues.await?;
    for admitted in &issues {
        let issue = &admitted.issue;
        // Without a transition only the watermark moves.
        let Some((from, to, activity)) = transition.map(Transition::statuses) else {
            let detail = NoDoneBoundary {
                clock: admitted.clock(),
            };
            audit.record(
                Some(issue.organization_id),
                Decision::NoDoneBoundary(detail),
            );
            continue;
        };
        let mut groups = Vec::new();
        let mut changed = 0;
        for group in guard::groups_of(state, issue, &mut report.reach) {
            let (before, after) = (from.as_str(), to.as_str());
            let moved = q::transition(tx, &group, before, after, event.writer()).await?;
            if moved {
                state.activity(&group, activity, q::transition_activity(event.writer()));
            }
            changed += usize::from(moved);
            groups.push(StatusGroup {
                group_id: group.group_id,
                project: group.project_slug,
                result: match (moved, to) {
                    (false, _) => StatusResult::Unchanged,
                    (true, GroupStatus::Resolved) => StatusResult::Resolved,
                    (true, GroupStatus::Unresolved) => StatusResult::Unresolved,
                },
            });
        }
        report.changed += changed;
        let change = StatusChange {
            from,
            to,
            groups,
            clock: admitted.clock(),
        };
        audit.record(Some(issue.organization_id), Decision::Status(change));
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
