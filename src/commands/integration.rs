//! `jirasync integration add|webhook-url|list|status|enable|disable|rotate-webhook-secret`:
//! connect a Jira from existing credentials (an OAuth 1.0a application link, or a
//! personal access token checked with Jira first), print the webhook URL to register
//! by hand, show how each integration connects (`integration_status.rs`), let it
//! take webhooks or not, and rotate its webhook secret (`rotate_webhook_secret.rs`).
//! `add --cloud` connects a Jira Cloud site instead (`cloud::connect`).

use std::path::PathBuf;

use anyhow::Context;
use serde_json::{Value, json};

use super::integration_status::{self, ListArgs, StatusArgs};
use super::link::{AppLink, read_secret_file};
use crate::cloud::connect::{self, CloudAuth, Request};
use crate::config::{AtlassianSettings, DatabaseSettings, PublicSettings};
use crate::integration::install_record::{self, Install};
use crate::integration::webhook_registration;
use crate::integration::{self, Credentials};
use crate::jira::{Auth, JiraError};

/// `jirasync integration …`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create or update a jira_server integration from existing credentials, or
    /// (`--cloud`) a Jira Cloud site's jira_cloud integration.
    Add(Box<AddCommand>),
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

/// The arguments of `integration add`: a Data Center (`--base-url`, with an
/// application link or a personal access token) or, with `--cloud`, a Jira Cloud
/// site (`--site`, with an API token or a service account). The forms' own
/// flags conflict with `--cloud` or require it.
#[derive(Debug, Clone, clap::Args)]
#[command(group(
    clap::ArgGroup::new("cloud_auth").args(["email", "client_id"]).multiple(false)
))]
pub struct AddCommand {
    /// Connect a Jira Cloud site (`--site`) instead of a Data Center.
    #[arg(
        long,
        requires = "site",
        requires = "cloud_auth",
        conflicts_with_all = [
            "base_url", "consumer_key", "private_key_file", "no_verify_ssl",
            "access_token", "access_token_secret", "pat_file",
        ]
    )]
    pub cloud: bool,
    /// Base URL of the Jira Server / Data Center.
    #[arg(long, required_unless_present = "cloud")]
    pub base_url: Option<String>,
    /// Consumer key of an OAuth 1.0a application link.
    #[arg(long, requires = "private_key_file")]
    pub consumer_key: Option<String>,
    /// PEM file with the application link's RSA private key.
    #[arg(long, requires = "consumer_key")]
    pub private_key_file: Option<PathBuf>,
    /// Do not verify Jira's TLS certificate (a self-signed one).
    #[arg(long)]
    pub no_verify_ssl: bool,
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
        required_unless_present_any = ["consumer_key", "cloud"]
    )]
    pub pat_file: Option<PathBuf>,
    /// Jira Cloud: the site, e.g. https://acme.atlassian.net.
    #[arg(long, value_name = "URL", requires = "cloud")]
    pub site: Option<String>,
    /// Jira Cloud: the email of the Atlassian account whose API token is given.
    #[arg(long, requires = "cloud", requires = "api_token_file")]
    pub email: Option<String>,
    /// Jira Cloud: a file holding that account's API token.
    #[arg(long, value_name = "FILE", requires = "email")]
    pub api_token_file: Option<PathBuf>,
    /// Jira Cloud: a service account's OAuth 2.0 client id.
    #[arg(long, requires = "cloud", requires = "client_secret_file")]
    pub client_id: Option<String>,
    /// Jira Cloud: a file holding the service account's client secret.
    #[arg(long, value_name = "FILE", requires = "client_id")]
    pub client_secret_file: Option<PathBuf>,
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
    /// Atlassian's servers (Jira Cloud).
    #[command(flatten)]
    pub atlassian: AtlassianSettings,
}

impl AddCommand {
    /// The Data Center form (without `--cloud`).
    pub fn data_center(&self) -> AddArgs {
        AddArgs {
            link: AppLink {
                base_url: self.base_url.clone().unwrap_or_default(),
                consumer_key: self.consumer_key.clone(),
                private_key_file: self.private_key_file.clone(),
                no_verify_ssl: self.no_verify_ssl,
            },
            access_token: self.access_token.clone(),
            access_token_secret: self.access_token_secret.clone(),
            pat_file: self.pat_file.clone(),
            name: self.name.clone(),
            register_webhook: self.register_webhook,
            database: self.database.clone(),
            public: self.public.clone(),
        }
    }

    /// The Cloud form's credentials, read from their files.
    fn cloud_auth(&self) -> anyhow::Result<CloudAuth> {
        match (
            &self.email,
            &self.api_token_file,
            &self.client_id,
            &self.client_secret_file,
        ) {
            (Some(email), Some(file), None, None) => Ok(CloudAuth::ApiToken {
                email: email.clone(),
                token: read_secret_file(file, "API token")?,
            }),
            (None, None, Some(client_id), Some(file)) => Ok(CloudAuth::ServiceAccount {
                client_id: client_id.clone(),
                client_secret: read_secret_file(file, "client secret")?,
            }),
            _ => anyhow::bail!(
                "--cloud takes --email and --api-token-file, or --client-id and \
                 --client-secret-file"
            ),
        }
    }
}

/// `integration add` of a Data Center: a Jira and its credentials.
#[derive(Debug, Clone)]
pub struct AddArgs {
    /// The Jira, and its application link (OAuth 1.0a).
    pub link: AppLink,
    /// OAuth access token, when you already have one.
    pub access_token: Option<String>,
    /// OAuth access token secret.
    pub access_token_secret: Option<String>,
    /// A file holding a personal access token instead of an application link.
    pub pat_file: Option<PathBuf>,
    /// Display name (default: the host).
    pub name: Option<String>,
    /// Also register the webhook in Jira.
    pub register_webhook: bool,
    /// Postgres.
    pub database: DatabaseSettings,
    /// The public URL the webhook URL is built on.
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
        Command::Add(args) if args.cloud => add_cloud(args).await?,
        Command::Add(args) => {
            let added = add(&args.data_center()).await?;
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

/// `integration add --cloud`: connects the site (`cloud::connect`) and prints
/// its JSON; a failed registration fails the command after the JSON.
async fn add_cloud(args: &AddCommand) -> anyhow::Result<()> {
    let site = args.site.as_deref().context("--cloud needs --site")?;
    connect::checked_site(site, &args.atlassian)?;
    let auth = args.cloud_auth()?;
    let pool = super::pool(&args.database).await?;
    let request = Request {
        site,
        auth,
        name: args.name.as_deref(),
        register_webhook: args.register_webhook,
        public_url: &args.public.url,
        atlassian: &args.atlassian,
    };
    let connected = connect::connect(&pool, &request).await?;
    for note in &connected.notes {
        eprintln!("{note}");
    }
    println!("{}", connected.json());
    if let Some(error) = connected.registration_error {
        anyhow::bail!("{error}");
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
        .with_context(|| format!("no integration has id {}", args.id))?;
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
        .with_context(|| format!("no integration has id {}", args.id))?;
    let metadata = &integration.metadata;
    super::transport::warn(
        &metadata.base_url,
        metadata.verify_ssl,
        Some(&args.public.url),
    );
    Ok(integration.webhook_url(&args.public.url)?)
}
