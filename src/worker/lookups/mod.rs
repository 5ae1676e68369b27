//! What the worker's jobs look up before they write, shared by all of its
//! tasks: the integration a token names (Postgres, its row kept for a while and
//! checked before it is trusted: [`integrations`]), the tokens that verified,
//! hidden assignee emails and `done` statuses (Jira, cached for minutes). One single-flight mechanism
//! ([`single_flight`]) makes tasks that ask the same thing at the same time
//! share one lookup.

mod cache;
mod hidden_email;
mod integrations;
mod jira_statuses;
mod single_flight;
mod tokens;

pub use cache::Read;
use hidden_email::{EmailCache, Lookup};
pub use integrations::{Found, Integrations};
use jira_statuses::{DoneIds, StatusCache};
pub use tokens::Tokens;

use crate::db::DbPool;
use crate::integration::Integration;
use crate::jira::payload::{AssigneeChange, AssigneeRef};
use crate::queue::handler::Failure;
use crate::sync::assignee::{AccountAssignee, Action};
use crate::sync::audit::detail::{EmailSource, SourceResult, SourceTried};

/// The worker's lookups, shared by all of its tasks.
#[derive(Default)]
pub struct Lookups {
    /// The rows of active integrations by external id, kept for a while.
    integrations: Integrations,
    /// Emails of assignees that webhooks hide, as Jira's user API returned them.
    emails: EmailCache,
    /// The `done` statuses of each integration's Jira.
    statuses: StatusCache,
    /// Webhook tokens that verified.
    tokens: Tokens,
}

impl Lookups {
    /// Webhook tokens that verified, to verify the next webhook of each at once.
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// The rows of active integrations, kept for a while and checked before
    /// they are trusted (docs/reference.md §5.1).
    pub fn integrations(&self) -> &Integrations {
        &self.integrations
    }

    /// What to do about the assignee: a hidden email is asked of Jira; without any
    /// email the user map may still name the user (`sync::assignee`). A Jira
    /// Cloud assignee (an `accountId`) notes where its email came from, or each
    /// source that gave none (docs/reference.md §11.5).
    pub async fn assignee_action(
        &self,
        pool: &DbPool,
        integration: &Integration,
        change: &AssigneeChange,
    ) -> Result<Action, Failure> {
        Ok(match change {
            AssigneeChange::Assign(email, Some(AssigneeRef::AccountId(account_id))) => {
                Action::AssignAccount(AccountAssignee {
                    account_id: account_id.clone(),
                    email: Some(email.clone()),
                    email_source: Some(EmailSource::Payload),
                    tried: Vec::new(),
                })
            }
            AssigneeChange::MissingEmail(Some(user @ AssigneeRef::AccountId(account_id))) => {
                let hidden = SourceTried {
                    source: EmailSource::Payload,
                    result: SourceResult::Hidden,
                };
                let lookup = |result| SourceTried {
                    source: EmailSource::Lookup,
                    result,
                };
                let (email, tried) = match self.emails.lookup(pool, integration, user).await? {
                    Lookup::Found(email) => (Some(email), vec![hidden]),
                    Lookup::Hidden => (None, vec![hidden, lookup(SourceResult::Hidden)]),
                    Lookup::NotFound => (None, vec![hidden, lookup(SourceResult::NotFound)]),
                    Lookup::NoAccessToken => (None, vec![hidden, lookup(SourceResult::NotAsked)]),
                };
                Action::AssignAccount(AccountAssignee {
                    account_id: account_id.clone(),
                    email_source: email.as_ref().map(|_| EmailSource::Lookup),
                    email,
                    tried,
                })
            }
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
                let email = match self.emails.lookup(pool, integration, user).await? {
                    Lookup::Found(email) => Some(email),
                    Lookup::Hidden | Lookup::NotFound | Lookup::NoAccessToken => None,
                };
                Action::Assign {
                    email,
                    jira_user: Some(user.name().to_owned()),
                }
            }
        })
    }

    /// The `done` status ids of `integration`'s Jira (`jira_statuses`); `None`
    /// when the integration has no access token.
    pub async fn done_ids(
        &self,
        pool: &DbPool,
        integration: &Integration,
    ) -> Result<Option<DoneIds>, Failure> {
        self.statuses.done_ids(pool, integration).await
    }
}
