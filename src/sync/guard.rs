//! The ordering guard (docs/reference.md §5.6) and the reach of a change: which
//! of an issue's rows in organizations that sync a kind back a change may
//! touch, and the groups linked to them.

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;

use super::audit::detail::{Clock, NotLinked, PushKind, Stale, SyncFlag};
use super::audit::{Audit, Decision};
use super::clock;
use super::event::IssueEvent;
use super::state::State;
use crate::db::sync::{ExternalIssue, LinkedGroup, Watermark};

/// A row the ordering guard admitted, and the watermark it found there that
/// bound nothing (later than [`clock::horizon`]: left by a version that did
/// not bound event times) and replaced.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The row.
    pub issue: ExternalIssue,
    /// The watermark replaced, if one was.
    pub reset_from: Option<DateTime<Utc>>,
}

impl Admitted {
    /// What the clock did here, for a decision's detail: the replaced watermark
    /// (`watermark_reset_from`), for `jirasync explain`.
    pub fn clock(&self) -> Clock {
        Clock {
            watermark_reset_from: self.reset_from,
            ..Clock::default()
        }
    }
}

/// The organizations one change reached, how many of them the ordering guard
/// turned away because a later change was applied there already, and the groups
/// reached in the others.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    /// Organizations that sync the change's kind back and know the issue.
    pub organizations: usize,
    /// Of those, the ones skipped as stale.
    pub stale: usize,
    /// Groups linked to the issue in the organizations not skipped.
    pub groups: usize,
}

impl Reach {
    /// Whether every organization reached was stale (and there was one).
    pub fn all_stale(&self) -> bool {
        self.stale > 0 && self.stale == self.organizations
    }
}

/// The issue's rows in organizations that sync `watermark`'s kind back, locked,
/// that the ordering guard admits; counted in `reach`.
///
/// The guard (docs/reference.md §5.6): a row whose watermark is later than the
/// event time is stale; otherwise its watermark moves forward to the event time.
/// Without an event time every row is admitted and nothing moves. Equal is not
/// stale: redelivery of the same event re-applies as a no-op. A watermark beyond
/// [`clock::horizon`] binds nothing and is replaced by the event time: no change
/// since this version can have set it, so an older version did, from an
/// unbounded event time, and it would otherwise freeze the issue for good. A
/// stale organization is noted in `audit`, and so is the want of any organization.
///
/// Before the guard, a change that sets the field to `sets` (the value as pushes
/// record it), when it is the echo of jirasync's own push there (`sync::echo`), is
/// not admitted: it moves the watermark as an applied change would and is noted
/// as an echo, never as stale (docs/reference.md §10.7).
pub async fn admitted(
    tx: &Object,
    state: &mut State,
    watermark: Watermark,
    event: IssueEvent<'_>,
    sets: Option<&str>,
    reach: &mut Reach,
    audit: &mut Audit,
) -> Result<Vec<Admitted>, tokio_postgres::Error> {
    let (stale, sync_flag, kind): (fn(Stale) -> Decision, _, _) = match watermark {
        Watermark::Assignee => (
            Decision::AssigneeStale,
            SyncFlag::SyncReverseAssignment,
            PushKind::Assignee,
        ),
        Watermark::Status => (
            Decision::StatusStale,
            SyncFlag::SyncStatusReverse,
            PushKind::Status,
        ),
    };
    // Judged on Jira's own time, before the bound replaced it.
    let jira_time = event.clamped_from.or(event.at);
    let mut admitted = Vec::new();
    let key = event.key.as_str();
    let issues = state.issues(tx, watermark, event.integration_id, key);
    let issues = issues.await?;
    // Taken once the rows are locked: every change committed before was received before.
    let horizon = clock::horizon(event.skew);
    for issue in issues {
        reach.organizations += 1;
        if let Some(value) = sets
            && let Some(echo) = state.echo(issue.id, kind, value, jira_time)
        {
            tracing::info!(organization.id = issue.organization_id, watermark = ?watermark, "the echo of a push: nothing to apply");
            if let Some(at) = event.at {
                state.set_watermark(issue.id, watermark, at, false);
            }
            audit.record(Some(issue.organization_id), Decision::Echo(echo));
            continue;
        }
        let binding = clock::binding(issue.synced_at, horizon);
        match (event.at, binding) {
            (Some(at), Some(applied_up_to)) if applied_up_to > at => {
                tracing::info!(organization.id = issue.organization_id, watermark = ?watermark, "skipping stale change");
                reach.stale += 1;
                let detail = Stale {
                    event_time: at,
                    applied_up_to,
                    cloud: None,
                    clock: Clock::default(),
                };
                audit.record(Some(issue.organization_id), stale(detail));
            }
            (Some(at), None) if issue.synced_at.is_some() => {
                tracing::warn!(organization.id = issue.organization_id, watermark = ?watermark, "replacing a watermark beyond any receive time");
                state.set_watermark(issue.id, watermark, at, true);
                let reset_from = issue.synced_at;
                admitted.push(Admitted { issue, reset_from });
            }
            (Some(at), _) => {
                state.set_watermark(issue.id, watermark, at, false);
                admitted.push(Admitted {
                    issue,
                    reset_from: None,
                });
            }
            (None, _) => admitted.push(Admitted {
                issue,
                reset_from: None,
            }),
        }
    }
    if reach.organizations == 0 {
        let detail = NotLinked {
            sync_flag,
            cloud: None,
            clock: Clock::default(),
        };
        audit.record(None, Decision::NotLinked(detail));
    }
    Ok(admitted)
}

/// The groups linked to `issue` (a row [`admitted`] admitted), counted in `reach`.
pub fn groups_of(state: &State, issue: &ExternalIssue, reach: &mut Reach) -> Vec<LinkedGroup> {
    let groups = state.groups(issue.id);
    reach.groups += groups.len();
    groups
}
