//! The load of the broker's and the ingress's rows: (1) and (16) confirmed publishes
//! from this process (lapin), (2) and (16) POSTs to a child `jirasync ingress` by
//! wrk. (1) and (2) run for a number of messages, their sustained twins (16) for a
//! time into a queue that fills.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use jirasync::integration::messages::{self as provider, WEBHOOK};
use jirasync::queue::{Names, publisher};
use tokio::sync::Semaphore;

use super::procs::{CpuUse, Kid, pids_cpu};
use super::{Bench, percentiles};

/// When a load stops starting operations.
#[derive(Clone, Copy)]
pub enum Until {
    /// After this many.
    Count(usize),
    /// Once this long has passed since the first.
    Elapsed(Duration),
}

/// What one load measured.
pub struct Load {
    /// Operations per second, from the first start to the last answer.
    pub rate: f64,
    /// Latency p50 and p99 in ms as wrk counts them ([`as_wrk_counts`]), so the
    /// broker's and the ingress's compare.
    pub p50: f64,
    pub p99: f64,
    /// p50 and p99 of the samples themselves; wrk gives none (the ingress rows).
    pub raw: Option<(f64, f64)>,
    /// Operations answered.
    pub count: usize,
    /// Where the CPU went, per 1,000 operations (empty until it is counted).
    pub cpu: String,
}

/// Publishes `body` as the ingress would (the same properties) with confirms on
/// the benchmark's confirm channel, `in_flight` at a time, until `until`: the
/// broker's limit of rows (1) and (16).
pub async fn publishes(
    bench: &Bench<'_>,
    names: &Names,
    token: &str,
    body: &[u8],
    in_flight: usize,
    until: Until,
) -> anyhow::Result<Load> {
    let cpu = CpuUse::start(vec![
        bench.rabbitmq_cpu(),
        pids_cpu("publisher", vec![std::process::id()]),
    ]);
    let request = provider::WebhookRequest {
        token,
        content_type: Some("application/json"),
        webhook_identifier: None,
        hub_signature: None,
    };
    let load = measure(in_flight, until, || {
        let (channel, exchange, body) = (
            bench.channel.clone(),
            names.exchange().to_owned(),
            body.to_vec(),
        );
        let (_, props) = provider::webhook_properties(&request, std::time::SystemTime::now());
        async move {
            publisher::publish_confirmed(&channel, &exchange, WEBHOOK, &body, props)
                .await
                .unwrap();
        }
    })
    .await?;
    Ok(Load {
        cpu: cpu.report(load.count),
        ..load
    })
}

/// POSTs `body` to `url` of the running `ingress` over `connections` for
/// `seconds`: rows (2) and (16).
pub fn posts(
    bench: &Bench<'_>,
    ingress: &Kid,
    url: &str,
    body: &[u8],
    connections: usize,
    seconds: u64,
) -> anyhow::Result<Load> {
    let cpu = CpuUse::start(vec![
        bench.rabbitmq_cpu(),
        pids_cpu("ingress", vec![ingress.id()]),
    ]);
    let load = wrk(connections, seconds, url, body)?;
    // wrk has exited: its CPU is the difference of the machine's busy time.
    Ok(Load {
        cpu: cpu.report(load.count),
        ..load
    })
}

/// Runs operations made by `one`, `in_flight` at a time, until `until`.
async fn measure<F, Fut>(in_flight: usize, until: Until, mut one: F) -> anyhow::Result<Load>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let semaphore = Arc::new(Semaphore::new(in_flight));
    let started = Instant::now();
    let mut tasks = Vec::new();
    while match until {
        Until::Count(count) => tasks.len() < count,
        Until::Elapsed(time) => started.elapsed() < time,
    } {
        let permit = Arc::clone(&semaphore).acquire_owned().await?;
        let operation = one();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            operation.await;
            drop(permit);
            t.elapsed().as_secs_f64() * 1000.0
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.push(task.await?);
    }
    let count = latencies.len();
    let elapsed = started.elapsed().as_secs_f64();
    // wrk's interval: its run's time over the requests each connection made.
    let interval_ms = elapsed * 1000.0 / (count / in_flight).max(1) as f64;
    let (p50, p99) = percentiles(as_wrk_counts(&latencies, interval_ms));
    Ok(Load {
        rate: count as f64 / elapsed,
        p50,
        p99,
        raw: Some(percentiles(latencies)),
        count,
        cpu: String::new(),
    })
}

/// Latencies `ms` as wrk 4 counts its own (`stats_correct`, applied before its
/// report and the script's `done`): with `interval_ms` between the requests of
/// one connection at the run's rate, a latency n of at least twice that counts
/// again at n − interval, n − 2 × interval, … while that is above the interval —
/// the requests a sender at a steady rate would have had waiting meanwhile (a
/// correction for "coordinated omission"). A closed loop's stalls weigh that
/// much more in its percentiles.
fn as_wrk_counts(ms: &[f64], interval_ms: f64) -> Vec<f64> {
    let mut counted = ms.to_vec();
    if interval_ms > 0.0 {
        for &n in ms.iter().filter(|n| **n >= 2.0 * interval_ms) {
            let mut again = n - interval_ms;
            while again > interval_ms {
                counted.push(again);
                again -= interval_ms;
            }
        }
    }
    counted
}

/// POSTs `body` to `url` for `seconds` over `connections`, using wrk (a separate
/// process, written in C) as the load generator. Every answer must be a 202.
/// (wrk runs for a duration, not a count: row (2) passes the time the broker
/// took for its messages.)
fn wrk(connections: usize, seconds: u64, url: &str, body: &[u8]) -> anyhow::Result<Load> {
    let threads = 2;
    let file = std::env::temp_dir().join(format!("jirasync-bench-{}.json", std::process::id()));
    std::fs::write(&file, body)?;
    let output = Command::new("wrk")
        .args(["-t", &threads.to_string(), "-c", &connections.to_string()])
        .args(["-d", &format!("{seconds}s"), "--timeout", "10s"])
        .args(["-s", "bench/post.lua", url])
        .env("BENCH_BODY", &file)
        .output()
        .context("wrk is needed: bash bench/run.sh installs it (Debian package wrk)")?;
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("BENCH "))
        .with_context(|| format!("no result line from wrk: {text}"))?;
    let field = |name: &str| -> anyhow::Result<f64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            .with_context(|| format!("no {name} in {line}"))
    };
    let (refused, errors) = (field("refused")?, field("errors")?);
    if refused > 0.0 || errors > 0.0 {
        bail!("the ingress refused {refused} requests and {errors} failed: {line}");
    }
    let answered = field("answered")?;
    Ok(Load {
        rate: answered / field("seconds")?,
        p50: field("p50_us")? / 1000.0,
        p99: field("p99_us")? / 1000.0,
        raw: None,
        count: answered as usize,
        cpu: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::as_wrk_counts;

    #[test]
    fn a_stall_counts_again_for_each_interval_it_held_a_connection_as_wrk_counts_it() {
        // Under twice the interval: as it is. 10 ms at 3 ms: again at 7 and 4.
        assert_eq!(as_wrk_counts(&[1.0, 5.0], 3.0), vec![1.0, 5.0]);
        assert_eq!(as_wrk_counts(&[10.0], 3.0), vec![10.0, 7.0, 4.0]);
        assert_eq!(as_wrk_counts(&[6.0], 3.0), vec![6.0]);
    }
}
