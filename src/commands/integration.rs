//! `jirasync integration add|webhook-url|list|status|enable|disable|rotate-webhook-secret`:
//! connect a Jira from existing credentials (an OAuth 1.0a application link, or a
//! personal access token checked with Jira first), print the webhook URL to register
//! by hand, show how each integration connects (`integration_status.rs`), let it
//! take webhooks or not, and rotate its webhook secret (`rotate_webhook_secret.rs`).

use std::path::PathBuf;

use anyhow::Context;
use serde_json::{Value, json};

use super::integration_status::{self, ListArgs, StatusArgs};
use super::link::{AppLink, read_secret_file};
use crate::config::{DatabaseSettings, PublicSettings};
use crate::integration::install_record::{self, Install};
use crate::integration::webhook_registration;
use crate::integration::{self, Credentials, PROVIDER};
use crate::jira::{Auth, JiraError};

/// `jirasync integration …`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create or update a jira_server integration from existing credentials.
    Add(AddArgs),
    /// Print the webhook URL (with its token) of an integration.
    WebhookUrl(WebhookUrlArgs),
    /// Show every integration: auth method, state, token expiry, webhook.
    List(ListArgs),
    /// Show one integration: auth method, state, token expiry, Jira version, webhook.
    Status(StatusArgs),
    /// Give an integration a fresh webhook secret and URL (the old ones accepted
    /// for --overlap) and update the webhook registered in Jira.
    RotateWebhookSecret(super::rotate_webhook_secret::Args),
    /// Let an integration take webhooks and jobs again (status `active`).
    Enable(SwitchArgs),
    /// Drop an integration's webhooks and jobs (status `disabled`) until it is enabled.
    Disable(SwitchArgs),
    /// Move a Data Center integration's issues, links, sync flags and user map to a Jira Cloud one.
    Migrate(super::integration_migrate::Args),
}

/// The arguments of `integration enable` and `integration disable`.
#[derive(Debug, Clone, clap::Args)]
pub struct SwitchArgs {
    /// Integration id.
    pub id: i64,
    /// Postgres.
    #[command(flatten)]
    pub database: DatabaseSettings,
}

/// The arguments of `integration add`.
#[derive(Debug, Clone, clap::Args)]
pub struct AddArgs {
    /// The Jira, and its application link (OAuth 1.0a).
    #[command(flatten)]
    pub link: AppLink,
    /// OAuth access token, when you already have one.
    #[arg(long, requires = "access_token_secret", requires = "consumer_key")]
    pub access_token: Option<String>,
    /// OAuth access token secret.
    #[arg(long, requires = "access_token")]
    pub access_token_secret: Option<String>,
    /// A file holding a personal access token (Jira 8.14+) instead of an application link.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "consumer_key",
        required_unless_present = "consumer_key"
    )]
    pub pat_file: Option<PathBuf>,
    /// Display name (default: the host).
    #[arg(long)]
    pub name: Option<String>,
    /// Also register the webhook in Jira (needs a Jira administrator's credentials).
    #[arg(long)]
    pub register_webhook: bool,
    /// Postgres.
    #[command(flatten)]
    pub database: DatabaseSettings,
    /// The public URL the webhook URL is built on.
    #[command(flatten)]
    pub public: PublicSettings,
}

/// The arguments of `integration webhook-url`.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookUrlArgs {
    /// Integration id.
    pub id: i64,
    /// Postgres.
    #[command(flatten)]
    pub database: DatabaseSettings,
    /// The public URL the webhook URL is built on.
    #[command(flatten)]
    pub public: PublicSettings,
}

/// What `integration add` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// Integration id.
    pub id: i64,
    /// Its external id.
    pub external_id: String,
    /// The webhook URL to register in Jira.
    pub webhook_url: String,
    /// With `--register-webhook`: where it was registered, or why it was not.
    pub registration: Option<Result<Value, String>>,
}

impl Added {
    /// The JSON `integration add` prints.
    pub fn json(&self) -> Value {
        let mut json = json!({ "id": self.id, "external_id": self.external_id, "webhook_url": self.webhook_url });
        if let Some(Ok(webhook)) = &self.registration {
            json["webhook"] = webhook.clone();
        }
        json
    }
}

/// Runs one `integration` subcommand, printing its result on stdout.
pub async fn run(command: &Command) -> anyhow::Result<()> {
    match command {
        Command::Add(args) => {
            let added = add(args).await?;
            println!("{}", added.json());
            if let Some(Err(error)) = added.registration {
                anyhow::bail!("{error}");
            }
        }
        Command::WebhookUrl(args) => println!("{}", webhook_url(args).await?),
        Command::List(args) => integration_status::list(args).await?,
        Command::Status(args) => integration_status::status(args).await?,
        Command::RotateWebhookSecret(args) => super::rotate_webhook_secret::run(args).await?,
        Command::Enable(args) => println!("{:#}", switch(args, integration::ACTIVE).await?),
        Command::Disable(args) => println!("{:#}", switch(args, integration::DISABLED).await?),
        Command::Migrate(args) => super::integration_migrate::run(args).await?,
    }
    Ok(())
}

/// Sets integration `args.id`'s status; the row as `integration status --json`
/// shows it. A disabled integration's webhooks are dropped and make no verdict
/// at the ingresses (docs/reference.md §3, §5.1).
pub async fn switch(args: &SwitchArgs, status: &str) -> anyhow::Result<Value> {
    let (client, keys) = super::database(&args.database).await?;
    let integration = integration::set_status(&client, &keys, args.id, status)
        .await
        .context("failed to set the integration's status")?
        .with_context(|| format!("no {PROVIDER} integration has id {}", args.id))?;
    let stored = integration::credentials(&client, &keys, args.id)
        .await
        .context("failed to read the integration's credentials")?;
    Ok(integration_status::summary(&integration, stored.as_ref()))
}

/// Creates or updates the integration and its credentials; an existing webhook
/// secret, and so the webhook URL, is kept. A personal access token is checked
/// with `GET /rest/api/2/myself` first: one Jira refuses saves nothing. With
/// `--register-webhook` the webhook is registered too; a refusal keeps the
/// integration and says how to register it by hand.
pub async fn add(args: &AddArgs) -> anyhow::Result<Added> {
    let base_url = args.link.base_url()?;
    super::transport::warn(&base_url, !args.link.no_verify_ssl, Some(&args.public.url));
    let (link, credentials) = match (args.link.oauth1()?, &args.pat_file) {
        (Some(oauth1), _) => (
            oauth1.consumer_key.clone(),
            Credentials::OAuth1 {
                consumer_key: oauth1.consumer_key,
                private_key: oauth1.private_key,
                access_token: args.access_token.clone(),
                access_token_secret: args.access_token_secret.clone(),
            },
        ),
        (None, Some(path)) => pat(&args.link, &base_url, path).await?,
        (None, None) => anyhow::bail!("give --consumer-key and --private-key-file, or --pat-file"),
    };
    let pool = super::pool(&args.database).await?;
    let mut client = super::connection(&pool).await?;
    let tx = client
        .transaction()
        .await
        .context("failed to begin a transaction")?;
    let install = Install {
        base_url: &base_url,
        verify_ssl: !args.link.no_verify_ssl,
        name: args.name.as_deref(),
        link: &link,
        credentials: Some(&credentials),
    };
    let saved = install_record::save(&tx, pool.keys(), &install).await?;
    tx.commit()
        .await
        .context("failed to commit the integration")?;
    if saved.is_disabled() {
        eprintln!(
            "integration {} is disabled: its credentials were updated and it stays disabled \
             (its webhooks are dropped); `jirasync integration enable {}` lets it take them again",
            saved.id, saved.id
        );
    }
    let webhook_url = saved.webhook_url(&args.public.url)?;
    let registration = match args.register_webhook {
        false => None,
        true => Some(
            match webhook_registration::register(&pool, &saved, &args.public.url).await {
                Ok(registration) => Ok(json!({
                    "path": registration.api.path(),
                    "id": registration.id,
                    "hmac_signed": registration.signed,
                })),
                Err(error) => Err(format!(
                    "integration {} was saved, but registering its webhook in Jira failed: {error:#}; \
                 register the webhook_url above in Jira by hand (Administration > System > WebHooks, \
                 events Issue created and Issue updated), or fix that and run this again",
                    saved.id
                )),
            },
        ),
    };
    Ok(Added {
        id: saved.id,
        external_id: saved.external_id,
        webhook_url,
        registration,
    })
}

/// The personal access token in `path`, checked with Jira: its link
/// (`pat:<user name>`) and credentials.
async fn pat(
    link: &AppLink,
    base_url: &str,
    path: &std::path::Path,
) -> anyhow::Result<(String, Credentials)> {
    let token = read_secret_file(path, "personal access token")?;
    let jira = link.client(base_url, Auth::Bearer(token.clone()))?;
    let user = jira.myself().await.map_err(|error| match error {
        JiraError::Unauthorized => anyhow::anyhow!(
            "Jira at {base_url} refused the personal access token in {} (HTTP 401): check that it \
             is valid and not expired (Jira: Profile > Personal Access Tokens); nothing was saved",
            path.display()
        ),
        other => anyhow::Error::new(other).context(format!(
            "failed to check the personal access token with Jira at {base_url}; nothing was saved"
        )),
    })?;
    Ok((format!("pat:{}", user.name), Credentials::Pat { token }))
}

/// The webhook URL (with its token) of integration `args.id`.
pub async fn webhook_url(args: &WebhookUrlArgs) -> anyhow::Result<String> {
    let (client, keys) = super::database(&args.database).await?;
    let integration = integration::by_id(&client, &keys, args.id)
        .await
        .context("failed to look up the integration")?
        .with_context(|| format!("no {PROVIDER} integration has id {}", args.id))?;
    let metadata = &integration.metadata;
    super::transport::warn(
        &metadata.base_url,
        metadata.verify_ssl,
        Some(&args.public.url),
    );
    Ok(integration.webhook_url(&args.public.url)?)
}
