//! `jirasync oauth start --client-id ID --client-secret-file FILE [--scope S]`
//! and `oauth finish SESSION_ID --code CODE`: the command-line side of the OAuth
//! 2.0 install (docs/reference.md §6.2). `start` records a session with a fresh
//! `state` and PKCE verifier and prints the authorize URL at once; Jira's
//! redirect to the callback and the worker's `jira_server.oauth2_token` job do
//! the rest. When the callback cannot be reached, `finish --code` enqueues that
//! job itself with the code the browser's address bar shows.

use anyhow::Context;
use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::job::JobPublisher;
use super::link::read_secret_file;
use super::oauth_session::{FinishArgs, StartArgs, Started, wait_until};
use crate::db::oauth_sessions::{
    self, NewOAuth2, OAUTH2_STATE_LIFETIME, Oauth2Server, OauthSession, State,
};
use crate::integration::routes;
use crate::jira::Auth;
use crate::jira::oauth2_flow::{AuthorizeRequest, fresh_secret};
use crate::worker::jobs::{CloudOauth2Token, Oauth2Token};

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
        &args.session(session_id, &base_url),
        &NewOAuth2 {
            server: Oauth2Server::Jira,
            client_id,
            client_secret: &client_secret,
            scope,
            code_verifier: Some(&code_verifier),
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
    if args.cloud {
        eprintln!("{}", super::oauth2_cloud::next_step(args, id));
    } else {
        eprintln!(
            "Open the authorize_url in a browser, signed in to Jira (as an administrator, to \
             register the webhook), and allow access within 10 minutes; Jira sends the browser \
             back to {}, and `jirasync oauth status {id}` shows `installed`.",
            routes::oauth2_callback_url(&args.public.url)
        );
    }
    let Some(wait) = args.wait else {
        return Ok(());
    };
    let (client, keys) = super::database(&args.services.database).await?;
    let installed = |session: &OauthSession| session.state == State::Installed;
    let session = wait_until(&client, &keys, id, wait, installed).await?;
    println!("{}", session.public_json());
    Ok(())
}

/// The longest code taken, as the callback takes it.
const MAX_CODE_LEN: usize = 1024;

/// `oauth finish SESSION_ID --code CODE`: enqueues the session's
/// `jira_server.oauth2_token` job (`jira_cloud.oauth2_token` for a Jira Cloud
/// session) with `code`, as the callback does, when the
/// session awaits authorization and started less than 10 minutes ago; a clear
/// error otherwise (an OAuth 1.0a session, a failed, finishing or expired one).
pub async fn finish(
    args: &FinishArgs,
    client: &deadpool_postgres::Object,
    session: OauthSession,
    given: &str,
) -> anyhow::Result<Value> {
    let id = session.id;
    let Some(session) = session.into_oauth2() else {
        anyhow::bail!(
            "OAuth session {id} is an OAuth 1.0a one: finish it with `jirasync oauth finish {id} \
             --verifier VERIFIER`, VERIFIER being the code Jira showed after authorization"
        );
    };
    let cloud = session.flow.server == Oauth2Server::Atlassian;
    let again = match cloud {
        true => "jirasync oauth start --cloud --client-id …",
        false => "jirasync oauth start --client-id …",
    };
    match session.state {
        State::AwaitingAuthorization => {}
        State::Failed => anyhow::bail!(
            "OAuth session {id} has failed ({}); start again with `{again}`",
            session.error.as_deref().unwrap_or("no error recorded")
        ),
        other => anyhow::bail!(
            "OAuth session {id} is {other}: a code is being exchanged already (the callback or an \
             earlier `oauth finish` brought one); `jirasync oauth status {id}` shows how it ends"
        ),
    }
    let lifetime = TimeDelta::from_std(OAUTH2_STATE_LIFETIME).unwrap_or(TimeDelta::MAX);
    anyhow::ensure!(
        Utc::now() - session.created_at <= lifetime,
        "OAuth session {id} started more than {} minutes ago and has expired; start again with \
         `{again}` and finish within {} minutes",
        lifetime.num_minutes(),
        lifetime.num_minutes()
    );
    let session_state = oauth_sessions::oauth2_state(client, id)
        .await
        .context("failed to read the OAuth session")?
        .with_context(|| format!("OAuth session {id} has no state; start again"))?;
    let code = code_of(given, &session_state, id, again)?;
    let job = Oauth2Token {
        state: session_state,
        code: Some(code),
        error: None,
        error_description: None,
    };
    let message_id = match cloud {
        true => JobPublisher::enqueue(&args.services, &CloudOauth2Token(job)).await?,
        false => JobPublisher::enqueue(&args.services, &job).await?,
    };
    Ok(json!({ "session_id": id, "message_id": message_id }))
}

/// The code in `given`: the code itself, or the address Jira sent the browser
/// to (whose `state` must be the session's, and which may carry Jira's `error`
/// instead of a code).
fn code_of(given: &str, session_state: &str, id: Uuid, again: &str) -> anyhow::Result<String> {
    let given = given.trim();
    let query = match given.split_once('?') {
        Some((_, query)) => Some(query),
        None if given.starts_with("code=") => Some(given),
        None => None,
    };
    let code = match query {
        None => given.to_owned(),
        Some(query) => {
            let pairs: Vec<(String, String)> = reqwest::Url::parse(&format!("http://q/?{query}"))
                .map(|url| url.query_pairs().into_owned().collect())
                .unwrap_or_default();
            let get = |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| key == name)
                    .map(|(_, value)| value.clone())
            };
            if get("state").is_some_and(|state| state != session_state) {
                anyhow::bail!(
                    "the address given to --code is of another authorization than OAuth session \
                     {id} (its state differs); give the address Jira sent the browser to after \
                     opening this session's authorize_url"
                );
            }
            if let Some(error) = get("error") {
                anyhow::bail!(
                    "jirasync was not authorized (error={}); start again with `{again}`",
                    printable(&error)
                );
            }
            get("code").with_context(|| {
                "the address given to --code has no code= parameter; give the code alone".to_owned()
            })?
        }
    };
    anyhow::ensure!(
        !code.is_empty()
            && code.len() <= MAX_CODE_LEN
            && !code.chars().any(|c| c.is_control() || c.is_whitespace()),
        "--code must be the code Jira issued: 1 to {MAX_CODE_LEN} characters, no blanks"
    );
    Ok(code)
}

/// At most 100 characters of `text`, control characters as blanks.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(100)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_taken_alone_or_from_the_address_jira_sent_the_browser_to() {
        let id = Uuid::nil();
        let code = |given: &str| code_of(given, "st4te", id, "again").map_err(|e| e.to_string());
        assert_eq!(code(" abc-123 ").as_deref(), Ok("abc-123"));
        assert_eq!(code("code=abc").as_deref(), Ok("abc"));
        assert_eq!(
            code("https://sync.example.com/extensions/jira-server/oauth2/callback?code=a%2Fb&state=st4te")
                .as_deref(),
            Ok("a/b")
        );
        let other = code("https://x/cb?code=abc&state=other").expect_err("another state");
        assert!(other.contains("another authorization"), "{other}");
        let denied = code("https://x/cb?error=access_denied&state=st4te").expect_err("denied");
        assert!(denied.contains("error=access_denied"), "{denied}");
        for bad in [
            "",
            "a b",
            "a\x1bb",
            &"c".repeat(MAX_CODE_LEN + 1),
            "https://x/cb?state=st4te",
        ] {
            assert!(code(bad).is_err(), "{bad:?}");
        }
    }
}
