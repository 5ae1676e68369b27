//! Typed configuration (docs/reference.md §2): every setting is an environment
//! variable and a flag, in groups by what they configure. Each command flattens
//! only the groups it uses into its arguments, so its `--help` lists only its own
//! flags; [`Settings`] holds them all (`jirasync run`, `jirasync config`). Parsed
//! once by clap, then passed down; nothing else reads the environment.

mod proxies;
mod values;

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::Args;

use crate::secrets::{Keyring, SecretKey};

pub use proxies::{Cidr, TrustedProxies};
pub use values::{
    LogFormat, RetryDelays, format_duration, parse_duration, redact_url, take_query_params,
};

/// Where Postgres is. `Debug` elides the URL's password.
#[derive(Clone, Args)]
#[command(next_help_heading = "Postgres")]
pub struct DatabaseSettings {
    /// Postgres connection URL.
    #[arg(
        id = "database_url",
        long = "database-url",
        value_name = "URL",
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/jirasync",
        hide_env_values = true
    )]
    pub url: String,

    /// 32 random bytes, base64 (`openssl rand -base64 32`): the key that seals
    /// stored secrets; unset: they are stored in plaintext, with a warning.
    #[arg(
        id = "secret_key",
        long = "secret-key",
        value_name = "BASE64",
        env = "JIRASYNC_SECRET_KEY",
        hide_env_values = true
    )]
    pub secret_key: Option<String>,

    /// The previous key, while rotating: it still opens what it sealed, until
    /// `jirasync secrets reencrypt` has moved everything to JIRASYNC_SECRET_KEY.
    #[arg(
        id = "secret_key_old",
        long = "secret-key-old",
        value_name = "BASE64",
        env = "JIRASYNC_SECRET_KEY_OLD",
        hide_env_values = true
    )]
    pub secret_key_old: Option<String>,
}

impl DatabaseSettings {
    /// The keys that seal and open stored secrets. Parsed here rather than by
    /// clap, whose errors would echo the value; an empty value counts as unset.
    pub fn keyring(&self) -> anyhow::Result<Keyring> {
        let parse = |name: &str, text: &Option<String>| -> anyhow::Result<Option<SecretKey>> {
            match text.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(text) => SecretKey::parse(text)
                    .map(Some)
                    .map_err(|why| anyhow::anyhow!("{name} {why}")),
            }
        };
        let current = parse("JIRASYNC_SECRET_KEY", &self.secret_key)?;
        let old = parse("JIRASYNC_SECRET_KEY_OLD", &self.secret_key_old)?;
        if current.is_none() && old.is_some() {
            anyhow::bail!(
                "JIRASYNC_SECRET_KEY_OLD is set without JIRASYNC_SECRET_KEY: set the new key \
                 as JIRASYNC_SECRET_KEY and the previous one as JIRASYNC_SECRET_KEY_OLD"
            );
        }
        Ok(Keyring::new(current, old))
    }
}

/// Where RabbitMQ is and the names under it. `Debug` elides the URL's password.
#[derive(Clone, Args)]
#[command(next_help_heading = "RabbitMQ")]
pub struct BrokerSettings {
    /// RabbitMQ connection URL.
    #[arg(
        id = "amqp_url",
        long = "amqp-url",
        value_name = "URL",
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub url: String,

    /// Prefix P of every exchange and queue name.
    #[arg(
        long,
        alias = "jirasync-queue-prefix",
        value_name = "PREFIX",
        env = "JIRASYNC_QUEUE_PREFIX",
        default_value = "jirasync",
        value_parser = values::parse_queue_prefix
    )]
    pub queue_prefix: String,

    /// Messages `P.webhooks` and `P.jobs` hold at most; a full queue refuses
    /// publishes (the ingress answers 503). 0: no cap.
    #[arg(
        long,
        value_name = "MESSAGES",
        env = "JIRASYNC_QUEUE_MAX_LENGTH",
        default_value = "1000000"
    )]
    pub queue_max_length: u64,
}

/// The retry tiers, part of the topology that every publisher declares.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "RabbitMQ")]
pub struct RetrySettings {
    /// Delay tiers of broker-level retries, comma separated (e.g. `5s,30s,2m`).
    #[arg(
        id = "retry_delays",
        long = "retry-delays",
        alias = "jirasync-retry-delays",
        value_name = "DELAYS",
        env = "JIRASYNC_RETRY_DELAYS",
        default_value = "5s,30s,2m,10m,30m",
        value_parser = RetryDelays::from_str
    )]
    pub delays: RetryDelays,
}

/// How Jira reaches the ingress.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Public URL")]
pub struct PublicSettings {
    /// How Jira reaches the ingress; used in webhook URLs and the OAuth callback.
    #[arg(
        id = "public_url",
        long = "public-url",
        alias = "jirasync-public-url",
        value_name = "URL",
        env = "JIRASYNC_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080",
        value_parser = values::parse_public_url
    )]
    pub url: String,
}

/// The ingress's HTTP listener.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Ingress")]
pub struct HttpSettings {
    /// Address the ingress listens on.
    #[arg(
        long,
        alias = "jirasync-listen",
        value_name = "ADDRESS",
        env = "JIRASYNC_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,

    /// Larger webhook bodies are refused with 413.
    #[arg(
        long,
        alias = "jirasync-max-body-bytes",
        value_name = "BYTES",
        env = "JIRASYNC_MAX_BODY_BYTES",
        default_value = "2097152",
        value_parser = values::parse_body_limit
    )]
    pub max_body_bytes: usize,

    /// Comma-separated CIDR blocks of the reverse proxies in front of the ingress,
    /// whose `X-Forwarded-For` names the client; unset: the header is ignored.
    #[arg(
        long,
        value_name = "CIDRS",
        env = "JIRASYNC_TRUSTED_PROXIES",
        default_value = "",
        hide_default_value = true,
        value_parser = TrustedProxies::from_str
    )]
    pub trusted_proxies: TrustedProxies,

    /// Open connections per client; one more closes that client's longest-idle
    /// connection.
    #[arg(
        long,
        value_name = "N",
        env = "JIRASYNC_CLIENT_MAX_CONNECTIONS",
        default_value = "128",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub client_max_connections: u32,

    /// Requests being handled per client; more get 429.
    #[arg(
        long,
        value_name = "N",
        env = "JIRASYNC_CLIENT_MAX_IN_FLIGHT",
        default_value = "64",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub client_max_in_flight: u32,

    /// Rejected webhook tokens per client and minute that make the client suspect.
    #[arg(
        long,
        value_name = "N",
        env = "JIRASYNC_CLIENT_MAX_REJECTS",
        default_value = "20",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub client_max_rejects: u32,
}

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

/// Where `/metrics` is served, apart from the port Jira posts to.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Metrics")]
pub struct MetricsSettings {
    /// Where /metrics, /healthz and /readyz are served, apart from the port Jira
    /// posts to; unset: a worker serves none, the ingress serves /metrics on its
    /// own port.
    #[arg(
        id = "metrics_listen",
        long = "metrics-listen",
        alias = "jirasync-metrics-listen",
        value_name = "ADDRESS",
        env = "JIRASYNC_METRICS_LISTEN"
    )]
    pub listen: Option<SocketAddr>,
}

/// Logging, for every command: given before or after the command's name.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Logging")]
pub struct LogSettings {
    /// Log format.
    #[arg(
        id = "log_format",
        long = "log-format",
        alias = "jirasync-log-format",
        value_name = "FORMAT",
        env = "JIRASYNC_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    pub format: LogFormat,

    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(
        id = "rust_log",
        long = "rust-log",
        alias = "log",
        value_name = "FILTER",
        env = "RUST_LOG",
        default_value = "info",
        global = true
    )]
    pub filter: String,

    /// `1`: RUST_LOG may raise the levels of libraries (tokio_postgres, lapin,
    /// hyper, reqwest, h2, rustls), whose debug logs carry SQL parameters, AMQP
    /// frames and tokens; otherwise they log at info at most.
    #[arg(
        long,
        value_name = "1|0",
        env = "JIRASYNC_UNSAFE_DEPENDENCY_LOGS",
        default_value = "0",
        hide_default_value = true,
        value_parser = values::parse_unlock,
        action = clap::ArgAction::Set,
        global = true
    )]
    pub unsafe_dependency_logs: bool,
}

/// Postgres and RabbitMQ with the topology's retry tiers: what `migrate`, the
/// commands that enqueue jobs and the worker connect to.
#[derive(Debug, Clone, Args)]
pub struct Services {
    /// Postgres.
    #[command(flatten)]
    pub database: DatabaseSettings,
    /// RabbitMQ.
    #[command(flatten)]
    pub broker: BrokerSettings,
    /// The retry tiers of the topology.
    #[command(flatten)]
    pub retries: RetrySettings,
}

/// Every setting of the service but logging, with the documented defaults: what
/// `jirasync run` uses and `jirasync config` prints.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Postgres.
    #[command(flatten)]
    pub database: DatabaseSettings,
    /// RabbitMQ.
    #[command(flatten)]
    pub broker: BrokerSettings,
    /// The retry tiers.
    #[command(flatten)]
    pub retries: RetrySettings,
    /// The public URL.
    #[command(flatten)]
    pub public: PublicSettings,
    /// The ingress's listener.
    #[command(flatten)]
    pub http: HttpSettings,
    /// The worker.
    #[command(flatten)]
    pub worker: WorkerSettings,
    /// The metrics listener.
    #[command(flatten)]
    pub metrics: MetricsSettings,
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key_id = |text: &Option<String>| {
            text.as_deref()
                .map(str::trim)
                .filter(|text| !text.is_empty())
                .map(|text| {
                    SecretKey::parse(text).map_or("(invalid)".to_owned(), |key| key.id().to_owned())
                })
        };
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url(&self.url))
            .field("secret_key_id", &key_id(&self.secret_key))
            .field("secret_key_old_id", &key_id(&self.secret_key_old))
            .finish()
    }
}

impl fmt::Debug for BrokerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerSettings")
            .field("url", &redact_url(&self.url))
            .field("queue_prefix", &self.queue_prefix)
            .finish()
    }
}

impl Settings {
    /// The Postgres and RabbitMQ settings.
    pub fn services(&self) -> Services {
        Services {
            database: self.database.clone(),
            broker: self.broker.clone(),
            retries: self.retries.clone(),
        }
    }

    /// The effective settings as JSON, with passwords elided (`jirasync config`).
    pub fn redacted_json(&self, log: &LogSettings) -> serde_json::Value {
        serde_json::json!({
            "database_url": redact_url(&self.database.url),
            "secret_key_id": match self.database.keyring() {
                Ok(keys) => keys.current_id().map(serde_json::Value::from),
                Err(error) => Some(format!("invalid: {error}").into()),
            },
            "amqp_url": redact_url(&self.broker.url),
            "queue_prefix": self.broker.queue_prefix,
            "listen": self.http.listen.to_string(),
            "public_url": self.public.url,
            "worker_concurrency": self.worker.concurrency,
            "worker_batch_size": self.worker.batch_size,
            "max_body_bytes": self.http.max_body_bytes,
            "trusted_proxies": self.http.trusted_proxies.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "client_max_connections": self.http.client_max_connections,
            "client_max_in_flight": self.http.client_max_in_flight,
            "client_max_rejects": self.http.client_max_rejects,
            "max_event_skew": format_duration(self.worker.max_event_skew),
            "jira_outage_max": format_duration(self.worker.jira_outage_max),
            "retry_delays": self.retries.delays.0.iter().map(|d| format_duration(*d)).collect::<Vec<_>>(),
            "reconcile_interval": format_duration(self.worker.reconcile_interval),
            "audit": if self.worker.audit { "on" } else { "off" },
            "metrics_listen": self.metrics.listen.map(|a| a.to_string()),
            "log_format": match log.format { LogFormat::Text => "text", LogFormat::Json => "json" },
            "rust_log": log.filter,
            "unsafe_dependency_logs": log.unsafe_dependency_logs,
        })
    }

    /// The settings that the command line would give with no flags (the
    /// environment still counts).
    pub fn defaults() -> Self {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            settings: Settings,
        }
        let only: Only =
            clap::Parser::try_parse_from(["jirasync"]).expect("the default settings are valid");
        only.settings
    }
}

/// Parses `--wait`-style whole seconds.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse()
        .map(Duration::from_secs)
        .map_err(|_| format!("{s:?} is not a whole number of seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_the_settings_elides_the_url_passwords() {
        let mut settings = Settings::defaults();
        settings.database.url = "postgres://app:db-pa55@db:5432/jirasync".into();
        settings.broker.url = "amqp://app:mq-pa55@mq:5672/%2f".into();
        let debug = format!("{settings:?}");
        for password in ["db-pa55", "mq-pa55"] {
            assert!(!debug.contains(password), "{debug}");
        }
        assert!(
            debug.contains("postgres://app:***@db:5432/jirasync"),
            "{debug}"
        );
        assert!(debug.contains("queue_prefix"), "{debug}");
    }
}
