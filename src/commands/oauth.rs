//! `jirasync oauth start|status|finish`: the command-line side of the OAuth 1.0a
//! install flow (CONTRACT §1, §7). The work happens in the worker's OAuth jobs;
//! these commands record the session, enqueue jobs and read the session back.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use uuid::Uuid;

use super::integration::{check_base_url, read_private_key};
use super::job::JobPublisher;
use crate::cli::OauthCommand;
use crate::config::Settings;
use crate::db::oauth_sessions::{self, NewSession, OauthSession, state};
use crate::install::normalize_base_url;
use crate::queue::{OAUTH_ACCESS_TOKEN, OAUTH_REQUEST_TOKEN};

/// How often `--wait` looks at the session.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The arguments of `oauth start`.
#[derive(Debug, Clone)]
pub struct StartArgs {
    /// Jira's base URL.
    pub base_url: String,
    /// Consumer key of the application link.
    pub consumer_key: String,
    /// PEM file with the application link's private key.
    pub private_key_file: PathBuf,
    /// Verify Jira's TLS certificate.
    pub verify_ssl: bool,
    /// Wait this long for the authorize URL.
    pub wait: Option<Duration>,
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
pub async fn run(settings: &Settings, command: OauthCommand) -> anyhow::Result<()> {
    match command {
        OauthCommand::Start {
            base_url,
            consumer_key,
            private_key_file,
            no_verify_ssl,
            wait,
        } => {
            let args = StartArgs {
                base_url,
                consumer_key,
                private_key_file,
                verify_ssl: !no_verify_ssl,
                wait: wait.map(Duration::from_secs),
            };
            let started = start(settings, &args).await?;
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
        OauthCommand::Status { session_id } => {
            println!("{:#}", status(settings, session_id).await?);
        }
        OauthCommand::Finish {
            session_id,
            verifier,
        } => println!("{}", finish(settings, session_id, &verifier).await?),
    }
    Ok(())
}

/// Records a `pending` session and enqueues its request-token job; with
/// `wait`, polls the session until it has an authorize URL (Ok), failed (Err
/// with its error) or the time is up (Err).
pub async fn start(settings: &Settings, args: &StartArgs) -> anyhow::Result<Started> {
    let pem = read_private_key(&args.private_key_file, &args.consumer_key)?;
    let base_url = normalize_base_url(&args.base_url);
    check_base_url(&base_url, &args.consumer_key, &pem)?;
    // Both services first, so nothing is recorded when one is unreachable.
    let pool = crate::db::connect(&settings.database_url, 1).await?;
    let publisher = JobPublisher::connect(settings).await?;
    let client = pool
        .get()
        .await
        .context("failed to get a database connection")?;
    let session_id = Uuid::new_v4();
    oauth_sessions::insert(
        &client,
        &NewSession {
            id: session_id,
            base_url: &base_url,
            consumer_key: &args.consumer_key,
            private_key: &pem,
            verify_ssl: args.verify_ssl,
        },
    )
    .await
    .context("failed to record the OAuth session")?;
    let published = publisher
        .publish(OAUTH_REQUEST_TOKEN, &json!({ "session_id": session_id }))
        .await;
    publisher.close().await;
    if let Err(error) = published {
        let text = format!("{error:#}");
        let _ = oauth_sessions::mark_failed(&client, session_id, &text).await;
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
        let session = oauth_sessions::get(client, id)
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
async fn load(settings: &Settings, id: Uuid) -> anyhow::Result<oauth_sessions::OauthSession> {
    let pool = crate::db::connect(&settings.database_url, 1).await?;
    let client = pool
        .get()
        .await
        .context("failed to get a database connection")?;
    oauth_sessions::get(&client, id)
        .await
        .context("failed to read the OAuth session")?
        .with_context(|| format!("no OAuth session has id {id}"))
}

/// The session as JSON, without its private key, tokens or secrets.
pub async fn status(settings: &Settings, id: Uuid) -> anyhow::Result<Value> {
    let session = load(settings, id).await?;
    Ok(session.public_json())
}

/// Enqueues the access-token job for the session's request token with
/// `verifier` (what the callback would have done). An installed session is
/// reported as such and nothing is enqueued.
pub async fn finish(settings: &Settings, id: Uuid, verifier: &str) -> anyhow::Result<Value> {
    let session = load(settings, id).await?;
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
    let publisher = JobPublisher::connect(settings).await?;
    let published = publisher
        .publish(
            OAUTH_ACCESS_TOKEN,
            &json!({ "oauth_token": request_token, "oauth_verifier": verifier }),
        )
        .await;
    publisher.close().await;
    let message_id = published?;
    Ok(json!({ "session_id": id, "message_id": message_id }))
}
