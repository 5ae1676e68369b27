//! What applying one [`Change`](super::Change) came to, in one word: the
//! [unit of work](super::unit) sums a change's move, assignee and status reports
//! into an [`Applied`]; the worker labels its message with it.

use super::status::{self, Transition};
use super::{assignee, rekey};

/// One result for a change over all its organizations and groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A linked group got a (new) assignee.
    Assigned,
    /// A linked group's assignee was removed.
    Unassigned,
    /// No user matched the assignee's email in a linked group's teams.
    AssigneeNotFound,
    /// The change was already in place (or reached no group).
    Unchanged,
    /// Every organization had applied a later change already.
    Stale,
    /// The assignee has no email and no mapped user.
    MissingEmail,
    /// A linked group was resolved.
    Resolved,
    /// A linked group was unresolved.
    Unresolved,
    /// Only a status changed, and no organization syncs statuses back.
    StatusNotSynced,
    /// The issue moved: its rows took the new key (and nothing else changed).
    Rekeyed,
    /// A Jira Cloud delivery handled already by another message: nothing
    /// changed (docs/reference.md §11.4).
    Duplicate,
}

/// One result for the change: a status change that did something wins over an
/// assignee change that did not; a move alone is `rekeyed`, or `stale` when every
/// row it found had a later move applied, or `unchanged` when it found none; a
/// status change no organization syncs (`status_asked`, not applied) is
/// `status_not_synced`.
pub(super) fn applied(
    moved: rekey::Report,
    assigned: Option<&assignee::Report>,
    resolved: Option<&(Option<Transition>, status::Report)>,
    status_asked: bool,
) -> Applied {
    let status = resolved.map(|(transition, report)| status_applied(report, *transition));
    let assignee = assigned.map(assignee_applied);
    match (assignee, status) {
        (Some(Applied::Unchanged), Some(status)) => status,
        (Some(assignee), _) => assignee,
        (None, Some(status)) => status,
        (None, None) if moved.moved > 0 => Applied::Rekeyed,
        (None, None) if moved.stale > 0 => Applied::Stale,
        (None, None) if status_asked => Applied::StatusNotSynced,
        (None, None) => Applied::Unchanged,
    }
}

/// The result of one assignee change over all its organizations and groups.
fn assignee_applied(report: &assignee::Report) -> Applied {
    if report.assigned > 0 {
        Applied::Assigned
    } else if report.unassigned > 0 {
        Applied::Unassigned
    } else if report.assignee_not_found > 0 {
        Applied::AssigneeNotFound
    } else if report.missing_email > 0 {
        Applied::MissingEmail
    } else if report.reach.all_stale() {
        Applied::Stale
    } else {
        Applied::Unchanged
    }
}

/// The result of one status change over all its organizations and groups.
fn status_applied(report: &status::Report, transition: Option<Transition>) -> Applied {
    if report.changed > 0 {
        match transition {
            Some(Transition::Resolve) => Applied::Resolved,
            Some(Transition::Unresolve) => Applied::Unresolved,
            None => Applied::Unchanged,
        }
    } else if report.reach.all_stale() {
        Applied::Stale
    } else {
        Applied::Unchanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::Reach;

    #[test]
    fn a_move_alone_is_rekeyed_stale_or_unchanged_never_a_status_outcome() {
        let report = |moved, stale| rekey::Report { moved, stale };
        for (name, moved, status_asked, expected) in [
            ("moved", report(1, 0), false, Applied::Rekeyed),
            (
                "every row had a later move",
                report(0, 2),
                false,
                Applied::Stale,
            ),
            (
                "no organization moves issues",
                report(0, 0),
                false,
                Applied::Unchanged,
            ),
            (
                "a status no one syncs",
                report(0, 0),
                true,
                Applied::StatusNotSynced,
            ),
        ] {
            assert_eq!(applied(moved, None, None, status_asked), expected, "{name}");
        }
    }

    #[test]
    fn a_status_that_did_something_wins_over_an_unchanged_assignee_and_not_over_a_changed_one() {
        let reach = Reach {
            organizations: 1,
            stale: 0,
            groups: 1,
        };
        let unchanged = assignee::Report {
            reach,
            ..Default::default()
        };
        let assigned = assignee::Report {
            assigned: 1,
            ..unchanged.clone()
        };
        let missing = assignee::Report {
            missing_email: 1,
            ..unchanged.clone()
        };
        let resolved = (
            Some(Transition::Resolve),
            status::Report { reach, changed: 1 },
        );
        let unresolved = (
            Some(Transition::Unresolve),
            status::Report { reach, changed: 1 },
        );
        let stale = status::Report {
            reach: Reach { stale: 1, ..reach },
            changed: 0,
        };
        let moved = rekey::Report { moved: 1, stale: 0 };
        for (name, assignee, status, expected) in [
            (
                "resolved",
                Some(&unchanged),
                Some(&resolved),
                Applied::Resolved,
            ),
            ("unresolved", None, Some(&unresolved), Applied::Unresolved),
            (
                "assigned",
                Some(&assigned),
                Some(&resolved),
                Applied::Assigned,
            ),
            ("missing email", Some(&missing), None, Applied::MissingEmail),
            (
                "a stale status",
                None,
                Some(&(None, stale.clone())),
                Applied::Stale,
            ),
            (
                "a move and an unchanged assignee",
                Some(&unchanged),
                None,
                Applied::Unchanged,
            ),
        ] {
            assert_eq!(
                applied(moved, assignee, status, status.is_some()),
                expected,
                "{name}"
            );
        }
    }
}
