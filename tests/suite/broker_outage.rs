//! Broker outages on a real, private RabbitMQ node (docs/reliability.md): `stop_app` /
//! `start_app` under load, the memory alarm blocking the ingress's publishes, and
//! the memory alarm blocking the worker's retry / dead-letter publishes. Each test
//! boots its own node (tests/common/private_broker.rs) so the shared one is never
//! disturbed; they are ignored by default and run serially by .ci/run.

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Isolated;
use common::private_broker::PrivateBroker;
use common::seed::{self, SECRET, Seed, assignee_changed, jira_user};
use jirasync::config::Settings;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
/// The ingress's publish confirm deadline (5 s) plus scheduling slack.
const ANSWER_WITHIN: Duration = Duration::from_secs(6);
const T1: &str = "2024-01-01T10:00:00.000+0000";

fn webhook_url(base: &str, token: &str) -> String {
    format!("{base}{}", common::webhook_path(token))
}

/// Settings on the private node, migrated (database and topology).
async fn private_settings(broker: &PrivateBroker) -> Isolated {
    let mut settings = common::settings();
    settings.broker.url = broker.amqp_url();
    common::migrate(&settings, true)
        .await
        .expect("migrate a fresh database and declare the topology on the private node");
    settings
}

/// Ready + unacknowledged messages of one queue on the private node.
fn held(counts: &HashMap<String, (u64, u64)>, queue: &str) -> u64 {
    counts
        .get(queue)
        .map_or(0, |(ready, unacked)| ready + unacked)
}

/// Every queue of these settings is empty (nothing ready, nothing unacked).
async fn all_queues_empty(broker: &PrivateBroker, settings: &Settings) -> bool {
    let counts = broker.queue_counts().await;
    common::names(settings)
        .all_queues(&settings.retries.delays.0)
        .iter()
        .all(|queue| held(&counts, queue) == 0)
}

/// Waits until `group` is assigned to `user` and every queue of `settings` is
/// empty: the webhook applied, nothing left waiting or retrying.
async fn applied_and_drained(
    db: &tokio_postgres::Client,
    broker: &PrivateBroker,
    settings: &Settings,
    group: i64,
    user: i64,
    what: &str,
) {
    common::eventually(what, WAIT, || async move {
        common::assignee(db, group).await == Some(user) && all_queues_empty(broker, settings).await
    })
    .await;
}

/// One answered POST.
#[derive(Debug, Clone, Copy)]
struct Answer {
    started: Instant,
    finished: Instant,
    status: u16,
}

const ISSUES: usize = 150;
const EVENTS_PER_ISSUE: usize = 8;
const USERS: usize = 5;
const SENDERS: usize = 6;
/// Each sender's pause after an accepted webhook once the outage is near, so the
/// load lasts well past it (the first quarter goes as fast as it can, leaving the
/// worker a backlog on the queue when the broker stops).
const PACE: Duration = Duration::from_millis(150);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "disruptive: restarts a private RabbitMQ node; run serially by .ci/run"]
async fn stop_app_and_start_app_under_load_lose_no_accepted_webhook() {
    let test_started = Instant::now();
    let broker = PrivateBroker::start().await;
    let settings = private_settings(&broker).await;
    let db = common::db(&settings).await;
    let seed = Seed { db: &db };
    let (integration, external_id) = seed.integration(json!({})).await;
    let token = seed::token(&external_id, SECRET);
    let (orgs, users) = seed
        .issues_with_members(integration, "out", ISSUES, USERS)
        .await;
    // Event n of issue i; a sender posts each issue's events in `updated` order and
    // re-posts one until it is accepted, so each issue's last event ends accepted.
    let pick = |i: usize, n: usize| (i * 7 + n * 3) % (USERS + 1); // USERS = unassign
    let expected: Vec<Option<i64>> = (0..ISSUES)
        .map(|i| {
            let p = pick(i, EVENTS_PER_ISSUE - 1);
            (p != USERS).then(|| users[p])
        })
        .collect();

    let (mut ingress, base) = common::ingress_process(&settings).await;
    let mut worker = common::process("worker", &settings, &[]);

    let answers = Arc::new(std::sync::Mutex::new(Vec::<Answer>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let paced = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let answers = Arc::clone(&answers);
        let stop = Arc::clone(&stop);
        let paced = Arc::clone(&paced);
        let url = webhook_url(&base, &token);
        senders.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client");
            for n in 0..EVENTS_PER_ISSUE {
                for i in (s..ISSUES).step_by(SENDERS) {
                    let p = pick(i, n);
                    let assignee = if p == USERS {
                        Value::Null
                    } else {
                        jira_user(&format!("out{p}@example.org"))
                    };
                    let at = format!("2024-01-01T10:{n:02}:00.000+0000");
                    let body = assignee_changed(&format!("OUT-{i}"), assignee, &at).to_string();
                    loop {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let started = Instant::now();
                        let status = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await
                            .map_or(0, |r| r.status().as_u16());
                        let finished = Instant::now();
                        answers.lock().expect("answers").push(Answer {
                            started,
                            finished,
                            status,
                        });
                        match status {
                            202 => {
                                if paced.load(Ordering::Relaxed) {
                                    tokio::time::sleep(PACE).await;
                                }
                                break;
                            }
                            503 | 0 => tokio::time::sleep(Duration::from_millis(50)).await,
                            other => panic!("unexpected answer {other}"),
                        }
                    }
                }
            }
        }));
    }
    let count = |status: u16, after: Instant| {
        answers
            .lock()
            .expect("answers")
            .iter()
            .filter(|a| a.status == status && a.started >= after)
            .count()
    };

    let total = ISSUES * EVENTS_PER_ISSUE;
    common::eventually("a quarter of the webhooks are accepted", WAIT, || {
        let accepted = count(202, test_started);
        async move { accepted >= total / 4 }
    })
    .await;
    paced.store(true, Ordering::Relaxed);
    // Hold the worker back so accepted webhooks wait on the queue when the broker
    // stops: they must all still be there after start_app.
    let locker = common::db(&settings).await;
    locker
        .batch_execute("BEGIN; LOCK TABLE group_assignees IN EXCLUSIVE MODE")
        .await
        .expect("lock the worker's tables");
    let webhook_queues: Vec<String> = common::names(&settings)
        .all_queues(&settings.retries.delays.0)
        .into_iter()
        .filter(|q| q.contains(".webhooks"))
        .collect();
    let backlog = |counts: &HashMap<String, (u64, u64)>| -> u64 {
        webhook_queues.iter().map(|q| held(counts, q)).sum()
    };
    common::eventually("a backlog builds up on the queues", WAIT, || async {
        backlog(&broker.queue_counts().await) >= 50
    })
    .await;
    let backlog_before = backlog(&broker.queue_counts().await);
    let stopping = Instant::now();
    broker.stop_app().await;
    let stopped = Instant::now();
    eprintln!(
        "stop_app took {:.1} s",
        stopped.duration_since(stopping).as_secs_f64()
    );
    // Stay down until the ingress has refused a good number of requests and longer
    // than the confirm deadline, so in-flight publishes have all timed out.
    common::eventually(
        "the ingress refuses while the broker is stopped",
        WAIT,
        || {
            let refused = count(503, stopped);
            async move { refused >= 50 && stopped.elapsed() > Duration::from_secs(8) }
        },
    )
    .await;
    let restarting = Instant::now();
    broker.start_app().await;
    let restarted = Instant::now();
    // A recovered quorum queue reports its messages a moment after start_app.
    let recovered = Arc::new(std::sync::atomic::AtomicU64::new(0));
    common::eventually(
        "the queues report the messages they held before stop_app",
        WAIT,
        || {
            let (broker, recovered) = (&broker, &recovered);
            let accepted_since = count(202, restarting) as u64;
            let backlog = &backlog;
            async move {
                let now = backlog(&broker.queue_counts().await).saturating_sub(accepted_since);
                recovered.store(now, Ordering::Relaxed);
                now >= backlog_before / 2
            }
        },
    )
    .await;
    eprintln!(
        "start_app took {:.1} s; {backlog_before} webhooks were held on the queues before stop_app, \
         {} (less those accepted since) after it",
        restarted.duration_since(restarting).as_secs_f64(),
        recovered.load(Ordering::Relaxed)
    );
    locker
        .batch_execute("ROLLBACK")
        .await
        .expect("let the worker go on");

    for sender in senders {
        tokio::time::timeout(Duration::from_secs(180), sender)
            .await
            .expect("the senders finish after the broker is back")
            .expect("a sender panicked");
    }
    assert!(
        ingress.is_running(),
        "the ingress process was not restarted"
    );

    common::eventually(
        "every issue is in the state of its last accepted event",
        Duration::from_secs(180),
        || {
            let (db, orgs, expected, broker, settings) =
                (&db, &orgs, &expected, &broker, &settings);
            async move {
                for (org, want) in orgs.iter().zip(expected) {
                    if common::assignee(db, org.group_id).await != *want {
                        return false;
                    }
                }
                all_queues_empty(broker, settings).await
            }
        },
    )
    .await;
    assert!(
        worker.is_running(),
        "the worker process reconnected by itself"
    );
    assert!(
        ingress.is_running(),
        "the ingress process is still the same"
    );

    let answers = answers.lock().expect("answers").clone();
    let in_window: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.started >= stopped && a.finished <= restarting)
        .collect();
    let accepted_in_window = in_window.iter().filter(|a| a.status == 202).count();
    let slowest_refusal = in_window
        .iter()
        .filter(|a| a.status == 503)
        .map(|a| a.finished.duration_since(a.started))
        .max()
        .unwrap_or_default();
    // Also across stop_app itself, while publishes were in flight.
    let slowest_refusal_overall = answers
        .iter()
        .filter(|a| a.status == 503)
        .map(|a| a.finished.duration_since(a.started))
        .max()
        .unwrap_or_default();
    let accepted = answers.iter().filter(|a| a.status == 202).count();
    let refused = answers.iter().filter(|a| a.status == 503).count();
    let failed = answers.iter().filter(|a| a.status == 0).count();
    let in_state = {
        let mut n = 0;
        for (org, want) in orgs.iter().zip(&expected) {
            if common::assignee(&db, org.group_id).await == *want {
                n += 1;
            }
        }
        n
    };
    let counts = broker.queue_counts().await;
    let dead = held(&counts, &common::names(&settings).dead());
    let activities: i64 = db
        .query_one("SELECT count(*) FROM activities", &[])
        .await
        .expect("activities")
        .get(0);
    eprintln!(
        "stop_app/start_app under load: {} POSTs sent, {accepted} answered 202, {refused} 503, \
         {failed} without an answer; {} in the stopped window ({accepted_in_window} of them 202), \
         slowest 503 there {:.2} s, slowest 503 overall {:.2} s; issues in their last event's state {in_state}/{ISSUES}, \
         {activities} activities, dead-lettered {dead}, lost {}; took {:.1} s",
        answers.len(),
        in_window.len(),
        slowest_refusal.as_secs_f64(),
        slowest_refusal_overall.as_secs_f64(),
        ISSUES - in_state,
        test_started.elapsed().as_secs_f64()
    );
    assert_eq!(accepted, total, "every event was accepted once in the end");
    assert!(
        in_window.len() >= 50,
        "the ingress was asked while the broker was stopped"
    );
    assert_eq!(
        accepted_in_window, 0,
        "no 202 for a message the stopped broker could not confirm"
    );
    assert!(
        slowest_refusal <= ANSWER_WITHIN,
        "503s are quick: slowest {slowest_refusal:?}"
    );
    assert!(
        slowest_refusal_overall <= ANSWER_WITHIN,
        "503s come within the confirm deadline: slowest {slowest_refusal_overall:?}"
    );
    assert_eq!(in_state, ISSUES, "no accepted webhook is lost");
    assert_eq!(
        common::doubled_activities(&db).await,
        0,
        "no change written twice"
    );
    assert_eq!(dead, 0, "nothing dead-lettered");
    stop.store(true, Ordering::Relaxed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "disruptive: restarts a private RabbitMQ node; run serially by .ci/run"]
async fn the_memory_alarm_makes_the_ingress_answer_503_quickly_with_bounded_memory() {
    const FLOOD: usize = 500;
    let test_started = Instant::now();
    let broker = PrivateBroker::start().await;
    let settings = private_settings(&broker).await;
    let db = common::db(&settings).await;
    let seed = Seed { db: &db };
    let (integration, external_id) = seed.integration(json!({})).await;
    let org = seed.org(integration, true, "ALARM-1").await;
    let user = seed.teammate(&org, "x@example.org").await;
    let token = seed::token(&external_id, SECRET);
    let body = assignee_changed("ALARM-1", jira_user("x@example.org"), T1).to_string();
    // The flood comes from one client: its own limits (64 in flight, 128
    // connections) raised, so it meets the ingress's (fair_ingress.rs tests those).
    let (mut ingress, base) = common::serving_process(
        "ingress",
        &settings,
        &[
            ("JIRASYNC_CLIENT_MAX_CONNECTIONS", FLOOD.to_string()),
            ("JIRASYNC_CLIENT_MAX_IN_FLIGHT", FLOOD.to_string()),
        ],
    )
    .await;
    let url = webhook_url(&base, &token);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(FLOOD)
        .build()
        .expect("client");
    // Warm the ingress up with one accepted webhook before measuring its memory.
    let warm = client
        .post(&url)
        .body(body.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(warm.status(), 202);
    let (rss_before, hwm_before) = ingress.memory_kb();

    broker.set_memory_watermark(0.0).await;
    common::eventually("the memory alarm is raised", WAIT, || broker.alarm_active()).await;

    let flood_started = Instant::now();
    let mut requests = Vec::new();
    for _ in 0..FLOOD {
        let request = client.post(&url).body(body.clone()).send();
        requests.push(tokio::spawn(async move {
            let started = Instant::now();
            let response = request.await.expect("the ingress answers");
            let retry_after = response.headers().contains_key("retry-after");
            (response.status().as_u16(), retry_after, started.elapsed())
        }));
    }
    let mut statuses = HashMap::<u16, usize>::new();
    let mut slowest = Duration::ZERO;
    let mut without_retry_after = 0;
    for request in requests {
        let (status, retry_after, took) = request.await.expect("join");
        *statuses.entry(status).or_default() += 1;
        slowest = slowest.max(took);
        if status == 503 && !retry_after {
            without_retry_after += 1;
        }
    }
    let flood_took = flood_started.elapsed();
    let (rss_after, hwm_after) = ingress.memory_kb();
    assert!(ingress.is_running(), "the ingress survived the flood");
    eprintln!(
        "memory alarm: {FLOOD} concurrent POSTs answered {statuses:?} in {:.2} s, slowest {:.2} s; \
         ingress VmRSS {rss_before} -> {rss_after} kB, VmHWM {hwm_before} -> {hwm_after} kB",
        flood_took.as_secs_f64(),
        slowest.as_secs_f64()
    );
    assert_eq!(
        statuses.get(&503).copied().unwrap_or(0),
        FLOOD,
        "every answer is 503 while publishing is blocked: {statuses:?}"
    );
    assert_eq!(without_retry_after, 0, "every 503 carries Retry-After");
    assert!(
        slowest <= ANSWER_WITHIN,
        "each 503 comes within the confirm deadline: slowest {slowest:?}"
    );
    assert!(
        hwm_after < hwm_before + 64 * 1024,
        "the ingress's memory stays bounded: VmHWM {hwm_before} -> {hwm_after} kB"
    );

    // Now that RabbitMQ told the ingress it is blocked, it refuses without waiting.
    let mut slowest_known = Duration::ZERO;
    for _ in 0..50 {
        let started = Instant::now();
        let response = client
            .post(&url)
            .body(body.clone())
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), 503);
        slowest_known = slowest_known.max(started.elapsed());
    }
    eprintln!(
        "memory alarm: 50 POSTs once the ingress knows it is blocked, slowest {:.3} s",
        slowest_known.as_secs_f64()
    );
    assert!(
        slowest_known < Duration::from_secs(1),
        "a blocked ingress refuses at once: slowest {slowest_known:?}"
    );

    broker.set_memory_watermark(0.4).await;
    common::eventually("the memory alarm is cleared", WAIT, || async {
        !broker.alarm_active().await
    })
    .await;
    common::eventually("the ingress accepts again", WAIT, || {
        let request = client.post(&url).body(body.clone()).send();
        async move { matches!(request.await, Ok(r) if r.status() == 202) }
    })
    .await;
    let worker = common::spawn_worker(&settings);
    applied_and_drained(
        &db,
        &broker,
        &settings,
        org.group_id,
        user,
        "the accepted webhooks are applied",
    )
    .await;
    worker.stop().await;
    assert_eq!(
        common::activities(&db, org.group_id).await.len(),
        1,
        "applied once however often it was queued"
    );
    eprintln!(
        "memory alarm test took {:.1} s",
        test_started.elapsed().as_secs_f64()
    );
}

/// Whether the broker has blocked a worker connection (it tried to publish).
async fn worker_blocked(broker: &PrivateBroker) -> bool {
    broker
        .connection_states()
        .await
        .iter()
        .any(|(properties, state)| properties.contains("jirasync-worker") && state == "blocked")
}

/// Asserts for longer than the confirm deadline that `queues` hold `n` messages
/// between them (ready or unacked): a publish that cannot be confirmed must not
/// lose the original, nor settle it.
async fn stays_held(broker: &PrivateBroker, queues: &[String], n: u64) {
    let total = || async {
        let counts = broker.queue_counts().await;
        queues.iter().map(|q| held(&counts, q)).sum::<u64>()
    };
    // Quorum queues report their counts on a tick (every few seconds): wait for it.
    common::eventually("the queues report the message", WAIT, || async {
        total().await == n
    })
    .await;
    let started = Instant::now();
    let mut checks = 0;
    while started.elapsed() < Duration::from_secs(8) {
        let counts = broker.queue_counts().await;
        let total: u64 = queues.iter().map(|q| held(&counts, q)).sum();
        assert_eq!(
            total, n,
            "the message stays on its queue while the publish is blocked: {counts:?}"
        );
        checks += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "held {n} on {queues:?} through {checks} checks over {:.1} s of blocked publishing",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "disruptive: restarts a private RabbitMQ node; run serially by .ci/run"]
async fn a_dead_letter_publish_blocked_by_the_memory_alarm_keeps_the_message() {
    let test_started = Instant::now();
    let broker = PrivateBroker::start().await;
    let settings = private_settings(&broker).await;
    let names = common::names(&settings);
    let db = common::db(&settings).await;
    let seed = Seed { db: &db };
    let (_, external_id) = seed.integration(json!({})).await;
    let token = seed::token(&external_id, SECRET);
    let connection = lapin::Connection::connect(&settings.broker.url, Default::default())
        .await
        .expect("connect to the private node");
    let channel = connection.create_channel().await.expect("channel");
    common::publish_webhook(&channel, &settings, &token, b"{not json", None).await;
    let _ = connection.close(200, "published".into()).await;

    broker.set_memory_watermark(0.0).await;
    common::eventually("the memory alarm is raised", WAIT, || broker.alarm_active()).await;
    let worker = common::spawn_worker(&settings);
    common::eventually("the worker's dead-letter publish is blocked", WAIT, || {
        worker_blocked(&broker)
    })
    .await;
    stays_held(&broker, &[names.webhooks(), names.dead()], 1).await;

    broker.set_memory_watermark(0.4).await;
    common::eventually("the message is dead-lettered", WAIT, || {
        let (broker, names) = (&broker, &names);
        async move {
            let counts = broker.queue_counts().await;
            held(&counts, &names.webhooks()) == 0 && held(&counts, &names.dead()) >= 1
        }
    })
    .await;
    worker.stop().await;
    let counts = broker.queue_counts().await;
    let connection = lapin::Connection::connect(&settings.broker.url, Default::default())
        .await
        .expect("connect to the private node");
    let channel = connection.create_channel().await.expect("channel");
    let dead = common::get_one(&channel, &names.dead(), Duration::from_secs(5))
        .await
        .expect("the dead-lettered message");
    let reason = jirasync::queue::message::header_str(
        &dead.delivery.properties,
        jirasync::queue::message::ERROR,
    );
    eprintln!(
        "dead-letter publish under the memory alarm: queues after {counts:?}, reason {reason:?}; took {:.1} s",
        test_started.elapsed().as_secs_f64()
    );
    assert_eq!(dead.delivery.data, b"{not json", "the body byte for byte");
    assert!(
        reason.is_some_and(|r| r.contains("not valid JSON")),
        "the dead letter names its reason"
    );
    // Count the copies themselves, not the queue's (periodically updated) figure.
    let mut more = 0;
    while common::get_one(&channel, &names.dead(), Duration::from_secs(2))
        .await
        .is_some()
    {
        more += 1;
    }
    assert_eq!(more, 0, "dead-lettered exactly once: {counts:?}");
    let _ = connection.close(200, "done".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "disruptive: restarts a private RabbitMQ node; run serially by .ci/run"]
async fn a_retry_publish_blocked_by_the_memory_alarm_keeps_the_message_until_applied() {
    let test_started = Instant::now();
    let broker = PrivateBroker::start().await;
    let mut settings = private_settings(&broker).await;
    // Two webhook deliveries at once (prefetch 2 of 3, the jobs' 1 beside them:
    // no share for pushes to Jira, which this test does not make).
    settings.worker.concurrency = 3;
    settings.worker.outbound = false;
    let names = common::names(&settings);
    let db = common::db(&settings).await;
    let seed = Seed { db: &db };
    let (integration, external_id) = seed.integration(json!({})).await;
    let org = seed.org(integration, true, "RETRY-1").await;
    let user = seed.teammate(&org, "x@example.org").await;
    let other = seed.org(integration, true, "OTHER-1").await;
    let other_user = seed.teammate(&other, "y@example.org").await;
    let token = seed::token(&external_id, SECRET);
    let worker = common::spawn_worker(&settings);

    // Hold both issues' row locks so the worker is inside both messages when
    // the alarm is raised.
    let mut lockers = Vec::new();
    for issue in [org.external_issue_id, other.external_issue_id] {
        let locker = common::db(&settings).await;
        locker
            .batch_execute(&format!(
                "BEGIN; SELECT 1 FROM external_issues WHERE id = {issue} FOR UPDATE"
            ))
            .await
            .expect("lock");
        lockers.push(locker);
    }
    let connection = lapin::Connection::connect(&settings.broker.url, Default::default())
        .await
        .expect("connect to the private node");
    let channel = connection.create_channel().await.expect("channel");
    for (key, email) in [("RETRY-1", "x@example.org"), ("OTHER-1", "y@example.org")] {
        let body = assignee_changed(key, jira_user(email), T1).to_string();
        common::publish_webhook(&channel, &settings, &token, body.as_bytes(), None).await;
    }
    let _ = connection.close(200, "published".into()).await;
    common::eventually("the worker waits on both row locks", WAIT, || {
        let db = &db;
        async move { common::backends_waiting_on_locks(db).await == 2 }
    })
    .await;

    broker.set_memory_watermark(0.0).await;
    common::eventually("the memory alarm is raised", WAIT, || broker.alarm_active()).await;
    // A cancelled statement is a passing failure with Postgres still up (an
    // unreachable Postgres would hold the message instead). Once its tries in
    // process are cancelled too, the worker publishes the retry, which the
    // alarm blocks.
    let retry_lock = lockers.remove(0);
    let first_pid: i32 = retry_lock
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    common::eventually("the worker's retry publish is blocked", WAIT, || async {
        db.batch_execute(&format!(
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'
                AND {first_pid} = ANY(pg_blocking_pids(pid))"
        ))
        .await
        .expect("cancel the waiting statement");
        worker_blocked(&broker).await
    })
    .await;
    retry_lock
        .batch_execute("ROLLBACK")
        .await
        .expect("release the lock");
    // The other webhook is applied and acked meanwhile: its ack does not wait
    // behind the blocked publish (RabbitMQ reads nothing from a blocked connection).
    lockers[0]
        .batch_execute("ROLLBACK")
        .await
        .expect("release the lock");
    common::eventually("the other webhook is applied", WAIT, || async {
        common::assignee(&db, other.group_id).await == Some(other_user)
    })
    .await;
    let mut queues = names.all_queues(&settings.retries.delays.0);
    queues.retain(|q| !q.contains(".jobs"));
    stays_held(&broker, &queues, 1).await;

    broker.set_memory_watermark(0.4).await;
    applied_and_drained(
        &db,
        &broker,
        &settings,
        org.group_id,
        user,
        "the retried webhook is applied",
    )
    .await;
    worker.stop().await;
    let counts = broker.queue_counts().await;
    let activities = common::activities(&db, org.group_id).await.len();
    eprintln!(
        "retry publish under the memory alarm: applied with {activities} activity, queues after {counts:?}; took {:.1} s",
        test_started.elapsed().as_secs_f64()
    );
    assert_eq!(activities, 1, "applied exactly once");
    assert_eq!(held(&counts, &names.dead()), 0, "nothing dead-lettered");
}
