//! Handler of `jira_server.webhook` (CONTRACT §5; Sentry
//! `JiraServerIssueUpdatedWebhook.post` → `handle_assignee_change` and
//! `handle_status_change`, issue 8 §1–2): authenticate, parse, ask Jira what the
//! webhook does not say (hidden emails, status categories), then apply both
//! changes in one transaction.

use deadpool_postgres::Object;
use tracing::Span;

use super::hidden_email::Lookup;
use super::token::{self, Rejected};
use super::{WebhookJobs, db_error, pool_error};
use crate::db::integrations::{Integration, find_active_jira_server};
use crate::db::status_sync;
use crate::jira::payload::{AssigneeChange, IssueChange, StatusChange, WebhookEvent, parse};
use crate::queue::consumer::{HandleError, Incoming, Outcome};
use crate::queue::message::{HUB_SIGNATURE, TOKEN, header_str};
use crate::sync::IssueKey;
use crate::sync::assignee::{self, Action};
use crate::sync::status::{self, Transition};

/// Authenticates, parses and applies one webhook.
pub async fn handle(jobs: &WebhookJobs, message: &Incoming) -> Result<Outcome, HandleError> {
    let Some(token) = header_str(&message.properties, TOKEN) else {
        return Ok(rejected(Rejected::Missing));
    };
    let external_id = match token::external_id(&token) {
        Ok(id) => id,
        Err(reason) => return Ok(rejected(reason)),
    };
    let mut client = jobs.pool.get().await.map_err(pool_error)?;
    let Some(integration) = find_active_jira_server(&client, &external_id)
        .await
        .map_err(db_error)?
    else {
        return Ok(rejected(Rejected::UnknownIntegration));
    };
    Span::current().record("integration.id", integration.id);
    if let Err(reason) = token::verify(&token, &integration) {
        return Ok(rejected(reason));
    }
    let signature = header_str(&message.properties, HUB_SIGNATURE);
    if let Err(reason) = token::check_hmac(&integration, signature.as_deref(), &message.body) {
        return Ok(rejected(reason));
    }

    let event = parse(&message.body).map_err(|error| HandleError::Permanent {
        outcome: "malformed",
        reason: error.to_string(),
    })?;
    let change = match event {
        WebhookEvent::NoChangelog => return Ok(Outcome("no_changelog")),
        WebhookEvent::NothingToSync => return Ok(Outcome("nothing_to_sync")),
        WebhookEvent::Changed(change) => change,
    };
    Span::current().record("issue.key", change.key.as_str());
    let assignee = match &change.assignee {
        Some(assignee) => assignee_action(jobs, &client, &integration, assignee).await?,
        None => None,
    };
    let transition = match &change.status {
        Some(status) => status_transition(jobs, &client, &integration, &change.key, status).await?,
        None => None,
    };

    let tx = client.transaction().await.map_err(db_error)?;
    let assigned = match &assignee {
        Some(action) => Some(
            assignee::apply(&tx, integration.id, &change.key, action, change.event_time)
                .await
                .map_err(db_error)?,
        ),
        None => None,
    };
    let resolved = match transition {
        Some(transition) => Some((
            transition,
            status::apply(
                &tx,
                integration.id,
                &change.key,
                transition,
                change.event_time,
            )
            .await
            .map_err(db_error)?,
        )),
        None => None,
    };
    tx.commit().await.map_err(db_error)?;
    tracing::debug!(?assigned, ?resolved, "changes applied");
    Ok(outcome(&change, assigned.as_ref(), resolved.as_ref()))
}

/// What to do about the assignee; `None` when there is no email, not even from Jira.
pub(super) async fn assignee_action(
    jobs: &WebhookJobs,
    client: &Object,
    integration: &Integration,
    change: &AssigneeChange,
) -> Result<Option<Action>, HandleError> {
    Ok(match change {
        AssigneeChange::Assign(email) => Some(Action::Assign(email.clone())),
        AssigneeChange::Unassign => Some(Action::Unassign),
        AssigneeChange::MissingEmail(None) => None,
        AssigneeChange::MissingEmail(Some(user)) => {
            match jobs.emails.lookup(client, integration, user).await? {
                Lookup::Found(email) => Some(Action::Assign(email)),
                Lookup::NoEmail | Lookup::NoAccessToken => None,
            }
        }
    })
}

/// Whether the status change resolves, unresolves or crosses no boundary
/// (`Some(None)`: only the ordering watermark moves); `None` when no organization
/// syncs statuses back or the integration cannot ask Jira (no access token:
/// skipped with a warning).
async fn status_transition(
    jobs: &WebhookJobs,
    client: &Object,
    integration: &Integration,
    key: &IssueKey,
    change: &StatusChange,
) -> Result<Option<Option<Transition>>, HandleError> {
    if !status_sync::enabled(client, integration.id, key.as_str())
        .await
        .map_err(db_error)?
    {
        return Ok(None);
    }
    let Some(done) = jobs.statuses.done_ids(client, integration).await? else {
        tracing::warn!(
            "status sync skipped: the integration has no access token to read Jira's statuses"
        );
        return Ok(None);
    };
    Ok(Some(Transition::between(
        change.from.as_deref(),
        change.to.as_deref(),
        &done,
    )))
}

/// One label for the message: a status change that did something wins over an
/// assignee change that did not.
fn outcome(
    change: &IssueChange,
    assigned: Option<&assignee::Report>,
    resolved: Option<&(Option<Transition>, status::Report)>,
) -> Outcome {
    let status = resolved.map(|(transition, report)| report.outcome(*transition));
    let assignee = match (&change.assignee, assigned) {
        (_, Some(report)) => Some(report.outcome()),
        (Some(_), None) => {
            tracing::info!("missing-assignee-email");
            Some("missing_email")
        }
        (None, None) => None,
    };
    Outcome(match (assignee, status) {
        (Some("unchanged"), Some(status)) => status,
        (Some(label), _) => label,
        (None, Some(status)) => status,
        (None, None) => "status_not_synced",
    })
}

/// A rejected token or signature: dropped (acked), logged without the token, counted.
fn rejected(reason: Rejected) -> Outcome {
    tracing::warn!(%reason, "webhook rejected");
    Outcome("invalid_token")
}
