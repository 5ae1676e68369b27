//! The command line (CONTRACT §1): one binary, one subcommand per role.
//! `main` parses it and dispatches each command to its module's `run`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Settings;

/// Keeps issue assignments in step with Jira Server webhooks.
#[derive(Debug, Parser)]
#[command(name = "jirasync", version, about, long_about = None)]
pub struct Cli {
    /// Settings shared by every command (each also an environment variable).
    #[command(flatten)]
    pub settings: Settings,

    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the SQL migrations and declare the RabbitMQ topology (idempotent).
    Migrate {
        /// Create the database named in DATABASE_URL first when it is missing.
        #[arg(long)]
        create_database: bool,
    },
    /// Print the effective configuration as JSON (passwords elided).
    Config,
    /// Run the HTTP ingress that puts Jira webhooks on RabbitMQ.
    Ingress,
    /// Run one worker process: a pool of consumer tasks.
    Worker,
    /// The local default: migrate --create-database, then ingress and worker in one process.
    Run,
    /// Manage Jira Server integrations.
    #[command(subcommand)]
    Integration(IntegrationCommand),
    /// Connect a Jira Server with the OAuth 1.0a install flow.
    #[command(subcommand)]
    Oauth(OauthCommand),
    /// Inspect and replay dead-lettered messages.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Seed a small demo organization and integration and print a ready curl.
    Demo {
        /// Send the demo webhook and print the resulting assignment.
        #[arg(long)]
        send: bool,
    },
    /// Enqueue reconcile jobs: re-read recently updated linked issues from Jira.
    Reconcile {
        /// Only this integration.
        #[arg(long)]
        integration: Option<i64>,
        /// How far back to look (e.g. 1h).
        #[arg(long, value_parser = crate::config::parse_duration)]
        since: Option<std::time::Duration>,
    },
}

/// `jirasync integration …`
#[derive(Debug, Subcommand)]
pub enum IntegrationCommand {
    /// Create or update a jira_server integration from existing credentials.
    Add {
        /// Base URL of the Jira Server.
        #[arg(long)]
        base_url: String,
        /// Consumer key of the application link.
        #[arg(long)]
        consumer_key: String,
        /// PEM file with the application link's RSA private key.
        #[arg(long)]
        private_key_file: PathBuf,
        /// OAuth access token, when you already have one.
        #[arg(long, requires = "access_token_secret")]
        access_token: Option<String>,
        /// OAuth access token secret.
        #[arg(long, requires = "access_token")]
        access_token_secret: Option<String>,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Print the webhook URL (with its token) of an integration.
    WebhookUrl {
        /// Integration id.
        id: i64,
    },
}

/// `jirasync oauth …`
#[derive(Debug, Subcommand)]
pub enum OauthCommand {
    /// Start the install flow: record a session and enqueue the request-token job.
    Start {
        /// Base URL of the Jira Server.
        #[arg(long)]
        base_url: String,
        /// Consumer key of the application link.
        #[arg(long)]
        consumer_key: String,
        /// PEM file with the application link's RSA private key.
        #[arg(long)]
        private_key_file: PathBuf,
        /// Do not verify Jira's TLS certificate.
        #[arg(long)]
        no_verify_ssl: bool,
        /// Wait up to this many seconds for the authorize URL.
        #[arg(long)]
        wait: Option<u64>,
    },
    /// Print a session's state as JSON.
    Status {
        /// Session id.
        session_id: uuid::Uuid,
    },
    /// Enqueue the access-token job for a session.
    Finish {
        /// Session id.
        session_id: uuid::Uuid,
        /// The verifier Jira showed after authorization.
        #[arg(long)]
        verifier: String,
    },
}

/// `jirasync dlq …`
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Show dead-lettered messages without removing them.
    List {
        /// At most this many messages.
        #[arg(long, default_value = "50")]
        limit: usize,
        /// One JSON object per message.
        #[arg(long)]
        json: bool,
    },
    /// Move dead-lettered messages back to their source queue.
    Replay {
        /// At most this many messages.
        #[arg(long)]
        limit: Option<usize>,
    },
}
