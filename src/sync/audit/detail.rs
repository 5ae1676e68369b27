//! The detail of each [`Decision`](super::Decision) (`sync_events.detail`): why it
//! was decided, as the rules saw it — the groups, the users, the times — and what
//! the bounded clock did. Written as JSON with exactly these keys.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod cloud;

pub use cloud::{CloudAssignee, DuplicateDelivery, EmailSource, SourceResult, SourceTried};

/// What the bounded clock (docs/reference.md §5.6) did to a decision, kept in its
/// `detail` beside the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    /// Jira's event time, when the receive time replaced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time_clamped_from: Option<DateTime<Utc>>,
    /// The watermark the change found beyond any receive time and replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark_reset_from: Option<DateTime<Utc>>,
}

/// A change older than the one applied in the organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stale {
    /// The change's event time.
    pub event_time: DateTime<Utc>,
    /// The event time of the change applied there.
    pub applied_up_to: DateTime<Utc>,
    /// A Jira Cloud assignee change: its account (docs/reference.md §11.4).
    #[serde(flatten)]
    pub cloud: Option<CloudAssignee>,
    /// What the clock did.
    #[serde(flatten)]
    pub clock: Clock,
}

/// No organization with `sync_flag` on has the issue linked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename = "not_linked")]
pub struct NotLinked {
    /// The flag that syncs the change's kind back.
    pub sync_flag: SyncFlag,
    /// A Jira Cloud assignee change: its account (docs/reference.md §11.4).
    #[serde(flatten)]
    pub cloud: Option<CloudAssignee>,
    /// What the clock did.
    #[serde(flatten)]
    pub clock: Clock,
}

/// The `organization_integrations.config` flag that syncs a kind of change back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncFlag {
    /// Assignee changes.
    SyncReverseAssignment,
    /// Status changes.
    SyncStatusReverse,
}

impl SyncFlag {
    /// The flag's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SyncReverseAssignment => "sync_reverse_assignment",
            Self::SyncStatusReverse => "sync_status_reverse",
        }
    }
}

/// The assignee change in one organization: what became of each linked group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// Each linked group.
    pub groups: Vec<AssigneeGroup>,
    /// Who Jira named, when the change assigns someone (`None`: it unassigns).
    #[serde(flatten)]
    pub asked: Option<Asked>,
    /// A Jira Cloud assignee: its `accountId` and where its email came from
    /// (docs/reference.md §11.5). `None` for Data Center.
    #[serde(flatten)]
    pub cloud: Option<CloudAssignee>,
    /// What the clock did.
    #[serde(flatten)]
    pub clock: Clock,
}

impl Assignment {
    /// The organization's outcome over its groups: a change wins over none, then
    /// the want of a candidate or an email; no group at all is `unchanged`.
    pub fn outcome(&self) -> AssigneeResult {
        use AssigneeResult::{Assigned, MissingEmail, NoCandidate, Unassigned, Unchanged};
        [Assigned, Unassigned, NoCandidate, MissingEmail]
            .into_iter()
            .find(|result| self.groups.iter().any(|group| group.result == *result))
            .unwrap_or(Unchanged)
    }
}

/// The assignee as Jira named it (either `null` when unknown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asked {
    /// The assignee's email.
    #[serde(deserialize_with = "Option::deserialize")]
    pub email: Option<String>,
    /// The Jira user's `name`, else its `key`, for the user map.
    #[serde(deserialize_with = "Option::deserialize")]
    pub jira_user: Option<String>,
}

/// What became of one linked group's assignee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssigneeGroup {
    /// The group.
    pub group_id: i64,
    /// Its project's slug.
    pub project: String,
    /// What became of it.
    pub result: AssigneeResult,
    /// The user it has (assigned now or before), and why them.
    #[serde(flatten)]
    pub chosen: Option<Chosen>,
    /// With no candidate: who was turned away, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Vec<RejectedUser>>,
}

/// The result of an assignee change, for a group or an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssigneeResult {
    /// The assignee was set or changed.
    Assigned,
    /// Nothing changed (already assigned, or nothing to unassign).
    Unchanged,
    /// The assignee was removed.
    Unassigned,
    /// Nobody eligible matched.
    NoCandidate,
    /// No email to go by, and no user mapped.
    MissingEmail,
}

impl AssigneeResult {
    /// As `sync_events.outcome` and `detail.groups[].result` say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assigned => "assigned",
            Self::Unchanged => "unchanged",
            Self::Unassigned => "unassigned",
            Self::NoCandidate => "no_candidate",
            Self::MissingEmail => "missing_email",
        }
    }
}

/// The user a group has, and how they were found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chosen {
    /// The user.
    pub user: ChosenUser,
    /// How.
    pub via: Via,
}

/// A user assigned to a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChosenUser {
    /// User id.
    pub id: i64,
    /// Their user name.
    pub username: String,
    /// The email that matched, as stored (a mapped user's first verified one, or empty).
    pub email: String,
    /// The slug of their team with the group's project.
    pub team: String,
}

/// How the assignee was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// Their verified email is the Jira assignee's.
    Email,
    /// The Jira user is mapped to them (`jirasync user-map`).
    UserMap,
}

/// A user holding the email (or mapped) who could not be assigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedUser {
    /// User id.
    pub user_id: i64,
    /// Their user name.
    pub username: String,
    /// The first rule they fail.
    pub reason: String,
}

/// Why a status change was not looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotSynced {
    /// Why.
    pub reason: NotSyncedReason,
    /// What the clock did.
    #[serde(flatten)]
    pub clock: Clock,
}

/// Why a status change was not looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotSyncedReason {
    /// No organization syncs the status back.
    NoOrganizationSyncsStatuses,
    /// The integration has no access token to read Jira's statuses.
    NoAccessToken,
}

/// A status change that crosses no boundary: only the watermark moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename = "no_done_boundary")]
pub struct NoDoneBoundary {
    /// What the clock did.
    #[serde(flatten)]
    pub clock: Clock,
}

/// A status change in one organization: what became of each linked group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// The groups' status it moves from.
    pub from: GroupStatus,
    /// And to.
    pub to: GroupStatus,
    /// Each linked group.
    pub groups: Vec<StatusGroup>,
    /// What the clock did.
    #[serde(flatten)]
    pub clock: Clock,
}

impl StatusChange {
    /// `resolved` or `unresolved` (`to`) when a group moved, else `unchanged`.
    pub fn outcome(&self) -> StatusResult {
        let moved = self
            .groups
            .iter()
            .any(|g| g.result != StatusResult::Unchanged);
        match (moved, self.to) {
            (false, _) => StatusResult::Unchanged,
            (true, GroupStatus::Resolved) => StatusResult::Resolved,
            (true, GroupStatus::Unresolved) => StatusResult::Unresolved,
        }
    }
}

/// A group's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupStatus {
    /// Resolved.
    Resolved,
    /// Unresolved.
    Unresolved,
}

impl GroupStatus {
    /// As `groups.status` holds it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Resolved => "resolved",
            Self::Unresolved => "unresolved",
        }
    }
}

/// What became of one linked group's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusGroup {
    /// The group.
    pub group_id: i64,
    /// Its project's slug.
    pub project: String,
    /// What became of it.
    pub result: StatusResult,
}

/// The result of a status change, for a group or an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusResult {
    /// Moved to resolved.
    Resolved,
    /// Moved to unresolved.
    Unresolved,
    /// Left as it was (there already, or ignored).
    Unchanged,
}

impl StatusResult {
    /// As `sync_events.outcome` and `detail.groups[].result` say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Resolved => "resolved",
            Self::Unresolved => "unresolved",
            Self::Unchanged => "unchanged",
        }
    }
}

/// A move older than the one applied to the organization's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStale {
    /// The old key.
    pub from: String,
    /// The new key.
    pub to: String,
    /// The move's event time.
    pub event_time: DateTime<Utc>,
    /// The event time of the move applied there.
    pub applied_up_to: DateTime<Utc>,
    /// What the clock did.
    #[serde(flatten)]
    pub clock: Clock,
}

/// A row that took the new key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rekeyed {
    /// The old key.
    pub from: String,
    /// The new key.
    pub to: String,
    /// When the organization had a row of the new key already: the merge.
    #[serde(flatten)]
    pub merged: Option<Merged>,
    /// What the clock did.
    #[serde(flatten)]
    pub clock: Clock,
}

/// A row of the old key merged into the organization's row of the new key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merged {
    /// The surviving row's id.
    pub merged_into: i64,
    /// Links moved to it.
    pub links_moved: u64,
    /// Links dropped because it had them already.
    pub duplicate_links_dropped: u64,
}

/// A move that found no row of the old key (moved already?).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename = "no_issue_with_old_key")]
pub struct NothingToRekey {
    /// The old key.
    pub from: String,
    /// The new key.
    pub to: String,
    /// What the clock did.
    #[serde(flatten)]
    pub clock: Clock,
}

/// A row `integration migrate` moved from a Data Center integration to a Cloud
/// one, or merged into the Cloud one's row of its key (docs/reference.md §11.7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migrated {
    /// The Data Center integration.
    pub from_integration: i64,
    /// The Cloud integration.
    pub to_integration: i64,
    /// What the clock did (nothing: a migration has no event time).
    #[serde(flatten)]
    pub clock: Clock,
}

/// What an outbound push sets in Jira (docs/reference.md §10).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushKind {
    /// The assignee (`group_assignees`).
    #[default]
    Assignee,
    /// The status (`groups.status`, resolved or unresolved).
    Status,
}

impl PushKind {
    /// As `outbound_changes.kind`, `outbound_pending.kind` and the label `kind` of
    /// `jirasync_outbound_total`: `assignee`, `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assignee => "assignee",
            Self::Status => "status",
        }
    }

    /// The `sync_events.kind` of its decisions: `assignee_outbound`, `status_outbound`.
    pub fn audit_kind(self) -> &'static str {
        match self {
            Self::Assignee => "assignee_outbound",
            Self::Status => "status_outbound",
        }
    }

    /// The kind `outbound_changes.kind` names.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "assignee" => Some(Self::Assignee),
            "status" => Some(Self::Status),
            _ => None,
        }
    }

    /// The kind whose decisions `sync_events.kind` names.
    pub fn from_audit_kind(value: &str) -> Option<Self> {
        value.strip_suffix("_outbound").and_then(Self::parse)
    }
}

/// What became of a push (docs/reference.md §10.9).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushOutcome {
    /// Jira took the write.
    #[default]
    Pushed,
    /// Jira held the target already: nothing written.
    Unchanged,
    /// The change was written by this integration's own inbound sync.
    SameOrigin,
    /// The group is assigned to a team: nothing is sent.
    TeamAssignee,
    /// No Jira user for the assignee.
    NoJiraUser,
    /// No status mapped for the project and direction.
    NotMapped,
    /// No transition leads to the mapped status.
    NoTransition,
    /// Jira refused the write (400, 403, 404, a required field).
    Refused,
    /// The integration cannot call Jira (needs reauth, no access token): held.
    Held,
    /// Jira failed until the retries ran out.
    Failed,
}

impl PushOutcome {
    /// Every outcome, in the order of docs/reference.md §10.9.
    pub const ALL: [Self; 10] = [
        Self::Pushed,
        Self::Unchanged,
        Self::SameOrigin,
        Self::TeamAssignee,
        Self::NoJiraUser,
        Self::NotMapped,
        Self::NoTransition,
        Self::Refused,
        Self::Held,
        Self::Failed,
    ];

    /// As `sync_events.outcome` and the label `outcome` of `jirasync_outbound_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pushed => "pushed",
            Self::Unchanged => "unchanged",
            Self::SameOrigin => "same_origin",
            Self::TeamAssignee => "team_assignee",
            Self::NoJiraUser => "no_jira_user",
            Self::NotMapped => "not_mapped",
            Self::NoTransition => "no_transition",
            Self::Refused => "refused",
            Self::Held => "held",
            Self::Failed => "failed",
        }
    }

    /// The outcome `sync_events.outcome` names.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == value)
    }
}

/// The change a push carries to Jira.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushChange {
    /// A user (or a team) is the group's assignee.
    #[default]
    Assign,
    /// The group has no assignee.
    Unassign,
    /// The group is resolved.
    Resolve,
    /// The group is unresolved.
    Unresolve,
}

/// How the Jira user of a pushed assignee was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JiraUserVia {
    /// The user map (`jirasync user-map`).
    UserMap,
    /// A verified email address, through Jira's assignable-user search.
    Email,
}

/// A user as an outbound decision names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushUser {
    /// `users.id`.
    pub id: i64,
    /// `users.username`.
    pub username: String,
}

/// One outbound decision (docs/reference.md §10.9): what jirasync pushed to one
/// external issue, or why not. Its kind and outcome are the row's columns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pushed {
    /// Assignee or status: the row's kind.
    #[serde(skip)]
    pub kind: PushKind,
    /// What became of it: the row's outcome.
    #[serde(skip)]
    pub outcome: PushOutcome,
    /// The group whose state was pushed.
    pub group_id: i64,
    /// What the group's state asks of Jira.
    pub change: PushChange,
    /// The assignee, when a user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<PushUser>,
    /// The assignee, when a team (its slug).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The Jira user name sent (or that would have been).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jira_user: Option<String>,
    /// How it was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<JiraUserVia>,
    /// The user map entry tried, when it led nowhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_map: Option<String>,
    /// The verified addresses tried, when none matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emails_tried: Option<Vec<String>>,
    /// Jira's value before (a user name, a status name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The target (a user name, a status name or id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The transition taken (or, for `no_transition`, those offered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition: Option<String>,
    /// The integration whose inbound sync wrote the change (`same_origin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_integration_id: Option<i64>,
    /// The HTTP status Jira answered, when it refused or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What Jira said (its `errorMessages` and `errors`), or the last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jira_message: Option<String>,
    /// What the clock did (nothing: kept for the shape every detail shares).
    #[serde(flatten)]
    pub clock: Clock,
}

/// The webhook of jirasync's own write to Jira (docs/reference.md §10.7): it sets
/// the field to the value a push wrote, no later than Jira's `updated` after that
/// write. It changes nothing, and starts no push; its kind is the row's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echo {
    /// Assignee or status: the row's kind (`assignee`, `status`).
    #[serde(skip)]
    pub kind: PushKind,
    /// The value the push wrote (a Jira user name in lower case, empty for
    /// unassigned; a status id).
    pub echo_of: String,
    /// When the push wrote it.
    pub written_at: DateTime<Utc>,
    /// Jira's `updated` read back after the write (absent while the write was
    /// being answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jira_updated: Option<DateTime<Utc>>,
    /// What the clock did.
    #[serde(flatten)]
    pub clock: Clock,
}
