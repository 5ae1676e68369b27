//! The `jira_server` integration as one typed thing (docs/reference.md §5–§7): its
//! row and [`Metadata`], its [`Credentials`] (one auth method: OAuth 1.0a, OAuth 2.0
//! or a personal access token), the webhook [`token`] and [`routes`], how an install
//! is [`save`](install_record::save)d, its [`webhook_registration`], and the one way to
//! call its Jira ([`Integration::with_jira`], which keeps an OAuth 2.0 token fresh),
//! the [`rotation`] of its webhook secrets, and its [`messages`] (the message
//! types and webhook headers the queues carry).
//! Used by the worker, the admin commands, `demo` and the ingress's router.

mod access;
mod credentials;
pub mod install_record;
pub mod messages;
mod metadata;
pub mod rotation;
pub mod routes;
mod store;
pub mod token;
pub mod webhook_registration;

use crate::jira::{Auth, ClientOptions, JiraClient, JiraError};

pub use access::AccessError;
pub use credentials::{AuthMethod, Credentials, Stored};
pub use metadata::Metadata;
pub use store::{FIND_ACTIVE, all, by_id, credentials, find, find_active, set_status};

/// The provider's name, for the statements that must hold it as a literal
/// ([`FIND_ACTIVE`], matched by `bench/assign.sql`); everything else binds or
/// formats [`PROVIDER`].
macro_rules! provider {
    () => {
        "jira_server"
    };
}
use provider;

/// `integrations.provider` of every row this crate reads or writes: the one place
/// the crate names it. Bound into SQL, formatted into messages and activities.
pub const PROVIDER: &str = provider!();

/// The provider as the `activities` rows of its writes name it.
pub static ACTIVITY_PROVIDER: crate::db::sync::Provider = crate::db::sync::Provider {
    key: PROVIDER,
    name: "Jira Server",
};

/// The status of an integration that takes webhooks and jobs.
pub const ACTIVE: &str = "active";
/// The status `integration disable` sets: webhooks dropped, no verdict, kept by
/// `integration add` and the install jobs.
pub const DISABLED: &str = "disabled";

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

impl Integration {
    /// Whether the integration takes webhooks and jobs.
    pub fn is_active(&self) -> bool {
        self.status == ACTIVE
    }

    /// Whether an admin disabled it (`integration disable`).
    pub fn is_disabled(&self) -> bool {
        self.status == DISABLED
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
}

/// The one constructor of Jira clients: the Jira at `base_url`, its certificate
/// verified unless `verify_ssl` is false, authenticating with `auth`. Used for
/// installed integrations ([`Integration::with_jira`]), OAuth sessions and the checks
/// of the admin commands.
pub fn jira_client(base_url: &str, verify_ssl: bool, auth: Auth) -> Result<JiraClient, JiraError> {
    let options = ClientOptions {
        verify_ssl,
        ..ClientOptions::default()
    };
    JiraClient::new(base_url, auth, &options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_is_named_alike_in_literal_sql_bound_sql_and_messages() {
        assert_eq!(PROVIDER, "jira_server");
        assert!(
            FIND_ACTIVE.contains("provider = 'jira_server' AND external_id = $1"),
            "{FIND_ACTIVE}"
        );
        assert_eq!(
            rotation::RotateError::NotFound(7).to_string(),
            "no jira_server integration has id 7"
        );
        assert_eq!(
            token::Rejected::UnknownIntegration.to_string(),
            "no active jira_server integration matches the token"
        );
    }
}
