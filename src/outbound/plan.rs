//! What a push decides (docs/reference.md §10.3): given the group's state and
//! what Jira holds, nothing to write ([`Plan::Decided`], with the reason) or one
//! write ([`Plan::Write`]) that the push's handler sends while it holds the
//! issue's lock. `assignee.rs` and `status.rs` plan; the handler records the
//! decision (`Pushed`) and settles the message.

use chrono::{DateTime, Utc};

use crate::jira::{JiraClient, JiraError};
use crate::sync::audit::detail::{PushOutcome, Pushed};

/// The external issue a push goes to, and the group whose state it pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// The issue's integration.
    pub integration_id: i64,
    /// The issue's organization.
    pub organization_id: i64,
    /// The issue's Jira key.
    pub issue_key: &'a str,
    /// The group.
    pub group_id: i64,
}

/// What a push does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to write: the decision (`unchanged`, `team_assignee`,
    /// `no_jira_user`, `not_mapped`, `no_transition`) and Jira's `updated` when the
    /// issue was read.
    Decided(Pushed, Option<DateTime<Utc>>),
    /// A write to make.
    Write(Write),
}

/// One write to Jira, and the decision it records once Jira took it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// What `outbound_writes.value` records, to recognise Jira's webhook for it:
    /// the Jira user name in lower case, `''` to unassign, the target status id.
    pub value: String,
    /// The issue written.
    issue_key: String,
    /// The call.
    request: Request,
    /// The decision, `pushed`, once Jira took it.
    pushed: Pushed,
}

/// The call a [`Write`] makes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    /// `PUT …/assignee` with this name, or `null`.
    Assign(Option<String>),
    /// `POST …/transitions` with this transition and, if any, resolution.
    Transition {
        id: String,
        resolution: Option<String>,
    },
}

impl Write {
    /// Sets the assignee of `issue_key` to the Jira user `name` (`None`: unassigns).
    pub(super) fn assign(issue_key: &str, name: Option<String>, pushed: Pushed) -> Self {
        Self {
            value: name.as_deref().unwrap_or_default().to_lowercase(),
            issue_key: issue_key.to_owned(),
            request: Request::Assign(name),
            pushed,
        }
    }

    /// Takes transition `id` of `issue_key` to status `status_id`, with `resolution`.
    pub(super) fn transition(
        issue_key: &str,
        id: String,
        status_id: String,
        resolution: Option<String>,
        pushed: Pushed,
    ) -> Self {
        Self {
            value: status_id,
            issue_key: issue_key.to_owned(),
            request: Request::Transition { id, resolution },
            pushed,
        }
    }

    /// The decision this write records when Jira takes it.
    pub fn pushed(&self) -> &Pushed {
        &self.pushed
    }

    /// The decision when sending it failed with `error` (see [`failed`]).
    pub fn failed(&self, error: &JiraError) -> Pushed {
        failed(self.pushed.clone(), error)
    }

    /// Sends it; on a 2xx reads the issue back and returns the decision (`pushed`)
    /// with Jira's `updated` after the write — `None` when the read-back failed:
    /// the write stands, and sending it again would only find it made.
    pub async fn send(
        &self,
        jira: &JiraClient,
    ) -> Result<(Pushed, Option<DateTime<Utc>>), JiraError> {
        match &self.request {
            Request::Assign(name) => jira.assign(&self.issue_key, name.as_deref()).await?,
            Request::Transition { id, resolution } => {
                jira.transition(&self.issue_key, id, resolution.as_deref())
                    .await?;
            }
        }
        let updated = match jira.get_issue(&self.issue_key).await {
            Ok(issue) => issue.updated(),
            Err(error) => {
                tracing::warn!(
                    issue.key = %self.issue_key,
                    %error,
                    "Jira took the push, but the issue could not be read back"
                );
                None
            }
        };
        Ok((self.pushed.clone(), updated))
    }
}

/// Why a push could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    /// Jira failed or refused, with the decision as far as it got (see [`failed`]).
    #[error("{0}")]
    Jira(JiraError, Box<Pushed>),
}

impl PlanError {
    /// A Jira error while planning `pushed`.
    pub(super) fn jira(error: JiraError, pushed: &Pushed) -> Self {
        let decided = failed(pushed.clone(), &error);
        Self::Jira(error, Box::new(decided))
    }
}

/// `pushed` as the decision when Jira answered `error`: `refused` when Jira
/// refused (`JiraError::is_refusal`), else `failed`; with Jira's status and its
/// message (for a failure, the error itself).
pub fn failed(mut pushed: Pushed, error: &JiraError) -> Pushed {
    pushed.outcome = if error.is_refusal() {
        PushOutcome::Refused
    } else {
        PushOutcome::Failed
    };
    pushed.status = error.status();
    pushed.jira_message = error.jira_message().or_else(|| Some(error.to_string()));
    pushed
}
