//! The worker's settings: concurrency, batching, its runtime threads,
//! reconciliation, the audit, the outbound sync's switch, the event-time skew and
//! how long a Jira outage is waited out.

use std::time::Duration;

use clap::Args;

use super::values::{self, parse_duration};

/// How a worker process runs.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Worker")]
pub struct WorkerSettings {
    /// Messages in flight per worker process, and its prefetch across both queues.
    #[arg(
        id = "worker_concurrency",
        long = "worker-concurrency",
        alias = "jirasync-worker-concurrency",
        value_name = "N",
        env = "JIRASYNC_WORKER_CONCURRENCY",
        default_value = "16",
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub concurrency: u16,

    /// Webhooks applied in one transaction at most: those ready together share
    /// one commit (a lone webhook is never held back); `1` turns batching off.
    #[arg(
        id = "worker_batch_size",
        long = "worker-batch-size",
        alias = "jirasync-worker-batch-size",
        value_name = "N",
        env = "JIRASYNC_WORKER_BATCH_SIZE",
        default_value = "32",
        value_parser = clap::value_parser!(u16).range(1..=1000)
    )]
    pub batch_size: u16,

    /// Runtime threads a `jirasync worker` process runs its tasks on. One keeps
    /// the tasks of a batch, its acks and its statements on one thread, without
    /// waking another for each; scale out with more processes. `jirasync run`,
    /// which serves the ingress too, keeps one per core.
    #[arg(
        id = "worker_threads",
        long = "worker-threads",
        value_name = "N",
        env = "JIRASYNC_WORKER_THREADS",
        default_value = "1",
        value_parser = clap::value_parser!(u16).range(1..=256)
    )]
    pub threads: u16,

    /// How often each integration is reconciled against Jira; `0` turns it off.
    #[arg(
        long,
        alias = "jirasync-reconcile-interval",
        value_name = "DURATION",
        env = "JIRASYNC_RECONCILE_INTERVAL",
        default_value = "10m",
        value_parser = parse_duration
    )]
    pub reconcile_interval: Duration,

    /// How long one delivery of a reconciliation searches before the rest of
    /// the run continues, from where it stopped, in a job of its own; `0`: one
    /// search (100 keys) per delivery.
    #[arg(
        long,
        value_name = "DURATION",
        env = "JIRASYNC_RECONCILE_SLICE",
        default_value = "2m",
        value_parser = parse_duration
    )]
    pub reconcile_slice: Duration,

    /// `on`: record every sync decision in sync_events (`jirasync explain` reads
    /// them); `off`: record none (the decisions are still counted in metrics).
    #[arg(
        long,
        alias = "jirasync-audit",
        value_name = "on|off",
        env = "JIRASYNC_AUDIT",
        default_value = "on",
        value_parser = values::parse_on_off
    )]
    pub audit: bool,

    /// `on`: the worker relays the changes Postgres captures to Jira and pushes
    /// them (docs/reference.md §10); `off`: it does neither, and the changes,
    /// still captured, wait for a worker that does.
    #[arg(
        long,
        value_name = "on|off",
        env = "JIRASYNC_OUTBOUND",
        default_value = "on",
        // A value (`--outbound off`), not a switch that can only turn it on.
        action = clap::ArgAction::Set,
        value_parser = values::parse_on_off
    )]
    pub outbound: bool,

    /// How far a webhook's event time may lie ahead of its receive time; a later
    /// one is replaced by the receive time (and audited).
    #[arg(
        long,
        value_name = "DURATION",
        env = "JIRASYNC_MAX_EVENT_SKEW",
        default_value = "5m",
        value_parser = parse_duration
    )]
    pub max_event_skew: Duration,

    /// How long a message waits out its Jira's outage (5xx, 429, timeouts, network
    /// errors) on the retry tiers before it is dead-lettered.
    #[arg(
        long,
        value_name = "DURATION",
        env = "JIRASYNC_JIRA_OUTAGE_MAX",
        default_value = "24h",
        value_parser = parse_duration
    )]
    pub jira_outage_max: Duration,
}
