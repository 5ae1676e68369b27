//! `jirasync integration rotate-webhook-secret ID [--overlap DURATION]`: gives an
//! integration a fresh webhook secret (so a fresh webhook URL) and, where Jira signs
//! deliveries, a fresh HMAC secret; the replaced ones stay accepted for the overlap.
//! Then points the webhook jirasync registered in Jira at them, or prints what to
//! change by hand (docs/reference.md §1, §6.3; README "Rotating a webhook secret").

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::config::{DatabaseSettings, PublicSettings, parse_duration};
use crate::integration::rotation::{self, RotateError};
use crate::integration::webhook_registration::{self, UpdateError};

/// The arguments of `integration rotate-webhook-secret`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Integration id.
    pub id: i64,
    /// How long the previous URL and HMAC secret stay accepted (e.g. 24h, 30m; 0: not at all).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    pub overlap: Duration,
    /// Postgres.
    #[command(flatten)]
    pub database: DatabaseSettings,
    /// The public URL the webhook URL is built on.
    #[command(flatten)]
    pub public: PublicSettings,
}

/// Rotates, updates Jira, prints `{"id","webhook_url","previous_valid_until"}`
/// (and `"manual_webhook":{"url","secret"}` with a line on stderr saying what to
/// do when Jira could not be updated). Exits 0 once the new secrets are stored.
pub async fn run(args: &Args) -> anyhow::Result<()> {
    let pool = super::pool(&args.database).await?;
    let rotated = {
        let mut client = super::connection(&pool).await?;
        let tx = client
            .transaction()
            .await
            .context("failed to begin a transaction")?;
        let rotated = rotation::rotate(&tx, pool.keys(), args.id, args.overlap)
            .await
            .map_err(|error| match error {
                RotateError::NotFound(_) | RotateError::OverlapTooLong => anyhow::Error::new(error),
                RotateError::Store(error) => {
                    anyhow::Error::new(error).context("failed to rotate the webhook secret")
                }
            })?;
        tx.commit()
            .await
            .context("failed to commit the rotated webhook secret")?;
        rotated
    };
    for unreadable in &rotated.dropped {
        eprintln!("{unreadable}; it was replaced without an overlap");
    }
    let integration = &rotated.integration;
    let webhook_url = integration.webhook_url(&args.public.url)?;
    let mut printed = json!({
        "id": integration.id,
        "webhook_url": webhook_url,
        "previous_valid_until": rotated.previous_valid_until,
    });
    match webhook_registration::update(&pool, integration, &args.public.url).await {
        Ok(api) => eprintln!(
            "the webhook registered in Jira ({}) now posts to the new URL",
            api.path()
        ),
        Err(error) => {
            let secret = integration.metadata.webhook_hmac_secret.as_deref();
            printed["manual_webhook"] = json!({ "url": webhook_url, "secret": secret });
            eprintln!(
                "{}",
                by_hand(&error, secret.is_some(), rotated.previous_valid_until)
            );
        }
    }
    println!("{printed}");
    Ok(())
}

/// The one line that says why Jira was not updated and what to change there.
fn by_hand(error: &UpdateError, signed: bool, until: Option<DateTime<Utc>>) -> String {
    let secret = if signed {
        " and its Secret to manual_webhook.secret"
    } else {
        ""
    };
    let deadline = match until {
        Some(until) => format!(
            "before {}, when the old URL stops working",
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        None => "now: the old URL no longer works".to_owned(),
    };
    format!(
        "the webhook in Jira was not updated ({error:#}): in Jira, Administration > System > \
         WebHooks, edit the webhook that posts to jirasync and set its URL to \
         manual_webhook.url{secret}, {deadline}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advice_names_what_to_change_and_by_when() {
        let until = DateTime::parse_from_rfc3339("2030-01-02T03:04:05Z")
            .expect("a time")
            .with_timezone(&Utc);
        let line = by_hand(&UpdateError::NotRecorded, true, Some(until));
        for expected in [
            "no record of registering",
            "manual_webhook.url and its Secret to manual_webhook.secret",
            "before 2030-01-02T03:04:05Z",
        ] {
            assert!(line.contains(expected), "{expected:?} in {line}");
        }
        let unsigned = by_hand(&UpdateError::NoCredentials(3), false, None);
        assert!(!unsigned.contains("Secret"), "{unsigned}");
        assert!(unsigned.contains("no longer works"), "{unsigned}");
    }
}
