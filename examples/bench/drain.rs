//! Rows (4), (6), (7) and (13): webhooks preloaded on `P.webhooks`, drained by
//! `jirasync worker` processes, until every issue's group holds the assignee of
//! its last event. Row (13)'s are Jira Cloud deliveries: HMAC-signed, each with
//! its own `X-Atlassian-Webhook-Identifier`, naming the assignee by `accountId`.
//! Row (15): the same webhooks drained by RabbitMQ alone, to a consumer that only acks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use jirasync::integration::Provider;
use jirasync::integration::messages::{self as provider, CloudDelivery, webhook_type};
use jirasync::integration::token::sign_hub_signature;
use jirasync::queue::{Names, publisher};
use tokio::sync::Semaphore;

use super::procs::{
    CpuUse, Kid, free_port, peak_rss_mib, pids_cpu, spawn, worker_counts, worker_scrape,
};
use super::{Args, Bench};

/// Whose webhooks a drain sends: the integration's provider, its URL token, and
/// (Cloud) the secret its deliveries are signed with.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    pub provider: Provider,
    pub token: &'a str,
    pub hmac_secret: Option<&'a str>,
}

/// What one drain measured.
pub struct Drained {
    /// Messages per second, from the workers' start to the last assignment.
    pub rate: f64,
    /// Peak RSS of the first worker.
    pub first_rss_mib: f64,
    /// Where the CPU went, per 1,000 messages.
    pub cpu: String,
}

/// Preloads `args.messages` webhooks of `round` and drains them with `workers`
/// `jirasync worker` processes (audit trail on or off, at `concurrency` or the
/// default); the clock stops when the
/// workers' `jirasync_messages_total` has counted every message and every
/// issue's group holds the assignee of its last event.
pub async fn drain(
    bench: &Bench<'_>,
    names: &Names,
    source: Source<'_>,
    workers: usize,
    audit: bool,
    concurrency: Option<u16>,
    round: usize,
) -> anyhow::Result<Drained> {
    let args = bench.args;
    preload(bench.channel, names, source, args, round).await?;
    let mut children = Vec::new();
    let mut ports = Vec::new();
    let started = Instant::now();
    for _ in 0..workers {
        let port = free_port();
        ports.push(port);
        let mut extra = vec![
            ("JIRASYNC_METRICS_LISTEN", format!("127.0.0.1:{port}")),
            (
                "JIRASYNC_AUDIT",
                if audit { "on" } else { "off" }.to_owned(),
            ),
        ];
        if let Some(concurrency) = concurrency {
            extra.push(("JIRASYNC_WORKER_CONCURRENCY", concurrency.to_string()));
        }
        children.push(spawn(bench.settings, "worker", &extra)?);
    }
    let cpu = bench.cpu_use("workers", children.iter().map(Kid::id).collect());
    loop {
        let mut handled = 0.0;
        for port in &ports {
            handled += worker_counts(bench.client, *port, webhook_type(source.provider))
                .await
                .iter()
                .map(|(_, n)| n)
                .sum::<f64>();
        }
        if handled >= args.messages as f64 && all_applied(bench.db, args, round).await? {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!(
                "workers did not drain {} messages in 10 minutes ({handled} handled)",
                args.messages
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = args.messages as f64 / started.elapsed().as_secs_f64();
    let mut cpu = cpu.report(args.messages);
    // What the first worker's batches and acks came to: what the CPU per webhook follows.
    if let Some(&port) = ports.first()
        && let Some(scrape) = worker_scrape(bench.client, port).await
    {
        let batch = scrape.mean("jirasync_webhook_batch_size");
        let frames = scrape.counter("jirasync_worker_ack_frames_total");
        if let (Some(batch), Some(frames)) = (batch, frames) {
            let per_thousand = frames * 1000.0 * ports.len() as f64 / args.messages as f64;
            cpu.push_str(&format!(
                "; worker 1: {batch:.1} webhooks a batch, {per_thousand:.0} ack frames per 1,000"
            ));
        }
    }
    Ok(Drained {
        rate,
        first_rss_mib: children.first().map_or(0.0, peak_rss_mib),
        cpu,
    })
}

/// N assignment webhooks across the issues and users; each round's events are later
/// than the last round's, so the ordering guard applies them.
pub async fn preload(
    channel: &lapin::Channel,
    names: &Names,
    source: Source<'_>,
    args: &Args,
    round: usize,
) -> anyhow::Result<()> {
    let base = super::batch_base(args.messages);
    let semaphore = Arc::new(Semaphore::new(args.concurrency));
    let mut tasks = Vec::new();
    for k in 0..args.messages {
        let issue = k % args.issues + 1;
        let user = (k / args.issues + issue + round) % args.users + 1;
        let at = base + chrono::Duration::milliseconds(k as i64);
        let email = format!("bench{user}@example.org");
        let assignee = match source.provider {
            Provider::Server => {
                serde_json::json!({"name": format!("u{user}"), "emailAddress": email})
            }
            Provider::Cloud => {
                serde_json::json!({"accountId": format!("acc-{user}"), "emailAddress": email})
            }
        };
        let body = serde_json::to_vec(&serde_json::json!({
            "timestamp": at.timestamp_millis(), "webhookEvent": "jira:issue_updated",
            "issue": {"key": format!("BENCH-{issue}"), "fields": {"assignee": assignee,
                      "updated": at.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string(), "description": "x".repeat(5000)}},
            "changelog": {"items": [{"field": "assignee"}]}
        }))?;
        let signature = source
            .hmac_secret
            .map(|secret| sign_hub_signature(secret, &body));
        let identifier = format!("bench-{round}-{k}");
        let request = provider::WebhookRequest {
            token: source.token,
            content_type: Some("application/json"),
            webhook_identifier: (source.provider == Provider::Cloud).then_some(identifier.as_str()),
            hub_signature: signature.as_deref(),
        };
        let (_, props) = provider::provider_webhook_properties(
            source.provider,
            &request,
            CloudDelivery::default(),
            std::time::SystemTime::now(),
        );
        let kind = webhook_type(source.provider);
        let permit = Arc::clone(&semaphore).acquire_owned().await?;
        let (channel, exchange) = (channel.clone(), names.exchange().to_owned());
        tasks.push(tokio::spawn(async move {
            publisher::publish_confirmed(&channel, &exchange, kind, &body, props)
                .await
                .unwrap();
            drop(permit);
        }));
    }
    for task in tasks {
        task.await?;
    }
    Ok(())
}

/// Whether every issue's group holds the assignee of its last event in `round`.
pub async fn all_applied(
    db: &tokio_postgres::Client,
    args: &Args,
    round: usize,
) -> anyhow::Result<bool> {
    let rows = db
        .query(
            "SELECT g.title, ue.email FROM groups g
               JOIN group_assignees ga ON ga.group_id = g.id
               JOIN user_emails ue ON ue.user_id = ga.user_id",
            &[],
        )
        .await?;
    let held: std::collections::HashMap<String, String> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok((1..=args.issues).all(|issue| {
        let expected = last_user(args, round, issue).map(|u| format!("bench{u}@example.org"));
        expected.is_none() || held.get(&format!("BENCH-{issue}")) == expected.as_ref()
    }))
}

/// The user of the last event of `issue` in `round` (see `preload`).
pub fn last_user(args: &Args, round: usize, issue: usize) -> Option<usize> {
    (0..args.messages)
        .rev()
        .find(|k| k % args.issues + 1 == issue)
        .map(|k| (k / args.issues + issue + round) % args.users + 1)
}

/// How many times row (15) drains: one drain of a few thousand messages lasts about
/// a second, which a busy machine bends one way or the other; the median of three
/// holds better.
const BROKER_DRAINS: usize = 3;

/// What RabbitMQ's own no-op drain measured (row 15).
pub struct BrokerDrain {
    /// Messages per second of the median drain, from the consume to the last ack.
    pub rate: f64,
    /// Every drain's, in the order they ran.
    pub rates: Vec<f64>,
    /// Where the CPU went during the median drain, per 1,000 messages.
    pub cpu: String,
}

/// Row (15), the drain limit: [`BROKER_DRAINS`] times, preloads row (4)'s
/// webhooks and drains them with a consumer of this process that only acks each
/// delivery, on a connection of its own with as many unacked as a worker at
/// `concurrency` holds webhooks from a backlog ([`webhooks_prefetch`]).
pub async fn broker_drain(
    bench: &Bench<'_>,
    names: &Names,
    source: Source<'_>,
    concurrency: u16,
    round: usize,
) -> anyhow::Result<BrokerDrain> {
    let mut drains = Vec::new();
    for _ in 0..BROKER_DRAINS {
        preload(bench.channel, names, source, bench.args, round).await?;
        drains.push(no_op_drain(bench, names, webhooks_prefetch(bench, concurrency)).await?);
    }
    let rates: Vec<f64> = drains.iter().map(|(rate, _)| *rate).collect();
    drains.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (rate, cpu) = drains.swap_remove(BROKER_DRAINS / 2);
    Ok(BrokerDrain { rate, rates, cpu })
}

/// Drains the preloaded `args.messages` with a consumer that only acks, at
/// `prefetch`; messages/s from the consume to the last ack, and the CPU line.
async fn no_op_drain(
    bench: &Bench<'_>,
    names: &Names,
    prefetch: u16,
) -> anyhow::Result<(f64, String)> {
    use futures_util::StreamExt as _;
    use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};

    let messages = bench.args.messages;
    let connection =
        jirasync::queue::connection::connect(&bench.settings.broker.url, "bench-drain").await?;
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(prefetch, BasicQosOptions { global: false })
        .await?;
    let cpu = CpuUse::start(vec![
        bench.rabbitmq_cpu(),
        pids_cpu("consumer", vec![std::process::id()]),
    ]);
    let started = Instant::now();
    let mut deliveries = channel
        .basic_consume(
            names.webhooks().as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            Default::default(),
        )
        .await?;
    // Each ack its own task, as the worker settles each delivery in the task
    // that handled it.
    let mut acks = tokio::task::JoinSet::new();
    for _ in 0..messages {
        let delivery = tokio::time::timeout(Duration::from_secs(60), deliveries.next())
            .await
            .map_err(|_| anyhow::anyhow!("no delivery for 60 s"))?
            .context("the broker cancelled the consumer")??;
        acks.spawn(async move { delivery.ack(BasicAckOptions::default()).await });
    }
    while let Some(ack) = acks.join_next().await {
        ack??;
    }
    let rate = messages as f64 / started.elapsed().as_secs_f64();
    let cpu = cpu.report(messages);
    let _ = connection.close(200, "drained".into()).await;
    Ok((rate, cpu))
}

/// The webhooks a worker at `concurrency` holds at once from a backlog: its
/// own slots and the idle pushes' and jobs' lent to them (the benchmark's
/// workers run with outbound sync as configured by default).
pub fn webhooks_prefetch(bench: &Bench<'_>, concurrency: u16) -> u16 {
    use jirasync::queue::consumer::{prefetch, webhooks_at_most};
    webhooks_at_most(prefetch(concurrency, bench.settings.worker.outbound))
}
