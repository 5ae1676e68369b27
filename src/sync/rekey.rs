//! An issue that moved to another project (docs/reference.md §5.8, Sentry
//! `rekey_external_issues`, which Sentry does for Jira Cloud only): the
//! integration's `external_issues` rows of the old key take the new one, or merge
//! into the organization's row of the new key, so the groups keep syncing. Only in
//! organizations with a sync flag on (Sentry re-keys every organization), and
//! ordered: each row keeps the event time of the last move applied to it
//! (`key_synced_at`), and an older move is stale there. In the webhook's
//! transaction, before its assignee and status changes (which then find the issue
//! under its new key).

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;

use super::audit::detail::{Clock, KeyStale, Merged, NothingToRekey, Rekeyed};
use super::audit::{Audit, Decision};
use super::clock;
use super::event::{IssueEvent, IssueKey};
use crate::db::rekey as q;

/// What one move did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Rows that took the new key (renamed or merged).
    pub moved: usize,
    /// Rows left as they were: a later move was applied to them.
    pub stale: usize,
}

/// Re-keys `from` to `event.key` in `event.integration_id`, in the organizations
/// that move issues. Once done, a redelivery finds no row of the old key and does
/// nothing; a move older than the last one applied to a row leaves it alone.
pub async fn apply(
    tx: &Object,
    event: IssueEvent<'_>,
    from: &IssueKey,
    audit: &mut Audit,
) -> Result<Report, tokio_postgres::Error> {
    let to = event.key;
    let keys = [from.as_str(), to.as_str()];
    let rows = q::lock_moving(tx, event.integration_id, &keys).await?;
    // Taken once the rows are locked: every move committed before was received before.
    let horizon = clock::horizon(event.skew);
    let mut report = Report::default();
    for old in rows.iter().filter(|row| row.key == from.as_str()) {
        let applied = clock::binding(old.key_synced_at, horizon);
        if let (Some(at), Some(applied)) = (event.at, applied)
            && applied > at
        {
            tracing::info!(organization.id = old.organization_id, from = %from, to = %to, "skipping stale move");
            report.stale += 1;
            let detail = KeyStale {
                from: from.as_str().to_owned(),
                to: to.as_str().to_owned(),
                event_time: at,
                applied_up_to: applied,
                clock: Clock::default(),
            };
            audit.record(Some(old.organization_id), Decision::KeyStale(detail));
            continue;
        }
        let survivor = rows
            .iter()
            .find(|row| row.key == to.as_str() && row.organization_id == old.organization_id);
        let merged = match survivor {
            Some(survivor) => {
                let moved_at = latest([
                    applied,
                    clock::binding(survivor.key_synced_at, horizon),
                    event.at,
                ]);
                let merged = q::merge(tx, old.id, survivor.id, horizon, moved_at).await?;
                Some(Merged {
                    merged_into: survivor.id,
                    links_moved: merged.moved,
                    duplicate_links_dropped: merged.dropped,
                })
            }
            None => {
                q::rename(tx, old.id, to.as_str(), latest([applied, event.at])).await?;
                None
            }
        };
        // A watermark that binds nothing was replaced.
        let reset_from = old.key_synced_at.filter(|_| applied.is_none());
        let detail = Rekeyed {
            from: from.as_str().to_owned(),
            to: to.as_str().to_owned(),
            merged,
            clock: Clock {
                watermark_reset_from: reset_from,
                ..Clock::default()
            },
        };
        report.moved += 1;
        tracing::info!(organization.id = old.organization_id, from = %from, to = %to, "issue re-keyed");
        audit.record(Some(old.organization_id), Decision::Rekeyed(detail));
    }
    if report.moved + report.stale == 0 {
        let detail = NothingToRekey {
            from: from.as_str().to_owned(),
            to: to.as_str().to_owned(),
            clock: Clock::default(),
        };
        audit.record(None, Decision::NothingToRekey(detail));
    }
    Ok(report)
}

/// The latest of the known times.
fn latest<const N: usize>(times: [Option<DateTime<Utc>>; N]) -> Option<DateTime<Utc>> {
    times.into_iter().flatten().max()
}
