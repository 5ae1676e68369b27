//! How the worker's jobs end: one list of outcomes, each a label of
//! `jirasync_messages_total{outcome}` (docs/reference.md §4–§6). The consumer
//! loop adds its own (`queue::handler::Outcome::RETRIED` and the rest).

use crate::queue::handler;
use crate::sync::audit::detail::PushOutcome;

macro_rules! outcomes {
    ($($(#[$doc:meta])* $variant:ident => $label:literal,)+) => {
        /// Every way a job can end, in one list: its [`label`](Outcome::label)
        /// names it in `jirasync_messages_total{outcome}` and in the log line.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Outcome {
            $($(#[$doc])* $variant,)+
        }

        impl Outcome {
            /// Every outcome, in the order above.
            pub const ALL: &[Outcome] = &[$(Outcome::$variant,)+];

            /// The metric label.
            pub fn label(self) -> &'static str {
                match self {
                    $(Outcome::$variant => $label,)+
                }
            }
        }
    };
}

outcomes! {
    // Webhooks (docs/reference.md §5).
    /// A linked group got a (new) assignee.
    Assigned => "assigned",
    /// A linked group's assignee was removed.
    Unassigned => "unassigned",
    /// No user matched the assignee's email in a linked group's teams.
    AssigneeNotFound => "assignee_not_found",
    /// The change was already in place (or reached no group).
    Unchanged => "unchanged",
    /// Every organization had applied a later change already.
    Stale => "stale",
    /// The assignee has no email, not even from Jira.
    MissingEmail => "missing_email",
    /// A linked group was resolved.
    Resolved => "resolved",
    /// A linked group was unresolved.
    Unresolved => "unresolved",
    /// Only a status changed, and no organization syncs statuses back.
    StatusNotSynced => "status_not_synced",
    /// The issue moved: its rows took the new key (and nothing else changed).
    Rekeyed => "rekeyed",
    /// No changelog: nothing to do.
    NoChangelog => "no_changelog",
    /// The changelog changes neither assignee nor status.
    NothingToSync => "nothing_to_sync",
    /// The token or the body's signature was rejected: dropped.
    InvalidToken => "invalid_token",
    /// A Jira Cloud delivery handled already by another message: acked, nothing
    /// changed (docs/reference.md §11.4).
    Duplicate => "duplicate",
    // OAuth jobs (docs/reference.md §6).
    /// The request token is stored; a person must authorize it.
    AwaitingAuthorization => "awaiting_authorization",
    /// The session was handled by an earlier delivery.
    AlreadyHandled => "already_handled",
    /// The integration is installed and its webhook registered.
    Installed => "installed",
    /// The session was installed by an earlier delivery.
    AlreadyInstalled => "already_installed",
    /// No session awaits this token (or, for a request-token job, none exists).
    UnknownSession => "unknown_session",
    /// Jira refused the request (`oauth_problem`); the session failed.
    Refused => "refused",
    /// The session failed (or a database error that retrying cannot fix).
    Failed => "failed",
    // Reconciliation (docs/reference.md §6).
    /// Reconciled; nothing needed changing.
    Reconciled => "reconciled",
    /// Reconciled, and some assignments changed.
    ReconciledChanges => "reconciled_changes",
    /// A slice of a reconciliation ran; the rest continues in a job of its own.
    ReconcileContinued => "reconcile_continued",
    /// Another reconciliation of the integration was running.
    ReconcileBusy => "reconcile_busy",
    /// The job names no active integration.
    UnknownIntegration => "unknown_integration",
    /// The integration has no access token to call Jira with.
    NoAccessToken => "no_access_token",
    // Dynamic webhooks of Jira Cloud 3LO integrations (docs/reference.md §11.3).
    /// The dynamic webhook was refreshed: 30 more days.
    WebhookRefreshed => "webhook_refreshed",
    /// The dynamic webhook was gone (or never recorded): a new one was registered.
    WebhookRegistered => "webhook_registered",
    /// The integration is not an OAuth 2.0 (3LO) one: it has no dynamic webhook.
    NotDynamic => "not_dynamic",
    // Outbound pushes (docs/reference.md §10); also `unchanged`, `refused`, `failed`.
    /// Jira took the push.
    Pushed => "pushed",
    /// The change came from the integration's own inbound sync: not pushed back.
    SameOrigin => "same_origin",
    /// The group is assigned to a team: nothing is sent.
    TeamAssignee => "team_assignee",
    /// No Jira user for the assignee.
    NoJiraUser => "no_jira_user",
    /// No status is mapped for the project.
    NotMapped => "not_mapped",
    /// No transition leads to the mapped status: dead-lettered.
    NoTransition => "no_transition",
    /// The integration cannot call Jira: held until it is connected again.
    Held => "held",
    /// A newer change of the issue is pending: its own message pushes it.
    Superseded => "superseded",
    /// The issue is no longer linked to the group with the flag on.
    NotATarget => "not_a_target",
    /// The group is gone, or neither resolved nor unresolved.
    NothingToPush => "nothing_to_push",
    // Failures (docs/reference.md §4).
    /// The body is not what its type requires: dead-lettered (as the consumer
    /// loop's own [`handler::Outcome::MALFORMED`]).
    Malformed => "malformed",
    /// Jira refused a call or the client cannot be set up: dead-lettered.
    JiraFailed => "jira_failed",
    /// Jira refused the integration's credentials for good: dead-lettered until
    /// it is connected again (or, for reconciliation, skipped).
    NeedsReauth => "needs_reauth",
    /// A stored secret does not open with the configured keys: dead-lettered,
    /// to be replayed once the key that sealed it is set.
    SecretUnreadable => "secret_unreadable",
}

impl From<PushOutcome> for Outcome {
    fn from(outcome: PushOutcome) -> Self {
        match outcome {
            PushOutcome::Pushed => Self::Pushed,
            PushOutcome::Unchanged => Self::Unchanged,
            PushOutcome::SameOrigin => Self::SameOrigin,
            PushOutcome::TeamAssignee => Self::TeamAssignee,
            PushOutcome::NoJiraUser => Self::NoJiraUser,
            PushOutcome::NotMapped => Self::NotMapped,
            PushOutcome::NoTransition => Self::NoTransition,
            PushOutcome::Refused => Self::Refused,
            PushOutcome::Held => Self::Held,
            PushOutcome::Failed => Self::Failed,
        }
    }
}

impl From<Outcome> for handler::Outcome {
    fn from(outcome: Outcome) -> Self {
        handler::Outcome::new(outcome.label())
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// Every label `jirasync_messages_total{outcome}` takes: the jobs' and the
/// consumer loop's, each once.
pub fn all_labels() -> Vec<&'static str> {
    let mut labels: Vec<&'static str> = Outcome::ALL.iter().map(|o| o.label()).collect();
    for outcome in handler::Outcome::ALL {
        if !labels.contains(&outcome.label()) {
            labels.push(outcome.label());
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both lists at once: [`all_labels`] holds the jobs' and the consumer
    /// loop's (a label the consumer loop gives twice is caught by the count in
    /// the next test).
    #[test]
    fn labels_are_unique_snake_case_words() {
        let mut seen = std::collections::HashSet::new();
        for label in all_labels() {
            assert!(seen.insert(label), "{label} twice");
            assert!(
                label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{label}"
            );
        }
    }

    #[test]
    fn only_malformed_is_both_a_job_and_a_consumer_outcome() {
        let jobs: Vec<_> = Outcome::ALL.iter().map(|o| o.label()).collect();
        let shared: Vec<_> = handler::Outcome::ALL
            .iter()
            .map(|o| o.label())
            .filter(|label| jobs.contains(label))
            .collect();
        assert_eq!(shared, ["malformed"]);
        assert_eq!(
            all_labels().len(),
            jobs.len() + handler::Outcome::ALL.len() - 1
        );
    }
}
