//! Handler of `jira_server.reconcile` (docs/reference.md §6, and §11 for Jira
//! Cloud, whose search pages differ): Jira Server does not retry failed webhooks, so the linked issues updated since the last
//! reconciliation are searched in Jira and each page's current assignees applied
//! like webhooks that changed them, through the same unit of work (`sync::unit`),
//! ordering guard and lock timeout included. One reconciliation per integration at
//! a time (advisory lock).
//! [`Reconcile`] is the message its producers publish.

use crate::db::reconcile::{self, Run};
use crate::integration::messages;
use crate::integration::{self, AccessError, Integration, Provider};
use crate::jira::payload::current_state;
use crate::jira::search::FoundIssue;
use crate::queue::handler::Failure;
use crate::queue::job::Job;
use crate::sync::clock::EventTime;
use crate::sync::unit::Pending;
use crate::sync::{Applied, Change, Unit};
use crate::worker::environment::Environment;
use crate::worker::failure;
use crate::worker::outcome::Outcome;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// `jira_server.reconcile`: re-read an integration's recently updated linked issues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconcile {
    /// The integration to reconcile.
    pub integration_id: i64,
    /// Search from this time (ms since the epoch) instead of the last reconciliation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
}

impl Job for Reconcile {
    const TYPE: &'static str = messages::RECONCILE;
    const SHAPE: &'static str = r#"{"integration_id":…,"since_ms":…}"#;
}

/// Keys per JQL query, keeping each query well under Jira's size limits.
const KEYS_PER_QUERY: usize = 100;
/// Searched again before the last reconciliation's start: clock skew and
/// Jira's minute-granular JQL times.
const OVERLAP: TimeDelta = TimeDelta::minutes(1);
/// How far back the first reconciliation of an integration looks.
const FIRST_LOOKBACK: TimeDelta = TimeDelta::hours(24);

/// Reconciles one integration, holding its lock for the whole run.
pub async fn handle(
    env: &Environment,
    job: &Reconcile,
    message_id: &str,
) -> Result<Outcome, Failure> {
    tracing::Span::current().record("integration.id", job.integration_id);
    let started = Utc::now();
    // The lock lives in a transaction of its own connection until this returns;
    // dropping it on an error path rolls back and releases the lock.
    let mut lock_client = env.pool.get().await?;
    let lock = lock_client.transaction().await?;
    if !reconcile::try_lock(&lock, job.integration_id).await? {
        tracing::info!("another reconciliation of this integration is running");
        return Ok(Outcome::ReconcileBusy);
    }
    let client = env.pool.get().await?;
    let Some(integration) = integration::by_id(&client, env.pool.keys(), job.integration_id)
        .await?
        .filter(Integration::is_active)
    else {
        tracing::warn!("reconcile job for an unknown or inactive integration");
        return Ok(Outcome::UnknownIntegration);
    };
    match integration::credentials(&client, env.pool.keys(), integration.id).await? {
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
    let run = match job.since_ms.and_then(DateTime::from_timestamp_millis) {
        // Asked for a window of its own: a fresh run, whatever was in progress.
        Some(since) => Run {
            started_at: started,
            since,
            after_key: None,
        },
        None => match reconcile::run_in_progress(&client, integration.id).await? {
            Some(run) => {
                tracing::info!(
                    run.started_at = %run.started_at,
                    run.after_key = run.after_key.as_deref().unwrap_or(""),
                    "resuming the reconciliation in progress"
                );
                run
            }
            None => Run {
                started_at: started,
                since: reconcile::last_reconciled(&client, integration.id)
                    .await?
                    .map_or(started - FIRST_LOOKBACK, |last| last - OVERLAP),
                after_key: None,
            },
        },
    };
    reconcile::save_run(&client, integration.id, &run).await?;
    let mut keys = reconcile::linked_keys(&client, integration.id).await?;
    // In byte order, the order the run's resume point is compared in.
    keys.sort_unstable();
    if let Some(after) = &run.after_key {
        keys.retain(|key| key.as_str() > after.as_str());
    }
    // Not held while Jira is searched and the pages are applied (each on a connection of its own).
    drop(client);
    let unit = Unit::new(env.pool.clone(), env.audit);
    let slice = Instant::now();
    let mut found = 0_usize;
    let mut changed = 0_usize;
    let mut chunks = keys.chunks(KEYS_PER_QUERY).peekable();
    while let Some(chunk) = chunks.next() {
        // Jira's JQL times are relative to its own now: the window from `since`
        // is measured at each search.
        let issues = search(env, &integration, chunk, run.since, Utc::now()).await?;
        // The search's receive time: its event times are bounded by it, as a
        // webhook's are by the ingress's.
        let answered = Utc::now();
        found += issues.len();
        let page = Page {
            issues: &issues,
            answered,
            message_id,
        };
        changed += apply_page(env, &unit, &integration, page).await?;
        let done = Run {
            after_key: chunk.last().cloned(),
            ..run.clone()
        };
        {
            let client = env.pool.get().await?;
            reconcile::save_run(&client, integration.id, &done).await?;
        }
        // A slice ends well inside RabbitMQ's `consumer_timeout`, and a
        // redelivery repeats little.
        if chunks.peek().is_some() && slice.elapsed() >= env.reconcile_slice {
            // Let go of the lock first: the next slice may start at once.
            lock.commit().await?;
            return continued(env, &integration, found, changed).await;
        }
    }
    let client = env.pool.get().await?;
    reconcile::record(&client, integration.id, run.started_at).await?;
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

/// Ends a slice of a reconciliation whose keys are not all searched: its
/// resume point is stored, and the next slice is enqueued as a job of its own,
/// so no delivery is held for long and a failure later on resumes from here.
async fn continued(
    env: &Environment,
    integration: &Integration,
    found: usize,
    changed: usize,
) -> Result<Outcome, Failure> {
    let next = Reconcile {
        integration_id: integration.id,
        since_ms: None,
    };
    let id = env.jobs.publish(&next).await.map_err(|error| {
        // Redelivered, this job resumes from the stored point all the same.
        Failure::passing(error.context("failed to enqueue the next slice of the reconciliation"))
    })?;
    tracing::info!(
        issues.updated = found,
        issues.changed = changed,
        next.message_id = %id,
        "reconciliation slice done; the next slice continues in another job"
    );
    Ok(Outcome::ReconcileContinued)
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
/// webhook that changed it, as one unit of work (the page's rows locked first, in
/// id order, under the lock timeout, as a batch of webhooks; when that fails, each
/// issue alone); how many issues had a group's assignment changed. An event time
/// later than the answer's time + the skew is replaced by that time, as a
/// webhook's is (docs/reference.md §5.6).
async fn apply_page(
    env: &Environment,
    unit: &Unit,
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
        change.bound_event_time(page.answered, env.max_event_skew);
        let Some(assignee) = &change.assignee else {
            continue;
        };
        let action = env
            .lookups
            .assignee_action(&env.pool, integration, assignee)
            .await?;
        changes.push(Pending::new(Change {
            message_id: page.message_id.to_owned(),
            integration_id: integration.id,
            integration_version: None,
            provider: integration.provider.activity(),
            key: change.key,
            moved_from: None,
            event_time: EventTime {
                at: change.event_time,
                clamped_from: change.event_time_clamped_from,
            },
            skew: env.max_event_skew,
            assignee: Some(action),
            status: None,
            status_to: None,
        }));
    }
    if changes.is_empty() {
        return Ok(0);
    }
    let (pending, answers): (Vec<_>, Vec<_>) = changes.into_iter().unzip();
    let keys: Vec<_> = pending.iter().map(|p| p.change().key.clone()).collect();
    if let Some(failure) = unit.settle(pending).await {
        tracing::info!(size = keys.len(), error = %failure, "a page failed; each of its issues is applied alone");
    }
    let mut changed = 0;
    let mut failed = None;
    for (key, answer) in keys.iter().zip(answers) {
        match answer.get().await {
            Ok(Applied::MissingEmail) => {
                tracing::info!(issue.key = %key, "missing-assignee-email");
            }
            Ok(Applied::Assigned | Applied::Unassigned) => changed += 1,
            Ok(_) => {}
            // Every issue is answered before the page fails: the others are committed.
            Err(error) => failed = failed.or(Some(error)),
        }
    }
    match failed {
        Some(error) => Err(error.into()),
        None => Ok(changed),
    }
}

/// The issues among `keys` updated since `since`, as the integration's Jira
/// searches: Data Center's `search` by `startAt`, Cloud's `search/jql` by
/// `nextPageToken`. On Cloud a `400` naming keys that no longer exist (deleted,
/// or moved away) drops them and asks once more; Data Center's search is told
/// not to validate keys.
async fn search(
    env: &Environment,
    integration: &Integration,
    keys: &[String],
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<FoundIssue>, Failure> {
    let failed = |error| failure::access("search Jira for updated issues", error);
    let query = jql(keys, since, now);
    let cloud = integration.provider == Provider::Cloud;
    let found = integration
        .with_jira(&env.pool, |jira| {
            let query = query.clone();
            async move {
                if cloud {
                    jira.search_all_jql(&query).await
                } else {
                    jira.search_all(&query).await
                }
            }
        })
        .await;
    let error = match found {
        Ok(issues) => return Ok(issues.unwrap_or_default()),
        Err(AccessError::Jira(error)) if cloud && error.status() == Some(400) => error,
        Err(error) => return Err(failed(error)),
    };
    let message = error.jira_message().unwrap_or_default();
    let (gone, left): (Vec<&String>, Vec<&String>) =
        keys.iter().partition(|key| names_key(&message, key));
    if gone.is_empty() {
        return Err(failed(AccessError::Jira(error)));
    }
    tracing::info!(
        issues.gone = gone.len(),
        "Jira no longer knows some linked keys; searching without them"
    );
    if left.is_empty() {
        return Ok(Vec::new());
    }
    let left: Vec<String> = left.into_iter().cloned().collect();
    let query = jql(&left, since, now);
    integration
        .with_jira(&env.pool, |jira| {
            let query = query.clone();
            async move { jira.search_all_jql(&query).await }
        })
        .await
        .map(Option::unwrap_or_default)
        .map_err(failed)
}

/// Whether Jira's `message` names `key` as a value it rejects (quoted, as
/// Cloud writes `The issue key 'P-9' for field 'key' is invalid.`).
fn names_key(message: &str, key: &str) -> bool {
    message.contains(&format!("'{key}'")) || message.contains(&format!("\"{key}\""))
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
        let job = Reconcile::parse(br#"{"integration_id":7}"#).expect("parses");
        assert_eq!((job.integration_id, job.since_ms), (7, None));
        assert!(matches!(
            Reconcile::parse(b"nope"),
            Err(Failure::Permanent { .. })
        ));
    }

    #[test]
    fn jobs_round_trip_and_leave_absent_options_out() {
        let job = Reconcile {
            integration_id: 7,
            since_ms: None,
        };
        let (_, body, properties) = job.to_message();
        assert_eq!(body, br#"{"integration_id":7}"#);
        assert_eq!(
            crate::queue::message::message_type(&properties),
            "jira_server.reconcile"
        );
        assert_eq!(Reconcile::parse(&body).expect("parses"), job);
    }
}
