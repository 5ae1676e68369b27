//! `jirasync oauth start|status|finish`: the command-line side of the OAuth 1.0a
//! install flow (docs/reference.md §1, §6). The work happens in the worker's
//! OAuth jobs; these commands record the session, enqueue jobs and read the
//! session back.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use uuid::Uuid;

use super::integration::{AppLink, CheckedLink};
use super::job::JobPublisher;
use crate::config::{DatabaseSettings, Services, parse_seconds};
use crate::db::oauth_sessions::{self, NewSession, OauthSession, SessionRef, state};
use crate::queue::job::{OauthAccessToken, OauthRequestToken};

/// How often `--wait` looks at the session.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// `jirasync oauth …`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Start the install flow: record a session and enqueue the request-token job.
    Start(StartArgs),
    /// Print a session's state as JSON.
    Status(StatusArgs),
    /// Enqueue the access-token job for a session.
    Finish(FinishArgs),
}

/// The arguments of `oauth start`.
#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    /// The Jira and its application link.
    #[command(flatten)]
    pub link: AppLink,
    /// Do not verify Jira's TLS certificate.
    #[arg(long)]
    pub no_verify_ssl: bool,
    /// Wait up to this many seconds for the authorize URL.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub wait: Option<Duration>,
    /// Postgres and RabbitMQ.
    #[command(flatten)]
    pub services: Services,
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
    /// The verifier Jira showed after authorization.
    #[arg(long)]
    pub verifier: String,
    /// Postgres and RabbitMQ.
    #[command(flatten)]
    pub services: Services,
}

/// What `oauth start` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The new session.
    pub session_id: Uuid,
    /// The authorize URL, when `--wait` got it.
    pub authorize_url: Option<String>,
}

/// Runs one `oauth` subcommand, printing its result on stdout.
pub async fn run(command: &Command) -> anyhow::Result<()> {
    match command {
        Command::Start(args) => {
            let started = start(args).await?;
            match &started.authorize_url {
                Some(url) => {
                    println!(
                        "{}",
                        json!({ "session_id": started.session_id, "authorize_url": url })
                    );
                    eprintln!(
                        "Open the authorize_url in a browser, signed in to Jira as an administrator, and allow access; \
                         then `jirasync oauth status {}` shows `installed`.",
                        started.session_id
                    );
                }
                None => println!("{}", json!({ "session_id": started.session_id })),
            }
        }
        Command::Status(args) => println!("{:#}", status(args).await?),
        Command::Finish(args) => println!("{}", finish(args).await?),
    }
    Ok(())
}

/// Records a `pending` session and enqueues its request-token job; with
/// `wait`, polls the session until it has an authorize URL (Ok), failed (Err
/// with its error) or the time is up (Err).
pub async fn start(args: &StartArgs) -> anyhow::Result<Started> {
    let CheckedLink {
        base_url,
        private_key,
    } = args.link.check()?;
    // Both services first, so nothing is recorded when one is unreachable.
    let client = super::database(&args.services.database).await?;
    let publisher = JobPublisher::connect(&args.services).await?;
    let session_id = Uuid::new_v4();
    oauth_sessions::insert(
        &client,
        &NewSession {
            id: session_id,
            base_url: &base_url,
            consumer_key: &args.link.consumer_key,
            private_key: &private_key,
            verify_ssl: !args.no_verify_ssl,
        },
    )
    .await
    .context("failed to record the OAuth session")?;
    let published = publisher.publish(&OauthRequestToken { session_id }).await;
    publisher.close().await;
    if let Err(error) = published {
        let text = format!("{error:#}");
        let _ = oauth_sessions::mark_failed(&client, SessionRef::Id(session_id), &text).await;
        return Err(error.context(format!("OAuth session {session_id} failed")));
    }
    let Some(wait) = args.wait else {
        return Ok(Started {
            session_id,
            authorize_url: None,
        });
    };
    let session = wait_for_authorize_url(&client, session_id, wait).await?;
    Ok(Started {
        session_id,
        authorize_url: session.authorize_url,
    })
}

async fn wait_for_authorize_url(
    client: &deadpool_postgres::Object,
    id: Uuid,
    wait: Duration,
) -> anyhow::Result<OauthSession> {
    let deadline = Instant::now() + wait;
    loop {
        let session = oauth_sessions::find(client, SessionRef::Id(id))
            .await
            .context("failed to read the OAuth session")?
            .with_context(|| format!("OAuth session {id} disappeared"))?;
        match session.state.as_str() {
            state::FAILED => anyhow::bail!(
                "OAuth session {id} failed: {}",
                session.error.as_deref().unwrap_or("no error recorded")
            ),
            state::PENDING => {}
            _ if session.authorize_url.is_some() => return Ok(session),
            _ => {}
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

/// The session `id`, or an error naming it when there is none.
async fn load(database: &DatabaseSettings, id: Uuid) -> anyhow::Result<OauthSession> {
    let client = super::database(database).await?;
    oauth_sessions::find(&client, SessionRef::Id(id))
        .await
        .context("failed to read the OAuth session")?
        .with_context(|| format!("no OAuth session has id {id}"))
}

/// The session as JSON, without its private key, tokens or secrets.
pub async fn status(args: &StatusArgs) -> anyhow::Result<Value> {
    let session = load(&args.database, args.session_id).await?;
    Ok(session.public_json())
}

/// Enqueues the access-token job for the session's request token with
/// `verifier` (what the callback would have done). An installed session is
/// reported as such and nothing is enqueued.
pub async fn finish(args: &FinishArgs) -> anyhow::Result<Value> {
    let id = args.session_id;
    let session = load(&args.services.database, id).await?;
    if session.state == state::INSTALLED {
        return Ok(json!({
            "session_id": id,
            "state": session.state,
            "integration_id": session.integration_id,
        }));
    }
    let Some(request_token) = session.request_token else {
        anyhow::bail!(
            "OAuth session {id} has no request token (state {}{}); wait for `jirasync oauth status {id}` \
             to show awaiting_authorization, or start again with `jirasync oauth start`",
            session.state,
            session
                .error
                .map(|error| format!(": {error}"))
                .unwrap_or_default()
        );
    };
    let publisher = JobPublisher::connect(&args.services).await?;
    let job = OauthAccessToken {
        oauth_token: request_token,
        oauth_verifier: Some(args.verifier.clone()),
    };
    let published = publisher.publish(&job).await;
    publisher.close().await;
    let message_id = published?;
    Ok(json!({ "session_id": id, "message_id": message_id }))
}
