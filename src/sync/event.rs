//! The values inbound sync works with: one change's [`IssueEvent`] (the
//! integration, its provider, the issue, the bounded event time), an
//! [`IssueKey`] and an [`Email`].

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::db::sync::{Provider, Writer};

/// One change of a Jira issue of an integration, at the time Jira says it
/// happened, bounded by the receive time (`None`: unknown, and the ordering
/// guard does nothing).
#[derive(Debug, Clone, Copy)]
pub struct IssueEvent<'a> {
    /// The integration the webhook (or search) came from.
    pub integration_id: i64,
    /// Its provider, as the activity rows name it.
    pub provider: &'static Provider,
    /// The issue.
    pub key: &'a IssueKey,
    /// `issue.fields.updated`, else the webhook's `timestamp`; the receive time
    /// when that lay beyond it + `skew` ([`bound`](super::clock::bound)).
    pub at: Option<DateTime<Utc>>,
    /// Jira's time, when `at` replaced it.
    pub clamped_from: Option<DateTime<Utc>>,
    /// `JIRASYNC_MAX_EVENT_SKEW`: with it, the guard tells a stored watermark
    /// that binds from one an unbounded version set ([`horizon`](super::clock::horizon)).
    pub skew: Duration,
}

impl IssueEvent<'_> {
    /// Who writes what the event changes, as the activity rows say.
    pub fn writer(&self) -> Writer {
        Writer {
            provider: self.provider,
            integration_id: self.integration_id,
        }
    }
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
