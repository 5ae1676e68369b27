//! A RabbitMQ cluster that loses a node (docs/reliability.md): three private nodes
//! on this machine, a `jirasync ingress` and two `jirasync worker` processes given
//! all three URLs, a steady stream of webhooks (the sender re-POSTs on 503, as a
//! proxy in front of Jira would), then `kill -9` of the node the ingress is
//! connected to and, once that node is back and no queue depends on a single
//! node, of the node a worker consumes from. Every webhook that got a 202 is
//! applied; nothing is dead-lettered. Ignored by default; run serially by .ci/run.

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::private_cluster::PrivateCluster;
use common::seed::{self, SECRET, Seed, assignee_changed, jira_user};
use tokio::sync::Mutex;

const ISSUES: usize = 100;
const EVENTS_PER_ISSUE: usize = 3;
const USERS: usize = 4;
const WAIT: Duration = Duration::from_secs(120);

/// What the sender saw.
#[derive(Default)]
struct Seen {
    accepted: usize,
    /// When each 503 (or refused connection) was answered.
    unavailable: Vec<Instant>,
    /// When each 202 was answered.
    accepted_at: Vec<Instant>,
}

/// After a kill at `at`: how long until the sender was served again (the first 202
/// after the last 503 of the ten seconds that follow; zero when nothing was
/// refused), and how many 503s it got meanwhile.
fn failover(seen: &Seen, at: Instant) -> (Duration, usize) {
    let window = at + Duration::from_secs(10);
    let refused: Vec<Instant> = seen
        .unavailable
        .iter()
        .copied()
        .filter(|t| *t > at && *t <= window)
        .collect();
    let Some(last) = refused.last() else {
        return (Duration::ZERO, 0);
    };
    let served = seen
        .accepted_at
        .iter()
        .copied()
        .find(|t| t > last)
        .unwrap_or(*last);
    (served - at, refused.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "disruptive: kills nodes of a private RabbitMQ cluster; run serially by .ci/run"]
async fn killing_one_node_at_a_time_loses_no_accepted_webhook() {
    let started = Instant::now();
    let mut cluster = PrivateCluster::start(3).await;
    eprintln!(
        "cluster of 3 formed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut settings = common::settings();
    settings.broker.url = cluster.amqp_url();
    common::migrate(&settings, true)
        .await
        .expect("migrate declares the topology on the cluster");
    let db = common::db(&settings).await;
    let seeded = Seed { db: &db };
    let (integration, external_id) = seeded.integration(serde_json::json!({})).await;
    let token = seed::token(&external_id, SECRET);
    let (orgs, users) = seeded
        .issues_with_members(integration, "clu", ISSUES, USERS)
        .await;

    let (_ingress, base) = common::ingress_process(&settings).await;
    let concurrency = [("JIRASYNC_WORKER_CONCURRENCY", "4".to_owned())];
    let _workers = [
        common::process("worker", &settings, &concurrency),
        common::process("worker", &settings, &concurrency),
    ];

    // Events in time order per issue, interleaved across issues.
    let mut bodies = Vec::new();
    let mut expected = vec![None; ISSUES];
    for n in 0..EVENTS_PER_ISSUE {
        for (i, last) in expected.iter_mut().enumerate() {
            let pick = (i + n) % USERS;
            let at = format!("2024-01-01T10:{n:02}:00.000+0000");
            bodies.push(
                assignee_changed(
                    &format!("CLU-{i}"),
                    jira_user(&format!("clu{pick}@example.org")),
                    &at,
                )
                .to_string(),
            );
            *last = Some(users[pick]);
        }
    }
    let total = bodies.len();
    let sent = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sender = {
        let (sent, seen) = (Arc::clone(&sent), Arc::clone(&seen));
        let url = format!("{base}{}", common::webhook_path(&token));
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for body in bodies {
                loop {
                    let answer = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                    let status = answer.map(|a| a.status().as_u16()).unwrap_or(0);
                    let mut seen = seen.lock().await;
                    if status == 202 {
                        seen.accepted += 1;
                        seen.accepted_at.push(Instant::now());
                        break;
                    }
                    assert!(
                        matches!(status, 503 | 0),
                        "only 503 while no node answers, got {status}"
                    );
                    seen.unavailable.push(Instant::now());
                    drop(seen);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                sent.fetch_add(1, Ordering::Release);
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        })
    };
    let reached = |n: usize| {
        let sent = Arc::clone(&sent);
        async move {
            common::eventually(&format!("{n} webhooks accepted"), WAIT, || {
                let sent = Arc::clone(&sent);
                async move { sent.load(Ordering::Acquire) >= n }
            })
            .await;
        }
    };

    // 1. The ingress's node.
    reached(total / 3).await;
    let first = cluster
        .node_holding(0, "jirasync-ingress-")
        .await
        .expect("the ingress is connected");
    let killed_ingress_node = Instant::now();
    cluster.nodes[first].kill().await;
    reached(total / 2).await;
    cluster.nodes[first].start_again();

    // 2. A worker's node, once no quorum queue needs a single node.
    let live = (first + 1) % 3;
    let second = cluster
        .node_holding(live, "jirasync-worker-")
        .await
        .expect("a worker is connected");
    common::eventually("no queue depends on one node", WAIT, || async {
        !cluster.nodes[second].quorum_critical().await
    })
    .await;
    let killed_worker_node = Instant::now();
    cluster.nodes[second].kill().await;
    sender.await.expect("the sender finished");
    cluster.nodes[second].start_again();

    // Every accepted webhook applied, nothing dead-lettered.
    let names = common::names(&settings);
    let applied = || async {
        for (org, want) in orgs.iter().zip(&expected) {
            if common::assignee(&db, org.group_id).await != *want {
                return false;
            }
        }
        true
    };
    common::eventually("every issue in its last event's state", WAIT, applied).await;
    let counts: HashMap<String, (u64, u64)> = cluster.nodes[live].queue_counts().await;
    let dead = counts.get(&names.dead()).map_or(0, |(r, u)| r + u);
    let seen = seen.lock().await;
    let (ingress_failover, ingress_503) = failover(&seen, killed_ingress_node);
    let (worker_failover, worker_503) = failover(&seen, killed_worker_node);
    eprintln!(
        "cluster failover: {} webhooks, {} accepted, {} answered 503 in all; ingress's node killed: \
         next 202 after {:.2} s ({ingress_503} × 503); a worker's node killed: next 202 after \
         {:.2} s ({worker_503} × 503); dead-lettered {dead}; took {:.1} s",
        total,
        seen.accepted,
        seen.unavailable.len(),
        ingress_failover.as_secs_f64(),
        worker_failover.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        seen.accepted, total,
        "every webhook was accepted in the end"
    );
    assert_eq!(dead, 0, "nothing dead-lettered");
}
