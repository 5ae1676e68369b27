//! `jirasync integration add` and `jirasync integration webhook-url`: for admins
//! who already have an access token, or who register the webhook in Jira by hand.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

use crate::config::{DatabaseSettings, PublicSettings, redact_url};
use crate::integration::install::{self, Install};
use crate::integration::{self as jira_server, Credentials, jira_client};
use crate::jira::{Auth, Signer};

/// `jirasync integration …`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create or update a jira_server integration from existing credentials.
    Add(AddArgs),
    /// Print the webhook URL (with its token) of an integration.
    WebhookUrl(WebhookUrlArgs),
}

/// The Jira and its OAuth 1.0a application link, as `integration add` and
/// `oauth start` take them.
#[derive(Debug, Clone, clap::Args)]
pub struct AppLink {
    /// Base URL of the Jira Server.
    #[arg(long)]
    pub base_url: String,
    /// Consumer key of the application link.
    #[arg(long)]
    pub consumer_key: String,
    /// PEM file with the application link's RSA private key.
    #[arg(long)]
    pub private_key_file: PathBuf,
}

/// An [`AppLink`] checked: its base URL normalized, its private key read.
pub struct CheckedLink {
    /// The base URL without trailing slashes.
    pub base_url: String,
    /// The PEM private key. Secret.
    pub private_key: String,
}

impl AppLink {
    /// Reads the private key and checks that it can sign and that the base URL
    /// is one the Jira client takes: a clear error naming the file or URL otherwise.
    pub fn check(&self) -> anyhow::Result<CheckedLink> {
        let path = &self.private_key_file;
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read the private key file {}", path.display()))?;
        let signer = Signer::from_pem(self.consumer_key.clone(), &pem)
            .with_context(|| format!("the private key in {} is unusable", path.display()))?;
        let base_url = install::normalize_base_url(&self.base_url);
        jira_client(&base_url, true, Auth::oauth1(signer))
            .with_context(|| format!("--base-url {} is unusable", redact_url(&base_url)))?;
        Ok(CheckedLink {
            base_url,
            private_key: pem,
        })
    }
}

/// The arguments of `integration add`.
#[derive(Debug, Clone, clap::Args)]
pub struct AddArgs {
    /// The Jira and its application link.
    #[command(flatten)]
    pub link: AppLink,
    /// OAuth access token, when you already have one.
    #[arg(long, requires = "access_token_secret")]
    pub access_token: Option<String>,
    /// OAuth access token secret.
    #[arg(long, requires = "access_token")]
    pub access_token_secret: Option<String>,
    /// Display name (default: the host).
    #[arg(long)]
    pub name: Option<String>,
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
}

/// Runs one `integration` subcommand, printing its result on stdout.
pub async fn run(command: &Command) -> anyhow::Result<()> {
    match command {
        Command::Add(args) => {
            let added = add(args).await?;
            println!(
                "{}",
                json!({ "id": added.id, "external_id": added.external_id, "webhook_url": added.webhook_url })
            );
        }
        Command::WebhookUrl(args) => println!("{}", webhook_url(args).await?),
    }
    Ok(())
}

/// Creates or updates the integration and its credentials (no webhook is
/// registered in Jira); an existing webhook secret, and so the webhook URL, is kept.
pub async fn add(args: &AddArgs) -> anyhow::Result<Added> {
    let CheckedLink {
        base_url,
        private_key,
    } = args.link.check()?;
    let mut client = super::database(&args.database).await?;
    let tx = client
        .transaction()
        .await
        .context("failed to begin a transaction")?;
    let credentials = Credentials {
        consumer_key: args.link.consumer_key.clone(),
        private_key,
        access_token: args.access_token.clone(),
        access_token_secret: args.access_token_secret.clone(),
    };
    let install = Install {
        base_url: &base_url,
        verify_ssl: true,
        name: args.name.as_deref(),
        link: &args.link.consumer_key,
        credentials: Some(&credentials),
    };
    let saved = install::save(&tx, &install).await?;
    tx.commit()
        .await
        .context("failed to commit the integration")?;
    Ok(Added {
        webhook_url: saved.webhook_url(&args.public.url)?,
        id: saved.id,
        external_id: saved.external_id,
    })
}

/// The webhook URL (with its token) of integration `args.id`.
pub async fn webhook_url(args: &WebhookUrlArgs) -> anyhow::Result<String> {
    let client = super::database(&args.database).await?;
    let integration = jira_server::by_id(&client, args.id)
        .await
        .context("failed to look up the integration")?
        .with_context(|| format!("no jira_server integration has id {}", args.id))?;
    Ok(integration.webhook_url(&args.public.url)?)
}
