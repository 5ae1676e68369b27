//! Handler of `jira_server.reconcile` (issue 8 §3): Jira Server does not retry
//! failed webhooks, so the linked issues updated since the last reconciliation are
//! searched in Jira and fed through the webhook's assignee sync path, ordering
//! guard included. One reconciliation per integration at a time (advisory lock).

use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;

use super::jira_access::{self, jira_error};
use super::webhook::assignee_action;
use super::{WebhookJobs, db_error, pool_error};
use crate::db::integrations::find_active_by_id;
use crate::db::reconcile;
use crate::jira::payload::current_state;
use crate::jira::search::FoundIssue;
use crate::queue::consumer::{HandleError, Incoming, Outcome};
use crate::sync::assignee;

/// Keys per JQL query, keeping each query well under Jira's size limits.
const KEYS_PER_QUERY: usize = 100;
/// Searched again before the last reconciliation's start: clock skew and
/// Jira's minute-granular JQL times.
const OVERLAP: TimeDelta = TimeDelta::minutes(1);
/// How far back the first reconciliation of an integration looks.
const FIRST_LOOKBACK: TimeDelta = TimeDelta::hours(24);

/// The job's body.
#[derive(Debug, Clone, Deserialize)]
pub struct ReconcileJob {
    /// The integration to reconcile.
    pub integration_id: i64,
    /// Search from this time (ms since the epoch) instead of the last reconciliation.
    #[serde(default)]
    pub since_ms: Option<i64>,
}

/// Parses the job's body.
pub fn parse(body: &[u8]) -> Result<ReconcileJob, HandleError> {
    serde_json::from_slice(body).map_err(|error| HandleError::Permanent {
        outcome: "malformed",
        reason: format!("reconcile job body: {error}"),
    })
}

/// Reconciles one integration, holding its lock for the whole run.
pub async fn handle(jobs: &WebhookJobs, message: &Incoming) -> Result<Outcome, HandleError> {
    let job = parse(&message.body)?;
    tracing::Span::current().record("integration.id", job.integration_id);
    let started = Utc::now();
    // The lock lives in a transaction of its own connection until this returns;
    // dropping it on an error path rolls back and releases the lock.
    let mut lock_client = jobs.pool.get().await.map_err(pool_error)?;
    let lock = lock_client.transaction().await.map_err(db_error)?;
    if !reconcile::try_lock(&lock, job.integration_id)
        .await
        .map_err(db_error)?
    {
        tracing::info!("another reconciliation of this integration is running");
        return Ok(Outcome("reconcile_busy"));
    }
    let mut client = jobs.pool.get().await.map_err(pool_error)?;
    let Some(integration) = find_active_by_id(&client, job.integration_id)
        .await
        .map_err(db_error)?
    else {
        tracing::warn!("reconcile job for an unknown or inactive integration");
        return Ok(Outcome("unknown_integration"));
    };
    let Some(jira) = jira_access::connect(&client, &integration).await? else {
        tracing::warn!(
            "reconciliation skipped: the integration has no access token to sign requests"
        );
        return Ok(Outcome("no_access_token"));
    };
    let since = match job.since_ms.and_then(DateTime::from_timestamp_millis) {
        Some(since) => since,
        None => reconcile::last_reconciled(&client, integration.id)
            .await
            .map_err(db_error)?
            .map_or(started - FIRST_LOOKBACK, |last| last - OVERLAP),
    };
    let keys = reconcile::linked_keys(&client, integration.id)
        .await
        .map_err(db_error)?;
    let mut found = 0_usize;
    let mut changed = 0_usize;
    for chunk in keys.chunks(KEYS_PER_QUERY) {
        let issues = jira
            .client
            .search_all(&jira.access_token, &jql(chunk, since, started))
            .await
            .map_err(|error| jira_error("search Jira for updated issues", error))?;
        for issue in issues {
            found += 1;
            if apply(jobs, &mut client, &integration, &issue).await? {
                changed += 1;
            }
        }
    }
    reconcile::record(&client, integration.id, started)
        .await
        .map_err(db_error)?;
    lock.commit().await.map_err(db_error)?;
    tracing::info!(
        issues.linked = keys.len(),
        issues.updated = found,
        issues.changed = changed,
        "reconciled"
    );
    Ok(Outcome(if changed > 0 {
        "reconciled_changes"
    } else {
        "reconciled"
    }))
}

/// Applies one issue's current assignee like a webhook that changed it; true when
/// a group's assignment changed.
async fn apply(
    jobs: &WebhookJobs,
    client: &mut deadpool_postgres::Object,
    integration: &crate::db::integrations::Integration,
    issue: &FoundIssue,
) -> Result<bool, HandleError> {
    let change = match current_state(&issue.key, &issue.fields) {
        Ok(change) => change,
        Err(error) => {
            // One odd issue does not block the others.
            tracing::warn!(issue.key = %issue.key, %error, "skipping an issue Jira returned");
            return Ok(false);
        }
    };
    let Some(assignee) = &change.assignee else {
        return Ok(false);
    };
    let Some(action) = assignee_action(jobs, client, integration, assignee).await? else {
        tracing::info!(issue.key = %issue.key, "missing-assignee-email");
        return Ok(false);
    };
    let tx = client.transaction().await.map_err(db_error)?;
    let report = assignee::apply(&tx, integration.id, &change.key, &action, change.event_time)
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    Ok(report.assigned + report.unassigned > 0)
}

/// `key in ("A-1", …) AND updated >= "-Nm"`. A relative time: Jira reads absolute
/// JQL times in the searching user's time zone, which is unknown here.
fn jql(keys: &[String], since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let quoted: Vec<String> = keys
        .iter()
        .map(|key| format!("\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    // Rounded up, plus one: never narrower than asked.
    let minutes = (now - since).num_minutes().max(0) + 1;
    format!(
        "key in ({}) AND updated >= \"-{minutes}m\"",
        quoted.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_quotes_keys_and_looks_back_at_least_as_far_as_asked() {
        let now = Utc::now();
        let query = jql(
            &["P-1".to_owned(), "Q\"2".to_owned()],
            now - TimeDelta::seconds(90),
            now,
        );
        assert_eq!(query, r#"key in ("P-1", "Q\"2") AND updated >= "-2m""#);
    }

    #[test]
    fn a_job_body_without_since_parses_and_garbage_is_permanent() {
        let job = parse(br#"{"integration_id":7}"#).expect("parses");
        assert_eq!((job.integration_id, job.since_ms), (7, None));
        assert!(matches!(parse(b"nope"), Err(HandleError::Permanent { .. })));
    }
}
