//! Handler of `jira_cloud.oauth2_token` (docs/reference.md §11.2; CONTRACT
//! §11.3b): Atlassian's callback brought a code (or `error`) with a Cloud
//! session's `state`. Under the rules of the Data Center job (one use, 10
//! minutes, a refusal fails the session, passing failures retry): the code is
//! exchanged at `<AUTH>/oauth/token`, the granted scopes checked, the site
//! chosen among the token's accessible resources, the integration saved with
//! its tokens (REST through the gateway `<API>/ex/jira/<cloudId>`), its dynamic
//! webhook registered, and the session `installed`.
//! [`CloudOauth2Token`] is the message its producers publish: the callback's
//! query, as for Data Center ([`Oauth2Token`]).

use std::time::Duration;

use chrono::Utc;
use deadpool_postgres::Object;
use serde::{Deserialize, Serialize};

use super::install::{self, Refusal, Step, step};
use super::oauth2_token::{Oauth2Token, answered, claimed};
use crate::cloud::connect::atlassian::{self, Grant, app_hint, is_cloud_id};
use crate::cloud::dynamic_webhook;
use crate::cloud::oauth::{Resource, choose_site, missing_scope};
use crate::config::secure_url;
use crate::db::oauth_sessions::{self, Oauth2Server, Oauth2Session, Progress};
use crate::integration::install_record::{self, CloudInstall};
use crate::integration::{Credentials, cloud_record, messages, routes};
use crate::jira::oauth2_flow::ClientCredentials;
use crate::jira::{ClientOptions, JiraError};
use crate::queue::handler::{Failure, Incoming};
use crate::queue::job::Job;
use crate::worker::environment::Environment;
use crate::worker::outcome::Outcome;

/// `jira_cloud.oauth2_token`: exchange a Jira Cloud 3LO authorization code, or
/// record that Atlassian refused (`error`). The body is the callback's query,
/// the shape of [`Oauth2Token`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CloudOauth2Token(pub Oauth2Token);

impl std::fmt::Debug for CloudOauth2Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CloudOauth2Token").field(&self.0).finish()
    }
}

impl Job for CloudOauth2Token {
    const TYPE: &'static str = messages::CLOUD_OAUTH2_TOKEN;
    const SHAPE: &'static str = Oauth2Token::SHAPE;

    fn validate(&self) -> Result<(), String> {
        self.0.validate()
    }
}

/// The command that starts a Cloud install again, for the refusals.
const AGAIN: &str = "jirasync oauth start --cloud --client-id …";

/// How often the sites a token reaches are asked before the install gives up:
/// the code is spent by then, so a retry of the message could not exchange it
/// again.
const RESOURCE_TRIES: u32 = 3;

/// Completes the install (see the module's doc). Unknown, used or expired
/// states change nothing and exchange nothing: the callback is public.
pub async fn handle(
    env: &Environment,
    job: &CloudOauth2Token,
    message: &Incoming,
) -> Result<Outcome, Failure> {
    let job = &job.0;
    let mut client = env.pool.get().await?;
    let deny = |error: &str, description: Option<&str>| {
        answered("Atlassian", error, description, callback_hint(error))
    };
    let server = Oauth2Server::Atlassian;
    let session = match claimed(env, &client, server, job, message, deny).await? {
        Ok(session) => session,
        Err(outcome) => return Ok(outcome),
    };
    let step = complete(env, &mut client, &session, job).await;
    install::settle(&client, &session, step).await
}

/// What to do about an `error` Atlassian's consent screen sent back.
fn callback_hint(error: &str) -> &'static str {
    match error {
        "access_denied" => {
            "the user did not accept jirasync's access on Atlassian's consent screen: start \
             again with `jirasync oauth start --cloud …` and accept"
        }
        other => app_hint(other),
    }
}

/// Exchange (unless an earlier try stored the tokens), save, register; the
/// integration id.
async fn complete(
    env: &Environment,
    client: &mut Object,
    session: &Oauth2Session,
    job: &Oauth2Token,
) -> Step<i64> {
    let integration_id =
        match install::stored_access_token(client, env.pool.keys(), session).await? {
            Some(stored) => stored,
            None => step!(exchange(env, client, session, job).await),
        };
    register(env, integration_id).await
}

/// What an Atlassian call `doing` something returned: its value, a passing
/// failure, or the session's refusal.
fn judged<T>(env: &Environment, doing: &str, result: Result<T, JiraError>) -> Step<T> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(error) if error.is_transient() => Err(Failure::passing(error)),
        Err(JiraError::OAuth2Refused { error, hint }) => Ok(Err(Refusal(format!(
            "Atlassian ({}) refused {doing} (error={error}): {hint}",
            env.atlassian.auth_url
        )))),
        Err(error) => Ok(Err(Refusal(format!(
            "{doing} failed at Atlassian: {error}; start again with `{AGAIN}`"
        )))),
    }
}

/// Exchanges the code, checks the scopes, chooses the site and saves the
/// integration with the session linked, in one transaction.
async fn exchange(
    env: &Environment,
    client: &mut Object,
    session: &Oauth2Session,
    job: &Oauth2Token,
) -> Step<i64> {
    let (Some(code), Some(client_secret)) =
        (job.code.as_deref(), session.flow.client_secret.as_deref())
    else {
        return Ok(Err(Refusal(format!(
            "the OAuth 2.0 session lacks its code or client secret; start again with `{AGAIN}`"
        ))));
    };
    let http = env.pool.jira_http().get(&ClientOptions::default());
    let http = step!(judged(env, "setting up the HTTP client for", http));
    let app = ClientCredentials {
        id: &session.flow.client_id,
        secret: client_secret,
    };
    let redirect_uri = routes::cloud_oauth2_callback_url(&env.public_url);
    let grant =
        atlassian::authorization_code(&http, &env.atlassian.token_url(), app, code, &redirect_uri)
            .await;
    let Grant { tokens, scope } = step!(judged(env, "the authorization code", grant));
    if let Some(missing) = missing_scope(&scope) {
        return Ok(Err(Refusal(format!(
            "the authorization lacks the scope {missing}: add it to the app in Atlassian's \
             developer console (developer.atlassian.com → Developer console → the app → \
             Permissions → Jira API → Configure → Edit scopes), then start again with `{AGAIN}`; \
             nothing was saved"
        ))));
    }
    // `authorization_code` answers only grants with an access token.
    let Some(access_token) = tokens.access_token.clone() else {
        return Ok(Err(Refusal(format!(
            "Atlassian's token answer carries no access_token; start again with `{AGAIN}`"
        ))));
    };
    let resources = step!(accessible_resources(env, &http, &access_token).await);
    let wanted = Some(session.base_url.as_str()).filter(|site| !site.is_empty());
    let resource = match choose_site(&resources, wanted) {
        Ok(resource) => resource,
        Err(why) => return Ok(Err(Refusal(format!("{why}; nothing was saved")))),
    };
    let site = match secure_url("the site Atlassian named", &resource.url) {
        Ok(site) if is_cloud_id(&resource.id) => site,
        _ => {
            return Ok(Err(Refusal(format!(
                "Atlassian named a site jirasync cannot use (an https:// URL and a cloudId \
                 are needed): {:?}; nothing was saved",
                resource.url
            ))));
        }
    };
    let now = Utc::now();
    let credentials = Credentials::OAuth2 {
        client_id: session.flow.client_id.clone(),
        client_secret: client_secret.to_owned(),
        access_token,
        refresh_token: tokens.refresh_token.clone(),
        expires_at: Some(tokens.expires_at(now)),
        refreshed_at: Some(now),
    };
    let gateway = env.atlassian.gateway(&resource.id);
    let install = CloudInstall {
        site: &site,
        cloud_id: &resource.id,
        base_url: &gateway,
        name: None,
        credentials: &credentials,
    };
    let keys = env.pool.keys();
    let tx = client.transaction().await?;
    let saved = step!(install::saved(
        install_record::save_cloud(&tx, keys, &install).await
    ));
    cloud_record::record_auth_url(&tx, keys, saved.id, Some(&env.atlassian.auth_url)).await?;
    oauth_sessions::record(&tx, session.id, saved.id, Progress::TokenStored).await?;
    tx.commit().await?;
    install::note_disabled(&saved);
    tracing::info!(
        integration.id = saved.id,
        cloud.id = %resource.id,
        "Jira Cloud site connected through its OAuth 2.0 (3LO) app"
    );
    Ok(Ok(saved.id))
}

/// The sites the new token reaches. The code is spent: a passing failure is
/// tried again here a few times, then fails the session (a retry of the message
/// could not exchange the code again).
async fn accessible_resources(
    env: &Environment,
    http: &reqwest::Client,
    access_token: &str,
) -> Step<Vec<Resource>> {
    let api_url = &env.atlassian.api_url;
    let mut tries = 0;
    loop {
        tries += 1;
        let error = match atlassian::accessible_resources(http, api_url, access_token).await {
            Ok(resources) => return Ok(Ok(resources)),
            Err(error) if error.is_transient() && tries < RESOURCE_TRIES => error,
            Err(error) => {
                return Ok(Err(Refusal(format!(
                    "asking Atlassian's API gateway ({api_url}) which sites the authorization \
                     reaches failed: {error}; the code is spent, so start again with `{AGAIN}`; \
                     nothing was saved"
                ))));
            }
        };
        tracing::warn!(%error, "Atlassian's accessible-resources failed; asking again");
        tokio::time::sleep(Duration::from_secs(u64::from(tries))).await;
    }
}

/// Registers the saved integration's dynamic webhook — or, when it has one
/// recorded that Jira still lists (a retry of this job, the site connected
/// again by the same app), refreshes that one, so Cloud never delivers each
/// event twice; a refusal says that the integration was saved and how to finish.
async fn register(env: &Environment, integration_id: i64) -> Step<i64> {
    let integration = step!(install::installed_integration(env, integration_id).await);
    let jql = &env.atlassian.webhook_jql;
    match dynamic_webhook::refresh(&env.pool, &integration, &env.public_url, jql).await {
        Ok(recorded) => {
            tracing::info!(
                integration.id = integration_id,
                webhook.id = %recorded.id,
                "dynamic webhook registered in Jira Cloud"
            );
            Ok(Ok(integration_id))
        }
        Err(error) if error.is_transient() => Err(Failure::passing(error)),
        Err(error) => Ok(Err(Refusal(format!(
            "integration {integration_id} was saved, but Jira Cloud refused to register its \
             dynamic webhook: {error}. The webhooks of a private 3LO app reach jirasync only when \
             the app's owner authorizes it with the scope manage:jira-webhook: have the owner \
             run `{AGAIN}` again and accept (the integration is updated, not duplicated)"
        )))),
    }
}
