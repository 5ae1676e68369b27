//! `jirasync integration add` and `jirasync integration webhook-url`: for admins
//! who already have an access token, or who register the webhook in Jira by hand.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value, json};

use crate::cli::IntegrationCommand;
use crate::config::{Settings, redact_url};
use crate::db::integrations::{self, Credentials};
use crate::install::{self, Install, SaveError};
use crate::jira::{ClientOptions, JiraClient, Signer};

/// The arguments of `integration add`.
#[derive(Debug, Clone)]
pub struct AddArgs {
    /// Jira's base URL.
    pub base_url: String,
    /// Consumer key of the application link.
    pub consumer_key: String,
    /// PEM file with the application link's private key.
    pub private_key_file: PathBuf,
    /// An access token, when the admin has one.
    pub access_token: Option<String>,
    /// Its secret.
    pub access_token_secret: Option<String>,
    /// Display name (default: the host).
    pub name: Option<String>,
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
pub async fn run(settings: &Settings, command: IntegrationCommand) -> anyhow::Result<()> {
    match command {
        IntegrationCommand::Add {
            base_url,
            consumer_key,
            private_key_file,
            access_token,
            access_token_secret,
            name,
        } => {
            let args = AddArgs {
                base_url,
                consumer_key,
                private_key_file,
                access_token,
                access_token_secret,
                name,
            };
            let added = add(settings, &args).await?;
            println!(
                "{}",
                json!({ "id": added.id, "external_id": added.external_id, "webhook_url": added.webhook_url })
            );
        }
        IntegrationCommand::WebhookUrl { id } => println!("{}", webhook_url(settings, id).await?),
    }
    Ok(())
}

/// Creates or updates the integration and its credentials (no webhook is
/// registered in Jira); an existing webhook secret, and so the webhook URL, is kept.
pub async fn add(settings: &Settings, args: &AddArgs) -> anyhow::Result<Added> {
    let pem = read_private_key(&args.private_key_file, &args.consumer_key)?;
    let base_url = install::normalize_base_url(&args.base_url);
    check_base_url(&base_url, &args.consumer_key, &pem)?;
    let pool = crate::db::connect(&settings.database_url, 1).await?;
    let mut client = pool
        .get()
        .await
        .context("failed to get a database connection")?;
    let tx = client
        .transaction()
        .await
        .context("failed to begin a transaction")?;
    let install = Install {
        base_url: &base_url,
        verify_ssl: true,
        name: args.name.as_deref(),
        credentials: Credentials {
            consumer_key: args.consumer_key.clone(),
            private_key: pem,
            access_token: args.access_token.clone(),
            access_token_secret: args.access_token_secret.clone(),
        },
    };
    let saved = install::save(&tx, &install)
        .await
        .map_err(|error| match error {
            SaveError::Install(error) => anyhow::Error::new(error),
            SaveError::Db(error) => {
                anyhow::Error::new(error).context("failed to save the integration")
            }
        })?;
    tx.commit()
        .await
        .context("failed to commit the integration")?;
    let webhook_url = install::webhook_url(
        &settings.public_url,
        &saved.external_id,
        &saved.webhook_secret,
    )?;
    Ok(Added {
        id: saved.id,
        external_id: saved.external_id,
        webhook_url,
    })
}

/// The webhook URL (with its token) of integration `id`.
pub async fn webhook_url(settings: &Settings, id: i64) -> anyhow::Result<String> {
    let pool = crate::db::connect(&settings.database_url, 1).await?;
    let client = pool
        .get()
        .await
        .context("failed to get a database connection")?;
    let (external_id, metadata) = integrations::find_jira_server(&client, id)
        .await
        .context("failed to look up the integration")?
        .with_context(|| format!("no jira_server integration has id {id}"))?;
    let secret = metadata
        .get("webhook_secret")
        .and_then(Value::as_str)
        .filter(|secret| !secret.is_empty())
        .with_context(|| {
            format!(
                "integration {id} has no webhook_secret; run `jirasync integration add` for it again to create one"
            )
        })?;
    Ok(install::webhook_url(
        &settings.public_url,
        &external_id,
        secret,
    )?)
}

/// Reads a PEM private key file and checks that it can sign (a clear error naming
/// the file and the accepted formats otherwise).
pub fn read_private_key(path: &Path, consumer_key: &str) -> anyhow::Result<String> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read the private key file {}", path.display()))?;
    Signer::from_pem(consumer_key, &pem)
        .with_context(|| format!("the private key in {} is unusable", path.display()))?;
    Ok(pem)
}

/// Checks the base URL the way the Jira client will use it.
pub fn check_base_url(base_url: &str, consumer_key: &str, pem: &str) -> anyhow::Result<()> {
    let signer = Signer::from_pem(consumer_key, pem)?;
    JiraClient::new(base_url, signer, &ClientOptions::default())
        .with_context(|| format!("--base-url {} is unusable", redact_url(base_url)))?;
    Ok(())
}
