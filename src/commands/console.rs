//! `jirasync console`: serves the operator console alone (docs/reference.md §12),
//! against Postgres and RabbitMQ, on `JIRASYNC_CONSOLE_LISTEN`; with
//! `--hash-password`, prints the Argon2id hash of the password read from stdin
//! for `JIRASYNC_CONSOLE_PASSWORD_HASH` instead.

use std::io::Read;
use std::str::FromStr;

use anyhow::Context;
use argon2::password_hash::PasswordHasher;

use crate::config::{
    BrokerSettings, ConsoleListen, ConsoleRefusal, ConsoleSettings, DatabaseSettings,
    MIN_PASSWORD_CHARS, RetrySettings, TrustedProxies,
};
use crate::shutdown::Shutdown;

/// The arguments of `console`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Read a password on stdin, print its Argon2id hash (for
    /// JIRASYNC_CONSOLE_PASSWORD_HASH) and exit.
    #[arg(long)]
    pub hash_password: bool,
    /// The console.
    #[command(flatten)]
    pub console: ConsoleSettings,
    /// Comma-separated CIDR blocks of the reverse proxies in front of the console,
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
    /// Postgres.
    #[command(flatten)]
    pub database: DatabaseSettings,
    /// RabbitMQ.
    #[command(flatten)]
    pub broker: BrokerSettings,
    /// The retry tiers (their queues are shown).
    #[command(flatten)]
    pub retries: RetrySettings,
}

/// Serves the console until `shutdown`, or prints a password's hash.
pub async fn run(args: Args, shutdown: Shutdown) -> anyhow::Result<()> {
    if args.hash_password {
        return hash_password();
    }
    let ConsoleListen::At(address) = args.console.listen else {
        return Err(ConsoleRefusal::Off.into());
    };
    let auth = args.console.auth(address)?;
    let config = crate::console::Config {
        database: args.database,
        broker: args.broker,
        retries: args.retries,
        trusted_proxies: args.trusted_proxies,
        auth,
    };
    crate::console::run(config, address, shutdown).await
}

/// Reads the password (one line) on stdin and prints its Argon2id PHC string.
fn hash_password() -> anyhow::Result<()> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("failed to read the password on stdin")?;
    let password = input.strip_suffix('\n').unwrap_or(&input);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.chars().count() < MIN_PASSWORD_CHARS {
        anyhow::bail!("the password on stdin is shorter than {MIN_PASSWORD_CHARS} characters");
    }
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|error| anyhow::anyhow!("failed to hash the password: {error}"))?;
    println!("{hash}");
    Ok(())
}
