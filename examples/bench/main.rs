//! The throughput benchmark of docs/performance.md: `bash bench/run.sh` builds in release mode
//! and runs this. It measures, on the local RabbitMQ and Postgres, (1) raw confirmed
//! publishes, (2) the ingress (a child `jirasync ingress`), (3) pgbench running the
//! worker's SQL, (4) draining preloaded webhooks with 1, 2 and 4 `jirasync worker`
//! processes at the default concurrency and 1 and 2 at 64 (4w), (5) the children's
//! peak RSS, (6) and (7) one worker without the audit
//! trail and amid a big installation, (8) one reconciliation against a fake Jira
//! (`reconcile.rs`), (9) end-to-end latency at a steady rate (`steady.rs`),
//! outbound sync (`outbound.rs`): (10) commit → Jira write latency at a steady rate
//! and (11) one worker pushing a backlog, (12) row (4)'s one worker with the capture
//! triggers disabled, (13) row (4)'s one worker draining Jira Cloud deliveries
//! (HMAC-signed, by `accountId`), (14) row (8)'s reconciliation for a Jira Cloud
//! integration (`search/jql` by `nextPageToken`), (15) RabbitMQ's own drain of row
//! (4)'s webhooks to a consumer that only acks, at a worker's prefetch (`drain.rs`),
//! (16) rows (1) and (2) sustained for a time into a queue that fills (`load.rs`),
//! and prints one table.
#![allow(clippy::unwrap_used)]

mod drain;
mod fake_jira;
mod load;
mod outbound;
mod procs;
mod reconcile;
mod steady;

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::FutureExt;
use jirasync::config::Settings;
use jirasync::queue::{Names, publisher};

use drain::{BrokerDrain, Source, broker_drain, drain, webhooks_prefetch};
use fake_jira::FakeJira;
use jirasync::integration::Provider;
use load::{Load, Until};
use procs::{
    CpuCounter, CpuUse, Kid, cpu_seconds, free_port, peak_rss_mib, pids_cpu, spawn, uid_of,
    wait_ready,
};

/// The wider concurrency of rows (4w): more webhooks in flight, so bigger batches.
const WIDE: u16 = 64;

/// Pairs of drains of row (13): a drain of (4)'s webhooks, then one of Cloud deliveries.
const CLOUD_PAIRS: usize = 3;

/// Row (13)'s drains of one pair, messages a second.
struct CloudPair {
    cloud: f64,
    server: f64,
}

/// The median of `values` (0 when there are none).
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Publishes or connections in flight in the sustained rows (16).
const SUSTAINED_IN_FLIGHT: usize = 32;

struct Args {
    messages: usize,
    concurrency: usize,
    issues: usize,
    users: usize,
    /// Issues of the big seed (`bench/seed_big.sql`); 0 skips row (7).
    big_issues: usize,
    /// Linked issues of the reconciliation (`bench/seed_reconcile.sql`); 0 skips row (8).
    reconcile_issues: usize,
    /// Webhooks per second of the steady row; 0 skips row (9).
    steady_rate: usize,
    /// How long the steady row sends, in seconds.
    steady_seconds: usize,
    /// Application changes per second of row (10); 0 skips this rate.
    push_rate: usize,
    /// The second, higher rate of row (10); 0 skips it.
    push_rate_high: usize,
    /// How long row (10) commits changes at each rate, in seconds.
    push_seconds: usize,
    /// Changes of the backlog of row (11); 0 skips it.
    push_backlog: usize,
    /// 0 skips row (12), row (4)'s one worker with the capture triggers disabled.
    capture_check: usize,
    /// 0 skips row (13), row (4)'s one worker draining Jira Cloud deliveries.
    cloud_check: usize,
    /// Linked issues of row (14), row (8)'s reconciliation for a Jira Cloud
    /// integration; 0 skips it.
    cloud_reconcile_issues: usize,
    /// 0 skips row (15), RabbitMQ's own no-op drain at the workers' prefetch.
    drain_limit: usize,
    /// How long rows (16) publish and POST into a filling queue; 0 skips them.
    sustained_seconds: usize,
}

/// When the next batch of `events` events (one a millisecond) starts: now, or just
/// after the last batch when that one still runs ahead of now. Each batch is thus
/// later than everything before it — the last batch, pgbench's watermarks (row 3),
/// the fake Jira's `updated` (row 8) — so the ordering guard applies it over them;
/// and it lies at most `events` ms ahead of the time it is sent, within the
/// worker's `JIRASYNC_MAX_EVENT_SKEW` (5 min, docs/reference.md §5.6) up to
/// 300,000 events a batch.
pub fn batch_base(events: usize) -> chrono::DateTime<chrono::Utc> {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST_END_MS: AtomicI64 = AtomicI64::new(0);
    let now = chrono::Utc::now().timestamp_millis();
    let span = i64::try_from(events).unwrap_or(i64::MAX);
    let mut base = now;
    let _ = LAST_END_MS.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
        base = now.max(last.saturating_add(1));
        Some(base.saturating_add(span))
    });
    chrono::DateTime::from_timestamp_millis(base).unwrap_or_else(chrono::Utc::now)
}

fn args() -> Args {
    let mut a = Args {
        messages: 4000,
        concurrency: 64,
        issues: 200,
        users: 20,
        big_issues: 1_000_000,
        reconcile_issues: 100_000,
        steady_rate: 200,
        steady_seconds: 10,
        push_rate: 20,
        push_rate_high: 200,
        push_seconds: 10,
        push_backlog: 10_000,
        capture_check: 1,
        cloud_check: 1,
        cloud_reconcile_issues: 100_000,
        drain_limit: 1,
        sustained_seconds: 30,
    };
    let argv: Vec<String> = std::env::args().collect();
    for pair in argv[1..].chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
        match pair[0].as_str() {
            "--messages" => a.messages = value,
            "--concurrency" => a.concurrency = value,
            "--issues" => a.issues = value,
            "--users" => a.users = value,
            "--big-issues" => a.big_issues = value,
            "--reconcile-issues" => a.reconcile_issues = value,
            "--steady-rate" => a.steady_rate = value,
            "--steady-seconds" => a.steady_seconds = value,
            "--push-rate" => a.push_rate = value,
            "--push-rate-high" => a.push_rate_high = value,
            "--push-seconds" => a.push_seconds = value,
            "--push-backlog" => a.push_backlog = value,
            "--capture-check" => a.capture_check = value,
            "--cloud-check" => a.cloud_check = value,
            "--cloud-reconcile-issues" => a.cloud_reconcile_issues = value,
            "--drain-limit" => a.drain_limit = value,
            "--sustained-seconds" => a.sustained_seconds = value,
            other => panic!(
                "unknown argument {other}; use --messages N --concurrency C --issues I --users U \
                 --big-issues B --reconcile-issues R --steady-rate S --steady-seconds T \
                 --push-rate P --push-rate-high H --push-seconds D --push-backlog K \
                 --capture-check 0|1 --cloud-check 0|1 --cloud-reconcile-issues Q \
                 --drain-limit 0|1 --sustained-seconds N"
            ),
        }
    }
    a
}

/// p50 and p99 of latencies in ms.
fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    (at(0.50), at(0.99))
}

/// What the rows share: the settings and arguments, the connection that seeds and
/// checks, the confirm channel, an HTTP client, and whose CPU is whose.
struct Bench<'a> {
    settings: &'a Settings,
    args: &'a Args,
    db: &'a tokio_postgres::Client,
    channel: &'a lapin::Channel,
    client: &'a reqwest::Client,
    rabbitmq_uid: u32,
    postgres_uid: u32,
}

impl Bench<'_> {
    /// Starts counting the CPU of RabbitMQ, Postgres and the children `pids` (as `name`).
    fn cpu_use(&self, name: &'static str, pids: Vec<u32>) -> CpuUse {
        CpuUse::start(vec![
            self.rabbitmq_cpu(),
            self.postgres_cpu(),
            pids_cpu(name, pids),
        ])
    }

    /// The CPU of RabbitMQ's processes.
    fn rabbitmq_cpu(&self) -> CpuCounter {
        let uid = self.rabbitmq_uid;
        ("RabbitMQ", Box::new(move || cpu_seconds(|_, u| u == uid)))
    }

    /// The CPU of Postgres's processes (every database's).
    fn postgres_cpu(&self) -> CpuCounter {
        let uid = self.postgres_uid;
        ("Postgres", Box::new(move || cpu_seconds(|_, u| u == uid)))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = args();
    let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut settings = Settings::defaults();
    settings.broker.queue_prefix = format!("bench_{id}");
    settings.database.url = format!("postgres://postgres@127.0.0.1:5432/bench_{id}");
    let names = Names::new(
        settings.broker.queue_prefix.clone(),
        &jirasync::integration::messages::CATALOG,
    );
    // The database and the queues go whatever happens in the rows, an error, a
    // panic, Ctrl-C or SIGTERM; the children go with their `Kid`s, the fake Jira
    // with the runtime.
    let shutdown = jirasync::shutdown::on_signals();
    let rows = std::panic::AssertUnwindSafe(run(&settings, &args, &names)).catch_unwind();
    let result = tokio::select! {
        result = rows => result,
        () = shutdown.cancelled() => Ok(Err(anyhow::anyhow!("stopped by a signal"))),
    };
    cleanup(&settings, &names, &channel_names(&settings)).await;
    match result {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Every row, then the table.
async fn run(settings: &Settings, args: &Args, names: &Names) -> anyhow::Result<()> {
    jirasync::commands::migrate::migrate(&settings.services(), true).await?;
    // One connection for seeding and for checking the assignments after each round.
    let (db, db_connection) =
        tokio_postgres::connect(&settings.database.url, tokio_postgres::NoTls).await?;
    tokio::spawn(db_connection);
    let secret = seed(&db, args).await?;
    let token = jirasync::integration::token::mint("bench.jira.local:bench", &secret)?;
    let fixture = std::fs::read("tests/fixtures/issue_updated.json")
        .context("run from the repository root")?;
    let body = pad(&fixture, 6 * 1024);
    println!(
        "jirasync benchmark: {} messages of {} bytes, {} in flight, {} issues, {} users\n",
        args.messages,
        body.len(),
        args.concurrency,
        args.issues,
        args.users
    );

    let connection = jirasync::queue::connection::connect(&settings.broker.url, "bench").await?;
    let channel = publisher::confirm_channel(&connection).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let bench = Bench {
        settings,
        args,
        db: &db,
        channel: &channel,
        client: &client,
        rabbitmq_uid: uid_of("rabbitmq")
            .context("no rabbitmq user: is RabbitMQ installed here?")?,
        postgres_uid: uid_of("postgres")
            .context("no postgres user: is Postgres installed here?")?,
    };
    let mut cpu_lines = Vec::new();

    // (1) The broker's limit: confirmed publishes, same size, same concurrency.
    let broker = load::publishes(
        &bench,
        names,
        &token,
        &body,
        args.concurrency,
        Until::Count(args.messages),
    )
    .await?;
    cpu_lines.push(format!("(1) {}", broker.cpu));
    purge(&channel, names).await?;

    // (2) The ingress: the same webhooks POSTed with the same concurrency.
    let port = free_port();
    let ingress = spawn(
        settings,
        "ingress",
        &[("JIRASYNC_LISTEN", format!("127.0.0.1:{port}"))],
    )?;
    let url = format!("http://127.0.0.1:{port}/extensions/jira-server/issue-updated/{token}/");
    wait_ready(&client, port, "the ingress").await?;
    // As long as the broker took for the same number of messages, at least 5 s.
    let seconds = (args.messages as f64 / broker.rate).ceil().max(5.0) as u64;
    let posted = load::posts(&bench, &ingress, &url, &body, args.concurrency, seconds)?;
    cpu_lines.push(format!("(2) {}", posted.cpu));
    let ingress_rss = peak_rss_mib(&ingress);
    purge(&channel, names).await?;

    // (16) (1) and (2) again, each for a time, into a queue that fills: the
    // broker's sustained confirm rate, then the same ingress's.
    let mut sustained = None;
    if args.sustained_seconds > 0 {
        let time = Duration::from_secs(args.sustained_seconds as u64);
        let broker = load::publishes(
            &bench,
            names,
            &token,
            &body,
            SUSTAINED_IN_FLIGHT,
            Until::Elapsed(time),
        )
        .await?;
        cpu_lines.push(format!("(16) broker, sustained: {}", broker.cpu));
        purge(&channel, names).await?;
        let posted = load::posts(
            &bench,
            &ingress,
            &url,
            &body,
            SUSTAINED_IN_FLIGHT,
            time.as_secs(),
        )?;
        cpu_lines.push(format!("(16) ingress, sustained: {}", posted.cpu));
        purge(&channel, names).await?;
        sustained = Some((broker, posted, peak_rss_mib(&ingress)));
    }
    drop(ingress);

    // (3) The database's limit: pgbench running the worker's SQL.
    let db_name = settings
        .database
        .url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let integration_id: i64 = db
        .query_one(
            "SELECT id FROM integrations WHERE external_id = $1",
            &[&bench_integration(Provider::Server).0],
        )
        .await
        .context("the benchmark's integration")?
        .get(0);
    let cpu = CpuUse::start(vec![bench.postgres_cpu()]);
    let pgbench = Command::new("pgbench")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-n",
            "-M",
            "prepared",
            "-f",
            "bench/assign.sql",
            "-T",
            "10",
            "-j",
            "2",
        ])
        // As many clients as one worker has connections (its default concurrency).
        .args(["-c", &settings.worker.concurrency.to_string()])
        .args([
            "-D",
            &format!("integration_id={integration_id}"),
            "-D",
            &format!("issues={}", args.issues),
            "-D",
            &format!("users={}", args.users),
        ])
        .arg(&db_name)
        .output()
        .context("pgbench is needed (Debian: postgresql-contrib / postgresql-15)")?;
    let text = String::from_utf8_lossy(&pgbench.stdout);
    let db_tps: f64 = text
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .with_context(|| {
            format!(
                "no tps in pgbench output: {text}{}",
                String::from_utf8_lossy(&pgbench.stderr)
            )
        })?;

    let transactions: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|v| v.split('/').next()?.trim().parse().ok())
        .unwrap_or(1);
    cpu_lines.push(format!("(3) {}", cpu.report(transactions)));

    let server = Source {
        provider: Provider::Server,
        token: &token,
        hmac_secret: None,
    };
    let mut round = 0;

    // (15) The broker's drain limit: row (4)'s webhooks, drained by a consumer that
    // only acks, at the prefetch of a worker at the default concurrency and at WIDE.
    let mut limits: Vec<(u16, BrokerDrain)> = Vec::new();
    if args.drain_limit > 0 {
        for concurrency in [settings.worker.concurrency, WIDE] {
            // It applies nothing: the round's users stay (4)'s.
            let limit = broker_drain(&bench, names, server, concurrency, round).await?;
            cpu_lines.push(format!(
                "(15) no-op drain, prefetch {}: {}",
                webhooks_prefetch(&bench, concurrency),
                limit.cpu
            ));
            limits.push((concurrency, limit));
        }
    }
    // The drain limit of a worker at `concurrency`, as "; N of (15)".
    let of_limit = |concurrency: u16, rate: f64| {
        limits
            .iter()
            .find(|(c, _)| *c == concurrency)
            .map_or(String::new(), |(_, limit)| {
                format!("; {:.2} of (15)", rate / limit.rate)
            })
    };

    // (4) Workers end to end: N preloaded webhooks, drained by 1, 2 and 4 processes;
    // (6) one process again with the audit trail off, right after the one with it;
    // then (9) the steady rate and (8) the reconciliation, before (7) drains with one
    // process amid an installation of realistic size. Every batch of events is later
    // than the last (`batch_base`), so the ordering guard applies them all.
    let mut rows = Vec::new();
    let mut without_audit = 0.0;
    let mut worker_rss = 0.0;
    let mut wide = Vec::new();
    let mut without_capture = None;
    // (12) runs right after (6), like it against (4)'s one worker.
    for (workers, audit, concurrency, capture) in [
        (1usize, true, None, true),
        (1, false, None, true),
        (1, true, None, false),
        (2, true, None, true),
        (4, true, None, true),
        (1, true, Some(WIDE), true),
        (2, true, Some(WIDE), true),
    ] {
        if !capture && args.capture_check == 0 {
            continue;
        }
        if !capture {
            capture_triggers(&db, false).await?;
        }
        let drained = drain(&bench, names, server, workers, audit, concurrency, round).await;
        if !capture {
            capture_triggers(&db, true).await?;
        }
        let drained = drained?;
        round += 1;
        let what = match (audit, concurrency, capture) {
            (_, _, false) => "(12)",
            (false, _, _) => "(6)",
            (true, None, _) => "(4)",
            (true, Some(_), _) => "(4w)",
        };
        let off = match (audit, capture) {
            (_, false) => ", capture off",
            (false, _) => ", audit off",
            _ => "",
        };
        cpu_lines.push(format!("{what} {workers} worker(s){off}: {}", drained.cpu));
        if !capture {
            without_capture = Some(drained.rate);
        } else if !audit {
            without_audit = drained.rate;
        } else if concurrency.is_some() {
            wide.push((workers, drained.rate));
        } else {
            if workers == 1 {
                worker_rss = drained.first_rss_mib;
            }
            rows.push((workers, drained.rate));
        }
    }
    // The Jira Cloud integration of rows (13) and (14).
    let cloud = if args.cloud_check > 0 || args.cloud_reconcile_issues > 0 {
        Some(cloud_integration(&db).await?)
    } else {
        None
    };
    // (13) Row (4)'s one worker again, the same issues served by a Jira Cloud
    // integration: each delivery HMAC-verified and its identifier recorded. A drain
    // lasts a few seconds and the same drain moves by ±15 % with the tables' dead
    // rows and the machine, so each Cloud drain runs right after a drain of (4)'s
    // webhooks, in [`CLOUD_PAIRS`] pairs: the row is the median of the pairs' ratios.
    let mut cloud_row = None;
    if let Some(cloud) = cloud.as_ref().filter(|_| args.cloud_check > 0) {
        let source = Source {
            provider: Provider::Cloud,
            token: &cloud.token,
            hmac_secret: Some(&cloud.hmac_secret),
        };
        let mut pairs = Vec::with_capacity(CLOUD_PAIRS);
        for _ in 0..CLOUD_PAIRS {
            let beside = drain(&bench, names, server, 1, true, None, round).await?;
            round += 1;
            serve_issues_from(&db, "jira_cloud").await?;
            let drained = drain(&bench, names, source, 1, true, None, round).await;
            serve_issues_from(&db, "jira_server").await?;
            let drained = drained?;
            round += 1;
            cpu_lines.push(format!(
                "(13) 1 worker(s), Jira Cloud deliveries: {}; (4) beside it: {}",
                drained.cpu, beside.cpu
            ));
            pairs.push(CloudPair {
                cloud: drained.rate,
                server: beside.rate,
            });
        }
        cloud_row = Some(pairs);
    }
    let mut steady_row = None;
    if args.steady_rate > 0 {
        let row = steady::run(&bench, &token, args.steady_rate, args.steady_seconds).await?;
        // The next drain gives the issues other users than the last drain did.
        round += 1;
        cpu_lines.push(format!("(9) steady rate, ingress and worker: {}", row.cpu));
        steady_row = Some(row);
    }
    let mut reconciled = None;
    if args.reconcile_issues > 0 {
        let row = reconcile::run(&bench, names, Provider::Server, args.reconcile_issues).await?;
        cpu_lines.push(format!("(8) reconciliation, per 1,000 issues: {}", row.cpu));
        reconciled = Some(row);
    }
    // (14) Row (8) again for the Jira Cloud integration: `search/jql`, paged by
    // `nextPageToken`, issues in Cloud's shape.
    let mut cloud_reconciled = None;
    if args.cloud_reconcile_issues > 0 {
        let row =
            reconcile::run(&bench, names, Provider::Cloud, args.cloud_reconcile_issues).await?;
        cpu_lines.push(format!(
            "(14) Cloud reconciliation, per 1,000 issues: {}",
            row.cpu
        ));
        cloud_reconciled = Some(row);
    }
    let rates: Vec<usize> = [args.push_rate, args.push_rate_high]
        .into_iter()
        .filter(|rate| *rate > 0)
        .collect();
    let mut pushed = None;
    if !rates.is_empty() || args.push_backlog > 0 {
        let row = outbound::run(&bench, &rates, args.push_seconds, args.push_backlog).await?;
        for l in &row.latency {
            cpu_lines.push(format!(
                "(10) {} changes/s, per 1,000 changes: {}",
                l.asked, l.cpu
            ));
        }
        if let Some(b) = &row.backlog {
            cpu_lines.push(format!("(11) backlog, per 1,000 pushes: {}", b.cpu));
            if let (Some(push_ms), Some(batch)) = (b.push_ms, b.batch) {
                // Little's law: pushes in flight = pushes/s × seconds per push.
                let in_flight = b.changes as f64 / b.seconds * push_ms / 1000.0;
                cpu_lines.push(format!(
                    "(11) a push took {push_ms:.1} ms from delivery to answer on average, \
                     {in_flight:.1} in flight on average, batches of {batch:.1}"
                ));
            }
        }
        pushed = Some(row);
    }
    let mut on_big = None;
    if args.big_issues > 0 {
        let seeding = Instant::now();
        seed_big(&db, args.big_issues).await?;
        eprintln!(
            "seeded the big installation ({} issues) in {:.0} s",
            args.big_issues,
            seeding.elapsed().as_secs_f64()
        );
        // An installation of that size has been vacuumed and checkpointed long
        // since: the first vacuum of a million fresh rows, their hint bits and the
        // checkpoint their WAL forces belong to the bulk load, not to (7)'s drain.
        let settling = Instant::now();
        db.batch_execute("VACUUM (ANALYZE)")
            .await
            .context("failed to vacuum the big seed")?;
        db.batch_execute("CHECKPOINT")
            .await
            .context("failed to checkpoint after the big seed")?;
        eprintln!(
            "vacuumed and checkpointed it in {:.0} s",
            settling.elapsed().as_secs_f64()
        );
        let drained = drain(&bench, names, server, 1, true, None, round).await?;
        cpu_lines.push(format!("(7) 1 worker(s), big seed: {}", drained.cpu));
        on_big = Some(drained.rate);
    }
    let _ = connection.close(200, "done".into()).await;

    println!("| measurement | figure | ratio | target |");
    println!("|---|---|---|---|");
    println!(
        "| (1) broker: confirmed publishes | {:.0} msg/s, confirm {} | 1.00 | |",
        broker.rate,
        latencies(&broker)
    );
    print_ingress("(2) ingress: POST → 202", &posted, "(1)", &broker);
    if let Some((broker, posted, rss)) = &sustained {
        let (seconds, n) = (args.sustained_seconds, SUSTAINED_IN_FLIGHT);
        println!(
            "| (16) broker: confirmed publishes for {seconds} s, {n} in flight, into a filling queue | {:.0} msg/s ({} published), confirm {} | 1.00 | |",
            broker.rate,
            broker.count,
            latencies(broker)
        );
        print_ingress(
            &format!(
                "(16) ingress: POST → 202 for {seconds} s over {n} connections into a filling queue (peak RSS {rss:.1} MiB)"
            ),
            posted,
            "(16) broker",
            broker,
        );
    }
    println!("| (3) database: pgbench, worker SQL | {db_tps:.0} tx/s | 1.00 | |");
    for (concurrency, limit) in &limits {
        println!(
            "| (15) broker: no-op drain of (4)'s webhooks, 1 consumer that only acks, prefetch {} (the webhooks a worker at concurrency {concurrency} holds from a backlog) | {:.0} msg/s, the median of {} | 1.00 | |",
            webhooks_prefetch(&bench, *concurrency),
            limit.rate,
            limit
                .rates
                .iter()
                .map(|rate| format!("{rate:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let default = settings.worker.concurrency;
    let one = rows.first().map_or(0.0, |(_, rate)| *rate);
    for (what, concurrency, rows) in [("(4)", default, &rows), ("(4w)", WIDE, &wide)] {
        let one = rows.first().map_or(0.0, |(_, rate)| *rate);
        for (workers, rate) in rows {
            let target = match (*workers, concurrency == default) {
                (1, true) if !limits.is_empty() => "≥ 1.5 of (3); ≥ 0.5 of (15)".to_owned(),
                (1, _) => "≥ 1.5 of (3)".to_owned(),
                _ => format!("≥ 1 process ({:.2} of it)", rate / one),
            };
            println!(
                "| {what} {workers} worker process(es) at concurrency {concurrency}, end to end | {rate:.0} msg/s | {:.2} of (3){} | {target} |",
                rate / db_tps,
                of_limit(concurrency, *rate)
            );
        }
    }
    println!(
        "| (5) peak RSS | ingress {ingress_rss:.1} MiB, worker {worker_rss:.1} MiB | | ≤ 48 / ≤ 64 MiB |"
    );
    let with_audit = one;
    println!(
        "| (6) 1 worker, audit trail off (`JIRASYNC_AUDIT=off`) | {without_audit:.0} msg/s | (4) with it: {:.2} of this{} | ≥ 0.90 |",
        with_audit / without_audit,
        of_limit(default, without_audit)
    );
    if let Some(rate) = on_big {
        println!(
            "| (7) 1 worker, big seed ({} organizations, {} users, {} linked issues and groups, {} audit rows) | {rate:.0} msg/s | {:.2} of (4) 1 worker | ≥ 0.90 |",
            args.big_issues / 100,
            args.big_issues / 10,
            args.big_issues,
            args.big_issues,
            rate / with_audit
        );
    }
    if let Some(r) = &reconciled {
        println!(
            "| (8) reconciliation of {} linked issues ({} of them assigned in Jira and in no group), 1 worker, one job, fake Jira | handled in {:.1} s ({:.0} issues/s); {} Jira requests ({} searches, {} other); {} assignments changed; worker peak RSS {:.1} MiB | | |",
            r.linked,
            r.issues,
            r.seconds,
            r.linked as f64 / r.seconds,
            r.searches + r.other,
            r.searches,
            r.other,
            r.changed,
            r.worker_rss_mib
        );
    }
    if let Some(r) = &cloud_reconciled {
        let rate = r.linked as f64 / r.seconds;
        let ratio = reconciled.as_ref().map_or(String::new(), |dc| {
            format!("{:.2} of (8)", rate / (dc.linked as f64 / dc.seconds))
        });
        println!(
            "| (14) Jira Cloud reconciliation of {} linked issues (all assigned in Jira and in no group), 1 worker, one job, fake Jira Cloud: `search/jql` by `nextPageToken`, at most {} issues a page | handled in {:.1} s ({rate:.0} issues/s); {} Jira requests ({} first pages, {} by nextPageToken, {} other); {} assignments changed; worker peak RSS {:.1} MiB | {ratio} | |",
            r.linked,
            fake_jira::CLOUD_PAGE,
            r.seconds,
            r.jql_searches + r.searches + r.other,
            r.jql_searches - r.next_pages,
            r.next_pages,
            r.searches + r.other,
            r.changed,
            r.worker_rss_mib
        );
    }
    if let Some(s) = &steady_row {
        println!(
            "| (9) end to end at {} webhooks/s for {} s, 1 ingress + 1 worker: 202 → commit | p50 {:.1} ms, p99 {:.1} ms to the audit INSERT (the transaction's last statement before COMMIT); to the transaction's start p50 {:.1}, p99 {:.1} ms; POST → 202 p50 {:.1}, p99 {:.1} ms; {} sent at {:.0}/s (sender at worst {:.1} ms late), {} assigned | | p99 ≤ 50 ms |",
            args.steady_rate,
            args.steady_seconds,
            s.to_insert.0,
            s.to_insert.1,
            s.to_start.0,
            s.to_start.1,
            s.answer.0,
            s.answer.1,
            s.sent,
            s.rate,
            s.worst_lag_ms,
            s.assigned
        );
    }
    if let Some(o) = &pushed {
        for l in &o.latency {
            let target = if l.asked == args.push_rate {
                "p99 ≤ 2 s"
            } else {
                "(stated)"
            };
            println!(
                "| (10) outbound: commit → Jira write at {} changes/s for {} s, 1 worker, fake Jira answering in ~1 ms | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms from sending the committing statement to the PUT's arrival (the statement itself p50 {:.1}, p99 {:.1} ms); {} changes at {:.0}/s, {} overtaken | | {target} |",
                l.asked,
                args.push_seconds,
                l.to_put.0,
                l.to_put.1,
                l.max,
                l.commit.0,
                l.commit.1,
                l.sent,
                l.rate,
                l.unmatched
            );
        }
        if let Some(b) = &o.backlog {
            let rate = b.changes as f64 / b.seconds;
            println!(
                "| (11) outbound: 1 worker pushing a backlog of {} captured changes (one per issue) | {rate:.0} pushes/s ({:.1} s, {} PUTs); worker peak RSS {:.1} MiB | {:.2} of (4) 1 worker | ≥ 0.5 |",
                b.changes,
                b.seconds,
                b.puts,
                b.worker_rss_mib,
                rate / with_audit
            );
        }
        let (reads, searches, puts, unauthorized) = o.requests;
        println!(
            "| (10)–(11) fake Jira requests | {reads} issue reads, {searches} assignable searches, {puts} PUTs, {unauthorized} unauthorized | | |"
        );
    }
    if let Some(pairs) = &cloud_row {
        let ratio = median(pairs.iter().map(|p| p.cloud / p.server));
        let drains = pairs
            .iter()
            .map(|p| format!("{:.0} / {:.0}", p.cloud, p.server))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "| (13) 1 worker, Jira Cloud deliveries (HMAC-signed, identifiers recorded, assignee by accountId), each drain right after one of (4)'s webhooks | Cloud / (4) msg/s: {drains} | {ratio:.2} of (4) 1 worker (the median of {} pairs){} | ≥ 0.95 |",
            pairs.len(),
            of_limit(default, median(pairs.iter().map(|p| p.cloud)))
        );
    }
    if let Some(rate) = without_capture {
        println!(
            "| (12) 1 worker, capture triggers disabled (`DISABLE TRIGGER USER` on group_assignees and groups) | {rate:.0} msg/s | (4) with them: {:.2} of this{} | ≥ 0.95 |",
            with_audit / rate,
            of_limit(default, rate)
        );
    }
    println!("\nCPU time per 1,000 messages (what bounds each row on a shared machine):");
    for line in &cpu_lines {
        println!("  {line}");
    }
    Ok(())
}

/// Prints an ingress row: `what`, and what `posted` measured as a ratio to the
/// broker's `broker` (named `of`).
fn print_ingress(what: &str, posted: &Load, of: &str, broker: &Load) {
    println!(
        "| {what} | {:.0} req/s ({} answered), {} | {:.2} of {of}; p99 {:.2}× | ≥ 0.90; p99 ≤ 1.5× |",
        posted.rate,
        posted.count,
        latencies(posted),
        posted.rate / broker.rate,
        posted.p99 / broker.p99
    );
}

/// "p50 X ms, p99 Y ms" as wrk counts them, and the samples' own where known.
fn latencies(load: &Load) -> String {
    let raw = load.raw.map_or(String::new(), |(p50, p99)| {
        format!(" (the samples themselves: p50 {p50:.1}, p99 {p99:.1} ms)")
    });
    format!("p50 {:.1} ms, p99 {:.1} ms{raw}", load.p50, load.p99)
}

/// The Jira Cloud integration of row (13): its URL token and HMAC secret.
struct CloudSite {
    token: String,
    hmac_secret: String,
}

/// The Jira Cloud integration's cloudId (its `external_id`) and site.
const CLOUD_ID: &str = "b3c1e5f0-0000-4000-8000-00000000be7c";
const CLOUD_SITE: &str = "https://bench.atlassian.net";

/// The `external_id` of the benchmark's integration of `provider` and the base
/// URL it has while no row points it at a fake Jira.
fn bench_integration(provider: Provider) -> (&'static str, &'static str) {
    match provider {
        Provider::Server => ("bench.jira.local:bench", "http://bench.jira.local"),
        Provider::Cloud => (CLOUD_ID, CLOUD_SITE),
    }
}

/// Adds a Jira Cloud integration beside the benchmark's Data Center one (its
/// secrets stored as the seed stores them) and links the organization to it with
/// sync on; `serve_issues_from` hands it the benchmark's issues and back.
async fn cloud_integration(db: &tokio_postgres::Client) -> anyhow::Result<CloudSite> {
    use jirasync::integration::install_record::fresh_webhook_secret;
    let (secret, hmac_secret) = (fresh_webhook_secret(), fresh_webhook_secret());
    let cloud_id = CLOUD_ID;
    db.execute(
        "INSERT INTO integrations (provider, external_id, name, metadata)
         VALUES ('jira_cloud', $1, 'Bench Cloud',
                 jsonb_build_object('base_url', $4::text, 'site', $4::text,
                                    'cloud_id', $1::text, 'webhook_secret', $2::text, 'webhook_hmac_secret', $3::text))",
        &[&cloud_id, &secret, &hmac_secret, &CLOUD_SITE],
    )
    .await?;
    db.batch_execute(
        "INSERT INTO organization_integrations (organization_id, integration_id, config)
           SELECT o.id, i.id, '{\"sync_reverse_assignment\": true}'
             FROM organizations o, integrations i
            WHERE o.slug = 'bench' AND i.provider = 'jira_cloud'
         ON CONFLICT DO NOTHING",
    )
    .await?;
    Ok(CloudSite {
        token: jirasync::integration::token::mint(cloud_id, &secret)?,
        hmac_secret,
    })
}

/// Points the benchmark's issues at the integration of `provider`.
async fn serve_issues_from(db: &tokio_postgres::Client, provider: &str) -> anyhow::Result<()> {
    db.execute(
        "UPDATE external_issues SET integration_id = (SELECT id FROM integrations WHERE provider = $1)
          WHERE key LIKE 'BENCH-%'",
        &[&provider],
    )
    .await?;
    Ok(())
}

/// Points the benchmark's integration of `provider` at a new fake Jira of that
/// provider, with a personal access token (Data Center) or an API token (Cloud),
/// and links `issues` more issues `<prefix>-<N>`, each to a group of its own
/// (`bench/seed_reconcile.sql`); `unlink_issues` takes them away again.
async fn link_issues(
    bench: &Bench<'_>,
    provider: Provider,
    prefix: &str,
    issues: usize,
) -> anyhow::Result<FakeJira> {
    use base64::Engine as _;
    let token = format!("bench-token-{}", uuid::Uuid::new_v4().simple());
    let (auth_method, email, authorization) = match provider {
        Provider::Server => ("pat", "", format!("Bearer {token}")),
        Provider::Cloud => {
            let email = "bench-admin@example.org";
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("{email}:{token}"));
            ("api_token", email, format!("Basic {basic}"))
        }
    };
    let jira = FakeJira::start(provider, authorization, bench.args.users).await?;
    let seeding = Instant::now();
    let sql = std::fs::read_to_string("bench/seed_reconcile.sql")?
        .replace("{prefix}", prefix)
        .replace("{issues}", &issues.to_string())
        .replace("{external_id}", bench_integration(provider).0)
        .replace("{base_url}", &jira.base_url)
        .replace("{auth_method}", auth_method)
        .replace("{email}", email)
        .replace("{token}", &token);
    bench
        .db
        .batch_execute(&sql)
        .await
        .context("failed to seed bench/seed_reconcile.sql")?;
    eprintln!(
        "linked {issues} issues {prefix}-<N> in {:.0} s",
        seeding.elapsed().as_secs_f64()
    );
    Ok(jira)
}

/// Takes away what `link_issues` added (`bench/unseed_reconcile.sql`) and what
/// its rows wrote, and vacuums the tables, so the rows after find them without
/// the dead rows.
async fn unlink_issues(
    db: &tokio_postgres::Client,
    provider: Provider,
    prefix: &str,
) -> anyhow::Result<()> {
    let unseeding = Instant::now();
    let (external_id, home_url) = bench_integration(provider);
    db.batch_execute(
        &std::fs::read_to_string("bench/unseed_reconcile.sql")?
            .replace("{prefix}", prefix)
            .replace("{external_id}", external_id)
            .replace("{home_url}", home_url),
    )
    .await
    .context("failed to run bench/unseed_reconcile.sql")?;
    // Its own statement: VACUUM cannot run inside the batch's transaction.
    db.batch_execute(
        "VACUUM (ANALYZE) sync_events, groups, group_links, group_assignees, activities,
                          external_issues, integration_credentials, outbound_changes,
                          outbound_pending, outbound_writes",
    )
    .await
    .context("failed to vacuum after bench/unseed_reconcile.sql")?;
    eprintln!(
        "removed them again in {:.0} s",
        unseeding.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One `jirasync worker` for the rows with a fake Jira, ready, and its metrics
/// port: no reconciliation scheduled (`JIRASYNC_RECONCILE_INTERVAL=0`), so the
/// fake Jira counts only what the row asks for.
async fn lone_worker(bench: &Bench<'_>) -> anyhow::Result<(Kid, u16)> {
    let port = free_port();
    let worker = spawn(
        bench.settings,
        "worker",
        &[
            ("JIRASYNC_METRICS_LISTEN", format!("127.0.0.1:{port}")),
            ("JIRASYNC_RECONCILE_INTERVAL", "0".to_owned()),
        ],
    )?;
    wait_ready(bench.client, port, "the worker").await?;
    Ok((worker, port))
}

/// Disables (`false`) or enables again the capture triggers of outbound sync
/// (migrations/V7__outbound.sql), the only user triggers of both tables.
async fn capture_triggers(db: &tokio_postgres::Client, enabled: bool) -> anyhow::Result<()> {
    let what = if enabled { "ENABLE" } else { "DISABLE" };
    db.batch_execute(&format!(
        "ALTER TABLE group_assignees {what} TRIGGER USER; ALTER TABLE groups {what} TRIGGER USER;"
    ))
    .await
    .with_context(|| format!("failed to {what} the capture triggers"))
}

fn channel_names(settings: &Settings) -> Vec<String> {
    Names::new(
        settings.broker.queue_prefix.clone(),
        &jirasync::integration::messages::CATALOG,
    )
    .all_queues(&settings.retries.delays.0)
}

/// The fixture, padded with an extra field to `size` bytes (Jira payloads carry many fields).
fn pad(fixture: &[u8], size: usize) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(fixture).unwrap();
    let filler = "x".repeat(size.saturating_sub(fixture.len() + 40));
    value["issue"]["fields"]["description"] = serde_json::Value::String(filler);
    serde_json::to_vec(&value).unwrap()
}

async fn purge(channel: &lapin::Channel, names: &Names) -> anyhow::Result<()> {
    channel
        .queue_purge(names.webhooks().as_str().into(), Default::default())
        .await?;
    Ok(())
}

/// The data of `bench/seed.sql`; returns the integration's webhook secret.
async fn seed(db: &tokio_postgres::Client, args: &Args) -> anyhow::Result<String> {
    let secret = jirasync::integration::install_record::fresh_webhook_secret();
    let sql = std::fs::read_to_string("bench/seed.sql")?
        .replace("{users}", &args.users.to_string())
        .replace("{issues}", &args.issues.to_string())
        .replace("{secret}", &secret);
    db.batch_execute(&sql).await?;
    Ok(secret)
}

/// The rest of an installation of realistic size (`bench/seed_big.sql`) around the
/// benchmark's organization: `issues` linked issues and groups, a hundredth as many
/// organizations, a tenth as many users, as many audit rows.
async fn seed_big(db: &tokio_postgres::Client, issues: usize) -> anyhow::Result<()> {
    let sql = std::fs::read_to_string("bench/seed_big.sql")?
        .replace("{orgs}", &(issues / 100).max(1).to_string())
        .replace("{users}", &(issues / 10).max(1).to_string())
        .replace("{issues}", &issues.to_string())
        .replace("{events}", &issues.to_string());
    db.batch_execute(&sql).await?;
    Ok(())
}

async fn cleanup(settings: &Settings, names: &Names, queues: &[String]) {
    if let Ok(connection) =
        jirasync::queue::connection::connect(&settings.broker.url, "bench").await
    {
        for queue in queues {
            if let Ok(channel) = connection.create_channel().await {
                let _ = channel
                    .queue_delete(queue.as_str().into(), Default::default())
                    .await;
            }
        }
        // `P` and `P.verdicts`.
        for exchange in names.all_exchanges() {
            if let Ok(channel) = connection.create_channel().await {
                let _ = channel
                    .exchange_delete(exchange.as_str().into(), Default::default())
                    .await;
            }
        }
    }
    if let Ok((db, connection)) = tokio_postgres::connect(
        "postgres://postgres@127.0.0.1:5432/postgres",
        tokio_postgres::NoTls,
    )
    .await
    {
        tokio::spawn(connection);
        let name = settings.database.url.rsplit('/').next().unwrap_or_default();
        let _ = db
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await;
    }
}
