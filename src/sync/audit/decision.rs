//! One decision of inbound sync about an issue (docs/reference.md §5.9) as its
//! `sync_events` row holds it — `kind`, `outcome` and the `detail` that says why —
//! one type for the writer (the rules in `sync`) and the reader (`jirasync
//! explain`, which tells it with [`Decision::sentence`]). A row this version does
//! not write reads as [`Decision::Unknown`], as it is stored.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::detail::{
    Assignment, Clock, DuplicateDelivery, Echo, KeyStale, Migrated, NoDoneBoundary, NotLinked,
    NotSynced, NothingToRekey, PushKind, PushOutcome, Pushed, Rekeyed, Stale, StatusChange,
    SyncFlag,
};

/// A decision, (de)serialized as its row: `{"kind", "outcome", "detail"}`. Each
/// variant's `kind` and `outcome` are fixed, or follow from its detail
/// ([`Assignment::outcome`], [`StatusChange::outcome`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "Row", from = "Row")]
pub enum Decision {
    /// `assignee` / `stale`: a later assignee change was applied in the organization.
    AssigneeStale(Stale),
    /// `status` / `stale`: a later status change was applied in the organization.
    StatusStale(Stale),
    /// `assignee` or `status` (by the flag) / `not_linked`: no organization with
    /// the flag on has the issue linked to a group.
    NotLinked(NotLinked),
    /// `assignee` / [`Assignment::outcome`]: the assignee in one organization.
    Assignee(Assignment),
    /// `status` / `not_synced`: the status change was not looked at.
    StatusNotSynced(NotSynced),
    /// `status` / `unchanged`: the change does not cross Jira's done category.
    NoDoneBoundary(NoDoneBoundary),
    /// `status` / [`StatusChange::outcome`]: the groups of one organization resolved
    /// or unresolved.
    Status(StatusChange),
    /// `key` / `stale`: a later move was applied in the organization.
    KeyStale(KeyStale),
    /// `key` / `rekeyed`: the organization's row took the new key.
    Rekeyed(Rekeyed),
    /// `key` / `unchanged`: no organization had a row of the old key.
    NothingToRekey(NothingToRekey),
    /// `key` / `migrated`: `integration migrate` moved the row to a Cloud
    /// integration, or merged it into the Cloud one's row (docs/reference.md §11.7).
    Migrated(Migrated),
    /// `assignee` or `status` (by its kind) / `echo`: the webhook of jirasync's
    /// own push; nothing changed (docs/reference.md §10.7).
    Echo(Echo),
    /// `assignee_outbound` or `status_outbound` / [`Pushed::outcome`]: a push to
    /// Jira, or why none was made (docs/reference.md §10.9).
    Outbound(Pushed),
    /// `delivery` / `duplicate`: a Jira Cloud delivery handled already; nothing
    /// changed (docs/reference.md §11.4).
    Duplicate(DuplicateDelivery),
    /// A row this version does not write, as it is stored.
    Unknown(Row),
}

/// A `sync_events` row's `kind`, `outcome` and `detail`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// `assignee`, `status`, `key`, `delivery`, or an outbound kind.
    pub kind: String,
    /// What was decided.
    pub outcome: String,
    /// Why.
    pub detail: Value,
}

/// `$body` with `$detail` bound to the decision's detail struct, whichever it is;
/// `$fallback` with `$row` bound to an unknown decision's row.
macro_rules! each_detail {
    ($decision:expr, $detail:ident => $body:expr, $row:ident => $fallback:expr) => {
        match $decision {
            Decision::AssigneeStale($detail) | Decision::StatusStale($detail) => $body,
            Decision::NotLinked($detail) => $body,
            Decision::Assignee($detail) => $body,
            Decision::StatusNotSynced($detail) => $body,
            Decision::NoDoneBoundary($detail) => $body,
            Decision::Status($detail) => $body,
            Decision::KeyStale($detail) => $body,
            Decision::Rekeyed($detail) => $body,
            Decision::NothingToRekey($detail) => $body,
            Decision::Migrated($detail) => $body,
            Decision::Echo($detail) => $body,
            Decision::Outbound($detail) => $body,
            Decision::Duplicate($detail) => $body,
            Decision::Unknown($row) => $fallback,
        }
    };
}

impl Decision {
    /// `sync_events.kind`: `assignee`, `status` or `key`.
    pub fn kind(&self) -> &str {
        match self {
            Self::Unknown(row) => &row.kind,
            known => known.labels().map_or("", |(kind, _)| kind),
        }
    }

    /// `sync_events.outcome`: what was decided.
    pub fn outcome(&self) -> &str {
        match self {
            Self::Unknown(row) => &row.outcome,
            known => known.labels().map_or("", |(_, outcome)| outcome),
        }
    }

    /// A known decision's kind and outcome (`None`: [`Decision::Unknown`]).
    pub fn labels(&self) -> Option<(&'static str, &'static str)> {
        Some(match self {
            Self::AssigneeStale(_) => ("assignee", "stale"),
            Self::StatusStale(_) => ("status", "stale"),
            Self::NotLinked(not_linked) => match not_linked.sync_flag {
                SyncFlag::SyncReverseAssignment => ("assignee", "not_linked"),
                SyncFlag::SyncStatusReverse => ("status", "not_linked"),
            },
            Self::Assignee(assignment) => ("assignee", assignment.outcome().as_str()),
            Self::StatusNotSynced(_) => ("status", "not_synced"),
            Self::NoDoneBoundary(_) => ("status", "unchanged"),
            Self::Status(change) => ("status", change.outcome().as_str()),
            Self::KeyStale(_) => ("key", "stale"),
            Self::Rekeyed(_) => ("key", "rekeyed"),
            Self::NothingToRekey(_) => ("key", "unchanged"),
            Self::Migrated(_) => ("key", "migrated"),
            Self::Echo(echo) => (echo.kind.as_str(), "echo"),
            Self::Outbound(pushed) => (pushed.kind.audit_kind(), pushed.outcome.as_str()),
            Self::Duplicate(_) => ("delivery", "duplicate"),
            Self::Unknown(_) => return None,
        })
    }

    /// `sync_events.detail`: why.
    pub fn detail(&self) -> Value {
        each_detail!(self, detail => to_value(detail), row => row.detail.clone())
    }

    /// What the clock did (`None` for [`Decision::Unknown`]).
    pub fn clock(&self) -> Option<&Clock> {
        each_detail!(self, detail => Some(&detail.clock), _row => None)
    }

    /// As [`Decision::clock`], to note what the clock did.
    pub fn clock_mut(&mut self) -> Option<&mut Clock> {
        each_detail!(self, detail => Some(&mut detail.clock), _row => None)
    }

    /// The decision a row holds: the variant its kind and outcome name, when its
    /// detail reads as that variant's and the variant writes exactly this row
    /// back; else [`Decision::Unknown`], as stored.
    pub fn from_row(kind: &str, outcome: &str, detail: Value) -> Self {
        let parsed = match (kind, outcome) {
            ("assignee", "stale") => from_value(&detail).map(Self::AssigneeStale),
            ("status", "stale") => from_value(&detail).map(Self::StatusStale),
            ("assignee" | "status", "not_linked") => from_value(&detail).map(Self::NotLinked),
            (kind @ ("assignee" | "status"), "echo") => PushKind::parse(kind).and_then(|kind| {
                from_value::<Echo>(&detail).map(|echo| Self::Echo(Echo { kind, ..echo }))
            }),
            ("assignee", _) => from_value(&detail).map(Self::Assignee),
            ("status", "not_synced") => from_value(&detail).map(Self::StatusNotSynced),
            ("status", "unchanged") if detail["reason"] == "no_done_boundary" => {
                from_value(&detail).map(Self::NoDoneBoundary)
            }
            ("status", _) => from_value(&detail).map(Self::Status),
            ("key", "stale") => from_value(&detail).map(Self::KeyStale),
            ("key", "rekeyed") => from_value(&detail).map(Self::Rekeyed),
            ("key", "unchanged") => from_value(&detail).map(Self::NothingToRekey),
            ("delivery", "duplicate") => from_value(&detail).map(Self::Duplicate),
            ("key", "migrated") => from_value(&detail).map(Self::Migrated),
            (kind, outcome) => PushKind::from_audit_kind(kind)
                .zip(PushOutcome::parse(outcome))
                .and_then(|(kind, outcome)| {
                    from_value::<Pushed>(&detail).map(|pushed| {
                        Self::Outbound(Pushed {
                            kind,
                            outcome,
                            ..pushed
                        })
                    })
                }),
        };
        match parsed {
            Some(decision)
                if decision.kind() == kind
                    && decision.outcome() == outcome
                    && decision.detail() == detail =>
            {
                decision
            }
            _ => Self::Unknown(Row {
                kind: kind.to_owned(),
                outcome: outcome.to_owned(),
                detail,
            }),
        }
    }
}

impl From<Row> for Decision {
    fn from(row: Row) -> Self {
        Self::from_row(&row.kind, &row.outcome, row.detail)
    }
}

impl From<Decision> for Row {
    fn from(decision: Decision) -> Self {
        match decision {
            Decision::Unknown(row) => row,
            known => Self {
                kind: known.kind().to_owned(),
                outcome: known.outcome().to_owned(),
                detail: known.detail(),
            },
        }
    }
}

/// A detail as JSON. Cannot fail: the details hold strings, numbers, times,
/// lists and structs (no map with keys that are not strings).
fn to_value(detail: &impl Serialize) -> Value {
    serde_json::to_value(detail).unwrap_or_default()
}

/// A detail of type `T`, if `detail` reads as one.
fn from_value<T: serde::de::DeserializeOwned>(detail: &Value) -> Option<T> {
    T::deserialize(detail).ok()
}

#[cfg(test)]
mod tests;
