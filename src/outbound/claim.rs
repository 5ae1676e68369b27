//! A push's hold on its external issue and kind (docs/reference.md §10.3): one
//! push per issue and kind at a time across all workers, by a transaction-level
//! advisory lock, and what the push does to its `outbound_pending` row — skip
//! it when a newer change is pending (superseded), delete it once decided, mark
//! it held while the integration cannot call Jira. The lock and the row's update
//! end with the transaction, which also writes the decision's audit row.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::{Error, Statement};

use super::Kind;
use super::message::Push;

/// `$1` external issue, `$2` kind: waits for the lock of this issue and kind, a
/// hash of `jirasync.outbound:<id>:<kind>` (two issues that share a hash only
/// wait for each other).
pub const LOCK: &str = "SELECT pg_advisory_xact_lock(
    hashtextextended('jirasync.outbound:' || $1::bigint || ':' || $2::text, 0))";

/// `$1` external issues, `$2` their kinds: waits for the lock of each (as
/// [`LOCK`]), in the order of the locks' keys, so two batches that share issues
/// take them in the same order and never deadlock.
pub const LOCK_ALL: &str = "SELECT count(pg_advisory_xact_lock(key)) FROM (
    SELECT hashtextextended('jirasync.outbound:' || id || ':' || kind, 0) AS key
      FROM unnest($1::bigint[], $2::text[]) AS u(id, kind)
     ORDER BY 1 OFFSET 0) AS sorted";

/// `$1` external issues, `$2` their kinds: their pending rows.
pub const PENDING_ALL: &str =
    "SELECT p.external_issue_id, p.kind, p.seq, p.origin_integration_id, p.changed_at, p.held_at
  FROM unnest($1::bigint[], $2::text[]) AS u(id, kind)
  JOIN outbound_pending p ON p.external_issue_id = u.id AND p.kind = u.kind";

/// `$1` external issue, `$2` kind, `$3` seq: the row, unless a newer change came.
pub const DECIDED: &str =
    "DELETE FROM outbound_pending WHERE external_issue_id = $1 AND kind = $2 AND seq <= $3";

/// `$1` external issues, `$2` kinds, `$3` seqs: as [`DECIDED`], for each.
pub const DECIDED_ALL: &str = "DELETE FROM outbound_pending p
 USING unnest($1::bigint[], $2::text[], $3::bigint[]) AS d(external_issue_id, kind, seq)
 WHERE p.external_issue_id = d.external_issue_id AND p.kind = d.kind AND p.seq <= d.seq";

/// `$1` external issue, `$2` kind: held since now, unless held already; returns
/// a row when it was not.
pub const HOLD: &str = "UPDATE outbound_pending SET held_at = now()
  WHERE external_issue_id = $1 AND kind = $2 AND held_at IS NULL RETURNING 1";

/// The pending push of one issue and kind, as the claim found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Its newest change.
    pub seq: i64,
    /// That change's origin.
    pub origin_integration_id: Option<i64>,
    /// When that change was committed.
    pub changed_at: DateTime<Utc>,
    /// Since when it is held, if it is.
    pub held_at: Option<DateTime<Utc>>,
}

/// What the claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// A newer change of the issue and kind is pending: its own message pushes it.
    Superseded,
    /// The push to make; `None` when no row is pending (a message replayed or
    /// redelivered after its push was decided): the group's state is pushed anyway.
    Current(Option<Pending>),
}

/// Takes the locks of `pushes`' issues and kinds for the transaction `tx` and
/// reads their pending rows: what each push's claim found, in their order. No
/// two of `pushes` share an issue and kind.
pub async fn claim_all<'p>(
    tx: &impl GenericClient,
    pushes: impl Iterator<Item = &'p Push> + Clone,
) -> Result<Vec<Claim>, Error> {
    let ids: Vec<i64> = pushes.clone().map(|push| push.external_issue_id).collect();
    let kinds: Vec<&str> = pushes.clone().map(|push| push.kind.as_str()).collect();
    let (lock, pending) = (
        tx.prepare_cached(LOCK_ALL).await?,
        tx.prepare_cached(PENDING_ALL).await?,
    );
    // Sent together: the read runs once every lock is taken.
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&ids, &kinds];
    // The lock's own error (a deadlock), not the read's "aborted" that follows it.
    let (_, rows) = crate::statements!(
        locked = tx.execute(&lock, &params),
        rows = tx.query(&pending, &params),
    );
    let mut found: HashMap<(i64, String), Pending> = rows
        .into_iter()
        .map(|row| {
            let pending = Pending {
                seq: row.get(2),
                origin_integration_id: row.get(3),
                changed_at: row.get(4),
                held_at: row.get(5),
            };
            ((row.get(0), row.get(1)), pending)
        })
        .collect();
    Ok(pushes
        .map(|push| {
            let key = (push.external_issue_id, push.kind.as_str().to_owned());
            match found.remove(&key) {
                Some(pending) if pending.seq > push.seq => Claim::Superseded,
                pending => Claim::Current(pending),
            }
        })
        .collect())
}

/// The push of `external_issue_id` and `kind` up to `seq` is decided: its row goes,
/// unless a newer change is pending.
pub async fn decided(
    tx: &impl GenericClient,
    external_issue_id: i64,
    kind: Kind,
    seq: i64,
) -> Result<(), Error> {
    tx.execute(
        &tx.prepare_cached(DECIDED).await?,
        &[&external_issue_id, &kind.as_str(), &seq],
    )
    .await?;
    Ok(())
}

/// The pushes (issue, kind, seq) are decided: as [`decided`], in one
/// statement. `statement` is [`DECIDED_ALL`] prepared, sent when first polled.
pub async fn decided_all(
    tx: &impl GenericClient,
    statement: &Statement,
    pushes: &[(i64, Kind, i64)],
) -> Result<(), Error> {
    let ids: Vec<i64> = pushes.iter().map(|p| p.0).collect();
    let kinds: Vec<&str> = pushes.iter().map(|p| p.1.as_str()).collect();
    let seqs: Vec<i64> = pushes.iter().map(|p| p.2).collect();
    tx.execute(statement, &[&ids, &kinds, &seqs]).await?;
    Ok(())
}

/// Marks the push held; whether it was not held before (its `held` is recorded once).
pub async fn hold(
    tx: &impl GenericClient,
    external_issue_id: i64,
    kind: Kind,
) -> Result<bool, Error> {
    Ok(tx
        .query_opt(
            &tx.prepare_cached(HOLD).await?,
            &[&external_issue_id, &kind.as_str()],
        )
        .await?
        .is_some())
}

/// `$1` external issue, `$2` group, `$3` the flag of the kind: the issue's key
/// while the issue is still a target of the group's changes of that kind (the
/// relay's rule, `pending::targets`, with the flag on).
pub const TARGET: &str = concat!(
    "SELECT ei.key FROM groups g
    ",
    super::pending::targets!(),
    "
     AND ei.id = $1 AND g.id = $2 AND oi.config->>$3::text = 'true'
 LIMIT 1"
);

/// The `organization_integrations.config` flag that sends changes of `kind` to Jira.
pub fn flag(kind: Kind) -> &'static str {
    match kind {
        Kind::Assignee => "sync_forward_assignment",
        Kind::Status => "sync_status_forward",
    }
}

/// The issue's key now, while `push`'s issue is still a target of its group's
/// changes; `None` when it is no longer (unlinked, flag off, deleted, inactive).
pub async fn target_key(tx: &impl GenericClient, push: &Push) -> Result<Option<String>, Error> {
    Ok(tx
        .query_opt(
            &tx.prepare_cached(TARGET).await?,
            &[&push.external_issue_id, &push.group_id, &flag(push.kind)],
        )
        .await?
        .map(|row| row.get(0)))
}
