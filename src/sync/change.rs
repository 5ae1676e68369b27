//! One change of a Jira issue as inbound sync applies it: everything decided
//! before the transaction (the integration, what Jira had to be asked), so a
//! transaction holds no lock while Jira answers. The worker's webhook and reconcile
//! handlers build it from what Jira sent; the [unit of work](super::unit) applies it.

use std::time::Duration;

use super::assignee::Action;
use super::audit::detail::NotSyncedReason;
use super::clock::EventTime;
use super::event::{IssueEvent, IssueKey};
use super::status::Transition;
use crate::db::sync::Provider;
use crate::integration::Version;

/// A change ready to apply.
#[derive(Debug, Clone)]
pub struct Change {
    /// The message that carried it (the ingress's `202`), for the audit trail.
    pub message_id: String,
    /// The integration it came from.
    pub integration_id: i64,
    /// The version of the integration's row it was prepared with, when that row
    /// was kept from an earlier read rather than read for it: the change is
    /// applied only while the row is still that version and active, else
    /// answered [`Error::IntegrationChanged`](super::unit::Error::IntegrationChanged).
    pub integration_version: Option<Version>,
    /// The integration's provider, as the activity rows name it.
    pub provider: &'static Provider,
    /// The issue's key (after a move, the new one).
    pub key: IssueKey,
    /// The key the issue moved from, if it moved.
    pub moved_from: Option<IssueKey>,
    /// When Jira says it happened, bounded by the receive time ([`super::clock::bound`]).
    pub event_time: EventTime,
    /// `JIRASYNC_MAX_EVENT_SKEW`, for the ordering guard.
    pub skew: Duration,
    /// What to do about the assignee, if it changed.
    pub assignee: Option<Action>,
    /// What to do about the status, if it changed.
    pub status: Option<StatusPlan>,
    /// The Jira status id the issue moved to, if the status changed: a push to
    /// that status makes this change its echo (docs/reference.md §10.7).
    pub status_to: Option<String>,
}

impl Change {
    /// The change as the rules take it.
    pub fn event(&self) -> IssueEvent<'_> {
        IssueEvent {
            integration_id: self.integration_id,
            provider: self.provider,
            key: &self.key,
            at: self.event_time.at,
            clamped_from: self.event_time.clamped_from,
            skew: self.skew,
        }
    }
}

/// What to do about a status change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusPlan {
    /// Apply it: resolve, unresolve, or (`None`) only move the watermark.
    Apply(Option<Transition>),
    /// Not synced, for this reason (`sync_events.detail.reason`).
    Skipped(NotSyncedReason),
}

/// A Jira Cloud delivery (docs/reference.md §11.4): its
/// `X-Atlassian-Webhook-Identifier`, recorded with the integration and the
/// message id in the transaction that applies its change; a pair recorded by
/// another message makes the change a duplicate, which changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `X-Atlassian-Webhook-Identifier`.
    pub webhook_identifier: String,
}
