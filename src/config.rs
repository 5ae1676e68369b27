//! Typed configuration (CONTRACT §2): every setting is an environment variable and
//! a flag. Parsed once by `cli`, then passed down; nothing else reads the environment.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// Every setting of the service, with the contract's defaults. `Debug` elides the
/// passwords of the database and broker URLs.
#[derive(Clone, Args)]
pub struct Settings {
    /// Postgres connection URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/jirasync",
        hide_env_values = true,
        global = true
    )]
    pub database_url: String,

    /// RabbitMQ connection URL.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true,
        hide_default_value = true,
        global = true
    )]
    pub amqp_url: String,

    /// Prefix P of every exchange and queue name.
    #[arg(
        long,
        alias = "jirasync-queue-prefix",
        env = "JIRASYNC_QUEUE_PREFIX",
        default_value = "jirasync",
        value_parser = parse_queue_prefix,
        global = true
    )]
    pub queue_prefix: String,

    /// Address the ingress listens on.
    #[arg(
        long,
        alias = "jirasync-listen",
        env = "JIRASYNC_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,

    /// How Jira reaches the ingress; used in webhook URLs and the OAuth callback.
    #[arg(
        long,
        alias = "jirasync-public-url",
        env = "JIRASYNC_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080",
        value_parser = parse_public_url,
        global = true
    )]
    pub public_url: String,

    /// Messages in flight per worker process (also its prefetch).
    #[arg(
        long,
        alias = "jirasync-worker-concurrency",
        env = "JIRASYNC_WORKER_CONCURRENCY",
        default_value = "16",
        value_parser = clap::value_parser!(u16).range(1..),
        global = true
    )]
    pub worker_concurrency: u16,

    /// Larger webhook bodies are refused with 413.
    #[arg(
        long,
        alias = "jirasync-max-body-bytes",
        env = "JIRASYNC_MAX_BODY_BYTES",
        default_value = "2097152",
        value_parser = parse_body_limit,
        global = true
    )]
    pub max_body_bytes: usize,

    /// Delay tiers of broker-level retries, comma separated (e.g. `5s,30s,2m`).
    #[arg(
        long,
        alias = "jirasync-retry-delays",
        env = "JIRASYNC_RETRY_DELAYS",
        default_value = "5s,30s,2m,10m,30m",
        value_parser = RetryDelays::from_str,
        global = true
    )]
    pub retry_delays: RetryDelays,

    /// How often each integration is reconciled against Jira; `0` turns it off.
    #[arg(
        long,
        alias = "jirasync-reconcile-interval",
        env = "JIRASYNC_RECONCILE_INTERVAL",
        default_value = "10m",
        value_parser = parse_duration,
        global = true
    )]
    pub reconcile_interval: Duration,

    /// Where a worker serves /metrics, /healthz and /readyz; unset: no HTTP listener.
    #[arg(
        long,
        alias = "jirasync-metrics-listen",
        env = "JIRASYNC_METRICS_LISTEN",
        global = true
    )]
    pub metrics_listen: Option<SocketAddr>,

    /// Log format.
    #[arg(
        long,
        alias = "jirasync-log-format",
        env = "JIRASYNC_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,

    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(
        long,
        alias = "log",
        env = "RUST_LOG",
        default_value = "info",
        global = true
    )]
    pub rust_log: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The delay tiers of broker-level retries, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryDelays(pub Vec<Duration>);

impl FromStr for RetryDelays {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() || s == "none" {
            return Ok(Self(Vec::new()));
        }
        let mut delays = Vec::new();
        for part in s.split(',') {
            let delay = parse_duration(part)?;
            if delay.is_zero() {
                return Err(format!("retry delay {part:?} must be greater than zero"));
            }
            // x-message-ttl is an unsigned 32-bit count of milliseconds.
            if delay.as_millis() > u128::from(u32::MAX) {
                return Err(format!(
                    "retry delay {part:?} is longer than RabbitMQ's TTL limit (about 49 days)"
                ));
            }
            if delays.contains(&delay) {
                return Err(format!("retry delay {part:?} appears twice"));
            }
            delays.push(delay);
        }
        if delays.len() > 20 {
            return Err("at most 20 retry delay tiers are supported".into());
        }
        Ok(Self(delays))
    }
}

/// Parses `500ms`, `5s`, `2m`, `1h`, `1d` or `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("duration {s:?} needs a unit: ms, s, m, h or d (e.g. 30s)"))?;
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("duration {s:?} must start with a whole number (e.g. 30s)"))?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => {
            return Err(format!(
                "duration {s:?} has unknown unit {unit:?}; use ms, s, m, h or d"
            ));
        }
    }
    .ok_or_else(|| format!("duration {s:?} is too long"))?;
    Ok(Duration::from_millis(ms))
}

/// Formats a duration the short way used in retry queue names (`30s`, `2m`, `1h`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0".into(),
        ms if ms % 86_400_000 == 0 => format!("{}d", ms / 86_400_000),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

fn parse_queue_prefix(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 200
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "queue prefix {s:?} must be 1-200 characters of letters, digits, '_', '-', '.' or ':'"
        ))
    }
}

fn parse_public_url(s: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(s).map_err(|e| format!("public URL {s:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "public URL {s:?} must be an http:// or https:// URL with a host"
        ));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

fn parse_body_limit(s: &str) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("body limit {s:?} must be a whole number of bytes"))?;
    if n == 0 {
        return Err("body limit must be at least 1 byte".into());
    }
    Ok(n)
}

/// Replaces the password of a URL with `***`, for error messages and logs.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                format!("{}***{}", &url[..scheme_end + 3], &url[at..])
            }
            _ => url.to_owned(),
        },
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Written out so that a new field cannot leak by default: add it here.
        f.debug_struct("Settings")
            .field("database_url", &redact_url(&self.database_url))
            .field("amqp_url", &redact_url(&self.amqp_url))
            .field("queue_prefix", &self.queue_prefix)
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("worker_concurrency", &self.worker_concurrency)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("retry_delays", &self.retry_delays)
            .field("reconcile_interval", &self.reconcile_interval)
            .field("metrics_listen", &self.metrics_listen)
            .field("log_format", &self.log_format)
            .field("rust_log", &self.rust_log)
            .finish()
    }
}

impl Settings {
    /// The effective settings as JSON, with passwords elided (`jirasync config`).
    pub fn redacted_json(&self) -> serde_json::Value {
        serde_json::json!({
            "database_url": redact_url(&self.database_url),
            "amqp_url": redact_url(&self.amqp_url),
            "queue_prefix": self.queue_prefix,
            "listen": self.listen.to_string(),
            "public_url": self.public_url,
            "worker_concurrency": self.worker_concurrency,
            "max_body_bytes": self.max_body_bytes,
            "retry_delays": self.retry_delays.0.iter().map(|d| format_duration(*d)).collect::<Vec<_>>(),
            "reconcile_interval": format_duration(self.reconcile_interval),
            "metrics_listen": self.metrics_listen.map(|a| a.to_string()),
            "log_format": match self.log_format { LogFormat::Text => "text", LogFormat::Json => "json" },
            "rust_log": self.rust_log,
        })
    }

    /// The settings that the command line would give with no flags and no environment.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_every_unit() {
        for (input, ms) in [
            ("0", 0),
            ("250ms", 250),
            ("5s", 5_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("1d", 86_400_000),
        ] {
            assert_eq!(
                parse_duration(input),
                Ok(Duration::from_millis(ms)),
                "{input}"
            );
        }
    }

    #[test]
    fn durations_without_unit_or_number_are_refused_with_a_reason() {
        for input in ["5", "s", "5x", "-1s", "", "1.5s"] {
            let err = parse_duration(input).expect_err(input);
            assert!(err.contains("duration"), "{input}: {err}");
        }
    }

    #[test]
    fn retry_delays_keep_their_order_and_refuse_zero_and_repeats() {
        let delays: RetryDelays = "5s,30s,2m".parse().expect("valid");
        assert_eq!(
            delays.0,
            vec![
                Duration::from_secs(5),
                Duration::from_secs(30),
                Duration::from_secs(120)
            ]
        );
        assert!("5s,0".parse::<RetryDelays>().is_err());
        assert!("5s,5s".parse::<RetryDelays>().is_err());
        assert_eq!("".parse::<RetryDelays>(), Ok(RetryDelays(vec![])));
    }

    #[test]
    fn durations_format_to_their_shortest_unit() {
        for (ms, text) in [
            (5_000, "5s"),
            (120_000, "2m"),
            (1_500, "1500ms"),
            (3_600_000, "1h"),
        ] {
            assert_eq!(format_duration(Duration::from_millis(ms)), text);
        }
    }

    #[test]
    fn redacting_a_url_hides_only_the_password() {
        assert_eq!(
            redact_url("amqp://guest:secret@host:5672/%2f"),
            "amqp://guest:***@host:5672/%2f"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/db"),
            "postgres://postgres@127.0.0.1:5432/db"
        );
    }

    #[test]
    fn debug_of_the_settings_elides_the_url_passwords() {
        let mut settings = Settings::defaults();
        settings.database_url = "postgres://app:db-pa55@db:5432/jirasync".into();
        settings.amqp_url = "amqp://app:mq-pa55@mq:5672/%2f".into();
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
