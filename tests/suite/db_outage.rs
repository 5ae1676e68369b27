//! A real Postgres outage under load (docs/reliability.md), on a private Postgres cluster so
//! the shared server is never restarted: a fast restart (connections killed) and a
//! stop held for a few seconds while real `jirasync worker` processes work through
//! 2,000 shuffled webhooks. Messages are retried or held, not lost, not dead-lettered, and
//! the same worker processes carry on without a restart.
//!
//! Disruptive and slow: `#[ignore]`d, run serially by `.ci/run`
//! (`cargo test --test db_outage -- --ignored --test-threads=1`).

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Process;
use common::private_pg::{PrivatePg, free_port};
use common::seed::{assignee_changed, jira_user};
use common::webhook_load::{self, SENT, load};

/// How long Postgres is held down.
const OUTAGE: Duration = Duration::from_secs(5);

/// The first tier is longer than either outage, so one outage fails a message at
/// most once (after its in-process tries) and two outages need at most the two
/// tiers: nothing can be dead-lettered.
const RETRY_DELAYS: &str = "10s,20s";

/// Worker processes with their metrics ports, killed when dropped.
struct Workers(Vec<(Process, u16)>);

impl Workers {
    fn start(settings: &jirasync::config::Settings, count: usize) -> Self {
        Self(
            (0..count)
                .map(|_| {
                    let port = free_port();
                    let listen = format!("127.0.0.1:{port}");
                    let child =
                        common::process("worker", settings, &[("JIRASYNC_METRICS_LISTEN", listen)]);
                    (child, port)
                })
                .collect(),
        )
    }

    fn pids(&mut self) -> Vec<(u32, bool)> {
        self.0
            .iter_mut()
            .map(|(child, _)| (child.id(), child.is_running()))
            .collect()
    }

    /// `jirasync_messages_total` of the webhook type by outcome, summed over the workers.
    async fn outcomes(&self, client: &reqwest::Client) -> BTreeMap<String, u64> {
        let mut sum = BTreeMap::new();
        for (_, port) in &self.0 {
            let Ok(response) = client
                .get(format!("http://127.0.0.1:{port}/metrics"))
                .send()
                .await
            else {
                continue;
            };
            let text = response.text().await.unwrap_or_default();
            for (outcome, count) in webhook_outcomes(&text) {
                *sum.entry(outcome).or_insert(0) += count;
            }
        }
        sum
    }

    /// Every worker's answer on `path` has a line `line`.
    async fn all_answer_with(&self, client: &reqwest::Client, path: &str, line: &str) -> bool {
        for (_, port) in &self.0 {
            let url = format!("http://127.0.0.1:{port}{path}");
            let Ok(response) = client.get(url).send().await else {
                return false;
            };
            let text = response.text().await.unwrap_or_default();
            if !text.lines().any(|l| l == line) {
                return false;
            }
        }
        true
    }

    /// Every worker answers `status` on `path`.
    async fn all_answer(&self, client: &reqwest::Client, path: &str, status: u16) -> bool {
        for (_, port) in &self.0 {
            let response = client
                .get(format!("http://127.0.0.1:{port}{path}"))
                .send()
                .await;
            if !matches!(response, Ok(r) if r.status() == status) {
                return false;
            }
        }
        true
    }
}

/// `outcome -> count` from the `jirasync_messages_total{type="jira_server.webhook",...}` lines.
fn webhook_outcomes(metrics: &str) -> Vec<(String, u64)> {
    metrics
        .lines()
        .filter(|line| line.starts_with("jirasync_messages_total{"))
        .filter(|line| line.contains(r#"type="jira_server.webhook""#))
        .filter_map(|line| {
            let outcome = line.split(r#"outcome=""#).nth(1)?.split('"').next()?;
            let count: f64 = line.rsplit(' ').next()?.parse().ok()?;
            // Counters are whole numbers well below 2^52.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Some((outcome.to_owned(), count as u64))
        })
        .collect()
}

/// Final outcomes: everything but a retry or a requeue ends a message.
fn settled(outcomes: &BTreeMap<String, u64>) -> u64 {
    outcomes
        .iter()
        .filter(|(outcome, _)| !matches!(outcome.as_str(), "retried" | "requeued"))
        .map(|(_, count)| count)
        .sum()
}

#[tokio::test]
#[ignore = "disruptive: restarts a private Postgres cluster; run serially by .ci/run"]
async fn postgres_restarted_and_held_down_under_load_loses_nothing_and_workers_recover() {
    let started = Instant::now();
    let pg = PrivatePg::start().await;
    println!(
        "private Postgres: initdb + start took {} ms",
        pg.setup.as_millis()
    );
    let mut settings = common::settings();
    settings.database.url = format!("{}/{}", pg.url(), settings.broker.queue_prefix);
    settings.retries.delays = RETRY_DELAYS.parse().expect("valid delays");
    common::migrate(&settings, true)
        .await
        .expect("migrate a fresh database on the private cluster");
    let mut load = load(settings).await;
    let http = reqwest::Client::new();
    let mut workers = Workers::start(&load.settings, 2);
    let before = workers.pids();
    common::eventually("the workers consume", Duration::from_secs(30), || {
        workers.all_answer(&http, "/readyz", 200)
    })
    .await;

    // 1. A fast restart part way through: every connection is terminated.
    load.wait_until_remaining_at_most(1_800).await;
    let restart = Instant::now();
    pg.restart().await;
    let restart = restart.elapsed();
    // The workers carry on with new connections.
    load.wait_until_remaining_at_most(1_300).await;
    let retried_by_restart = workers.outcomes(&http).await.get("retried").copied();

    // 2. Held down for OUTAGE: the workers hold the messages in hand (no retry
    // tier, no attempt used) and take no more until Postgres is back.
    pg.stop().await;
    let down = Instant::now();
    let sent_during_outage = ingress_accepts_a_webhook(&load).await;
    common::eventually(
        "both workers hold their messages while Postgres is down",
        OUTAGE,
        || workers.all_answer_with(&http, "/metrics", "jirasync_database_available 0"),
    )
    .await;
    tokio::time::sleep(OUTAGE.saturating_sub(down.elapsed())).await;
    let left_at_start = load.remaining().await;
    pg.start_again().await;
    let outage = down.elapsed();

    // The test's own connection died with the server, like the workers' did.
    load.db = common::db(&load.settings).await;
    load.assert_every_issue_ends_in_its_last_event().await;
    let sent = u64::try_from(SENT).expect("fits") + sent_during_outage;
    // Older events may still wait in a tier after the last ones were applied.
    common::eventually(
        "every webhook is settled",
        Duration::from_secs(90),
        || async { settled(&workers.outcomes(&http).await) >= sent },
    )
    .await;
    let outcomes = workers.outcomes(&http).await;
    let dead = load.dead().await;
    assert_eq!(dead, 0, "nothing dead-lettered");
    assert_eq!(load.doubled().await, 0, "no change is written twice");
    assert_eq!(
        outcomes.get("dead_lettered"),
        None,
        "no worker dead-lettered anything: {outcomes:?}"
    );
    let after = workers.pids();
    assert_eq!(
        after, before,
        "the same worker processes run throughout (pid, running)"
    );
    assert!(
        before.iter().all(|(_, running)| *running),
        "the workers were running: {before:?}"
    );
    assert!(
        workers.all_answer(&http, "/readyz", 200).await,
        "the workers are still consuming"
    );

    let settled = settled(&outcomes);
    let retried = outcomes.get("retried").copied().unwrap_or(0);
    println!(
        "db outage: sent {sent}, settled {settled} (applied {applied}, older skipped {stale}, \
         unchanged {unchanged}), retried {retried} ({by_restart} by the restart), dead-lettered {dead}, lost {lost}; \
         restart took {restart_ms} ms, held down {outage_ms} ms with {left_at_start} still queued; \
         outcomes {outcomes:?}; test {total} s",
        applied = outcomes.get("assigned").copied().unwrap_or(0)
            + outcomes.get("unassigned").copied().unwrap_or(0),
        by_restart = retried_by_restart.unwrap_or(0),
        stale = outcomes.get("stale").copied().unwrap_or(0),
        unchanged = outcomes.get("unchanged").copied().unwrap_or(0),
        lost = sent.saturating_sub(settled),
        restart_ms = restart.as_millis(),
        outage_ms = outage.as_millis(),
        total = started.elapsed().as_secs(),
    );
    drop(workers);
}

/// The ingress does not use the database: with Postgres down it still answers
/// ready and accepts a webhook (older than every seeded event, so the expected end
/// states do not change). Returns how many webhooks it accepted.
async fn ingress_accepts_a_webhook(load: &webhook_load::Load) -> u64 {
    let ingress = common::spawn_ingress(&load.settings, true).await;
    let body = assignee_changed(
        "LOAD-0",
        jira_user("load0@example.org"),
        "2024-01-01T09:00:00.000+0000",
    );
    let response = reqwest::Client::new()
        .post(ingress.url(&format!(
            "/extensions/jira-server/issue-updated/{}",
            load.token
        )))
        .json(&body)
        .send()
        .await
        .expect("post a webhook");
    assert_eq!(
        response.status(),
        202,
        "the ingress accepts webhooks while Postgres is down"
    );
    ingress.stop().await;
    1
}
