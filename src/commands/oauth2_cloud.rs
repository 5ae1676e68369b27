//! `jirasync oauth start --cloud --client-id ID --client-secret-file FILE
//! [--site URL]`: the command-line side of the Jira Cloud OAuth 2.0 (3LO)
//! install (docs/reference.md §11.2; CONTRACT §11.3b). It records an
//! `oauth2_cloud` session with a fresh `state` and prints Atlassian's authorize
//! URL at once; Atlassian's redirect to the Cloud callback and the worker's
//! `jira_cloud.oauth2_token` job do the rest. `--wait`, `oauth status` and
//! `oauth finish --code` are the Data Center form's (`oauth2.rs`).

use anyhow::Context;
use uuid::Uuid;

use super::link::read_secret_file;
use super::oauth_session::{StartArgs, Started};
use crate::cloud::oauth::{SCOPES, authorize_url};
use crate::config::secure_url;
use crate::db::oauth_sessions::{self, NewOAuth2, NewSession, Oauth2Server};
use crate::integration::routes;
use crate::jira::oauth2_flow::fresh_secret;

/// Records an `awaiting_authorization` Cloud session and returns its authorize
/// URL. Nothing is recorded when an argument (the client id, the secret file,
/// `--site`, Atlassian's URLs) or Postgres is unusable.
pub async fn start(args: &StartArgs) -> anyhow::Result<Started> {
    let (Some(client_id), Some(secret_file)) = (&args.client_id, &args.client_secret_file) else {
        anyhow::bail!("--cloud takes --client-id and --client-secret-file");
    };
    anyhow::ensure!(
        !client_id.is_empty()
            && client_id.len() <= 256
            && !client_id
                .chars()
                .any(|c| c.is_control() || c.is_whitespace()),
        "--client-id must be the 3LO app's client id (Developer console → the app → Settings): \
         1 to 256 characters, no blanks"
    );
    let client_secret = read_secret_file(secret_file, "client secret")?;
    let site = args
        .site
        .as_deref()
        .map(|site| secure_url("--site", site))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let atlassian = &args.atlassian;
    secure_url("JIRASYNC_ATLASSIAN_AUTH_URL", &atlassian.auth_url).map_err(anyhow::Error::msg)?;
    secure_url("JIRASYNC_ATLASSIAN_API_URL", &atlassian.api_url).map_err(anyhow::Error::msg)?;
    let (client, keys) = super::database(&args.services.database).await?;
    let (session_id, state) = (Uuid::new_v4(), fresh_secret());
    let redirect_uri = routes::cloud_oauth2_callback_url(&args.public.url);
    let authorize_url = authorize_url(&atlassian.auth_url, client_id, &redirect_uri, &state);
    let scope = SCOPES.join(" ");
    oauth_sessions::insert_oauth2(
        &client,
        &keys,
        &NewSession {
            id: session_id,
            // The session's site; empty: the only one the authorization reaches.
            base_url: site.as_deref().unwrap_or_default(),
            verify_ssl: true,
        },
        &NewOAuth2 {
            server: Oauth2Server::Atlassian,
            client_id,
            client_secret: &client_secret,
            scope: &scope,
            code_verifier: None,
            state: &state,
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

/// What `oauth start --cloud` says on stderr beside the authorize URL.
pub fn next_step(args: &StartArgs, session_id: Uuid) -> String {
    format!(
        "Open the authorize_url in a browser, signed in to Atlassian as the owner of the OAuth \
         2.0 (3LO) app (the webhooks of a private app reach jirasync only when its owner \
         authorizes), and accept within 10 minutes; Atlassian sends the browser back to {}, and \
         `jirasync oauth status {session_id}` shows `installed`.",
        routes::cloud_oauth2_callback_url(&args.public.url)
    )
}
