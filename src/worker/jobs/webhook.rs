//! Handler of `jira_server.webhook` and `jira_cloud.webhook` (docs/reference.md
//! §5, §11.4; Sentry `JiraServerIssueUpdatedWebhook.post` → `handle_assignee_change`
//! and `handle_status_change`): authenticate (a Cloud delivery must be signed,
//! `cloud::delivery`), parse, ask Jira what the webhook does not say (hidden
//! emails, status categories), then hand the change (`sync::Change`) to the
//! writers (`sync::batch`), which apply the move, the assignee and the status in
//! one transaction, shared with the other webhooks ready at the same time, with
//! the audit trail of what was decided — and, for Cloud, the delivery's
//! identifier, so that a redelivery changes nothing.

use chrono::{DateTime, Utc};
use tracing::Span;

use crate::cloud::delivery as cloud;
use crate::db::status_sync;
use crate::integration::messages::{
    DELIVERY_JWT, HUB_SIGNATURE, RECEIVED_AT_MS, TOKEN, WEBHOOK_IDENTIFIER,
};
use crate::integration::token::{self, Rejected};
use crate::integration::{self, Integration, Provider};
use crate::jira::payload::{
    AssigneeChange, IssueChange, StatusChange, WebhookEvent, issue_key, parse,
};
use crate::queue::handler::{Failure, Incoming};
use crate::queue::message::{header_int, header_str};
use crate::sync::audit::detail::NotSyncedReason;
use crate::sync::clock::EventTime;
use crate::sync::status::Transition;
use crate::sync::unit;
use crate::sync::{Applied, Change, Delivery as CloudDelivery, IssueKey, StatusPlan};
use crate::worker::environment::Environment;
use crate::worker::lookups::{Found, Read};
use crate::worker::outcome::Outcome;

/// A webhook delivery as the dispatcher parses it, before its token is read:
/// its message id, its provider (by its type), and the integration its token
/// verified for once it has (what its dead-lettering is attributed to).
#[derive(Debug)]
pub struct Delivery {
    id: String,
    provider: Provider,
    integration: std::sync::OnceLock<i64>,
}

impl Delivery {
    /// A delivery of message `id` of `provider`, its token not yet verified.
    pub fn new(id: &str, provider: Provider) -> Self {
        Self {
            id: id.to_owned(),
            provider,
            integration: std::sync::OnceLock::new(),
        }
    }

    /// The message id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The integration the token verified for, once it has.
    pub fn integration(&self) -> Option<i64> {
        self.integration.get().copied()
    }
}

/// Authenticates, parses and applies one webhook: with its integration's row as
/// the worker kept it, and, when that row turns out to have changed since
/// (`worker::lookups::integrations`), again with the row read anew.
pub async fn handle(
    env: &Environment,
    message: &Incoming,
    delivery: &Delivery,
) -> Result<Outcome, Failure> {
    match prepare(env, message, delivery, Read::Kept).await? {
        Prepared::Done(outcome) => return Ok(outcome),
        Prepared::Apply(change, cloud) => match env.batches.apply_delivery(*change, cloud).await {
            Err(unit::Error::IntegrationChanged) => {}
            applied => return Ok(outcome(applied?)),
        },
        Prepared::Changed => {}
    }
    tracing::debug!("the integration's row changed since it was kept: read again");
    match prepare(env, message, delivery, Read::Fresh).await? {
        Prepared::Done(outcome) => Ok(outcome),
        Prepared::Apply(change, cloud) => {
            Ok(outcome(env.batches.apply_delivery(*change, cloud).await?))
        }
        // A row read for this webhook is current: never said of it.
        Prepared::Changed => Err(Failure::from(unit::Error::IntegrationChanged)),
    }
}

/// What a webhook comes to before any write.
enum Prepared {
    /// Nothing to write: rejected, or nothing to sync.
    Done(Outcome),
    /// A change to apply, and the Cloud delivery to record with it.
    Apply(Box<Change>, Option<CloudDelivery>),
    /// The kept row of its integration is no longer current: prepare it again
    /// with the row read anew. Said before anything is written or told.
    Changed,
}

/// Authenticates and parses a webhook and asks Jira what it does not say, with
/// the row of its integration kept or read as `read` says. An outcome other
/// than a change to apply, reached with a kept row, is first confirmed with
/// the row's current version.
async fn prepare(
    env: &Environment,
    message: &Incoming,
    delivery: &Delivery,
    read: Read,
) -> Result<Prepared, Failure> {
    let Some(token) = header_str(&message.properties, TOKEN) else {
        return Ok(Prepared::Done(rejected(&Rejected::Missing)));
    };
    // A token that verified before is not decoded or checked again.
    let tokens = env.lookups.tokens();
    let token_read = match tokens.read(&token) {
        Ok(read) => read,
        Err(reason) => {
            env.verdicts.rejected(&token);
            return Ok(Prepared::Done(rejected(&reason)));
        }
    };
    let external_id = token_read.external_id();
    let provider = delivery.provider;
    let Some(found) = env
        .lookups
        .integrations()
        .active(&env.pool, provider, external_id, read)
        .await?
    else {
        return Ok(Prepared::Done(
            not_active(env, provider, &token, external_id).await?,
        ));
    };
    let integration = &*found.integration;
    Span::current().record("integration.id", integration.id);
    let digest = match tokens.verify(&token, &token_read, integration) {
        Ok(digest) => digest,
        Err(reason) => {
            if changed(env, &found).await? {
                return Ok(Prepared::Changed);
            }
            env.verdicts.rejected(&token);
            return Ok(Prepared::Done(rejected(&reason)));
        }
    };
    env.verdicts.accepted(digest);
    // The same integration on every attempt of this delivery.
    let _ = delivery.integration.set(integration.id);
    env.activity.webhook_seen(&env.pool, integration.id).await;
    // A wrong body signature is about this delivery, not the token: no verdict.
    let signature = header_str(&message.properties, HUB_SIGNATURE);
    match provider {
        Provider::Server => {
            if let Err(reason) =
                token::check_hmac(&integration.metadata, signature.as_deref(), &message.body)
            {
                if changed(env, &found).await? {
                    return Ok(Prepared::Changed);
                }
                return Ok(Prepared::Done(rejected(&reason)));
            }
        }
        Provider::Cloud => {
            if let Err(reason) = signed(env, integration, message, signature.as_deref()).await? {
                if changed(env, &found).await? {
                    return Ok(Prepared::Changed);
                }
                tracing::warn!(%reason, "webhook rejected");
                return Ok(Prepared::Done(Outcome::InvalidToken));
            }
        }
    }
    let event = match parse(&message.body) {
        Ok(event) => event,
        Err(_) if changed(env, &found).await? => return Ok(Prepared::Changed),
        Err(error) => return Err(Failure::permanent(Outcome::Malformed, error)),
    };
    // A Cloud delivery's identifier (§11.4): recorded with what it changes.
    let cloud = match provider {
        Provider::Cloud => header_str(&message.properties, WEBHOOK_IDENTIFIER)
            .filter(|identifier| !identifier.is_empty())
            .map(|webhook_identifier| CloudDelivery { webhook_identifier }),
        Provider::Server => None,
    };
    let mut issue = match event {
        WebhookEvent::NoChangelog | WebhookEvent::NothingToSync => {
            if changed(env, &found).await? {
                return Ok(Prepared::Changed);
            }
            let done = match event {
                WebhookEvent::NoChangelog => Outcome::NoChangelog,
                _ => Outcome::NothingToSync,
            };
            // Its key, read for the duplicate's decision only (it changes nothing).
            let key = cloud.as_ref().and_then(|_| issue_key(&message.body));
            let cloud = cloud.as_ref();
            return Ok(Prepared::Done(
                match nothing_changed(env, integration, message, cloud, key.as_ref(), false).await?
                {
                    true => Outcome::Duplicate,
                    false => done,
                },
            ));
        }
        WebhookEvent::Changed(change) => change,
    };
    // A duplicate asks Jira nothing: told before the lookups when there are any
    // (a hidden email, a status change); every duplicate is told in the
    // transaction that records the delivery, so the others skip this round trip.
    let asks_jira = issue.status.is_some()
        || matches!(&issue.assignee, Some(AssigneeChange::MissingEmail(Some(_))));
    if asks_jira
        && nothing_changed(
            env,
            integration,
            message,
            cloud.as_ref(),
            Some(&issue.key),
            true,
        )
        .await?
    {
        if changed(env, &found).await? {
            return Ok(Prepared::Changed);
        }
        return Ok(Prepared::Done(Outcome::Duplicate));
    }
    issue.bound_event_time(received_at(message), env.max_event_skew);
    Span::current().record("issue.key", issue.key.as_str());
    let assignee = match &issue.assignee {
        Some(assignee) => Some(
            env.lookups
                .assignee_action(&env.pool, integration, assignee)
                .await?,
        ),
        None => None,
    };
    let status = match &issue.status {
        Some(status) => Some(status_plan(env, integration, &issue, status).await?),
        None => None,
    };
    let status_to = issue.status.as_ref().and_then(|status| status.to.clone());
    let change = Change {
        message_id: message.id.clone(),
        integration_id: integration.id,
        // Applied only while the kept row is still current.
        integration_version: found.kept,
        provider: integration.provider.activity(),
        key: issue.key,
        moved_from: issue.moved_from,
        event_time: EventTime {
            at: issue.event_time,
            clamped_from: issue.event_time_clamped_from,
        },
        skew: env.max_event_skew,
        assignee,
        status,
        status_to,
    };
    Ok(Prepared::Apply(Box::new(change), cloud))
}

/// Whether the kept row of its integration that a webhook came to an outcome
/// with has changed since: then the outcome is not the row's to decide.
async fn changed(env: &Environment, found: &Found) -> Result<bool, Failure> {
    let current = env.lookups.integrations().current(&env.pool, found).await?;
    Ok(!current)
}

/// Whether a Cloud delivery is signed (docs/reference.md §11.4): its HMAC, or a
/// delivery JWT under the OAuth 2.0 client secret (the credentials are read only
/// for a delivery that carries one).
async fn signed(
    env: &Environment,
    integration: &Integration,
    message: &Incoming,
    signature: Option<&str>,
) -> Result<Result<cloud::Signed, cloud::Unsigned>, Failure> {
    let jwt = header_str(&message.properties, DELIVERY_JWT);
    let credentials = match &jwt {
        Some(_) => {
            let client = env.pool.get().await?;
            integration::credentials(&client, env.pool.keys(), integration.id)
                .await?
                .map(|stored| stored.credentials)
        }
        None => None,
    };
    let delivery = cloud::Delivery {
        hub_signature: signature,
        delivery_jwt: jwt.as_deref(),
        body: &message.body,
    };
    let verified = cloud::verify(&integration.metadata, delivery, || credentials, Utc::now());
    if let Ok(how) = verified {
        tracing::debug!(signed = ?how, "Cloud delivery verified");
    }
    Ok(verified)
}

/// For a Cloud delivery with an identifier: whether another message carried it
/// already (then its `delivery`/`duplicate` decision is written under `key`, the
/// payload's issue key). Unless `only_ask`, a first delivery is recorded — for
/// one that changes nothing (no changelog, nothing to sync), in a short
/// transaction of its own.
async fn nothing_changed(
    env: &Environment,
    integration: &Integration,
    message: &Incoming,
    cloud: Option<&CloudDelivery>,
    key: Option<&IssueKey>,
    only_ask: bool,
) -> Result<bool, Failure> {
    let Some(cloud) = cloud else {
        return Ok(false);
    };
    let unit = env.batches.unit();
    let key = key.map(IssueKey::as_str);
    let duplicate = unit
        .delivery_alone(integration.id, &message.id, key, cloud, only_ask)
        .await?;
    if duplicate {
        tracing::info!(
            webhook.identifier = %cloud.webhook_identifier,
            "duplicate Cloud delivery: nothing changed"
        );
    }
    Ok(duplicate)
}

/// When the ingress received the message (its `received_at_ms` header), else —
/// a message published by hand — now, when the worker took it.
fn received_at(message: &Incoming) -> DateTime<Utc> {
    header_int(&message.properties, RECEIVED_AT_MS)
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_else(Utc::now)
}

/// A token naming no active integration: rejected, and said so to the ingresses,
/// unless it verifies against an integration that exists but is not active
/// (`disabled`): that one's webhooks are dropped without a verdict, so Jira's
/// posts count against no client and `integration enable` takes them again at once.
async fn not_active(
    env: &Environment,
    provider: Provider,
    token: &str,
    external_id: &str,
) -> Result<Outcome, Failure> {
    let integration = {
        let client = env.pool.get().await?;
        integration::find(&client, env.pool.keys(), provider, external_id).await?
    };
    match integration {
        Some(integration) if token::verify(token, &integration.metadata).is_ok() => {
            Span::current().record("integration.id", integration.id);
            env.activity.webhook_seen(&env.pool, integration.id).await;
            tracing::info!(status = %integration.status, "webhook of an integration that is not active dropped");
            Ok(Outcome::InvalidToken)
        }
        _ => {
            env.verdicts.rejected(token);
            Ok(rejected(&Rejected::UnknownIntegration))
        }
    }
}

/// A rejected token or signature: dropped (acked), logged without the token, counted.
fn rejected(reason: &Rejected) -> Outcome {
    tracing::warn!(%reason, "webhook rejected");
    Outcome::InvalidToken
}

/// Whether the status change resolves, unresolves or crosses no boundary; skipped
/// when no organization syncs statuses of the issue (under its key, or the key it
/// moved from) or the integration cannot ask Jira (no access token: a warning).
async fn status_plan(
    env: &Environment,
    integration: &Integration,
    issue: &IssueChange,
    change: &StatusChange,
) -> Result<StatusPlan, Failure> {
    let enabled = {
        let client = env.pool.get().await?;
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
    let Some(done) = env.lookups.done_ids(&env.pool, integration).await? else {
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

/// The message's outcome: what applying its change came to, by the same name.
fn outcome(applied: Applied) -> Outcome {
    match applied {
        Applied::Assigned => Outcome::Assigned,
        Applied::Unassigned => Outcome::Unassigned,
        Applied::AssigneeNotFound => Outcome::AssigneeNotFound,
        Applied::Unchanged => Outcome::Unchanged,
        Applied::Stale => Outcome::Stale,
        Applied::MissingEmail => {
            tracing::info!("missing-assignee-email");
            Outcome::MissingEmail
        }
        Applied::Resolved => Outcome::Resolved,
        Applied::Unresolved => Outcome::Unresolved,
        Applied::StatusNotSynced => Outcome::StatusNotSynced,
        Applied::Rekeyed => Outcome::Rekeyed,
        Applied::Duplicate => Outcome::Duplicate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_result_of_a_change_labels_its_message_by_the_same_name() {
        for (applied, label) in [
            (Applied::Assigned, "assigned"),
            (Applied::Unassigned, "unassigned"),
            (Applied::AssigneeNotFound, "assignee_not_found"),
            (Applied::Unchanged, "unchanged"),
            (Applied::Stale, "stale"),
            (Applied::MissingEmail, "missing_email"),
            (Applied::Resolved, "resolved"),
            (Applied::Unresolved, "unresolved"),
            (Applied::StatusNotSynced, "status_not_synced"),
            (Applied::Rekeyed, "rekeyed"),
            (Applied::Duplicate, "duplicate"),
        ] {
            assert_eq!(outcome(applied).label(), label, "{applied:?}");
        }
    }
}
