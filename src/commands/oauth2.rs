//! `jirasync oauth start --client-id ID --client-secret-file FILE [--scope S]`:
//! the command-line side of the OAuth 2.0 install (docs/reference.md §6.2). It
//! records a session with a fresh `state` and PKCE verifier and prints the
//! authorize URL at once; Jira's redirect to the callback and the worker's
//! `jira_server.oauth2_token` job do the rest. No job is enqueued here.

use anyhow::Context;
use serde_json::json;
use uuid::Uuid;

use super::link::read_secret_file;
use super::oauth_session::{StartArgs, Started, wait_until};
use crate::db::oauth_sessions::{self, NewOAuth2, NewSession, state};
use crate::integration::routes;
use crate::jira::Auth;
use crate::jira::oauth2::{AuthorizeRequest, fresh_secret};

/// The scope asked for by default: webhook registration needs an administrator's.
pub const DEFAULT_SCOPE: &str = "ADMIN";

/// Records an `awaiting_authorization` OAuth 2.0 session and returns its
/// authorize URL. Nothing is recorded when the client secret, the base URL or
/// Postgres is unusable.
pub async fn start(args: &StartArgs) -> anyhow::Result<Started> {
    let (Some(client_id), Some(secret_file)) = (&args.client_id, &args.client_secret_file) else {
        anyhow::bail!("give --client-id and --client-secret-file");
    };
    let client_secret = read_secret_file(secret_file, "client secret")?;
    let base_url = args.link.base_url()?;
    let (client, keys) = super::database(&args.services.database).await?;
    let (session_id, oauth2_state, code_verifier) =
        (Uuid::new_v4(), fresh_secret(), fresh_secret());
    let scope = args.scope.as_deref().unwrap_or(DEFAULT_SCOPE);
    let redirect_uri = routes::oauth2_callback_url(&args.public.url);
    let authorize_url = args
        .link
        .client(&base_url, Auth::Bearer(String::new()))?
        .oauth2_authorize_url(&AuthorizeRequest {
            client_id,
            redirect_uri: &redirect_uri,
            scope,
            state: &oauth2_state,
            code_verifier: &code_verifier,
        })?
        .to_string();
    oauth_sessions::insert_oauth2(
        &client,
        &keys,
        &NewSession {
            id: session_id,
            base_url: &base_url,
            consumer_key: client_id,
            private_key: "",
            verify_ssl: !args.link.no_verify_ssl,
        },
        &NewOAuth2 {
            client_secret: &client_secret,
            scope,
            code_verifier: &code_verifier,
            state: &oauth2_state,
            authorize_url: &authorize_url,
        },
    )
    .await
    .context("failed to record the OAuth session")?;
    Ok(Started {
        session_id,
        authorize_url: Some(authorize_url),
    })
}

/// Prints the session and its authorize URL; with `--wait`, then waits for the
/// install and prints the session once `installed` (a failure is an error).
pub async fn report(args: &StartArgs, started: &Started) -> anyhow::Result<()> {
    let id = started.session_id;
    println!(
        "{}",
        json!({ "session_id": id, "authorize_url": started.authorize_url })
    );
    eprintln!(
        "Open the authorize_url in a browser, signed in to Jira (as an administrator, to register \
         the webhook), and allow access within 10 minutes; Jira sends the browser back to \
         {}, and `jirasync oauth status {id}` shows `installed`.",
        routes::oauth2_callback_url(&args.public.url)
    );
    let Some(wait) = args.wait else {
        return Ok(());
    };
    let (client, keys) = super::database(&args.services.database).await?;
    let installed = |session: &oauth_sessions::OauthSession| session.state == state::INSTALLED;
    let session = wait_until(&client, &keys, id, wait, installed).await?;
    println!("{}", session.public_json());
    Ok(())
}
