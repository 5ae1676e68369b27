//! The benchmark's child processes and where the CPU goes: spawning `jirasync
//! ingress` / `worker` children that die with the benchmark, asking them whether they
//! are ready and what they handled, and reading /proc for peak RSS and CPU time.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use jirasync::config::Settings;

fn binary() -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .and_then(|p| p.parent())
        .context("no target dir")?
        .join("jirasync");
    if !path.exists() {
        bail!(
            "{} is missing: run `cargo build --release` first (bench/run.sh does)",
            path.display()
        );
    }
    Ok(path)
}

/// A child `jirasync` process, killed when dropped (also when a row fails).
pub struct Kid(Child);

impl Kid {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn spawn(settings: &Settings, role: &str, extra: &[(&str, String)]) -> anyhow::Result<Kid> {
    let mut command = Command::new(binary()?);
    command
        .arg(role)
        .env("DATABASE_URL", &settings.database.url)
        .env("AMQP_URL", &settings.broker.url)
        .env("JIRASYNC_QUEUE_PREFIX", &settings.broker.queue_prefix)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    for (k, v) in extra {
        command.env(k, v);
    }
    Ok(Kid(command.spawn()?))
}

/// Waits until `/readyz` on `port` answers 200 (the ingress's port, or a worker's
/// `JIRASYNC_METRICS_LISTEN`).
pub async fn wait_ready(client: &reqwest::Client, port: u16, what: &str) -> anyhow::Result<()> {
    let ready = Instant::now();
    while !matches!(client.get(format!("http://127.0.0.1:{port}/readyz")).send().await, Ok(r) if r.status() == 200)
    {
        if ready.elapsed() > Duration::from_secs(20) {
            bail!("{what} did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// The worker's `jirasync_messages_total` of message type `kind` (from its
/// `JIRASYNC_METRICS_LISTEN` on `port`), by outcome; empty while it is not answering.
pub async fn worker_counts(client: &reqwest::Client, port: u16, kind: &str) -> Vec<(String, f64)> {
    let Some(Scrape(text)) = worker_scrape(client, port).await else {
        return Vec::new();
    };
    let wanted = format!("type=\"{kind}\"");
    text.lines()
        .filter_map(|line| {
            let (labels, value) = line
                .strip_prefix("jirasync_messages_total{")?
                .rsplit_once("} ")?;
            if !labels.split(',').any(|label| label == wanted) {
                return None;
            }
            let outcome = labels
                .split(',')
                .find_map(|label| label.strip_prefix("outcome=\""))?
                .trim_end_matches('"');
            Some((outcome.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// A worker's `/metrics`, read once.
pub struct Scrape(String);

/// The worker's `/metrics` (its `JIRASYNC_METRICS_LISTEN` on `port`); `None`
/// while it is not answering.
pub async fn worker_scrape(client: &reqwest::Client, port: u16) -> Option<Scrape> {
    let response = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .ok()?;
    response.text().await.ok().map(Scrape)
}

impl Scrape {
    /// The value of `series` (a name, with its labels as the worker writes
    /// them); `None` when the worker never wrote it.
    fn value(&self, series: &str) -> Option<f64> {
        let wanted = format!("{series} ");
        self.0
            .lines()
            .find_map(|line| line.strip_prefix(wanted.as_str()))
            .and_then(|value| value.trim().parse().ok())
    }

    /// The counter `metric` (a name without labels).
    pub fn counter(&self, metric: &str) -> Option<f64> {
        self.value(metric)
    }

    /// The mean of the summary or histogram `metric` (a name, with its labels
    /// as the worker writes them, e.g. `name{type="…"}`): its `_sum` over its
    /// `_count`; `None` when it was never recorded.
    pub fn mean(&self, metric: &str) -> Option<f64> {
        let (name, labels) = metric.split_at(metric.find('{').unwrap_or(metric.len()));
        let sum = self.value(&format!("{name}_sum{labels}"))?;
        let count = self.value(&format!("{name}_count{labels}"))?;
        (count > 0.0).then(|| sum / count)
    }
}

pub fn peak_rss_mib(child: &Kid) -> f64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time (user + system) used so far, in seconds, by the processes of this
/// machine that `wanted` picks by (pid, owner uid); Linux /proc only.
pub fn cpu_seconds(wanted: impl Fn(u32, u32) -> bool) -> f64 {
    use std::os::unix::fs::MetadataExt;
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let mut ticks = 0u64;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        if !wanted(pid, meta.uid()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command (which may hold spaces) start at its ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
        // utime, stime, cutime, cstime: fields 14 to 17, i.e. 11 to 14 after the
        // state. The children's times count the Postgres backends that exited.
        for i in [11, 12, 13, 14] {
            ticks += fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    ticks as f64 / ticks_per_second
}

pub fn uid_of(user: &str) -> Option<u32> {
    let out = Command::new("id").args(["-u", user]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Busy and total CPU time of the whole machine so far (/proc/stat), in ticks.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let values: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// A named CPU counter (seconds so far).
pub type CpuCounter = (&'static str, Box<dyn Fn() -> f64>);

/// The CPU of the processes `pids`, as `name`.
pub fn pids_cpu(name: &'static str, pids: Vec<u32>) -> CpuCounter {
    (
        name,
        Box::new(move || cpu_seconds(|pid, _| pids.contains(&pid))),
    )
}

/// Where the CPU went during one measurement: per process group, and how busy the
/// machine was. `groups` name CPU counters read before and after.
pub struct CpuUse {
    groups: Vec<CpuCounter>,
    start: Vec<f64>,
    machine: (u64, u64),
}

impl CpuUse {
    pub fn start(groups: Vec<CpuCounter>) -> Self {
        let start = groups.iter().map(|(_, read)| read()).collect();
        Self {
            groups,
            start,
            machine: machine_ticks(),
        }
    }

    /// "name X ms, …; machine busy N %" per 1,000 messages.
    pub fn report(&self, messages: usize) -> String {
        let (busy, total) = machine_ticks();
        let per_thousand = 1000.0 / messages as f64;
        let parts: Vec<String> = self
            .groups
            .iter()
            .zip(&self.start)
            .map(|((name, read), start)| {
                format!("{name} {:.0}", (read() - start) * 1000.0 * per_thousand)
            })
            .collect();
        let busy = (busy - self.machine.0) as f64 / (total - self.machine.1).max(1) as f64;
        format!(
            "{} ms; machine busy {:.0} %",
            parts.join(", "),
            busy * 100.0
        )
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
