//! Typed configuration (docs/reference.md §2): every setting is an environment
//! variable and a flag, in groups by what they configure. Each command flattens
//! only the groups it uses into its arguments, so its `--help` lists only its own
//! flags; [`Settings`] holds them all (`jirasync run`, `jirasync config`). Parsed
//! once by clap, then passed down; nothing else reads the environment. The groups
//! live by what they configure (`services.rs`, `ingress.rs`, `worker.rs`; metrics
//! and logging here), their values' parsers in `values.rs` and `proxies.rs`.

mod cloud;
mod console;
mod ingress;
mod proxies;
mod services;
mod values;
mod worker;

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

pub use cloud::{AtlassianSettings, secure_url, token_url};
pub use console::{
    ConsoleAuth, ConsoleListen, ConsoleRefusal, ConsoleSettings, MIN_API_TOKEN_CHARS,
    MIN_PASSWORD_CHARS, PasswordCheck,
};
pub use ingress::{HttpSettings, PublicSettings};
pub use proxies::{Cidr, TrustedProxies};
pub use services::{BrokerSettings, DatabaseSettings, RetrySettings, Services};
pub use values::{
    LogFormat, RetryDelays, format_duration, parse_duration, redact_url, take_query_params,
};
pub use worker::WorkerSettings;

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
    /// The operator console.
    #[command(flatten)]
    pub console: ConsoleSettings,
    /// Atlassian's servers, for Jira Cloud.
    #[command(flatten)]
    pub atlassian: AtlassianSettings,
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
        let mut json = serde_json::json!({
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
            "worker_threads": self.worker.threads,
            "max_body_bytes": self.http.max_body_bytes,
            "trusted_proxies": self.http.trusted_proxies.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "client_max_connections": self.http.client_max_connections,
            "client_max_in_flight": self.http.client_max_in_flight,
            "client_max_rejects": self.http.client_max_rejects,
            "max_event_skew": format_duration(self.worker.max_event_skew),
            "jira_outage_max": format_duration(self.worker.jira_outage_max),
            "retry_delays": self.retries.delays.0.iter().map(|d| format_duration(*d)).collect::<Vec<_>>(),
            "reconcile_interval": format_duration(self.worker.reconcile_interval),
            "reconcile_slice": format_duration(self.worker.reconcile_slice),
            "audit": if self.worker.audit { "on" } else { "off" },
            "outbound": if self.worker.outbound { "on" } else { "off" },
            "metrics_listen": self.metrics.listen.map(|a| a.to_string()),
            "log_format": match log.format { LogFormat::Text => "text", LogFormat::Json => "json" },
            "rust_log": log.filter,
            "unsafe_dependency_logs": log.unsafe_dependency_logs,
            "atlassian_auth_url": self.atlassian.auth_url,
            "atlassian_api_url": self.atlassian.api_url,
            "cloud_webhook_refresh_interval": format_duration(self.atlassian.webhook_refresh_interval),
            "cloud_webhook_jql": self.atlassian.webhook_jql,
        });
        if let (Some(object), serde_json::Value::Object(console)) =
            (json.as_object_mut(), self.console.redacted_json())
        {
            object.extend(console);
        }
        json
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
