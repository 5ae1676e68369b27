//! The audit trail (docs/reference.md §5.9): every decision inbound sync makes
//! about an issue — per organization reached, or one row when none was — collected
//! while the change is applied and written by one statement in the same
//! transaction, so the trail says exactly what was committed. A decision is a
//! [`Decision`] (`decision`, its detail in `detail`), told by `jirasync explain`
//! in a sentence (`sentence`); the table's statements, the reads and the prune
//! after [`RETENTION`] are in `store`.

mod decision;
pub mod detail;
mod sentence;
mod store;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Statement};

use super::event::IssueEvent;
pub use decision::{Decision, Row};
pub use sentence::{Place, Sentence};
pub use store::{
    INSERT_SYNC_EVENT, INSERT_SYNC_EVENTS, PRUNE, PRUNE_BATCH, PRUNE_CUTOFF, RECENT, RETENTION,
    RETENTION_DAYS, SyncEvent, prune, recent,
};

/// A decision and the organization it was made in (`None`: none was reached).
#[derive(Debug, Clone, PartialEq)]
struct Recorded {
    organization_id: Option<i64>,
    decision: Decision,
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
    decisions: Vec<Recorded>,
    recorded: bool,
}

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

    /// The trail of an outbound push (docs/reference.md §10.9) of message
    /// `message_id` to `issue_key` of `integration_id`, for the change committed
    /// at `committed_at`.
    pub fn outbound(
        message_id: &str,
        integration_id: i64,
        issue_key: &str,
        committed_at: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            message_id: Some(message_id.to_owned()),
            integration_id,
            issue_key: issue_key.to_owned(),
            event_time: committed_at,
            clamped_from: None,
            decisions: Vec::new(),
            recorded: true,
        }
    }

    /// The trail of a Jira Cloud delivery of message `message_id` about
    /// `issue_key` of `integration_id` that changes nothing itself (a duplicate,
    /// docs/reference.md §11.4): no event time.
    pub fn delivery(message_id: &str, integration_id: i64, issue_key: &str) -> Self {
        Self::outbound(message_id, integration_id, issue_key, None)
    }

    /// This trail, counted but never written (`JIRASYNC_AUDIT=off`).
    pub fn unrecorded(self) -> Self {
        Self {
            recorded: false,
            ..self
        }
    }

    /// Notes one decision, made in `organization_id` (`None`: none was reached);
    /// when the event time was clamped, its detail keeps Jira's
    /// (`event_time_clamped_from`).
    pub fn record(&mut self, organization_id: Option<i64>, mut decision: Decision) {
        if let (Some(from), Some(clock)) = (self.clamped_from, decision.clock_mut()) {
            clock.event_time_clamped_from = Some(from);
        }
        self.decisions.push(Recorded {
            organization_id,
            decision,
        });
    }

    /// How many decisions are noted so far.
    pub fn len(&self) -> usize {
        self.decisions.len()
    }

    /// Whether no decision is noted yet.
    pub fn is_empty(&self) -> bool {
        self.decisions.is_empty()
    }

    /// Names the Jira Cloud account `cloud` in each assignee decision noted from
    /// the `from`-th on that has no account yet: the ordering guard's `stale`
    /// and `not_linked` (docs/reference.md §11.4).
    pub fn name_account_from(&mut self, from: usize, cloud: &detail::CloudAssignee) {
        for recorded in self.decisions.iter_mut().skip(from) {
            let slot = match &mut recorded.decision {
                Decision::AssigneeStale(stale) => &mut stale.cloud,
                Decision::NotLinked(not_linked)
                    if not_linked.sync_flag == detail::SyncFlag::SyncReverseAssignment =>
                {
                    &mut not_linked.cloud
                }
                _ => continue,
            };
            slot.get_or_insert_with(|| cloud.clone());
        }
    }

    /// Writes every decision in one statement (in the caller's transaction).
    pub async fn write(&self, client: &impl GenericClient) -> Result<(), Error> {
        Self::write_all(client, &[self]).await
    }

    /// Writes the decisions of every trail of `audits` that is recorded in one
    /// statement, in their order: one decision (the common case) as plain values,
    /// several as arrays.
    pub async fn write_all(client: &impl GenericClient, audits: &[&Audit]) -> Result<(), Error> {
        let Some(sql) = Self::insert_for(audits) else {
            return Ok(());
        };
        let statement = client.prepare_cached(sql).await?;
        Self::write_prepared(client, &statement, audits).await
    }

    /// The statement [`Audit::write_all`] writes `audits` with; `None` when
    /// they record nothing.
    pub fn insert_for(audits: &[&Audit]) -> Option<&'static str> {
        match Self::recorded(audits).count() {
            0 => None,
            1 => Some(INSERT_SYNC_EVENT),
            _ => Some(INSERT_SYNC_EVENTS),
        }
    }

    /// Every recorded decision of `audits`, with its trail, in order.
    fn recorded<'s, 'a>(
        audits: &'s [&'a Audit],
    ) -> impl Iterator<Item = (&'a Audit, &'a Recorded)> + use<'s, 'a> {
        audits
            .iter()
            .filter(|audit| audit.recorded)
            .flat_map(|audit| audit.decisions.iter().map(move |d| (*audit, d)))
    }

    /// As [`Audit::write_all`], with `statement` prepared from
    /// [`Audit::insert_for`]`(audits)`: sent when first polled, with no round
    /// trip before it (a transaction's last writes, sent with its commit).
    pub async fn write_prepared(
        client: &impl GenericClient,
        statement: &Statement,
        audits: &[&Audit],
    ) -> Result<(), Error> {
        let rows: Vec<(&Audit, &Recorded)> = Self::recorded(audits).collect();
        let (messages, integrations, keys, times): (Vec<_>, Vec<_>, Vec<_>, Vec<_>);
        let (kinds, organizations, outcomes, details): (Vec<_>, Vec<_>, Vec<_>, Vec<_>);
        let one_detail: Value;
        let params: [&(dyn ToSql + Sync); 8] = match rows.as_slice() {
            [] => return Ok(()),
            [(audit, one)] => [
                &audit.message_id,
                &audit.integration_id,
                &audit.issue_key,
                &audit.event_time,
                &one.decision.kind(),
                &one.organization_id,
                &one.decision.outcome(),
                {
                    one_detail = one.decision.detail();
                    &one_detail
                },
            ],
            many => {
                messages = many.iter().map(|(a, _)| a.message_id.as_deref()).collect();
                integrations = many.iter().map(|(a, _)| a.integration_id).collect();
                keys = many.iter().map(|(a, _)| a.issue_key.as_str()).collect();
                times = many.iter().map(|(a, _)| a.event_time).collect();
                kinds = many.iter().map(|(_, r)| r.decision.kind()).collect();
                organizations = many.iter().map(|(_, r)| r.organization_id).collect();
                outcomes = many.iter().map(|(_, r)| r.decision.outcome()).collect();
                details = many.iter().map(|(_, r)| r.decision.detail()).collect();
                [
                    &messages,
                    &integrations,
                    &keys,
                    &times,
                    &kinds,
                    &organizations,
                    &outcomes,
                    &details,
                ]
            }
        };
        client.execute(statement, &params).await?;
        Ok(())
    }

    /// Counts the decisions (`jirasync_sync_decisions_total` by kind and
    /// outcome): call once they are committed.
    pub fn count(&self) {
        for Recorded { decision, .. } in &self.decisions {
            let (kind, outcome) = match decision.labels() {
                Some((kind, outcome)) => (kind.into(), outcome.into()),
                None => (decision.kind().to_owned(), decision.outcome().to_owned()),
            };
            metrics::counter!(
                "jirasync_sync_decisions_total",
                "kind" => kind,
                "outcome" => outcome,
            )
            .increment(1);
        }
    }
}
