//! How the admin commands take a Jira and the credentials to reach it: the base
//! URL, an OAuth 1.0a application link's consumer key and private key, and the
//! files that hold an OAuth 2.0 client secret or a personal access token — each
//! read and checked before anything is recorded, with an error naming the file.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::redact_url;
use crate::integration::install_record::normalize_base_url;
use crate::integration::jira_client;
use crate::jira::{Auth, JiraClient, Signer};

/// The Jira, and an OAuth 1.0a application link when that is how jirasync
/// connects (`integration add`, `oauth start`).
#[derive(Debug, Clone, clap::Args)]
pub struct AppLink {
    /// Base URL of the Jira Server / Data Center.
    #[arg(
        long,
        required_unless_present = "cloud",
        default_value = "",
        hide_default_value = true
    )]
    pub base_url: String,
    /// Consumer key of an OAuth 1.0a application link.
    #[arg(long, requires = "private_key_file")]
    pub consumer_key: Option<String>,
    /// PEM file with the application link's RSA private key.
    #[arg(long, requires = "consumer_key")]
    pub private_key_file: Option<PathBuf>,
    /// Do not verify Jira's TLS certificate (a self-signed one).
    #[arg(long)]
    pub no_verify_ssl: bool,
}

/// An OAuth 1.0a application link, checked.
pub struct Oauth1Link {
    /// The consumer key.
    pub consumer_key: String,
    /// The PEM private key. Secret.
    pub private_key: String,
}

impl AppLink {
    /// The base URL without trailing slashes, checked the way the Jira client
    /// will use it.
    pub fn base_url(&self) -> anyhow::Result<String> {
        let base_url = normalize_base_url(&self.base_url);
        self.client(&base_url, Auth::Bearer(String::new()))?;
        Ok(base_url)
    }

    /// A client for the Jira with `auth`, its certificate verified unless
    /// `--no-verify-ssl`.
    pub fn client(&self, base_url: &str, auth: Auth) -> anyhow::Result<JiraClient> {
        jira_client(base_url, !self.no_verify_ssl, auth)
            .with_context(|| format!("--base-url {} is unusable", redact_url(base_url)))
    }

    /// The application link, its private key read and able to sign; `None`
    /// when no `--consumer-key` was given.
    pub fn oauth1(&self) -> anyhow::Result<Option<Oauth1Link>> {
        let (Some(consumer_key), Some(path)) = (&self.consumer_key, &self.private_key_file) else {
            return Ok(None);
        };
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read the private key file {}", path.display()))?;
        Signer::from_pem(consumer_key.clone(), &pem)
            .with_context(|| format!("the private key in {} is unusable", path.display()))?;
        Ok(Some(Oauth1Link {
            consumer_key: consumer_key.clone(),
            private_key: pem,
        }))
    }
}

/// The secret in `path` (a client secret, a personal access token), without
/// surrounding blanks; an error naming the file when it is unreadable or empty.
pub fn read_secret_file(path: &Path, what: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read the {what} file {}", path.display()))?;
    let secret = text.trim();
    anyhow::ensure!(
        !secret.is_empty(),
        "the {what} file {} is empty",
        path.display()
    );
    Ok(secret.to_owned())
}
