//! The `jira_server` integration as one typed thing (docs/reference.md §5–§7): its
//! row and [`Metadata`], its [`Credentials`], the webhook [`token`] and [`routes`],
//! how an install is [`save`](install::save)d, and the one way to get an
//! authenticated Jira client for it ([`Integration::jira`]). Used by the worker,
//! the admin commands, `demo` and the ingress's router.

mod credentials;
pub mod install;
mod metadata;
pub mod routes;
mod store;
pub mod token;

use deadpool_postgres::GenericClient;

use crate::jira::{Auth, ClientOptions, JiraClient, JiraError};

pub use credentials::Credentials;
pub use metadata::Metadata;
pub use store::{FIND_ACTIVE, by_id, credentials, find_active};

/// `integrations.provider` of every row this crate reads or writes.
pub const PROVIDER: &str = "jira_server";

/// A `jira_server` integration row. `Debug` shows no secret (see [`Metadata`]).
#[derive(Debug, Clone)]
pub struct Integration {
    /// Row id.
    pub id: i64,
    /// `<host[:port]>:<consumer key>`: the webhook token's `id` claim.
    pub external_id: String,
    /// `active`, or what an admin set instead; only active ones take webhooks.
    pub status: String,
    /// base_url, verify_ssl, the webhook secrets.
    pub metadata: Metadata,
}

/// Why an integration's Jira client could not be had.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// Reading the credentials failed.
    #[error("failed to read the integration's credentials")]
    Db(#[from] tokio_postgres::Error),
    /// The stored base URL or key is unusable.
    #[error("failed to set up the Jira client: {0}")]
    Setup(#[from] JiraError),
}

impl Integration {
    /// Whether the integration takes webhooks and jobs.
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }

    /// The webhook URL with its token, under `public_url`.
    pub fn webhook_url(&self, public_url: &str) -> Result<String, token::MintError> {
        let secret = self
            .metadata
            .webhook_secret
            .as_deref()
            .ok_or(token::MintError::NoSecret(self.id))?;
        let token = token::mint(&self.external_id, secret)?;
        Ok(routes::webhook_url(public_url, &token))
    }

    /// A client for this integration's Jira that authenticates REST calls with
    /// its stored credentials; `None` when it has none that can (added by hand
    /// without an access token: nothing can be signed).
    pub async fn jira(&self, db: &impl GenericClient) -> Result<Option<JiraClient>, AccessError> {
        let Some(credentials) = store::credentials(db, self.id).await? else {
            return Ok(None);
        };
        let auth = credentials.auth().map_err(JiraError::from)?;
        if !auth.can_call_rest() {
            return Ok(None);
        }
        Ok(Some(jira_client(
            &self.metadata.base_url,
            self.metadata.verify_ssl,
            auth,
        )?))
    }
}

/// The one constructor of Jira clients: the Jira at `base_url`, its certificate
/// verified unless `verify_ssl` is false, authenticating with `auth`. Used for
/// installed integrations ([`Integration::jira`]), OAuth sessions and the checks
/// of the admin commands.
pub fn jira_client(base_url: &str, verify_ssl: bool, auth: Auth) -> Result<JiraClient, JiraError> {
    let options = ClientOptions {
        verify_ssl,
        ..ClientOptions::default()
    };
    JiraClient::new(base_url, auth, &options)
}
