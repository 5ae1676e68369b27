//! `jirasync oauth start|status|finish`: the command-line side of the install
//! flows, OAuth 1.0a and (in `oauth2.rs`) OAuth 2.0 (docs/reference.md §1, §6),
//! and (in `oauth2_cloud.rs`) Jira Cloud's OAuth 2.0 (3LO) (§11.2). The
//! work happens in the worker's OAuth jobs; these commands record the session,
//! enqueue jobs and read the session back.

use anyhow::Context;
use serde_json::{Value, json};
use uuid::Uuid;

use super::job::JobPublisher;
use super::link::Oauth1Link;
pub use super::oauth_session::{FinishArgs, StartArgs, Started, StatusArgs};
use super::oauth_session::{load, wait_until};
use crate::db::oauth_sessions::{self, NewOAuth1, OauthSession, SessionRef, State};
use crate::worker::jobs::{OauthAccessToken, OauthRequestToken};

/// `jirasync oauth …`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Start the install flow: record a session and print the authorize URL
    /// (OAuth 2.0, Data Center or Jira Cloud with `--cloud`), or enqueue the
    /// request-token job (OAuth 1.0a).
    Start(Box<StartArgs>),
    /// Print a session's state as JSON.
    Status(StatusArgs),
    /// Finish a session by hand when the callback cannot be reached: OAuth 1.0a
    /// with the verifier Jira showed, OAuth 2.0 (Data Center or Cloud) with the
    /// code of the address Jira or Atlassian sent the browser to.
    Finish(FinishArgs),
}

/// Runs one `oauth` subcommand, printing its result on stdout.
pub async fn run(command: &Command) -> anyhow::Result<()> {
    match command {
        Command::Start(args) => {
            let started = start(args).await?;
            if args.client_id.is_some() {
                return super::oauth2::report(args, &started).await;
            }
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

/// With `--cloud`, records a Jira Cloud 3LO session
/// ([`super::oauth2_cloud::start`]); with `--client-id`, an OAuth 2.0 session
/// ([`super::oauth2::start`]).
/// Otherwise records a `pending` OAuth 1.0a session and enqueues its
/// request-token job; with `wait`, polls the session until it has an authorize
/// URL (Ok), failed (Err with its error) or the time is up (Err).
pub async fn start(args: &StartArgs) -> anyhow::Result<Started> {
    if args.cloud {
        super::transport::warn("", true, Some(&args.public.url));
        return super::oauth2_cloud::start(args).await;
    }
    super::transport::warn(
        &args.link.base_url,
        !args.link.no_verify_ssl,
        Some(&args.public.url),
    );
    if args.client_id.is_some() {
        return super::oauth2::start(args).await;
    }
    let base_url = args.link.base_url()?;
    let Some(Oauth1Link {
        consumer_key,
        private_key,
    }) = args.link.oauth1()?
    else {
        anyhow::bail!("give --consumer-key and --private-key-file, or --client-id");
    };
    // Both services first, so nothing is recorded when one is unreachable.
    let (client, keys) = super::database(&args.services.database).await?;
    let publisher = JobPublisher::connect(&args.services).await?;
    let session_id = Uuid::new_v4();
    oauth_sessions::insert_oauth1(
        &client,
        &keys,
        &args.session(session_id, &base_url),
        &NewOAuth1 {
            consumer_key: &consumer_key,
            private_key: &private_key,
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
    let has_url =
        |session: &OauthSession| session.state != State::Pending && session.authorize_url.is_some();
    let session = wait_until(&client, &keys, session_id, wait, has_url).await?;
    Ok(Started {
        session_id,
        authorize_url: session.authorize_url,
    })
}

/// The session as JSON, without its private key, tokens or secrets.
pub async fn status(args: &StatusArgs) -> anyhow::Result<Value> {
    let (_, session) = load(&args.database, args.session_id).await?;
    Ok(session.public_json())
}

/// Finishes the session by hand: with `--code`, an OAuth 2.0 session
/// ([`super::oauth2::finish`]); with `--verifier`, enqueues the access-token job
/// for an OAuth 1.0a session's request token (what the callback would have
/// done). An installed session is reported as such and nothing is enqueued.
pub async fn finish(args: &FinishArgs) -> anyhow::Result<Value> {
    let id = args.session_id;
    let (client, session) = load(&args.services.database, id).await?;
    if session.state == State::Installed {
        return Ok(json!({
            "session_id": id,
            "state": session.state.as_str(),
            "integration_id": session.integration_id,
        }));
    }
    let verifier = match (&args.code, &args.verifier) {
        (Some(code), _) => return super::oauth2::finish(args, &client, session, code).await,
        (None, Some(verifier)) => verifier,
        (None, None) => anyhow::bail!("give --verifier (OAuth 1.0a) or --code (OAuth 2.0)"),
    };
    let Some(session) = session.into_oauth1() else {
        anyhow::bail!(
            "OAuth session {id} is an OAuth 2.0 one: finish it with `jirasync oauth finish {id} --code CODE`, \
             CODE being the code= of the address Jira sent the browser to"
        );
    };
    let Some(request_token) = session.flow.request_token else {
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
    let job = OauthAccessToken {
        oauth_token: request_token,
        oauth_verifier: Some(verifier.clone()),
    };
    let message_id = JobPublisher::enqueue(&args.services, &job).await?;
    Ok(json!({ "session_id": id, "message_id": message_id }))
}
