//! The details of Jira Cloud's decisions (docs/reference.md §11.3–§11.4): the
//! account an assignee decision names and where its email came from, and a
//! duplicate delivery.

use serde::{Deserialize, Serialize};

use super::Clock;

/// A Jira Cloud assignee as an assignee decision names it (docs/reference.md §11.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudAssignee {
    /// The assignee's `accountId`.
    pub account_id: String,
    /// Where the email (or, without one, the user) came from; `null` when from nowhere.
    #[serde(deserialize_with = "Option::deserialize")]
    pub email_source: Option<EmailSource>,
    /// With `missing_email`: each source tried, in order, and what it gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources_tried: Option<Vec<SourceTried>>,
    /// With `missing_email`: the command that would map the account to a user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Where a Jira Cloud assignee's email, or user, came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailSource {
    /// `emailAddress` of the webhook's assignee.
    Payload,
    /// `GET /rest/api/3/user?accountId=`.
    Lookup,
    /// No email: the user map names the account.
    UserMap,
}

impl EmailSource {
    /// As the detail says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Payload => "payload",
            Self::Lookup => "lookup",
            Self::UserMap => "user_map",
        }
    }
}

/// One source of a Cloud assignee's email that was tried, and what it gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceTried {
    /// The source.
    pub source: EmailSource,
    /// What it gave.
    pub result: SourceResult,
}

/// What a source of a Cloud assignee's email gave, when it gave none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceResult {
    /// The user is known, the email hidden (the user's profile visibility).
    Hidden,
    /// Jira knows no such account.
    NotFound,
    /// The user map names no user for the account.
    NoMapping,
    /// Jira could not be asked (the integration has no credentials to call it).
    NotAsked,
}

impl SourceResult {
    /// As the detail says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hidden => "hidden",
            Self::NotFound => "not_found",
            Self::NoMapping => "no_mapping",
            Self::NotAsked => "not_asked",
        }
    }
}

/// A Jira Cloud delivery handled already (docs/reference.md §11.4): Cloud sent
/// the same `X-Atlassian-Webhook-Identifier` again; nothing changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicateDelivery {
    /// The delivery's `X-Atlassian-Webhook-Identifier`.
    pub webhook_identifier: String,
    /// The message that carried it first.
    pub first_message_id: String,
    /// What the clock did (nothing: kept for the shape every detail shares).
    #[serde(flatten)]
    pub clock: Clock,
}
