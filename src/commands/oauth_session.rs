//! What `oauth start`'s flows share (`oauth.rs` for OAuth 1.0a, `oauth2.rs`
//! for OAuth 2.0, `oauth2_cloud.rs` for Jira Cloud's 3LO): the arguments of `start`, `status` and `finish`, what `start`
//! prints, and reading and waiting on a session.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use uuid::Uuid;

use super::link::AppLink;
use crate::config::{AtlassianSettings, DatabaseSettings, PublicSettings, Services, parse_seconds};
use crate::db::oauth_sessions::{self, NewSession, OauthSession, SessionRef, State};
use crate::secrets::Keyring;

/// How often `--wait` looks at the session.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The arguments of `oauth start`: a Jira Data Center (`--base-url`, with an
/// OAuth 1.0a application link or an OAuth 2.0 client) or, with `--cloud`, a
/// Jira Cloud OAuth 2.0 (3LO) app (docs/reference.md §11.2).
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Jira Cloud (--cloud): create an OAuth 2.0 (3LO) app in Atlassian's \
developer console (developer.atlassian.com → Developer console → Create → OAuth 2.0 \
integration); under Authorization set its callback URL to JIRASYNC_PUBLIC_URL + \
/extensions/jira-cloud/oauth2/callback; under Permissions add the Jira API scopes \
read:jira-user, read:jira-work, write:jira-work and manage:jira-webhook. Then run \
`jirasync oauth start --cloud --client-id ID --client-secret-file FILE [--site URL]` and open \
the authorize_url signed in as the app's owner (the webhooks of a private app reach jirasync \
only when its owner authorizes)."
)]
pub struct StartArgs {
    /// The Jira, and its application link for OAuth 1.0a.
    #[command(flatten)]
    pub link: AppLink,
    /// Connect a Jira Cloud site through an OAuth 2.0 (3LO) app of Atlassian's
    /// developer console instead of a Data Center.
    #[arg(
        long,
        requires = "client_id",
        conflicts_with_all = ["base_url", "consumer_key", "private_key_file", "no_verify_ssl", "scope"]
    )]
    pub cloud: bool,
    /// Jira Cloud: the site to connect, e.g. https://acme.atlassian.net
    /// [default: the only site the authorization reaches].
    // Also conflicting with the Data Center form itself: clap waives a
    // requirement that conflicts with a given argument.
    #[arg(
        long,
        value_name = "URL",
        requires = "cloud",
        conflicts_with_all = ["base_url", "consumer_key"]
    )]
    pub site: Option<String>,
    /// Client id of an OAuth 2.0 application link (External application,
    /// Incoming), or with `--cloud` of the 3LO app.
    #[arg(
        long,
        conflicts_with = "consumer_key",
        required_unless_present = "consumer_key",
        requires = "client_secret_file"
    )]
    pub client_id: Option<String>,
    /// A file holding the OAuth 2.0 client secret.
    #[arg(long, value_name = "FILE", requires = "client_id")]
    pub client_secret_file: Option<PathBuf>,
    /// The OAuth 2.0 scope to ask for [default: ADMIN, which webhook registration
    /// needs]; Jira Cloud always asks for jirasync's five scopes.
    #[arg(long, requires = "client_id")]
    pub scope: Option<String>,
    /// Wait up to this many seconds: for the authorize URL (OAuth 1.0a), for the
    /// install (OAuth 2.0, Data Center or Cloud).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub wait: Option<Duration>,
    /// Postgres and RabbitMQ.
    #[command(flatten)]
    pub services: Services,
    /// The base of the OAuth 2.0 redirect URL.
    #[command(flatten)]
    pub public: PublicSettings,
    /// Atlassian's servers (Jira Cloud).
    #[command(flatten)]
    pub atlassian: AtlassianSettings,
}

impl StartArgs {
    /// What either flow records of session `id` besides its own part: the Jira
    /// at `base_url` (checked) and whether its certificate is verified.
    pub(super) fn session<'a>(&self, id: Uuid, base_url: &'a str) -> NewSession<'a> {
        NewSession {
            id,
            base_url,
            verify_ssl: !self.link.no_verify_ssl,
        }
    }
}

/// The arguments of `oauth status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Session id.
    pub session_id: Uuid,
    /// Postgres.
    #[command(flatten)]
    pub database: DatabaseSettings,
}

/// The arguments of `oauth finish`.
#[derive(Debug, Clone, clap::Args)]
pub struct FinishArgs {
    /// Session id.
    pub session_id: Uuid,
    /// OAuth 1.0a: the verifier Jira showed after authorization.
    #[arg(long, required_unless_present = "code", conflicts_with = "code")]
    pub verifier: Option<String>,
    /// OAuth 2.0: the `code` of the address Jira sent the browser to (the code
    /// alone, or that whole address).
    #[arg(long)]
    pub code: Option<String>,
    /// Postgres and RabbitMQ.
    #[command(flatten)]
    pub services: Services,
}

/// What `oauth start` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The new session.
    pub session_id: Uuid,
    /// The authorize URL: OAuth 2.0's at once, OAuth 1.0a's when `--wait` got it.
    pub authorize_url: Option<String>,
}

/// Polls the session until `done` holds (Ok), it failed (Err with its error)
/// or `wait` is up (Err saying what to check).
pub(super) async fn wait_until(
    client: &deadpool_postgres::Object,
    keys: &Keyring,
    id: Uuid,
    wait: Duration,
    done: impl Fn(&OauthSession) -> bool,
) -> anyhow::Result<OauthSession> {
    let deadline = Instant::now() + wait;
    loop {
        let session = oauth_sessions::find(client, keys, SessionRef::Id(id))
            .await
            .context("failed to read the OAuth session")?
            .with_context(|| format!("OAuth session {id} disappeared"))?;
        if session.state == State::Failed {
            anyhow::bail!(
                "OAuth session {id} failed: {}",
                session.error.as_deref().unwrap_or("no error recorded")
            );
        }
        if done(&session) {
            return Ok(session);
        }
        if Instant::now() >= deadline {
            let last = session
                .error
                .map(|error| format!(" (last: {error})"))
                .unwrap_or_default();
            anyhow::bail!(
                "OAuth session {id} is still {} after {} s{last}; is a worker running? \
                 Check again with `jirasync oauth status {id}`",
                session.state,
                wait.as_secs()
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The session `id` and the connection it was read on, or an error naming it
/// when there is none.
pub(super) async fn load(
    database: &DatabaseSettings,
    id: Uuid,
) -> anyhow::Result<(deadpool_postgres::Object, OauthSession)> {
    let (client, keys) = super::database(database).await?;
    let session = oauth_sessions::find(&client, &keys, SessionRef::Id(id))
        .await
        .context("failed to read the OAuth session")?
        .with_context(|| format!("no OAuth session has id {id}"))?;
    Ok((client, session))
}
