//! `jirasync integration list [--json]` and `jirasync integration status ID
//! [--json]`: how each integration connects — auth method, state (`active`,
//! `needs_reauth`), when its access token expires and was last refreshed, the Jira
//! version seen, the webhook registered and whether it is HMAC-signed; for Jira
//! Cloud also the site, its cloudId and the webhook's kind and expiry (a warning
//! under 7 days). Never a token or secret.

use anyhow::Context;
use serde_json::{Value, json};

use crate::config::DatabaseSettings;
use chrono::{DateTime, TimeDelta, Utc};

use crate::integration::{self, Credentials, Integration, Provider, Stored};

/// The arguments of `integration list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// One JSON object per integration.
    #[arg(long)]
    pub json: bool,
    /// Postgres.
    #[command(flatten)]
    pub database: DatabaseSettings,
}

/// The arguments of `integration status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Integration id.
    pub id: i64,
    /// JSON instead of lines.
    #[arg(long)]
    pub json: bool,
    /// Postgres.
    #[command(flatten)]
    pub database: DatabaseSettings,
}

/// Prints every integration.
pub async fn list(args: &ListArgs) -> anyhow::Result<()> {
    let (client, keys) = super::database(&args.database).await?;
    let all = integration::all(&client, &keys)
        .await
        .context("failed to list the integrations")?;
    let now = Utc::now();
    for (integration, _) in &all {
        warn_expiry(integration, now);
    }
    if args.json {
        for (integration, stored) in &all {
            println!("{}", summary(integration, stored.as_ref()));
        }
        return Ok(());
    }
    if all.is_empty() {
        println!(
            "no integration yet: connect a Jira Data Center with `jirasync oauth start`, a Jira Cloud site with `jirasync integration add --cloud`"
        );
        return Ok(());
    }
    println!(
        "{:>5}  {:<11}  {:<40}  {:<18}  {:<13}  {:<25}  webhook",
        "id", "provider", "external id", "auth", "state", "token expires"
    );
    for (integration, stored) in &all {
        let s = summary(integration, stored.as_ref());
        let text = |key: &str| s[key].as_str().unwrap_or("-").to_owned();
        let webhook = match integration.provider {
            Provider::Server => s["webhook"]["path"].as_str().map(str::to_owned),
            Provider::Cloud => s["webhook"]["kind"]
                .as_str()
                .map(|kind| format!("{kind} {}", s["site"].as_str().unwrap_or_default())),
        };
        println!(
            "{:>5}  {:<11}  {:<40}  {:<18}  {:<13}  {:<25}  {}",
            integration.id,
            integration.provider.as_str(),
            integration.external_id,
            text("auth_method"),
            text("state"),
            text("access_token_expires_at"),
            webhook.as_deref().unwrap_or("not registered by jirasync"),
        );
    }
    Ok(())
}

/// Prints one integration.
pub async fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let (client, keys) = super::database(&args.database).await?;
    let integration = integration::by_id(&client, &keys, args.id)
        .await
        .context("failed to look up the integration")?
        .with_context(|| format!("no integration has id {}", args.id))?;
    let stored = integration::credentials(&client, &keys, args.id)
        .await
        .context("failed to read the integration's credentials")?;
    warn_expiry(&integration, Utc::now());
    let summary = summary(&integration, stored.as_ref());
    if args.json {
        println!("{summary:#}");
        return Ok(());
    }
    let object = summary.as_object().map(|o| o.iter()).into_iter().flatten();
    for (key, value) in object {
        let value = match value {
            Value::String(text) => text.clone(),
            Value::Null => "-".to_owned(),
            other => other.to_string(),
        };
        println!("{key:<24} {value}");
    }
    Ok(())
}

/// What `list` and `status` show of one integration: nothing secret.
pub fn summary(integration: &Integration, stored: Option<&Stored>) -> Value {
    let state = if !integration.is_active() {
        integration.status.clone()
    } else if stored.is_some_and(|stored| stored.needs_reauth.is_some()) {
        "needs_reauth".to_owned()
    } else {
        "active".to_owned()
    };
    let (expires_at, refreshed_at) = match stored.map(|stored| &stored.credentials) {
        Some(Credentials::OAuth2 {
            expires_at,
            refreshed_at,
            ..
        }) => (*expires_at, *refreshed_at),
        Some(Credentials::ClientCredentials { expires_at, .. }) => (*expires_at, None),
        _ => (None, None),
    };
    let metadata = &integration.metadata;
    let mut summary = json!({
        "id": integration.id,
        "provider": integration.provider.as_str(),
        "external_id": integration.external_id,
        "base_url": metadata.base_url,
        "auth_method": stored.map(|stored| stored.credentials.method().as_str()),
        "state": state,
        "can_call_jira": stored.is_some_and(|s| s.needs_reauth.is_none() && s.credentials.can_call_rest()),
        "access_token_expires_at": expires_at,
        "refreshed_at": refreshed_at,
        "needs_reauth_since": stored.and_then(|s| s.needs_reauth.as_ref().map(|(at, _)| *at)),
        "auth_error": stored.and_then(|s| s.needs_reauth.as_ref().map(|(_, reason)| reason.clone())),
        "jira_version": metadata.jira_version,
        "webhook": {
            "path": metadata.webhook_path,
            "id": metadata.webhook_id,
            "hmac_signed": metadata.webhook_hmac_secret.is_some(),
        },
    });
    if integration.provider == Provider::Cloud {
        // Deliveries of an admin (or hand-registered) webhook are signed with
        // the HMAC secret; a dynamic one's carry a JWT instead (§11.4).
        let dynamic = metadata.webhook_kind.as_deref() == Some("dynamic");
        summary["site"] = json!(metadata.site);
        summary["cloud_id"] = json!(metadata.cloud_id);
        summary["webhook"] = json!({
            "kind": metadata.webhook_kind,
            "id": metadata.webhook_id,
            "hmac_signed": !dynamic && metadata.webhook_hmac_secret.is_some(),
            "expires_at": metadata.webhook_expires_at,
            "refreshed_at": metadata.webhook_refreshed_at,
        });
    }
    summary
}

/// How soon a webhook's expiry is warned about.
const EXPIRY_WARNING: TimeDelta = TimeDelta::days(7);

/// Warns on stderr when `integration`'s webhook (a Cloud dynamic one) expires
/// within [`EXPIRY_WARNING`] of `now`.
fn warn_expiry(integration: &Integration, now: DateTime<Utc>) {
    let Some(expires_at) = integration.metadata.webhook_expires_at else {
        return;
    };
    if expires_at - EXPIRY_WARNING < now {
        eprintln!(
            "warning: integration {}'s webhook expires at {} (in under 7 days): check that a \
             worker runs (it refreshes the webhook), or connect the site again",
            integration.id,
            expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    }
}
