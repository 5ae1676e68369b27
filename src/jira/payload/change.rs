//! What a webhook asks of inbound sync, as `parse.rs` reads it from a body: the
//! [`WebhookEvent`], the [`IssueChange`] with its assignee and status changes,
//! and the event time bounded by the receive time (docs/reference.md §5.6).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::jira::UserRef;
use crate::sync::{Email, IssueKey, clock};

/// What a webhook body asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    /// `changelog` is missing, null, `{}`, `[]` or `""`.
    NoChangelog,
    /// The changelog has no item whose field is `assignee`, `status` or `Key`.
    NothingToSync,
    /// The key, the assignee, the status or several changed.
    Changed(IssueChange),
}

/// The changes of one webhook that inbound sync acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueChange {
    /// `issue.key` (after a move, the new key).
    pub key: IssueKey,
    /// The issue moved (another project, so another key): the key before.
    pub moved_from: Option<IssueKey>,
    /// Assign, unassign, or nothing (no email); `None` when the assignee did not change.
    pub assignee: Option<AssigneeChange>,
    /// The status transition; `None` when the status did not change.
    pub status: Option<StatusChange>,
    /// `issue.fields.updated`, else top-level `timestamp`; once
    /// [bounded](Self::bound_event_time), never later than the receive time + the skew.
    pub event_time: Option<DateTime<Utc>>,
    /// Jira's event time, when [`bound_event_time`](Self::bound_event_time)
    /// replaced it by the receive time.
    pub event_time_clamped_from: Option<DateTime<Utc>>,
}

impl IssueChange {
    /// Bounds the event time by the time jirasync received the change
    /// (docs/reference.md §5.6): one later than `received` + `skew` becomes
    /// `received`, and Jira's is kept in `event_time_clamped_from`.
    pub fn bound_event_time(&mut self, received: DateTime<Utc>, skew: Duration) {
        let jira = self.event_time_clamped_from.or(self.event_time);
        let bounded = clock::bound(jira, received, skew);
        self.event_time = bounded.at;
        self.event_time_clamped_from = bounded.clamped_from;
    }
}

/// A changelog item with `field = "status"`: Jira status ids before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// The `from` status id.
    pub from: Option<String>,
    /// The `to` status id.
    pub to: Option<String>,
}

/// The new assignee as the webhook tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssigneeChange {
    /// Assign the user with this email (and how Jira names them, for the user map).
    Assign(Email, Option<AssigneeRef>),
    /// The assignee was removed.
    Unassign,
    /// An assignee without an email address (hidden by Jira's privacy settings):
    /// how to look the user up, when the object names them.
    MissingEmail(Option<AssigneeRef>),
}

/// How a webhook names an assignee whose email it hides, for a user lookup.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AssigneeRef {
    /// The assignee's `name` (the user name).
    Username(String),
    /// The assignee's `key`, when it has no `name`.
    Key(String),
    /// A Jira Cloud assignee's `accountId` (Cloud users have no `name` or `key`,
    /// docs/reference.md §11.5).
    AccountId(String),
}

impl AssigneeRef {
    /// The reference as [`JiraClient::get_user`](crate::jira::JiraClient::get_user) takes it.
    pub fn as_user_ref(&self) -> UserRef<'_> {
        match self {
            Self::Username(name) => UserRef::Username(name),
            Self::Key(key) => UserRef::Key(key),
            Self::AccountId(id) => UserRef::AccountId(id),
        }
    }

    /// The `name`, `key` or `accountId`, as `jira_user_mappings.jira_user` holds it.
    pub fn name(&self) -> &str {
        match self {
            Self::Username(name) | Self::Key(name) | Self::AccountId(name) => name,
        }
    }

    /// A Jira Cloud user's `accountId`, if this names one.
    pub fn account_id(&self) -> Option<&str> {
        match self {
            Self::AccountId(id) => Some(id),
            Self::Username(_) | Self::Key(_) => None,
        }
    }
}
