//! Rows (8) and (14): one reconciliation of one of the benchmark's integrations
//! with N linked issues (`bench/seed_reconcile.sql`), each assigned in the fake
//! Jira (`fake_jira.rs`) and in no group yet, handled by one `jirasync worker`:
//! how long until the job is handled, how many requests of each kind Jira got, the
//! worker's peak RSS and how many groups hold the assignee Jira names afterwards
//! (every one, or the row fails). Row (8) reconciles the Data Center integration
//! through `POST /rest/api/2/search`, row (14) the Jira Cloud one through `POST
//! /rest/api/3/search/jql`, paged by `nextPageToken`.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use jirasync::integration::Provider;
use jirasync::queue::job::Job;
use jirasync::queue::{Names, publisher};
use jirasync::worker::jobs::Reconcile;

use super::fake_jira::CLOUD_PAGE;
use super::procs::{peak_rss_mib, worker_counts};
use super::{Bench, bench_integration, link_issues, lone_worker, unlink_issues};

/// What row (8) or (14) measured.
pub struct Reconciled {
    /// Issues seeded for the row, in no group yet.
    pub issues: usize,
    /// Linked issues of the integration: those and (Data Center) the benchmark's own.
    pub linked: i64,
    /// From publishing the job until the worker counted it handled.
    pub seconds: f64,
    /// `POST /rest/api/2/search` requests Jira got (Data Center's search).
    pub searches: usize,
    /// `POST /rest/api/3/search/jql` requests Jira got (Cloud's search).
    pub jql_searches: usize,
    /// Those of them asking for a page after the first, by `nextPageToken`.
    pub next_pages: usize,
    /// Any other requests Jira got.
    pub other: usize,
    /// Groups of the seeded issues holding the assignee Jira names afterwards
    /// (none before; the row fails unless it is every one).
    pub changed: i64,
    /// The worker's peak RSS.
    pub worker_rss_mib: f64,
    /// Where the CPU went, per 1,000 issues.
    pub cpu: String,
}

/// Seeds `issues` linked issues of the integration of `provider`, reconciles them
/// once and takes the seed away again.
pub async fn run(
    bench: &Bench<'_>,
    names: &Names,
    provider: Provider,
    issues: usize,
) -> anyhow::Result<Reconciled> {
    let (row_name, prefix) = match provider {
        Provider::Server => ("(8)", "REC"),
        Provider::Cloud => ("(14)", "CLD"),
    };
    let jira = link_issues(bench, provider, prefix, issues).await?;
    let row = bench
        .db
        .query_one(
            "SELECT i.id, (SELECT count(*) FROM external_issues ei WHERE ei.integration_id = i.id)
               FROM integrations i WHERE i.external_id = $1",
            &[&bench_integration(provider).0],
        )
        .await?;
    let (integration_id, linked): (i64, i64) = (row.get(0), row.get(1));

    let (worker, port) = lone_worker(bench).await?;
    let cpu = bench.cpu_use("worker", vec![worker.id()]);
    let (_, body, props) = Reconcile {
        integration_id,
        since_ms: None,
    }
    .to_message();
    let started = Instant::now();
    publisher::publish_confirmed(
        bench.channel,
        names.exchange(),
        Reconcile::TYPE,
        &body,
        props,
    )
    .await
    .context("failed to publish the reconcile job")?;
    loop {
        // A long run goes in slices (`reconcile_continued`, each a job of its
        // own, JIRASYNC_RECONCILE_SLICE); the last one ends `reconciled…`.
        let handled = worker_counts(bench.client, port, Reconcile::TYPE).await;
        if let Some((outcome, _)) = handled.iter().find(|(outcome, _)| {
            outcome != "reconcile_continued" && !outcome.starts_with("reconciled")
        }) {
            bail!(
                "row {row_name}: a slice of the reconciliation ended {outcome} after {:.0} s (the worker's log is above)",
                started.elapsed().as_secs_f64()
            );
        }
        if handled
            .iter()
            .any(|(outcome, _)| outcome.starts_with("reconciled"))
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!(
                "row {row_name}: the reconciliation of {issues} issues did not end in 30 minutes"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu.report(usize::try_from(linked)?);
    let worker_rss_mib = peak_rss_mib(&worker);
    drop(worker);
    jira.stop();

    // The fake names bench<m>, m = n mod users + 1, as the assignee of `<prefix>-<n>`.
    let users = i64::try_from(bench.args.users.max(1))?;
    let changed: i64 = bench
        .db
        .query_one(
            "SELECT count(*) FROM groups g
               JOIN group_assignees ga ON ga.group_id = g.id
               JOIN user_emails ue ON ue.user_id = ga.user_id
              WHERE g.title LIKE $1 || '-%'
                AND ue.email = 'bench' || (split_part(g.title, '-', 2)::bigint % $2 + 1) || '@example.org'",
            &[&prefix, &users],
        )
        .await?
        .get(0);
    unlink_issues(bench.db, provider, prefix).await?;
    let load = |count: &std::sync::atomic::AtomicUsize| count.load(Ordering::Relaxed);
    let counts = &jira.counts;
    let reconciled = Reconciled {
        issues,
        linked,
        seconds,
        searches: load(&counts.searches),
        jql_searches: load(&counts.jql_searches),
        next_pages: load(&counts.next_pages),
        other: load(&counts.other),
        changed,
        worker_rss_mib,
        cpu,
    };
    let (unauthorized, malformed) = (load(&counts.unauthorized), load(&counts.malformed));
    if unauthorized > 0 || malformed > 0 {
        bail!(
            "row {row_name}: the fake Jira refused {unauthorized} requests without the integration's credentials \
             and {malformed} malformed searches (the worker's log is above)"
        );
    }
    let (ours, theirs, theirs_name) = match provider {
        Provider::Server => (
            reconciled.searches,
            reconciled.jql_searches,
            "Cloud's search/jql",
        ),
        Provider::Cloud => (
            reconciled.jql_searches,
            reconciled.searches,
            "Data Center's search",
        ),
    };
    if ours == 0 || theirs > 0 {
        bail!(
            "row {row_name}: the worker searched {ours} times through its provider's search and {theirs} times through {theirs_name}"
        );
    }
    if provider == Provider::Cloud && issues > CLOUD_PAGE && reconciled.next_pages == 0 {
        bail!(
            "row {row_name}: no search followed a nextPageToken, though every page holds at most {CLOUD_PAGE} issues"
        );
    }
    if changed != i64::try_from(issues)? {
        bail!(
            "row {row_name}: {changed} of the {issues} seeded groups hold the assignee Jira names after the reconciliation"
        );
    }
    Ok(reconciled)
}
