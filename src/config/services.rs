//! What the processes connect to: Postgres (with the keys that seal stored
//! secrets), RabbitMQ and the retry tiers of its topology, and [`Services`], the
//! three together for the commands that need no more. `Debug` elides the URLs'
//! passwords.

use std::fmt;
use std::str::FromStr;

use clap::Args;

use super::values::{self, RetryDelays, redact_url};
use crate::secrets::{Keyring, SecretKey};

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
