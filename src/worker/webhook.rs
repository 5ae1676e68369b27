//! Handler of `jira_server.webhook` (docs/reference.md §5; Sentry
//! `JiraServerIssueUpdatedWebhook.post` → `handle_assignee_change` and
//! `handle_status_change`): authenticate, parse, ask Jira what the webhook does
//! not say (hidden emails, status categories), then apply a move, the assignee and
//! the status in one transaction, with the audit trail of what was decided.

use deadpool_postgres::Object;
use serde_json::json;
use tracing::Span;

use super::WebhookJobs;
use super::hidden_email::Lookup;
use crate::db::status_sync;
use crate::integration::token::{self, Rejected};
use crate::integration::{self as jira_server, Integration};
use crate::jira::payload::{AssigneeChange, IssueChange, StatusChange, WebhookEvent, parse};
use crate::queue::handler::{Failure, Incoming, Outcome};
use crate::queue::message::{HUB_SIGNATURE, TOKEN, header_str};
use crate::secrets::Keyring;
use crate::sync::assignee::{self, Action};
use crate::sync::audit::Kind;
use crate::sync::rekey;
use crate::sync::status::{self, Transition};

/// Authenticates, parses and applies one webhook.
pub async fn handle(jobs: &WebhookJobs, message: &Incoming) -> Result<Outcome, Failure> {
    let Some(token) = header_str(&message.properties, TOKEN) else {
        return Ok(rejected(&Rejected::Missing));
    };
    let external_id = match token::external_id(&token) {
        Ok(id) => id,
        Err(reason) => return Ok(rejected(&reason)),
    };
    // No connection is held while Jira is asked (below): a refresh of an OAuth 2.0
    // token takes one of its own.
    let authenticated = {
        let client = jobs.pool.get().await?;
        authenticate(&client, jobs.pool.keys(), &token, &external_id, message).await?
    };
    let integration = match authenticated {
        Ok(integration) => integration,
        Err(reason) => return Ok(rejected(&reason)),
    };
    let event =
        parse(&message.body).map_err(|error| Failure::permanent(Outcome::Malformed, error))?;
    let change = match event {
        WebhookEvent::NoChangelog => return Ok(Outcome::NoChangelog),
        WebhookEvent::NothingToSync => return Ok(Outcome::NothingToSync),
        WebhookEvent::Changed(change) => change,
    };
    Span::current().record("issue.key", change.key.as_str());
    let assignee = match &change.assignee {
        Some(assignee) => Some(assignee_action(jobs, &integration, assignee).await?),
        None => None,
    };
    let status_plan = match &change.status {
        Some(status) => Some(status_plan(jobs, &integration, &change, status).await?),
        None => None,
    };

    let event = change.event(integration.id);
    let mut audit = jobs.audit(&message.id, event);
    let mut client = jobs.pool.get().await?;
    let tx = client.transaction().await?;
    let rekeyed = match &change.moved_from {
        Some(from) => rekey::apply(&tx, integration.id, from, &change.key, &mut audit).await?,
        None => 0,
    };
    let assigned = match &assignee {
        Some(action) => Some(assignee::apply(&tx, event, action, &mut audit).await?),
        None => None,
    };
    let resolved = match status_plan {
        Some(StatusPlan::Apply(transition)) => Some((
            transition,
            status::apply(&tx, event, transition, &mut audit).await?,
        )),
        Some(StatusPlan::Skipped(reason)) => {
            audit.record(
                Kind::Status,
                None,
                "not_synced",
                json!({ "reason": reason }),
            );
            None
        }
        None => None,
    };
    audit.write(&tx).await?;
    tx.commit().await?;
    audit.count();
    tracing::debug!(?assigned, ?resolved, "changes applied");
    Ok(outcome(rekeyed, assigned.as_ref(), resolved.as_ref()))
}

/// The active integration `external_id` names, with `token` and the body's HMAC
/// verified; the reason when either is rejected (docs/reference.md §5.1–2).
async fn authenticate(
    client: &Object,
    keys: &Keyring,
    token: &str,
    external_id: &str,
    message: &Incoming,
) -> Result<Result<Integration, Rejected>, Failure> {
    let Some(integration) = jira_server::find_active(client, keys, external_id).await? else {
        return Ok(Err(Rejected::UnknownIntegration));
    };
    Span::current().record("integration.id", integration.id);
    let signature = header_str(&message.properties, HUB_SIGNATURE);
    Ok(token::verify(token, &integration.metadata)
        .and_then(|()| {
            token::check_hmac(&integration.metadata, signature.as_deref(), &message.body)
        })
        .map(|()| integration))
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
enum StatusPlan {
    /// Apply it: resolve, unresolve, or (`None`) only move the watermark.
    Apply(Option<Transition>),
    /// Not synced, for this reason (`sync_events.detail.reason`).
    Skipped(&'static str),
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
        return Ok(StatusPlan::Skipped("no_organization_syncs_statuses"));
    }
    let Some(done) = jobs.statuses.done_ids(&jobs.pool, integration).await? else {
        tracing::warn!(
            "status sync skipped: the integration has no access token to read Jira's statuses"
        );
        return Ok(StatusPlan::Skipped("no_access_token"));
    };
    Ok(StatusPlan::Apply(Transition::between(
        change.from.as_deref(),
        change.to.as_deref(),
        &done,
    )))
}

/// One outcome for the message: a status change that did something wins over an
/// assignee change that did not; a move alone is `rekeyed`.
fn outcome(
    rekeyed: usize,
    assigned: Option<&assignee::Report>,
    resolved: Option<&(Option<Transition>, status::Report)>,
) -> Outcome {
    let status = resolved.map(|(transition, report)| status_outcome(report, *transition));
    let assignee = assigned.map(assignee_outcome);
    match (assignee, status) {
        (Some(Outcome::Unchanged), Some(status)) => status,
        (Some(assignee), _) => assignee,
        (None, Some(status)) => status,
        (None, None) if rekeyed > 0 => Outcome::Rekeyed,
        (None, None) => Outcome::StatusNotSynced,
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
