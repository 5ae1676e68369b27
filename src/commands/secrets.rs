//! `jirasync secrets reencrypt`: seals every stored secret with the current
//! `JIRASYNC_SECRET_KEY`, bound to its column and row — plaintext written before a
//! key was set, values sealed with `JIRASYNC_SECRET_KEY_OLD` while rotating, and
//! values an earlier version bound to their column only — clears what ended OAuth
//! sessions still hold, and records that everything is sealed once nothing is left
//! (from then on plaintext is refused). Idempotent; safe while workers run.

use anyhow::Context;
use serde_json::json;

use crate::config::DatabaseSettings;
use crate::db::{oauth_sessions, sealed_columns};

/// `jirasync secrets …`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Seal every stored secret with JIRASYNC_SECRET_KEY (plaintext, or sealed
    /// with JIRASYNC_SECRET_KEY_OLD); idempotent.
    Reencrypt(Args),
}

/// The arguments of `secrets reencrypt`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Postgres and the keys.
    #[command(flatten)]
    pub database: DatabaseSettings,
}

/// Runs the subcommand.
pub async fn run(command: &Command) -> anyhow::Result<()> {
    match command {
        Command::Reencrypt(args) => reencrypt(args).await,
    }
}

/// Re-encrypts, printing each column's tally on stderr as it goes and a JSON
/// summary on stdout; an error when some value no configured key opens.
async fn reencrypt(args: &Args) -> anyhow::Result<()> {
    let (client, keys) = super::database(&args.database).await?;
    let Some(key_id) = keys.current_id() else {
        anyhow::bail!(
            "JIRASYNC_SECRET_KEY is not set: there is no key to encrypt with; make one with \
             `openssl rand -base64 32`, set it for every process, then run this again"
        );
    };
    let cleared = oauth_sessions::clear_ended(&client)
        .await
        .context("failed to clear the secrets of installed OAuth sessions")?;
    eprintln!("oauth_sessions: cleared the secrets of {cleared} installed session(s)");
    let done = sealed_columns::reencrypt(&client, &keys, |tally| {
        eprintln!(
            "{}: {} sealed, {} already current, {} changed meanwhile, {} unreadable",
            tally.column,
            tally.sealed,
            tally.current,
            tally.changed,
            tally.unreadable.len()
        );
    })
    .await
    .context("failed to re-encrypt the stored secrets")?;
    let tallies = &done.tallies;
    let sum = |count: fn(&sealed_columns::Tally) -> u64| tallies.iter().map(count).sum::<u64>();
    let unreadable: Vec<String> = tallies
        .iter()
        .flat_map(|tally| tally.unreadable.iter().map(ToString::to_string))
        .collect();
    println!(
        "{}",
        json!({
            "key_id": key_id,
            "sealed": sum(|t| t.sealed),
            "already_current": sum(|t| t.current),
            "changed_meanwhile": sum(|t| t.changed),
            "unreadable": unreadable.len(),
            "sessions_cleared": cleared,
            "recorded_sealed": done.recorded,
        })
    );
    if !unreadable.is_empty() {
        anyhow::bail!(
            "{} stored secret(s) did not open and were left as they are:\n  {}",
            unreadable.len(),
            unreadable.join("\n  ")
        );
    }
    if done.recorded {
        eprintln!(
            "every secret is sealed with key {key_id}, bound to its row: recorded; from now on \
             plaintext in a sealed column is refused"
        );
    } else {
        eprintln!(
            "{} value(s) were written meanwhile without the key: not recorded as all sealed; \
             give every process JIRASYNC_SECRET_KEY and run this again",
            done.remaining
        );
    }
    Ok(())
}
