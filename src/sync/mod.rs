//! The rules of inbound sync (CONTRACT §5.6, issue 8 §1): which organizations and
//! groups a Jira issue reaches, who gets assigned, which status a group takes, and
//! the ordering guard. Free of HTTP and AMQP types; the worker's webhook handler
//! calls `assignee::apply` and `status::apply`.

pub mod assignee;
pub mod status;

use std::fmt;

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;

use crate::db::sync::{ExternalIssue, Watermark, mark_synced};

/// The ordering guard (CONTRACT §5.6) for one organization's issue row: false when a
/// later change of this kind was already applied (the change is stale); otherwise
/// moves the watermark forward to the event time and returns true. Without an event
/// time it admits the change and moves nothing. Equal is not stale: redelivery of the
/// same event re-applies as a no-op.
pub async fn admit(
    tx: &Transaction<'_>,
    issue: &ExternalIssue,
    synced_at: Option<DateTime<Utc>>,
    watermark: Watermark,
    event_time: Option<DateTime<Utc>>,
) -> Result<bool, tokio_postgres::Error> {
    let Some(at) = event_time else {
        return Ok(true);
    };
    if synced_at.is_some_and(|synced| synced > at) {
        tracing::info!(organization.id = issue.organization_id, watermark = ?watermark, "skipping stale change");
        return Ok(false);
    }
    mark_synced(tx, issue.id, watermark, at).await?;
    Ok(true)
}

/// A Jira issue key such as `DEMO-1`, compared exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IssueKey(String);

impl IssueKey {
    /// Wraps a key as Jira sent it.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IssueKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A non-empty email address as Jira sent it; matched ignoring case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// `None` for an empty or blank string.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        (!s.is_empty()).then(|| Self(s.to_owned()))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
