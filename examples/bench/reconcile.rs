//! Row (8): one reconciliation of the benchmark's integration with N linked
//! issues (`bench/seed_reconcile.sql`), each assigned in the fake Jira
//! (`fake_jira.rs`) and in no group yet, handled by one `jirasync worker`: how
//! long until the job is handled, how many requests Jira got, the worker's peak
//! RSS and how many assignments changed.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use jirasync::queue::job::Job;
use jirasync::queue::{Names, publisher};
use jirasync::worker::jobs::Reconcile;

use super::procs::{peak_rss_mib, worker_counts};
use super::{Bench, link_issues, lone_worker, unlink_issues};

/// What row (8) measured.
pub struct Reconciled {
    /// Issues seeded for the row, in no group yet.
    pub issues: usize,
    /// Linked issues of the integration: those and the benchmark's own.
    pub linked: i64,
    /// From publishing the job until the worker counted it handled.
    pub seconds: f64,
    /// `POST /rest/api/2/search` requests Jira got.
    pub searches: usize,
    /// Any other requests Jira got.
    pub other: usize,
    /// Groups of the seeded issues holding an assignee afterwards (none before).
    pub changed: i64,
    /// The worker's peak RSS.
    pub worker_rss_mib: f64,
    /// Where the CPU went, per 1,000 issues.
    pub cpu: String,
}

/// Seeds `issues` linked issues, reconciles them once and takes the seed away again.
pub async fn run(bench: &Bench<'_>, names: &Names, issues: usize) -> anyhow::Result<Reconciled> {
    let jira = link_issues(bench, "REC", issues).await?;
    let row = bench
        .db
        .query_one(
            "SELECT i.id, (SELECT count(*) FROM external_issues ei WHERE ei.integration_id = i.id)
               FROM integrations i WHERE i.external_id = 'bench.jira.local:bench'",
            &[],
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
        let handled = worker_counts(bench.client, port, Reconcile::TYPE).await;
        if let Some((outcome, _)) = handled.first() {
            if !outcome.starts_with("reconciled") {
                bail!(
                    "the reconciliation ended {outcome} after {:.0} s (the worker's log is above)",
                    started.elapsed().as_secs_f64()
                );
            }
            break;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("the reconciliation of {issues} issues did not end in 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu.report(usize::try_from(linked)?);
    let worker_rss_mib = peak_rss_mib(&worker);
    drop(worker);
    jira.stop();

    let changed: i64 = bench
        .db
        .query_one(
            "SELECT count(*) FROM group_assignees ga JOIN groups g ON g.id = ga.group_id
              WHERE g.title LIKE 'REC-%' AND ga.user_id IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    unlink_issues(bench.db, "REC").await?;
    Ok(Reconciled {
        issues,
        linked,
        seconds,
        searches: jira.counts.searches.load(Ordering::Relaxed),
        other: jira.counts.other.load(Ordering::Relaxed),
        changed,
        worker_rss_mib,
        cpu,
    })
}
