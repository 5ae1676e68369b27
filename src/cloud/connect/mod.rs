//! `integration add --cloud` (docs/reference.md §11.1–§11.4): finds the site's
//! cloudId, checks the credentials — an API token at the site, then through the
//! API gateway; a service account's client-credentials token through the
//! gateway — saves the integration in one transaction (nothing before a check
//! passed), and registers the admin webhook or hands back what to paste in
//! *System → WebHooks*. Called by `commands::integration`; [`atlassian`] holds
//! the HTTP calls, also used by `Integration::with_jira` to renew a service
//! account's token.

pub mod atlassian;

use anyhow::Context;
use chrono::Utc;
use serde_json::{Value, json};

use self::atlassian::{AccessToken, Site};
use crate::config::{AtlassianSettings, secure_url};
use crate::db::DbPool;
use crate::integration::cloud_record;
use crate::integration::install_record::{self, CloudInstall};
use crate::integration::{Credentials, Integration};
use crate::jira::auth::{basic, bearer};
use crate::jira::{ClientOptions, ISSUE_EVENTS, JiraError};

/// How jirasync is to call the site.
pub enum CloudAuth {
    /// An Atlassian account's email and API token (`api_token`).
    ApiToken {
        /// The account's email.
        email: String,
        /// The token. Secret.
        token: String,
    },
    /// A service account's OAuth 2.0 credential (`client_credentials`).
    ServiceAccount {
        /// The credential's client id.
        client_id: String,
        /// Its secret. Secret.
        client_secret: String,
    },
}

impl std::fmt::Debug for CloudAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ApiToken { email, .. } => f
                .debug_struct("ApiToken")
                .field("email", email)
                .finish_non_exhaustive(),
            Self::ServiceAccount { client_id, .. } => f
                .debug_struct("ServiceAccount")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
        }
    }
}

/// What `integration add --cloud` connects.
#[derive(Debug)]
pub struct Request<'a> {
    /// `--site`, e.g. `https://acme.atlassian.net`.
    pub site: &'a str,
    /// The credentials, read from their files.
    pub auth: CloudAuth,
    /// `--name`.
    pub name: Option<&'a str>,
    /// `--register-webhook`.
    pub register_webhook: bool,
    /// `JIRASYNC_PUBLIC_URL`, which the webhook URL is built on.
    pub public_url: &'a str,
    /// Atlassian's servers.
    pub atlassian: &'a AtlassianSettings,
}

/// What connecting did. `Debug` leaves the HMAC secret out.
#[derive(Clone)]
pub struct Connected {
    /// The integration's id.
    pub id: i64,
    /// Its external id (the cloudId).
    pub external_id: String,
    /// The site.
    pub site: String,
    /// `api_token` or `client_credentials`.
    pub auth_method: &'static str,
    /// The webhook URL (with its token).
    pub webhook_url: String,
    /// The HMAC secret deliveries are signed with. Secret: shown only in
    /// `manual_webhook`.
    hmac_secret: String,
    /// The admin webhook registered: its id, when Atlassian named one.
    pub registered: Option<Option<String>>,
    /// Why registering failed (the integration is saved; the command fails).
    pub registration_error: Option<String>,
    /// Notes for stderr (an ignored `--register-webhook`, a disabled integration).
    pub notes: Vec<String>,
    /// Whether the integration was disabled (it stays so).
    pub disabled: bool,
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connected")
            .field("id", &self.id)
            .field("external_id", &self.external_id)
            .field("site", &self.site)
            .field("auth_method", &self.auth_method)
            .field("registered", &self.registered)
            .field("registration_error", &self.registration_error)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

impl Connected {
    /// The JSON `integration add --cloud` prints: `webhook` when one was
    /// registered, else `manual_webhook` with the secret to paste once.
    pub fn json(&self) -> Value {
        let mut json = json!({
            "id": self.id,
            "external_id": self.external_id,
            "site": self.site,
            "auth_method": self.auth_method,
            "webhook_url": self.webhook_url,
        });
        match &self.registered {
            Some(id) => {
                json["webhook"] = json!({"kind": "admin", "id": id, "hmac_signed": true});
            }
            None => {
                json["manual_webhook"] = json!({
                    "url": self.webhook_url,
                    "secret": self.hmac_secret,
                    "events": ISSUE_EVENTS,
                });
            }
        }
        json
    }
}

/// Connects the site: probe, check, save, register (see the module's doc).
/// Every failure before the save is one error naming what to fix, and saves
/// nothing; a failed registration is reported in [`Connected`].
pub async fn connect(pool: &DbPool, request: &Request<'_>) -> anyhow::Result<Connected> {
    let site = checked_site(request.site, request.atlassian)?;
    let atlassian = request.atlassian;
    let http = pool
        .jira_http()
        .get(&ClientOptions::default())
        .context("failed to set up the HTTP client")?;

    let cloud_id = match atlassian::probe(&http, &site)
        .await
        .with_context(|| format!("failed to reach --site {site}; nothing was saved"))?
    {
        Site::Cloud(cloud_id) => cloud_id,
        Site::DataCenter(kind) => anyhow::bail!(
            "--site {site} is a Jira Data Center (deploymentType {kind}), not Jira Cloud: connect \
             it with `jirasync integration add --base-url {site}`; nothing was saved"
        ),
        Site::NotJira => anyhow::bail!(
            "--site {site} is not a Jira site (no cloudId at /_edge/tenant_info, no Jira at \
             /rest/api/2/serverInfo): give the Jira Cloud site's address, such as \
             https://acme.atlassian.net; nothing was saved"
        ),
    };
    let gateway = atlassian.gateway(&cloud_id);

    let (base_url, credentials, auth_url) = match &request.auth {
        CloudAuth::ApiToken { email, token } => {
            let base = check_api_token(&http, &site, &gateway, email, token).await?;
            let credentials = Credentials::ApiToken {
                email: email.clone(),
                token: token.clone(),
            };
            (base, credentials, None)
        }
        CloudAuth::ServiceAccount {
            client_id,
            client_secret,
        } => {
            let token =
                check_service_account(&http, atlassian, &site, &gateway, client_id, client_secret)
                    .await?;
            let credentials = Credentials::ClientCredentials {
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                access_token: token.token,
                expires_at: Some(token.expires_at),
            };
            (
                gateway.clone(),
                credentials,
                Some(atlassian.auth_url.as_str()),
            )
        }
    };

    let saved = save(
        pool,
        &site,
        &cloud_id,
        &base_url,
        request.name,
        &credentials,
        auth_url,
    )
    .await?;
    let webhook_url = saved.webhook_url(request.public_url)?;
    let hmac_secret = saved
        .metadata
        .webhook_hmac_secret
        .clone()
        .context("the saved integration has no webhook_hmac_secret")?;
    let mut connected = Connected {
        id: saved.id,
        external_id: saved.external_id.clone(),
        site: site.clone(),
        auth_method: credentials.method().as_str(),
        webhook_url,
        hmac_secret,
        registered: None,
        registration_error: None,
        notes: Vec::new(),
        disabled: saved.is_disabled(),
    };
    if connected.disabled {
        connected.notes.push(format!(
            "integration {} is disabled: its credentials were updated and it stays disabled \
             (its webhooks are dropped); `jirasync integration enable {}` lets it take them again",
            saved.id, saved.id
        ));
    }
    if !request.register_webhook {
        return Ok(connected);
    }
    let CloudAuth::ApiToken { email, token } = &request.auth else {
        connected.notes.push(
            "--register-webhook is ignored for a service account (that it may register webhooks \
             is not documented): have a Jira admin paste the manual_webhook's url and secret once \
             under System → WebHooks"
                .to_owned(),
        );
        return Ok(connected);
    };
    register(pool, &http, &saved, &mut connected, email, token).await?;
    Ok(connected)
}

/// A service account's token from `<AUTH>/oauth/token`, checked with
/// `GET /rest/api/3/myself` through the gateway.
async fn check_service_account(
    http: &reqwest::Client,
    atlassian: &AtlassianSettings,
    site: &str,
    gateway: &str,
    client_id: &str,
    client_secret: &str,
) -> anyhow::Result<AccessToken> {
    let token =
        atlassian::client_credentials(http, &atlassian.token_url(), client_id, client_secret)
            .await
            .map_err(|error| match error {
                JiraError::OAuth2Refused { error, .. } => anyhow::anyhow!(
                    "Atlassian ({}) refused the service account's client id {client_id} and its \
                 secret ({error}): check both (admin.atlassian.com → Directory → Service \
                 accounts → the account's OAuth 2.0 credential); nothing was saved",
                    atlassian.auth_url
                ),
                other => anyhow::Error::new(other).context(format!(
                    "failed to get the service account's token from {}; nothing was saved",
                    atlassian.auth_url
                )),
            })?;
    atlassian::myself(http, gateway, &bearer(&token.token))
        .await
        .map_err(|error| match atlassian::is_refused(&error) {
            true => anyhow::anyhow!(
                "the API gateway refused the service account {client_id} for {site} (HTTP {}): \
                 give its OAuth 2.0 credential access to this site and the scopes \
                 read:jira-user read:jira-work write:jira-work; nothing was saved",
                error.status().unwrap_or(401)
            ),
            false => anyhow::Error::new(error).context(format!(
                "failed to check the service account's token through the API gateway {}; \
                 nothing was saved",
                atlassian.api_url
            )),
        })?;
    Ok(token)
}

/// `--site` without trailing slashes, once it and Atlassian's two URLs are
/// `https://` (or `http://` to a loopback host); else a refusal naming the one.
pub fn checked_site(site: &str, atlassian: &AtlassianSettings) -> anyhow::Result<String> {
    let site = secure_url("--site", site).map_err(anyhow::Error::msg)?;
    secure_url("JIRASYNC_ATLASSIAN_AUTH_URL", &atlassian.auth_url).map_err(anyhow::Error::msg)?;
    secure_url("JIRASYNC_ATLASSIAN_API_URL", &atlassian.api_url).map_err(anyhow::Error::msg)?;
    Ok(site)
}

/// Checks an API token with `GET /rest/api/3/myself` at the site, then (on 401
/// or 403: a scoped token) through the gateway: the base that answered.
async fn check_api_token(
    http: &reqwest::Client,
    site: &str,
    gateway: &str,
    email: &str,
    token: &str,
) -> anyhow::Result<String> {
    let basic = basic(email, token);
    let failed = |error: JiraError, at: &str| {
        anyhow::Error::new(error).context(format!(
            "failed to check the API token with Jira Cloud at {at}; nothing was saved"
        ))
    };
    match atlassian::myself(http, site, &basic).await {
        Ok(()) => return Ok(site.to_owned()),
        Err(error) if atlassian::is_refused(&error) => {}
        Err(error) => return Err(failed(error, site)),
    }
    match atlassian::myself(http, gateway, &basic).await {
        Ok(()) => Ok(gateway.to_owned()),
        Err(error) if atlassian::is_refused(&error) => anyhow::bail!(
            "Jira Cloud at {site} refused the API token of {email} (at the site and through the \
             API gateway): check the email and the token, made by that account at \
             id.atlassian.com → Security → API tokens; nothing was saved"
        ),
        Err(error) => Err(failed(error, gateway)),
    }
}

/// Saves the integration and its credentials in one transaction.
async fn save(
    pool: &DbPool,
    site: &str,
    cloud_id: &str,
    base_url: &str,
    name: Option<&str>,
    credentials: &Credentials,
    auth_url: Option<&str>,
) -> anyhow::Result<Integration> {
    let mut client = pool
        .get()
        .await
        .context("failed to get a database connection")?;
    let tx = client
        .transaction()
        .await
        .context("failed to begin a transaction")?;
    let install = CloudInstall {
        site,
        cloud_id,
        base_url,
        name,
        credentials,
    };
    let saved = install_record::save_cloud(&tx, pool.keys(), &install).await?;
    cloud_record::record_auth_url(&tx, pool.keys(), saved.id, auth_url)
        .await
        .context("failed to record the authorization server")?;
    tx.commit()
        .await
        .context("failed to commit the integration")?;
    tracing::info!(
        integration.id = saved.id,
        cloud.id = cloud_id,
        auth.method = credentials.method().as_str(),
        "Jira Cloud site connected"
    );
    Ok(saved)
}

/// Registers the admin webhook with the API token (or updates the one
/// registered before) and records it; a failure is kept in `connected` (the
/// integration stays saved).
async fn register(
    pool: &DbPool,
    http: &reqwest::Client,
    saved: &Integration,
    connected: &mut Connected,
    email: &str,
    token: &str,
) -> anyhow::Result<()> {
    let basic = basic(email, token);
    let metadata = &saved.metadata;
    let base = &metadata.base_url;
    let url = connected.webhook_url.clone();
    let secret = connected.hmac_secret.clone();
    // A site connected again keeps its webhook: the one registered before is
    // updated (a second one would deliver every event twice), unless it is gone.
    let recorded = match (metadata.webhook_kind.as_deref(), &metadata.webhook_id) {
        (Some("admin"), Some(id)) => Some(id.clone()),
        _ => None,
    };
    let result = async {
        if let Some(id) = recorded
            && atlassian::update_admin_webhook(http, base, &basic, &id, &url, &secret).await?
        {
            return Ok(Some(id));
        }
        atlassian::register_admin_webhook(http, base, &basic, &url, &secret).await
    };
    match result.await {
        Ok(id) => {
            let client = pool
                .get()
                .await
                .context("failed to get a database connection")?;
            cloud_record::record_admin_webhook(
                &client,
                pool.keys(),
                saved.id,
                id.as_deref(),
                Utc::now(),
            )
            .await
            .context("failed to record the registered webhook")?;
            tracing::info!(integration.id = saved.id, webhook.id = ?id, "admin webhook registered in Jira Cloud");
            connected.registered = Some(id);
        }
        Err(error) if atlassian::is_refused(&error) => {
            connected.registration_error = Some(format!(
                "integration {} was saved, but Jira Cloud refused to register its webhook (HTTP \
                 {}): the account of {email} lacks Jira admin rights (the Administer Jira global \
                 permission); have an admin paste the manual_webhook's url and secret once under \
                 System → WebHooks, or run this again with an admin's API token",
                saved.id,
                error.status().unwrap_or(403)
            ));
        }
        Err(error) => {
            connected.registration_error = Some(format!(
                "integration {} was saved, but registering its webhook in Jira Cloud failed: \
                 {error}; paste the manual_webhook's url and secret once under System → \
                 WebHooks, or run this again",
                saved.id
            ));
        }
    }
    Ok(())
}
