//! Logging and metrics set-up: a tracing subscriber (text or JSON, to stderr) and
//! the process-wide Prometheus recorder that `/metrics` renders.
//!
//! Two rules hold whatever `RUST_LOG` says (docs/reference.md §2): libraries
//! log at `info` at most unless `JIRASYNC_UNSAFE_DEPENDENCY_LOGS=1` (their debug
//! lines carry SQL parameters, AMQP frames, headers: emails and tokens), and
//! text logs print control characters escaped ([`text`]), so a field that came
//! from outside cannot forge a line or drive a terminal.

mod text;

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::filter::{FilterExt as _, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _, Registry, fmt};

use crate::config::{LogFormat, LogSettings};

pub use text::{EscapedFields, escape_control};

/// The log targets that may log below `info` while libraries are capped:
/// jirasync's own, whose lines never carry a secret or an email.
const OURS: &str = "jirasync";

/// The libraries known to log secrets or personal data below `info` (named in
/// docs/reference.md §2); the cap covers every library, these included.
pub const CAPPED: &[&str] = &[
    "tokio_postgres",
    "postgres_protocol",
    "deadpool_postgres",
    "lapin",
    "amq_protocol",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "tower_http",
    "axum",
];

/// What `RUST_LOG` may enable on top of its own filter: everything when
/// `unlocked`, else jirasync's own targets at any level and every other
/// target (the libraries) at `info` at most.
pub fn dependency_cap(unlocked: bool) -> Targets {
    if unlocked {
        Targets::new().with_default(LevelFilter::TRACE)
    } else {
        Targets::new()
            .with_default(LevelFilter::INFO)
            .with_target(OURS, LevelFilter::TRACE)
    }
}

/// Installs the global tracing subscriber. Call once, from `main`.
pub fn init_tracing(settings: &LogSettings) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&settings.filter)
        .map_err(|e| anyhow::anyhow!("invalid log filter (RUST_LOG) {:?}: {e}", settings.filter))?;
    let filter = filter.and(dependency_cap(settings.unsafe_dependency_logs));
    let layer = fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let layer = match settings.format {
        LogFormat::Text => layer.fmt_fields(EscapedFields).with_filter(filter).boxed(),
        LogFormat::Json => layer.json().flatten_event(true).with_filter(filter).boxed(),
    };
    Registry::default()
        .with(layer)
        .try_init()
        .map_err(|e| anyhow::anyhow!("failed to install the log subscriber: {e}"))?;
    if settings.unsafe_dependency_logs {
        tracing::warn!(
            "JIRASYNC_UNSAFE_DEPENDENCY_LOGS=1: RUST_LOG may raise the log levels of libraries, \
             whose debug lines carry SQL parameters (emails), AMQP frames and HTTP headers \
             (tokens, secrets); unset it once done debugging"
        );
    }
    Ok(())
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus handle; installs the recorder on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        // Latency buckets from 1 ms to 30 s: publishes take milliseconds, handling
        // can wait on backoff for seconds.
        let buckets = [
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        // Webhooks per transaction (`JIRASYNC_WORKER_BATCH_SIZE`, 32 by default).
        // Buckets, not the summary an unbucketed histogram becomes: rendering a
        // summary merges and queries its sketches, 0.3 ms of CPU per scrape, which
        // a benchmark that asks `/metrics` every 20 ms paid per webhook
        // (docs/performance.md, "Worker CPU profile").
        let batch_sizes = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full("jirasync_webhook_batch_size".into()),
                    &batch_sizes,
                )
            })
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full("jirasync_outbound_batch_size".into()),
                    &batch_sizes,
                )
            })
            .expect("the bucket lists are not empty");
        let handle = match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder is installed (a test harness): keep our own, unexported.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        };
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            })
            .expect("a thread for metrics upkeep can be spawned at startup");
        handle
    })
}
