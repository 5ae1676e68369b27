//! The relay's side of `outbound_pending` (docs/reference.md §10.1): the
//! changes Postgres captured, moved into one pending push per external issue and
//! kind that should get them; the pushes to publish, and marking them published;
//! the backlog's figures; the NOTIFY that wakes the relays. `relay.rs` calls them
//! in transactions of its own; the push's side of the rows is `claim.rs`.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

use super::Kind;
use super::message::Push;

/// The channel the capture triggers NOTIFY at commit and the relays LISTEN on.
pub const CHANNEL: &str = "jirasync_outbound";

/// The targets rule (docs/reference.md §10.1, "Targets"), from a group `g` to the
/// issues `ei` its changes go to: linked to `g` (`linked_type = 'issue'`, `g`'s
/// project) in `g`'s organization, whose organization, organization link and
/// integration are active, `g` not being deleted. The caller adds the kind's flag
/// (`oi.config`). The relay's move and a push's check share it.
macro_rules! targets {
    () => {
        "JOIN projects p ON p.id = g.project_id
    JOIN group_links gl
      ON gl.group_id = g.id AND gl.project_id = g.project_id AND gl.linked_type = 'issue'
    JOIN external_issues ei ON ei.id = gl.linked_id AND ei.organization_id = p.organization_id
    JOIN organization_integrations oi
      ON oi.organization_id = ei.organization_id AND oi.integration_id = ei.integration_id
    JOIN organizations o ON o.id = ei.organization_id
    JOIN integrations i ON i.id = ei.integration_id
   WHERE g.status NOT IN ('pending_deletion', 'deletion_in_progress')
     AND oi.status = 'active' AND o.status = 'active' AND i.status = 'active'"
    };
}
pub(super) use targets;

/// Changes one move takes, about: whole transactions, the first this many
/// changes' (a transaction with more changes is moved whole all the same).
pub const MOVE_BATCH: i64 = 10_000;

/// Moves take turns, across all relays: one transaction-level advisory lock, a
/// hash of `jirasync.outbound.move`. Relays that moved at once would only wait
/// on each other's rows, in whatever order their plans took them.
pub const MOVE_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('jirasync.outbound.move', 0))";

/// `$1` how many changes to take, about ([`MOVE_BATCH`]): see [`move_changes`].
/// Returns the changes taken and the pending rows made or grown.
///
/// A change of group G goes to every `external_issues` row linked to G in G's
/// organization whose organization link is active with the kind's
/// `sync_forward_assignment` / `sync_status_forward` on, of an active organization
/// and integration, G not being deleted (docs/reference.md §10.1, "Targets"); a change with
/// no target is only deleted. The changes of one group and kind collapse to the
/// newest (its id, origin and time); so do those that reach one issue through
/// two groups. A row that exists takes the newest change's origin and group, keeps
/// its oldest time, and its `seq` grows past its old one even when the change
/// joining it has a lower id: a transaction that took its id first and committed
/// last must still be pushed after a push that ran before it committed.
pub const MOVE: &str = concat!(
    "WITH taken AS (
  DELETE FROM outbound_changes
   WHERE tx = ANY (ARRAY(
           SELECT DISTINCT tx FROM (SELECT tx FROM outbound_changes ORDER BY tx LIMIT $1) head))
  RETURNING id, group_id, kind, origin_integration_id, committed_at
), changed AS (
  SELECT DISTINCT ON (group_id, kind)
         group_id, kind, id, origin_integration_id, committed_at,
         min(committed_at) OVER (PARTITION BY group_id, kind) AS first_at
    FROM taken
   ORDER BY group_id, kind, id DESC
), targeted AS (
  SELECT DISTINCT ON (ei.id, ch.kind)
         ei.id AS external_issue_id, ch.kind, ch.group_id, ei.integration_id, ch.id AS seq,
         ch.origin_integration_id,
         min(ch.first_at) OVER (PARTITION BY ei.id, ch.kind) AS first_at,
         ch.committed_at AS changed_at
    FROM changed ch
    JOIN groups g ON g.id = ch.group_id
    ",
    targets!(),
    "
     AND oi.config->>(CASE ch.kind WHEN 'assignee' THEN 'sync_forward_assignment'
                                   ELSE 'sync_status_forward' END) = 'true'
   ORDER BY ei.id, ch.kind, ch.id DESC
), grown AS (
  INSERT INTO outbound_pending AS p (external_issue_id, kind, group_id, integration_id, seq,
                                     origin_integration_id, first_at, changed_at)
  SELECT external_issue_id, kind, group_id, integration_id, seq,
         origin_integration_id, first_at, changed_at
    FROM targeted
  ON CONFLICT (external_issue_id, kind) DO UPDATE
     SET seq = GREATEST(p.seq + 1, EXCLUDED.seq),
         group_id = EXCLUDED.group_id,
         integration_id = EXCLUDED.integration_id,
         origin_integration_id = EXCLUDED.origin_integration_id,
         first_at = LEAST(p.first_at, EXCLUDED.first_at),
         changed_at = GREATEST(p.changed_at, EXCLUDED.changed_at)
  RETURNING 1
)
SELECT (SELECT count(*) FROM taken), (SELECT count(*) FROM grown)"
);

/// What one move did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// Changes taken from `outbound_changes`.
    pub changes: i64,
    /// Pending rows made or grown.
    pub pending: i64,
}

/// Moves captured changes, whole transactions of them, into pending pushes
/// ([`MOVE`]), after the moves of other relays ([`MOVE_LOCK`]). Run it in a
/// transaction: the changes go when their pending rows are made, not before.
pub async fn move_changes(tx: &impl GenericClient, batch: i64) -> Result<Moved, Error> {
    tx.execute(MOVE_LOCK, &[]).await?;
    let statement = tx.prepare_cached(MOVE).await?;
    let row = tx.query_one(&statement, &[&batch]).await?;
    Ok(Moved {
        changes: row.get(0),
        pending: row.get(1),
    })
}

/// `$1` how many: see [`publishable`]. Oldest change first.
pub const PUBLISHABLE: &str = "SELECT p.kind, p.group_id, p.external_issue_id, p.integration_id,
       ei.organization_id, ei.key, p.seq, p.changed_at, p.origin_integration_id
  FROM outbound_pending p
  JOIN external_issues ei ON ei.id = p.external_issue_id
 WHERE p.published_seq IS DISTINCT FROM p.seq AND p.held_at IS NULL
 ORDER BY p.changed_at
 LIMIT $1
   FOR UPDATE OF p SKIP LOCKED";

/// Up to `limit` pending pushes whose newest change is not published and that
/// are not held, locked until the transaction `tx` ends; rows another relay holds
/// are skipped, so two relays never publish one row at once.
pub async fn publishable(tx: &impl GenericClient, limit: i64) -> Result<Vec<Push>, Error> {
    let statement = tx.prepare_cached(PUBLISHABLE).await?;
    let rows = tx.query(&statement, &[&limit]).await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            // The table's CHECK admits only the kinds there are.
            let kind = Kind::parse(row.get(0))?;
            let changed_at: DateTime<Utc> = row.get(7);
            Some(Push {
                kind,
                group_id: row.get(1),
                external_issue_id: row.get(2),
                integration_id: row.get(3),
                organization_id: row.get(4),
                issue_key: row.get(5),
                seq: row.get(6),
                committed_at_ms: changed_at.timestamp_millis(),
                origin_integration_id: row.get(8),
            })
        })
        .collect())
}

/// `$1` external issues, `$2` kinds, `$3` the `seq`s published: see [`published`].
pub const PUBLISHED: &str = "UPDATE outbound_pending p SET published_seq = u.seq
  FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS u(external_issue_id, kind, seq)
 WHERE p.external_issue_id = u.external_issue_id AND p.kind = u.kind";

/// Records that the broker confirmed `pushes`: each row is published for the
/// `seq` its message carries (rows [`publishable`] locked in this transaction).
pub async fn published(tx: &impl GenericClient, pushes: &[&Push]) -> Result<(), Error> {
    if pushes.is_empty() {
        return Ok(());
    }
    let issues: Vec<i64> = pushes.iter().map(|push| push.external_issue_id).collect();
    let kinds: Vec<&str> = pushes.iter().map(|push| push.kind.as_str()).collect();
    let seqs: Vec<i64> = pushes.iter().map(|push| push.seq).collect();
    tx.execute(PUBLISHED, &[&issues, &kinds, &seqs]).await?;
    Ok(())
}

/// The backlog: changes captured and not yet moved, and pushes pending (held
/// ones included); and the age in seconds of the oldest of them (0 without one).
pub const BACKLOG: &str = "SELECT
    (SELECT count(*) FROM outbound_changes) + (SELECT count(*) FROM outbound_pending),
    COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - LEAST(
        (SELECT min(committed_at) FROM outbound_changes),
        (SELECT min(first_at) FROM outbound_pending)))::float8, 0)";

/// The changes captured and not yet decided.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Backlog {
    /// How many: changes not yet moved, and pending pushes (held ones included).
    pub count: i64,
    /// Seconds since the oldest of them was committed.
    pub oldest_seconds: f64,
}

/// The backlog now ([`BACKLOG`]).
pub async fn backlog(client: &impl GenericClient) -> Result<Backlog, Error> {
    let row = client.query_one(BACKLOG, &[]).await?;
    Ok(Backlog {
        count: row.get(0),
        oldest_seconds: row.get::<_, f64>(1).max(0.0),
    })
}

/// Wakes every relay ([`CHANNEL`]): at the commit of `client`'s transaction, or
/// at once outside one. Who releases held pushes calls it.
pub async fn notify(client: &impl GenericClient) -> Result<(), Error> {
    client.batch_execute(&format!("NOTIFY {CHANNEL}")).await
}
