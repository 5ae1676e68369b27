//! Queries of reconciliation (docs/reference.md §6): which issues and integrations to
//! reconcile, when each was last reconciled, and the per-integration lock.
//! Called by the worker's reconcile handler and scheduler and by `jirasync reconcile`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

/// First key of the two-key advisory locks that serialize reconciliations ("jira").
const LOCK_CLASS: i32 = 0x6a69_7261;

/// `FROM … WHERE` of the active integrations `i` of the providers `$1` with an
/// organization that has reverse assignment sync on.
const SYNCING_INTEGRATIONS: &str = concat!(
    " FROM integrations i
  WHERE i.provider = ANY($1) AND i.status = 'active'
    AND EXISTS (SELECT 1 FROM organization_integrations oi
                  JOIN organizations o ON o.id = oi.organization_id
                 WHERE oi.integration_id = i.id AND ",
    syncing_org!("sync_reverse_assignment"),
    ")"
);

/// Takes the transaction-scoped advisory lock of `integration_id`'s reconciliation;
/// false when another transaction holds it.
pub async fn try_lock(client: &impl GenericClient, integration_id: i64) -> Result<bool, Error> {
    // Two keys: this lock space never meets the migration runner's one-key lock.
    let key = i32::try_from(integration_id.rem_euclid(i64::from(i32::MAX))).unwrap_or_default();
    let row = client
        .query_one(
            "SELECT pg_try_advisory_xact_lock($1, $2)",
            &[&LOCK_CLASS, &key],
        )
        .await?;
    Ok(row.get(0))
}

/// The distinct keys of the integration's linked issues in organizations with sync on.
pub async fn linked_keys(
    client: &impl GenericClient,
    integration_id: i64,
) -> Result<Vec<String>, Error> {
    const SQL: &str = concat!(
        "SELECT DISTINCT ei.key",
        syncing_issues!("sync_reverse_assignment"),
        " ORDER BY ei.key"
    );
    let rows = client.query(SQL, &[&integration_id]).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// A reconciliation in progress: when it started, the time it searches from,
/// and the last linked key whose search and changes are done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// When the run started (recorded as `reconciled_at` when it ends).
    pub started_at: DateTime<Utc>,
    /// It searches for issues updated since this time.
    pub since: DateTime<Utc>,
    /// Keys up to this one (in key order) are done.
    pub after_key: Option<String>,
}

/// The integration's reconciliation in progress, if one is.
pub async fn run_in_progress(
    client: &impl GenericClient,
    integration_id: i64,
) -> Result<Option<Run>, Error> {
    let row = client
        .query_opt(
            "SELECT run_started_at, run_since, run_after_key FROM integration_reconciliations
              WHERE integration_id = $1 AND run_started_at IS NOT NULL AND run_since IS NOT NULL",
            &[&integration_id],
        )
        .await?;
    Ok(row.map(|row| Run {
        started_at: row.get(0),
        since: row.get(1),
        after_key: row.get(2),
    }))
}

/// Records `run` as the integration's reconciliation in progress.
pub async fn save_run(
    client: &impl GenericClient,
    integration_id: i64,
    run: &Run,
) -> Result<(), Error> {
    client
        .execute(
            "INSERT INTO integration_reconciliations AS r
                    (integration_id, run_started_at, run_since, run_after_key)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (integration_id) DO UPDATE SET run_started_at = $2, run_since = $3,
                    run_after_key = $4",
            &[&integration_id, &run.started_at, &run.since, &run.after_key],
        )
        .await?;
    Ok(())
}

/// When the last successful reconciliation of the integration started.
pub async fn last_reconciled(
    client: &impl GenericClient,
    integration_id: i64,
) -> Result<Option<DateTime<Utc>>, Error> {
    let row = client
        .query_opt(
            "SELECT reconciled_at FROM integration_reconciliations WHERE integration_id = $1",
            &[&integration_id],
        )
        .await?;
    Ok(row.and_then(|row| row.get(0)))
}

/// Records a successful reconciliation that started at `at` (never moves back).
pub async fn record(
    client: &impl GenericClient,
    integration_id: i64,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    client
        .execute(
            "INSERT INTO integration_reconciliations (integration_id, reconciled_at)
             VALUES ($1, $2)
             ON CONFLICT (integration_id) DO UPDATE
                SET reconciled_at = GREATEST(COALESCE(integration_reconciliations.reconciled_at, $2), $2),
                    run_started_at = NULL, run_since = NULL, run_after_key = NULL",
            &[&integration_id, &at],
        )
        .await?;
    Ok(())
}

/// Active integrations of `providers` with an organization that has sync on.
pub async fn syncing_integrations(
    client: &impl GenericClient,
    providers: &[&str],
) -> Result<Vec<i64>, Error> {
    let sql = format!("SELECT i.id {SYNCING_INTEGRATIONS} ORDER BY i.id");
    let rows = client.query(&sql, &[&providers]).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Gives back the claim of `integration_id` (its job could not be enqueued):
/// the next tick of any scheduler claims it again.
pub async fn release_claim(client: &impl GenericClient, integration_id: i64) -> Result<(), Error> {
    client
        .execute(
            "UPDATE integration_reconciliations SET scheduled_at = NULL WHERE integration_id = $1",
            &[&integration_id],
        )
        .await?;
    Ok(())
}

/// Claims the syncing integrations of `providers` not scheduled within `every` and
/// returns them: of many workers ticking at once, one claims each integration.
pub async fn claim_due(
    client: &impl GenericClient,
    providers: &[&str],
    every: Duration,
) -> Result<Vec<i64>, Error> {
    let seconds = every.as_secs_f64();
    let sql = format!(
        "INSERT INTO integration_reconciliations AS r (integration_id, scheduled_at)
         SELECT i.id, now() {SYNCING_INTEGRATIONS}
         ON CONFLICT (integration_id) DO UPDATE SET scheduled_at = EXCLUDED.scheduled_at
          WHERE r.scheduled_at IS NULL OR r.scheduled_at <= now() - make_interval(secs => $2)
         RETURNING r.integration_id"
    );
    let rows = client.query(&sql, &[&providers, &seconds]).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}
