//! Handler of `jira_server.webhook` (CONTRACT §5; Sentry
//! `JiraServerIssueUpdatedWebhook.post` → `handle_assignee_change`).

use tracing::Span;

use super::hidden_email::Lookup;
use super::token::{self, Rejected};
use super::{WebhookJobs, db_error, pool_error};
use crate::db::integrations::find_active_jira_server;
use crate::jira::payload::{AssigneeChange, WebhookEvent, parse};
use crate::queue::consumer::{HandleError, Incoming, Outcome};
use crate::queue::message::{HUB_SIGNATURE, TOKEN, header_str};
use crate::sync::assignee::{self, Action};

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
    let (key, change, event_time) = match event {
        WebhookEvent::NoChangelog => return Ok(Outcome("no_changelog")),
        WebhookEvent::NoAssigneeChange => return Ok(Outcome("no_assignee_change")),
        WebhookEvent::AssigneeChanged {
            key,
            change,
            event_time,
        } => (key, change, event_time),
    };
    Span::current().record("issue.key", key.as_str());
    let action = match change {
        AssigneeChange::Assign(email) => Action::Assign(email),
        AssigneeChange::Unassign => Action::Unassign,
        AssigneeChange::MissingEmail(None) => return Ok(missing_email()),
        AssigneeChange::MissingEmail(Some(user)) => {
            match jobs.emails.lookup(&client, &integration, &user).await? {
                Lookup::Found(email) => Action::Assign(email),
                Lookup::NoEmail | Lookup::NoAccessToken => return Ok(missing_email()),
            }
        }
    };
    let tx = client.transaction().await.map_err(db_error)?;
    let report = assignee::apply(&tx, integration.id, &key, &action, event_time)
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    tracing::debug!(?report, "assignee change applied");
    Ok(Outcome(report.outcome()))
}

/// No email in the webhook nor from Jira: nothing to assign.
fn missing_email() -> Outcome {
    tracing::info!("missing-assignee-email");
    Outcome("missing_email")
}

/// A rejected token or signature: dropped (acked), logged without the token, counted.
fn rejected(reason: Rejected) -> Outcome {
    tracing::warn!(%reason, "webhook rejected");
    Outcome("invalid_token")
}
