//! Handler of `jira_server.webhook` (docs/reference.md §5; Sentry
//! `JiraServerIssueUpdatedWebhook.post` → `handle_assignee_change` and
//! `handle_status_change`): authenticate, parse, ask Jira what the webhook does
//! not say (hidden emails, status categories), then apply a move, the assignee and
//! the status in one transaction, with the audit trail of what was decided; that
//! transaction is shared with the other webhooks ready at the same time
//! (`worker::batch`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use tracing::Span;

use super::WebhookJobs;
use super::lookups::hidden_email::Lookup;
use crate::db::status_sync;
use crate::integration::messages::{HUB_SIGNATURE, RECEIVED_AT_MS, TOKEN};
use crate::integration::token::{self, Rejected};
use crate::integration::{self as jira_server, Integration};
use crate::jira::payload::{AssigneeChange, IssueChange, StatusChange, WebhookEvent, parse};
use crate::queue::handler::{Failure, Incoming};
use crate::queue::message::{header_int, header_str};
use crate::sync::IssueKey;
use crate::sync::assignee::{self, Action};
use crate::sync::audit::detail::{Clock, NotSynced, NotSyncedReason};
use crate::sync::audit::{Audit, Decision};
use crate::sync::rekey;
use crate::sync::status::{self, Transition};
use crate::worker::Outcome;

/// Authenticates, parses and applies one webhook.
pub async fn handle(jobs: &WebhookJobs, message: &Incoming) -> Result<Outcome, Failure> {
    match prepare(jobs, message).await? {
        Prepared::Done(outcome) => Ok(outcome),
        Prepared::Apply(change) => jobs.batches.apply(change).await,
    }
}

/// What a webhook comes to before any write.
enum Prepared {
    /// Nothing to write: rejected, or nothing to sync.
    Done(Outcome),
    /// A change to apply.
    Apply(Box<Change>),
}

/// A webhook ready to apply: everything decided outside the transaction (the
/// integration, what Jira had to be asked), so a transaction holds no lock while
/// Jira answers.
#[derive(Debug)]
pub struct Change {
    /// The message id (the ingress's `202`), for the audit trail.
    message_id: String,
    integration_id: i64,
    /// The change, its event time bounded by the receive time.
    issue: IssueChange,
    /// `JIRASYNC_MAX_EVENT_SKEW`, for the ordering guard.
    skew: Duration,
    assignee: Option<Action>,
    status: Option<StatusPlan>,
}

impl Change {
    /// The integration.
    pub fn integration_id(&self) -> i64 {
        self.integration_id
    }

    /// The issue's key (after a move, the new one).
    pub fn key(&self) -> &IssueKey {
        &self.issue.key
    }

    /// The key the issue moved from, if it moved.
    pub fn moved_from(&self) -> Option<&IssueKey> {
        self.issue.moved_from.as_ref()
    }
}

/// Authenticates and parses a webhook and asks Jira what it does not say.
async fn prepare(jobs: &WebhookJobs, message: &Incoming) -> Result<Prepared, Failure> {
    let Some(token) = header_str(&message.properties, TOKEN) else {
        return Ok(Prepared::Done(rejected(&Rejected::Missing)));
    };
    let external_id = match token::external_id(&token) {
        Ok(id) => id,
        Err(reason) => {
            jobs.verdicts.rejected(&token);
            return Ok(Prepared::Done(rejected(&reason)));
        }
    };
    let Some(integration) = find_active(jobs, &external_id).await? else {
        return Ok(Prepared::Done(
            not_active(jobs, &token, &external_id).await?,
        ));
    };
    Span::current().record("integration.id", integration.id);
    if let Err(reason) = token::verify(&token, &integration.metadata) {
        jobs.verdicts.rejected(&token);
        return Ok(Prepared::Done(rejected(&reason)));
    }
    jobs.verdicts.accepted(&token);
    // A wrong body signature is about this delivery, not the token: no verdict.
    let signature = header_str(&message.properties, HUB_SIGNATURE);
    if let Err(reason) =
        token::check_hmac(&integration.metadata, signature.as_deref(), &message.body)
    {
        return Ok(Prepared::Done(rejected(&reason)));
    }
    let event =
        parse(&message.body).map_err(|error| Failure::permanent(Outcome::Malformed, error))?;
    let mut issue = match event {
        WebhookEvent::NoChangelog => return Ok(Prepared::Done(Outcome::NoChangelog)),
        WebhookEvent::NothingToSync => return Ok(Prepared::Done(Outcome::NothingToSync)),
        WebhookEvent::Changed(change) => change,
    };
    issue.bound_event_time(received_at(message), jobs.max_event_skew);
    Span::current().record("issue.key", issue.key.as_str());
    let assignee = match &issue.assignee {
        Some(assignee) => Some(assignee_action(jobs, &integration, assignee).await?),
        None => None,
    };
    let status = match &issue.status {
        Some(status) => Some(status_plan(jobs, &integration, &issue, status).await?),
        None => None,
    };
    Ok(Prepared::Apply(Box::new(Change {
        message_id: message.id.clone(),
        integration_id: integration.id,
        issue,
        skew: jobs.max_event_skew,
        assignee,
        status,
    })))
}

/// When the ingress received the message (its `received_at_ms` header), else —
/// a message published by hand — now, when the worker took it.
fn received_at(message: &Incoming) -> DateTime<Utc> {
    header_int(&message.properties, RECEIVED_AT_MS)
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_else(Utc::now)
}

/// Applies `change` in `tx`: the move, the assignee and the status. Returns the
/// outcome and the trail of what was decided, which the caller writes in `tx`
/// before it commits, and [counts](Audit::count) once committed.
pub async fn apply(
    tx: &Transaction<'_>,
    change: &Change,
    record: bool,
) -> Result<(Outcome, Audit), tokio_postgres::Error> {
    let event = change.issue.event(change.integration_id, change.skew);
    let mut audit = super::audit(record, &change.message_id, event);
    let moved = match &change.issue.moved_from {
        Some(from) => rekey::apply(tx, event, from, &mut audit).await?,
        None => rekey::Report::default(),
    };
    let assigned = match &change.assignee {
        Some(action) => Some(assignee::apply(tx, event, action, &mut audit).await?),
        None => None,
    };
    let resolved = match change.status {
        Some(StatusPlan::Apply(transition)) => Some((
            transition,
            status::apply(tx, event, transition, &mut audit).await?,
        )),
        Some(StatusPlan::Skipped(reason)) => {
            let detail = NotSynced {
                reason,
                clock: Clock::default(),
            };
            audit.record(None, Decision::StatusNotSynced(detail));
            None
        }
        None => None,
    };
    tracing::debug!(?assigned, ?resolved, "changes applied");
    let status_asked = change.status.is_some();
    let outcome = outcome(moved, assigned.as_ref(), resolved.as_ref(), status_asked);
    Ok((outcome, audit))
}

/// The active integration `external_id` names (docs/reference.md §5.1), in one
/// query with the webhooks that ask for it at the same time. No connection is held
/// after it: one held while Jira is asked would be one fewer for the others (a
/// refresh of an OAuth 2.0 token takes one of its own).
async fn find_active(
    jobs: &WebhookJobs,
    external_id: &str,
) -> Result<Option<Integration>, Failure> {
    let key = external_id.to_owned();
    jobs.integrations
        .get(&key, || async {
            let client = jobs.pool.get().await?;
            Ok(jira_server::find_active(&client, jobs.pool.keys(), external_id).await?)
        })
        .await
}

/// A token naming no active integration: rejected, and said so to the ingresses,
/// unless it verifies against an integration that exists but is not active
/// (`disabled`): that one's webhooks are dropped without a verdict, so Jira's
/// posts count against no client and `integration enable` takes them again at once.
async fn not_active(
    jobs: &WebhookJobs,
    token: &str,
    external_id: &str,
) -> Result<Outcome, Failure> {
    let integration = {
        let client = jobs.pool.get().await?;
        jira_server::find(&client, jobs.pool.keys(), external_id).await?
    };
    match integration {
        Some(integration) if token::verify(token, &integration.metadata).is_ok() => {
            Span::current().record("integration.id", integration.id);
            tracing::info!(status = %integration.status, "webhook of an integration that is not active dropped");
            Ok(Outcome::InvalidToken)
        }
        _ => {
            jobs.verdicts.rejected(token);
            Ok(rejected(&Rejected::UnknownIntegration))
        }
    }
}

/// A rejected token or signature: dropped (acked), logged without the token, counted.
fn rejected(reason: &Rejected) -> Outcome {
    tracing::warn!(%reason, "webhook rejected");
    Outcome::InvalidToken
}

/// What to do about the assignee: a hidden email is asked of Jira; without any
/// email the user map may still name the user (`sync::assignee`).
pub(super) async fn assignee_action(
    jobs: &WebhookJobs,
    integration: &Integration,
    change: &AssigneeChange,
) -> Result<Action, Failure> {
    Ok(match change {
        AssigneeChange::Assign(email, user) => Action::Assign {
            email: Some(email.clone()),
            jira_user: user.as_ref().map(|user| user.name().to_owned()),
        },
        AssigneeChange::Unassign => Action::Unassign,
        AssigneeChange::MissingEmail(None) => Action::Assign {
            email: None,
            jira_user: None,
        },
        AssigneeChange::MissingEmail(Some(user)) => {
            let email = match jobs.emails.lookup(&jobs.pool, integration, user).await? {
                Lookup::Found(email) => Some(email),
                Lookup::NoEmail | Lookup::NoAccessToken => None,
            };
            Action::Assign {
                email,
                jira_user: Some(user.name().to_owned()),
            }
        }
    })
}

/// What to do about a status change.
#[derive(Debug, Clone, Copy)]
enum StatusPlan {
    /// Apply it: resolve, unresolve, or (`None`) only move the watermark.
    Apply(Option<Transition>),
    /// Not synced, for this reason (`sync_events.detail.reason`).
    Skipped(NotSyncedReason),
}

/// Whether the status change resolves, unresolves or crosses no boundary; skipped
/// when no organization syncs statuses of the issue (under its key, or the key it
/// moved from) or the integration cannot ask Jira (no access token: a warning).
async fn status_plan(
    jobs: &WebhookJobs,
    integration: &Integration,
    issue: &IssueChange,
    change: &StatusChange,
) -> Result<StatusPlan, Failure> {
    let enabled = {
        let client = jobs.pool.get().await?;
        let keys = std::iter::once(&issue.key).chain(&issue.moved_from);
        let mut enabled = false;
        for key in keys {
            enabled =
                enabled || status_sync::enabled(&client, integration.id, key.as_str()).await?;
        }
        enabled
    };
    if !enabled {
        return Ok(StatusPlan::Skipped(
            NotSyncedReason::NoOrganizationSyncsStatuses,
        ));
    }
    let Some(done) = jobs.statuses.done_ids(&jobs.pool, integration).await? else {
        tracing::warn!(
            "status sync skipped: the integration has no access token to read Jira's statuses"
        );
        return Ok(StatusPlan::Skipped(NotSyncedReason::NoAccessToken));
    };
    Ok(StatusPlan::Apply(Transition::between(
        change.from.as_deref(),
        change.to.as_deref(),
        &done,
    )))
}

/// One outcome for the message: a status change that did something wins over an
/// assignee change that did not; a move alone is `rekeyed`, or `stale` when every
/// row it found had a later move applied, or `unchanged` when it found none; a
/// status change no organization syncs (`status_asked`, not applied) is
/// `status_not_synced`.
fn outcome(
    moved: rekey::Report,
    assigned: Option<&assignee::Report>,
    resolved: Option<&(Option<Transition>, status::Report)>,
    status_asked: bool,
) -> Outcome {
    let status = resolved.map(|(transition, report)| status_outcome(report, *transition));
    let assignee = assigned.map(assignee_outcome);
    match (assignee, status) {
        (Some(Outcome::Unchanged), Some(status)) => status,
        (Some(assignee), _) => assignee,
        (None, Some(status)) => status,
        (None, None) if moved.moved > 0 => Outcome::Rekeyed,
        (None, None) if moved.stale > 0 => Outcome::Stale,
        (None, None) if status_asked => Outcome::StatusNotSynced,
        (None, None) => Outcome::Unchanged,
    }
}

/// The outcome of one assignee change over all its organizations and groups.
fn assignee_outcome(report: &assignee::Report) -> Outcome {
    if report.assigned > 0 {
        Outcome::Assigned
    } else if report.unassigned > 0 {
        Outcome::Unassigned
    } else if report.assignee_not_found > 0 {
        Outcome::AssigneeNotFound
    } else if report.missing_email > 0 {
        tracing::info!("missing-assignee-email");
        Outcome::MissingEmail
    } else if report.reach.all_stale() {
        Outcome::Stale
    } else {
        Outcome::Unchanged
    }
}

/// The outcome of one status change over all its organizations and groups.
fn status_outcome(report: &status::Report, transition: Option<Transition>) -> Outcome {
    if report.changed > 0 {
        match transition {
            Some(Transition::Resolve) => Outcome::Resolved,
            Some(Transition::Unresolve) => Outcome::Unresolved,
            None => Outcome::Unchanged,
        }
    } else if report.reach.all_stale() {
        Outcome::Stale
    } else {
        Outcome::Unchanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_alone_is_rekeyed_stale_or_unchanged_never_a_status_outcome() {
        let report = |moved, stale| rekey::Report { moved, stale };
        for (name, moved, status_asked, expected) in [
            ("moved", report(1, 0), false, Outcome::Rekeyed),
            (
                "every row had a later move",
                report(0, 2),
                false,
                Outcome::Stale,
            ),
            (
                "no organization moves issues",
                report(0, 0),
                false,
                Outcome::Unchanged,
            ),
            (
                "a status no one syncs",
                report(0, 0),
                true,
                Outcome::StatusNotSynced,
            ),
        ] {
            assert_eq!(outcome(moved, None, None, status_asked), expected, "{name}");
        }
    }
}
