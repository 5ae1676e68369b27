//! Handler of `jira_server.reconcile` (docs/reference.md §6): Jira Server does
//! not retry failed webhooks, so the linked issues updated since the last
//! reconciliation are searched in Jira and fed through the webhook's assignee sync
//! path, ordering guard included. One reconciliation per integration at a time
//! (advisory lock).

use chrono::{DateTime, TimeDelta, Utc};

use super::webhook::assignee_action;
use super::{WebhookJobs, failure};
use crate::db::{reconcile, rekey};
use crate::integration::{self as jira_server, Integration};
use crate::jira::payload::current_state;
use crate::jira::search::FoundIssue;
use crate::queue::handler::Failure;
use crate::sync::assignee;
use crate::sync::audit::Audit;
use crate::worker::Outcome;
use crate::worker::jobs::Reconcile;

/// Keys per JQL query, keeping each query well under Jira's size limits.
const KEYS_PER_QUERY: usize = 100;
/// Searched again before the last reconciliation's start: clock skew and
/// Jira's minute-granular JQL times.
const OVERLAP: TimeDelta = TimeDelta::minutes(1);
/// How far back the first reconciliation of an integration looks.
const FIRST_LOOKBACK: TimeDelta = TimeDelta::hours(24);

/// Reconciles one integration, holding its lock for the whole run.
pub async fn handle(
    jobs: &WebhookJobs,
    job: &Reconcile,
    message_id: &str,
) -> Result<Outcome, Failure> {
    tracing::Span::current().record("integration.id", job.integration_id);
    let started = Utc::now();
    // The lock lives in a transaction of its own connection until this returns;
    // dropping it on an error path rolls back and releases the lock.
    let mut lock_client = jobs.pool.get().await?;
    let lock = lock_client.transaction().await?;
    if !reconcile::try_lock(&lock, job.integration_id).await? {
        tracing::info!("another reconciliation of this integration is running");
        return Ok(Outcome::ReconcileBusy);
    }
    let mut client = jobs.pool.get().await?;
    let Some(integration) = jira_server::by_id(&client, jobs.pool.keys(), job.integration_id)
        .await?
        .filter(Integration::is_active)
    else {
        tracing::warn!("reconcile job for an unknown or inactive integration");
        return Ok(Outcome::UnknownIntegration);
    };
    match jira_server::credentials(&client, jobs.pool.keys(), integration.id).await? {
        Some(stored) if stored.needs_reauth.is_some() => {
            tracing::warn!("reconciliation skipped: the integration needs to be connected again");
            return Ok(Outcome::NeedsReauth);
        }
        Some(stored) if stored.credentials.can_call_rest() => {}
        _ => {
            tracing::warn!(
                "reconciliation skipped: the integration has no access token to sign requests"
            );
            return Ok(Outcome::NoAccessToken);
        }
    }
    let since = match job.since_ms.and_then(DateTime::from_timestamp_millis) {
        Some(since) => since,
        None => reconcile::last_reconciled(&client, integration.id)
            .await?
            .map_or(started - FIRST_LOOKBACK, |last| last - OVERLAP),
    };
    let keys = reconcile::linked_keys(&client, integration.id).await?;
    let mut found = 0_usize;
    let mut changed = 0_usize;
    for chunk in keys.chunks(KEYS_PER_QUERY) {
        let query = jql(chunk, since, started);
        let issues = integration
            .with_jira(&jobs.pool, |jira| {
                let query = query.clone();
                async move { jira.search_all(&query).await }
            })
            .await
            .map_err(|error| failure::access("search Jira for updated issues", error))?
            .unwrap_or_default();
        // The search's receive time: its event times are bounded by it, as a
        // webhook's are by the ingress's.
        let answered = Utc::now();
        found += issues.len();
        let page = Page {
            issues: &issues,
            answered,
            message_id,
        };
        changed += apply_page(jobs, &mut client, &integration, page).await?;
    }
    reconcile::record(&client, integration.id, started).await?;
    lock.commit().await?;
    tracing::info!(
        issues.linked = keys.len(),
        issues.updated = found,
        issues.changed = changed,
        "reconciled"
    );
    Ok(if changed > 0 {
        Outcome::ReconciledChanges
    } else {
        Outcome::Reconciled
    })
}

/// What one search answered, and when.
struct Page<'a> {
    issues: &'a [FoundIssue],
    /// When the search answered: the event times' receive time.
    answered: DateTime<Utc>,
    /// The reconcile job's message id, for the audit trail.
    message_id: &'a str,
}

/// Applies the current assignee of each issue of a page of the search like a
/// webhook that changed it, in one transaction (the page's rows locked first, in
/// id order, as a batch of webhooks locks them); how many issues had a group's
/// assignment changed. An event time later than the answer's time + the skew is
/// replaced by that time, as a webhook's is (docs/reference.md §5.6).
async fn apply_page(
    jobs: &WebhookJobs,
    client: &mut deadpool_postgres::Object,
    integration: &Integration,
    page: Page<'_>,
) -> Result<usize, Failure> {
    // Jira is asked (hidden emails) before the transaction, which holds locks.
    let mut changes = Vec::with_capacity(page.issues.len());
    for issue in page.issues {
        let mut change = match current_state(&issue.key, &issue.fields) {
            Ok(change) => change,
            Err(error) => {
                // One odd issue does not block the others.
                tracing::warn!(issue.key = %issue.key, %error, "skipping an issue Jira returned");
                continue;
            }
        };
        change.bound_event_time(page.answered, jobs.max_event_skew);
        let Some(assignee) = &change.assignee else {
            continue;
        };
        let action = assignee_action(jobs, integration, assignee).await?;
        changes.push((change, action));
    }
    if changes.is_empty() {
        return Ok(0);
    }
    let tx = client.transaction().await?;
    let keys: Vec<&str> = changes
        .iter()
        .map(|(change, _)| change.key.as_str())
        .collect();
    rekey::lock(&tx, integration.id, &keys).await?;
    let mut audits = Vec::with_capacity(changes.len());
    let mut changed = 0;
    for (change, action) in &changes {
        let event = change.event(integration.id, jobs.max_event_skew);
        let mut audit = jobs.audit(page.message_id, event);
        let report = assignee::apply(&tx, event, action, &mut audit).await?;
        if report.missing_email > 0 {
            tracing::info!(issue.key = %change.key, "missing-assignee-email");
        }
        if report.assigned + report.unassigned > 0 {
            changed += 1;
        }
        audits.push(audit);
    }
    Audit::write_all(&tx, &audits.iter().collect::<Vec<_>>()).await?;
    tx.commit().await?;
    for audit in &audits {
        audit.count();
    }
    Ok(changed)
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
        use crate::queue::job::Job;
        let job = Reconcile::parse(br#"{"integration_id":7}"#).expect("parses");
        assert_eq!((job.integration_id, job.since_ms), (7, None));
        assert!(matches!(
            Reconcile::parse(b"nope"),
            Err(Failure::Permanent { .. })
        ));
    }
}
