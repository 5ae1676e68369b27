//! Calling an integration's Jira with its one auth method (docs/reference.md §7),
//! and keeping an OAuth 2.0 token fresh without ever locking the integration out.
//!
//! Jira Data Center rotates refresh tokens: a refresh token used twice is dead. So
//! a refresh runs while it holds the integration's `integration_credentials` row
//! (`SELECT … FOR UPDATE`), and stores the rotated tokens before it lets go: of many
//! workers finding the token expiring (or refused) at once, one refreshes; the
//! others wait on the row, see the new token, and use it.
//!
//! A Jira Cloud 3LO integration refreshes the same way, only the call goes to
//! Atlassian's `<AUTH>/oauth/token` (JSON) instead of the Jira; Atlassian
//! rotates refresh tokens too, and answers a dead one `403 invalid_grant`.
//!
//! A Jira Cloud service account (`client_credentials`) has no refresh token: a
//! new 60-minute token is obtained from Atlassian under the same row lock, when
//! the stored one is missing or expiring and once more when Jira answers 401
//! (docs/reference.md §11.1).
//!
//! Every call's result also tells whether the integration's Jira answers:
//! `jirasync_jira_available{integration_id}` (docs/reference.md §5.11, §9).

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Mutex, PoisonError};

use chrono::Utc;

use super::credentials::{Credentials, Stored};
use super::provider::{Kind, shared_jira_client};
use super::row::Integration;
use super::store;
use crate::cloud::connect::atlassian;
use crate::db::{DbPool, StoreError};
use crate::jira::oauth2_flow::{ClientCredentials, Tokens};
use crate::jira::{Auth, ClientOptions, JiraClient, JiraError};
use crate::secrets::Unreadable;

/// The integrations whose Jira failed its last call (5xx, 429, a timeout, a
/// network error), so that only the first failure and the recovery are logged.
/// A std lock: held for one insert or remove, never across an await.
static FAILING: Mutex<BTreeSet<i64>> = Mutex::new(BTreeSet::new());

/// Why an integration's Jira could not be called.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The database failed.
    #[error("failed to read or store the integration's credentials")]
    Db(#[from] tokio_postgres::Error),
    /// A stored secret does not open with the configured keys.
    #[error(transparent)]
    Unreadable(#[from] Unreadable),
    /// No database connection could be had.
    #[error("database unavailable")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The stored base URL or key is unusable.
    #[error("failed to set up the Jira client: {0}")]
    Setup(JiraError),
    /// Jira refused the integration's credentials for good.
    #[error(
        "integration {integration_id} needs to be connected again ({reason}); connect it with \
         `jirasync oauth start` or `jirasync integration add`, then `jirasync dlq replay`"
    )]
    NeedsReauth {
        /// The integration.
        integration_id: i64,
        /// What Jira said.
        reason: String,
    },
    /// The call (or the refresh) failed.
    #[error(transparent)]
    Jira(JiraError),
}

/// Atlassian's authorization server, for a Cloud integration whose metadata
/// does not name the one it was connected with.
const DEFAULT_AUTH_URL: &str = "https://auth.atlassian.com";

impl From<StoreError> for AccessError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Db(error) => Self::Db(error),
            StoreError::Unreadable(error) => Self::Unreadable(error),
        }
    }
}

impl Integration {
    /// Runs `call` with a client authenticated as this integration; `Ok(None)`
    /// when it has no credentials that can call Jira (an OAuth 1.0a link added
    /// without an access token). An OAuth 2.0 token is refreshed ahead of its
    /// expiry and once more when Jira answers 401; a refused refresh or PAT
    /// marks the integration as needing to be connected again.
    pub async fn with_jira<T, F, Fut>(
        &self,
        pool: &DbPool,
        call: F,
    ) -> Result<Option<T>, AccessError>
    where
        F: Fn(JiraClient) -> Fut,
        Fut: Future<Output = Result<T, JiraError>>,
    {
        let stored = {
            let client = pool.get().await?;
            store::credentials(&client, pool.keys(), self.id).await?
        };
        self.with_stored_jira(pool, stored, call).await
    }

    /// As [`Integration::with_jira`], with the credentials the caller read
    /// (`integration::credentials`): a push reads them in the round trip that
    /// reads its integration.
    pub async fn with_stored_jira<T, F, Fut>(
        &self,
        pool: &DbPool,
        stored: Option<Stored>,
        call: F,
    ) -> Result<Option<T>, AccessError>
    where
        F: Fn(JiraClient) -> Fut,
        Fut: Future<Output = Result<T, JiraError>>,
    {
        let Some(stored) = stored else {
            return Ok(None);
        };
        let credentials = self.usable(stored)?;
        let credentials = match credentials {
            fresh if !fresh.expiring(Utc::now()) => fresh,
            Credentials::ClientCredentials { .. } => self.renewed(pool, None).await?,
            _ => self.refreshed(pool, None).await?,
        };
        let Some(jira) = self.client(pool, &credentials)? else {
            return Ok(None);
        };
        match self.observed(call(jira.clone()).await) {
            Err(JiraError::Unauthorized) => match &credentials {
                Credentials::OAuth2 { access_token, .. } => {
                    let credentials = self.refreshed(pool, Some(access_token)).await?;
                    let auth = credentials
                        .auth()
                        .map_err(|e| AccessError::Setup(e.into()))?;
                    self.observed(call(jira.with_auth(auth)).await)
                        .map(Some)
                        .map_err(AccessError::Jira)
                }
                Credentials::Pat { .. } => {
                    let reason = "Jira refused the personal access token (HTTP 401)";
                    Err(self.needs_reauth(pool, reason).await?)
                }
                Credentials::ApiToken { .. } => {
                    let reason = "Jira Cloud refused the API token (HTTP 401)";
                    Err(self.needs_reauth(pool, reason).await?)
                }
                Credentials::ClientCredentials { access_token, .. } => {
                    // A token revoked or expired early: one new token, one more try.
                    let credentials = self.renewed(pool, Some(access_token)).await?;
                    let auth = credentials
                        .auth()
                        .map_err(|e| AccessError::Setup(e.into()))?;
                    match self.observed(call(jira.with_auth(auth)).await) {
                        Err(JiraError::Unauthorized) => {
                            let reason =
                                "Jira Cloud refused the service account's token (HTTP 401)";
                            Err(self.needs_reauth(pool, reason).await?)
                        }
                        other => other.map(Some).map_err(AccessError::Jira),
                    }
                }
                Credentials::OAuth1 { .. } => Err(AccessError::Jira(JiraError::Unauthorized)),
            },
            other => other.map(Some).map_err(AccessError::Jira),
        }
    }

    /// The credentials, unless Jira refused them for good.
    fn usable(&self, stored: Stored) -> Result<Credentials, AccessError> {
        match stored.needs_reauth {
            Some((_, reason)) => Err(AccessError::NeedsReauth {
                integration_id: self.id,
                reason,
            }),
            None => Ok(stored.credentials),
        }
    }

    /// The client for `credentials`; `None` when they cannot call REST.
    fn client(
        &self,
        pool: &DbPool,
        credentials: &Credentials,
    ) -> Result<Option<JiraClient>, AccessError> {
        let setup = |error: JiraError| AccessError::Setup(error);
        let auth = credentials.auth().map_err(|e| setup(e.into()))?;
        if !auth.can_call_rest() {
            return Ok(None);
        }
        let client = shared_jira_client(
            pool.jira_http(),
            &self.metadata.base_url,
            self.metadata.verify_ssl,
            auth,
        )
        .map_err(setup)?;
        // Jira Cloud's rate limits are waited out in the call (docs/reference.md §11).
        Ok(Some(match self.provider {
            Kind::Cloud => client.for_cloud(),
            Kind::Server => client,
        }))
    }

    /// The credentials locked for this transaction (`Ok`), to get a new token
    /// under the lock — or, when another process got one while this one waited
    /// (the stored token is no longer the one that was `refused`, or no longer
    /// `expiring`), the credentials now in effect (`Err`), the lock released.
    async fn locked_for_a_new_token<'c>(
        &self,
        client: &'c mut deadpool_postgres::Object,
        pool: &DbPool,
        refused: Option<&str>,
    ) -> Result<Result<(deadpool_postgres::Transaction<'c>, Credentials), Credentials>, AccessError>
    {
        let tx = client.transaction().await?;
        let Some(stored) = store::lock_credentials(&tx, pool.keys(), self.id).await? else {
            return Err(AccessError::Jira(JiraError::Unauthorized));
        };
        let credentials = self.usable(stored)?;
        let still_good = match refused {
            Some(refused) => credentials.access_token() != Some(refused),
            None => !credentials.expiring(Utc::now()),
        };
        if still_good {
            tx.commit().await?;
            return Ok(Err(credentials));
        }
        Ok(Ok((tx, credentials)))
    }

    /// The credentials with a fresh OAuth 2.0 token: refreshed under the row
    /// lock, unless another process refreshed while this one waited for it (the
    /// stored token is then no longer the one that was `refused`, or no longer
    /// expiring).
    async fn refreshed(
        &self,
        pool: &DbPool,
        refused: Option<&str>,
    ) -> Result<Credentials, AccessError> {
        let mut client = pool.get().await?;
        let (tx, credentials) = match self
            .locked_for_a_new_token(&mut client, pool, refused)
            .await?
        {
            Ok(locked) => locked,
            Err(current) => return Ok(current),
        };
        let Credentials::OAuth2 {
            client_id,
            client_secret,
            access_token,
            refresh_token,
            ..
        } = &credentials
        else {
            return Ok(credentials);
        };
        let Some(refresh_token) = refresh_token else {
            let reason = "the access token expired and Jira gave no refresh token".to_owned();
            let first = store::mark_needs_reauth(&tx, self.id, &reason).await?;
            tx.commit().await?;
            return Err(self.reauth_error(first, reason));
        };
        let client_credentials = ClientCredentials {
            id: client_id,
            secret: client_secret,
        };
        let refreshed = self
            .refresh_call(pool, client_credentials, access_token, refresh_token)
            .await?;
        match self.observed(refreshed) {
            Ok(tokens) => {
                // Jira has rotated the refresh token: storing the new one is the
                // first thing that may fail, whatever else the answer holds
                // (its expiry is clamped, so no date arithmetic can panic).
                let now = Utc::now();
                let expires_at = match &tokens.access_token {
                    Some(_) => tokens.expires_at(now),
                    // No usable access token: stored as expired, so the next
                    // call refreshes with the new refresh token.
                    None => now,
                };
                store::save_refreshed(
                    &tx,
                    pool.keys(),
                    self.id,
                    tokens.access_token.as_deref(),
                    tokens.refresh_token.as_deref(),
                    expires_at,
                )
                .await?;
                tx.commit().await?;
                let Some(access_token) = tokens.access_token else {
                    metrics::counter!("jirasync_token_refreshes_total", "outcome" => "no_access_token")
                        .increment(1);
                    return Err(AccessError::Jira(JiraError::InvalidResponse {
                        reason: "Jira's refresh answer carries no access_token (its refresh \
                                 token is stored; the next call refreshes again)"
                            .to_owned(),
                    }));
                };
                metrics::counter!("jirasync_token_refreshes_total", "outcome" => "refreshed")
                    .increment(1);
                tracing::info!(integration.id = self.id, "OAuth 2.0 access token refreshed");
                Ok(Credentials::OAuth2 {
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    access_token,
                    refresh_token: tokens.refresh_token.or(Some(refresh_token.clone())),
                    expires_at: Some(expires_at),
                    refreshed_at: Some(now),
                })
            }
            Err(error) if error.is_invalid_grant() => {
                metrics::counter!("jirasync_token_refreshes_total", "outcome" => "invalid_grant")
                    .increment(1);
                let reason = error.to_string();
                let first = store::mark_needs_reauth(&tx, self.id, &reason).await?;
                tx.commit().await?;
                Err(self.reauth_error(first, reason))
            }
            // Nothing was stored: the refresh token is still the one Jira holds.
            Err(error) => Err(AccessError::Jira(error)),
        }
    }

    /// The one call of a refresh, the only part that differs by provider: Data
    /// Center's form at its own `/rest/oauth2/latest/token`, Jira Cloud's JSON at
    /// `<AUTH>/oauth/token` (the authorization server recorded at connection,
    /// docs/reference.md §11.3b). Both rotate the refresh token.
    async fn refresh_call(
        &self,
        pool: &DbPool,
        client: ClientCredentials<'_>,
        access_token: &str,
        refresh_token: &str,
    ) -> Result<Result<Tokens, JiraError>, AccessError> {
        Ok(match self.provider {
            Kind::Server => {
                let jira = shared_jira_client(
                    pool.jira_http(),
                    &self.metadata.base_url,
                    self.metadata.verify_ssl,
                    Auth::Bearer(access_token.to_owned()),
                )
                .map_err(AccessError::Setup)?;
                jira.oauth2_refresh(client, refresh_token).await
            }
            Kind::Cloud => {
                let http = pool
                    .jira_http()
                    .get(&ClientOptions::default())
                    .map_err(AccessError::Setup)?;
                let token_url = crate::config::token_url(self.auth_url());
                atlassian::refresh_token(&http, &token_url, client, refresh_token).await
            }
        })
    }

    /// `<AUTH>` of a Cloud integration: the one it was connected with, else
    /// Atlassian's.
    fn auth_url(&self) -> &str {
        self.metadata
            .auth_url
            .as_deref()
            .unwrap_or(DEFAULT_AUTH_URL)
    }

    /// The credentials with a service account's token that is not expiring
    /// (docs/reference.md §11.3c): a new one from `<AUTH>/oauth/token`, obtained
    /// under the row lock, unless another process obtained one while this one
    /// waited (the stored token is then no longer the `refused` one, or no longer
    /// expiring). Atlassian refusing the credential marks `needs_reauth`.
    async fn renewed(
        &self,
        pool: &DbPool,
        refused: Option<&str>,
    ) -> Result<Credentials, AccessError> {
        let mut client = pool.get().await?;
        let (tx, credentials) = match self
            .locked_for_a_new_token(&mut client, pool, refused)
            .await?
        {
            Ok(locked) => locked,
            Err(current) => return Ok(current),
        };
        let Credentials::ClientCredentials {
            client_id,
            client_secret,
            ..
        } = &credentials
        else {
            return Ok(credentials);
        };
        let http = pool
            .jira_http()
            .get(&ClientOptions::default())
            .map_err(AccessError::Setup)?;
        let token_url = crate::config::token_url(self.auth_url());
        match atlassian::client_credentials(&http, &token_url, client_id, client_secret).await {
            Ok(token) => {
                store::save_refreshed(
                    &tx,
                    pool.keys(),
                    self.id,
                    Some(&token.token),
                    None,
                    token.expires_at,
                )
                .await?;
                tx.commit().await?;
                metrics::counter!("jirasync_token_refreshes_total", "outcome" => "refreshed")
                    .increment(1);
                tracing::info!(
                    integration.id = self.id,
                    "service account's access token obtained again"
                );
                Ok(Credentials::ClientCredentials {
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    access_token: token.token,
                    expires_at: Some(token.expires_at),
                })
            }
            Err(error @ JiraError::OAuth2Refused { .. }) => {
                metrics::counter!("jirasync_token_refreshes_total", "outcome" => "invalid_grant")
                    .increment(1);
                let reason = error.to_string();
                let first = store::mark_needs_reauth(&tx, self.id, &reason).await?;
                tx.commit().await?;
                Err(self.reauth_error(first, reason))
            }
            Err(error) => Err(AccessError::Jira(error)),
        }
    }

    /// `result` of a call of this integration's Jira, recorded: 5xx, 429, a
    /// timeout or a network error set `jirasync_jira_available` to 0, any answer
    /// sets it to 1 (an error of ours, such as a key that cannot sign, neither);
    /// the first failure and the first answer after it are logged.
    fn observed<T>(&self, result: Result<T, JiraError>) -> Result<T, JiraError> {
        let failing = match &result {
            Ok(_) => false,
            Err(error) if error.is_transient() => true,
            Err(JiraError::Config(_) | JiraError::Key(_) | JiraError::Sign(_)) => return result,
            Err(_) => false,
        };
        metrics::gauge!("jirasync_jira_available", "integration_id" => self.id.to_string())
            .set(if failing { 0.0 } else { 1.0 });
        let changed = {
            let mut set = FAILING.lock().unwrap_or_else(PoisonError::into_inner);
            if failing {
                set.insert(self.id)
            } else {
                set.remove(&self.id)
            }
        };
        match (changed, &result) {
            (true, Err(error)) => tracing::warn!(
                integration.id = self.id,
                %error,
                "the integration's Jira is failing: messages that need it wait on the retry \
                 tiers until it answers (at most JIRASYNC_JIRA_OUTAGE_MAX)"
            ),
            (true, _) => tracing::info!(
                integration.id = self.id,
                "the integration's Jira answers again"
            ),
            (false, _) => {}
        }
        result
    }

    /// Marks the integration as needing to be connected again.
    async fn needs_reauth(&self, pool: &DbPool, reason: &str) -> Result<AccessError, AccessError> {
        let client = pool.get().await?;
        let first = store::mark_needs_reauth(&client, self.id, reason).await?;
        Ok(self.reauth_error(first, reason.to_owned()))
    }

    /// The error of a refusal for good; logged and counted the first time only.
    fn reauth_error(&self, first: bool, reason: String) -> AccessError {
        if first {
            metrics::counter!("jirasync_needs_reauth_total").increment(1);
            tracing::error!(
                integration.id = self.id,
                %reason,
                "Jira refused the integration's credentials; it needs to be connected again"
            );
        }
        AccessError::NeedsReauth {
            integration_id: self.id,
            reason,
        }
    }
}
