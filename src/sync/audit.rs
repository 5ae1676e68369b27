//! The audit trail (docs/reference.md §5.9): every decision inbound sync makes
//! about an issue — per organization reached, or one row when none was — collected
//! while the change is applied and written by one statement in the same
//! transaction, so the trail says exactly what was committed. `jirasync explain`
//! reads it; the worker prunes rows older than [`RETENTION`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::{Value, json};
use tokio_postgres::Error;
use tokio_postgres::types::ToSql;

use super::IssueEvent;

/// How long `sync_events` rows are kept.
pub const RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// What a decision is about (`sync_events.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The assignee.
    Assignee,
    /// The status (resolved or not).
    Status,
    /// The issue key (a move to another project).
    Key,
}

impl Kind {
    /// `assignee`, `status` or `key`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assignee => "assignee",
            Self::Status => "status",
            Self::Key => "key",
        }
    }
}

/// One decision: about which organization (`None`: none was reached), what
/// was decided (`sync_events.outcome`) and why (`detail`).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// What it is about.
    pub kind: Kind,
    /// The organization, if one was reached.
    pub organization_id: Option<i64>,
    /// `assigned`, `no_candidate`, `stale`, …
    pub outcome: &'static str,
    /// Why, as `jirasync explain` tells it.
    pub detail: Value,
}

/// The decisions of one message about one issue.
#[derive(Debug, Clone)]
pub struct Audit {
    message_id: Option<String>,
    integration_id: i64,
    issue_key: String,
    event_time: Option<DateTime<Utc>>,
    /// Jira's event time, when `event_time` (the receive time) replaced it.
    clamped_from: Option<DateTime<Utc>>,
    decisions: Vec<Decision>,
    recorded: bool,
}

/// `$1` message id, `$2` integration, `$3` issue key, `$4` event time, `$5` kind,
/// `$6` organization, `$7` outcome, `$8` detail: one decision (the common case:
/// one organization), see [`Audit::write`].
pub const INSERT_SYNC_EVENT: &str = "INSERT INTO sync_events
        (message_id, integration_id, issue_key, event_time, kind, organization_id, outcome, detail)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// As [`INSERT_SYNC_EVENT`], every column an array: several decisions, of one
/// message or of several (a batch, `worker::batch`), in one statement, in order.
pub const INSERT_SYNC_EVENTS: &str = "INSERT INTO sync_events
        (message_id, integration_id, issue_key, event_time, kind, organization_id, outcome, detail)
 SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[],
                      $5::text[], $6::bigint[], $7::text[], $8::jsonb[])";

impl Audit {
    /// The trail of `event`, delivered as message `message_id`.
    pub fn new(message_id: Option<&str>, event: IssueEvent<'_>) -> Self {
        Self {
            message_id: message_id.map(str::to_owned),
            integration_id: event.integration_id,
            issue_key: event.key.as_str().to_owned(),
            event_time: event.at,
            clamped_from: event.clamped_from,
            decisions: Vec::new(),
            recorded: true,
        }
    }

    /// This trail, counted but never written (`JIRASYNC_AUDIT=off`).
    pub fn unrecorded(self) -> Self {
        Self {
            recorded: false,
            ..self
        }
    }

    /// Notes one decision; when the event time was clamped, its `detail` keeps
    /// Jira's as `event_time_clamped_from`.
    pub fn record(
        &mut self,
        kind: Kind,
        organization_id: Option<i64>,
        outcome: &'static str,
        mut detail: Value,
    ) {
        if let (Some(from), Some(detail)) = (self.clamped_from, detail.as_object_mut()) {
            detail.insert("event_time_clamped_from".to_owned(), json!(from));
        }
        self.decisions.push(Decision {
            kind,
            organization_id,
            outcome,
            detail,
        });
    }

    /// Writes every decision in one statement (in the caller's transaction).
    pub async fn write(&self, client: &impl GenericClient) -> Result<(), Error> {
        Self::write_all(client, &[self]).await
    }

    /// Writes the decisions of every trail of `audits` that is recorded in one
    /// statement, in their order: one decision (the common case) as plain values,
    /// several as arrays.
    pub async fn write_all(client: &impl GenericClient, audits: &[&Audit]) -> Result<(), Error> {
        let rows: Vec<(&Audit, &Decision)> = audits
            .iter()
            .filter(|audit| audit.recorded)
            .flat_map(|audit| audit.decisions.iter().map(move |d| (*audit, d)))
            .collect();
        let (messages, integrations, keys, times): (Vec<_>, Vec<_>, Vec<_>, Vec<_>);
        let (kinds, organizations, outcomes, details): (Vec<_>, Vec<_>, Vec<_>, Vec<_>);
        let (sql, params): (&str, [&(dyn ToSql + Sync); 8]) = match rows.as_slice() {
            [] => return Ok(()),
            [(audit, one)] => (
                INSERT_SYNC_EVENT,
                [
                    &audit.message_id,
                    &audit.integration_id,
                    &audit.issue_key,
                    &audit.event_time,
                    &one.kind.as_str(),
                    &one.organization_id,
                    &one.outcome,
                    &one.detail,
                ],
            ),
            many => {
                messages = many.iter().map(|(a, _)| a.message_id.as_deref()).collect();
                integrations = many.iter().map(|(a, _)| a.integration_id).collect();
                keys = many.iter().map(|(a, _)| a.issue_key.as_str()).collect();
                times = many.iter().map(|(a, _)| a.event_time).collect();
                kinds = many.iter().map(|(_, d)| d.kind.as_str()).collect();
                organizations = many.iter().map(|(_, d)| d.organization_id).collect();
                outcomes = many.iter().map(|(_, d)| d.outcome).collect();
                details = many.iter().map(|(_, d)| &d.detail).collect();
                (
                    INSERT_SYNC_EVENTS,
                    [
                        &messages,
                        &integrations,
                        &keys,
                        &times,
                        &kinds,
                        &organizations,
                        &outcomes,
                        &details,
                    ],
                )
            }
        };
        let statement = client.prepare_cached(sql).await?;
        client.execute(&statement, &params).await?;
        Ok(())
    }

    /// Counts the decisions (`jirasync_sync_decisions_total` by kind and
    /// outcome): call once they are committed.
    pub fn count(&self) {
        for decision in &self.decisions {
            metrics::counter!(
                "jirasync_sync_decisions_total",
                "kind" => decision.kind.as_str(),
                "outcome" => decision.outcome,
            )
            .increment(1);
        }
    }
}

/// `$1` retention in seconds: the first row young enough to keep, by id (ids and
/// `created_at` grow together, so the rows before it are the old ones). Walks the
/// primary key from the oldest row: as far as there are rows to prune, no further.
pub const PRUNE_CUTOFF: &str = "SELECT id FROM sync_events
  WHERE created_at >= now() - make_interval(secs => $1)
  ORDER BY id LIMIT 1";

/// Rows one [`PRUNE`] deletes at most (a constant, so the plan is an index scan).
pub const PRUNE_BATCH: u64 = 5_000;

/// `$1` the cutoff id: see [`prune`].
pub const PRUNE: &str = "DELETE FROM sync_events WHERE id = ANY (ARRAY(
   SELECT id FROM sync_events WHERE id < $1 ORDER BY id LIMIT 5000 FOR UPDATE SKIP LOCKED))";

/// Deletes up to [`PRUNE_BATCH`] rows older than `retention`, oldest first; how
/// many. By the primary key alone (no index on `created_at` for every insert to
/// keep up), in short steps that never hold a lock the hot path waits on.
pub async fn prune(client: &impl GenericClient, retention: Duration) -> Result<u64, Error> {
    let seconds = retention.as_secs_f64();
    let cutoff = client.query_opt(PRUNE_CUTOFF, &[&seconds]).await?;
    // None: no row is young enough to keep.
    let cutoff: i64 = cutoff.map_or(i64::MAX, |row| row.get(0));
    client.execute(PRUNE, &[&cutoff]).await
}
