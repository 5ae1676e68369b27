//! The `jira_server` integration as one typed thing (docs/reference.md §5–§7): its
//! row and [`Metadata`], its [`Credentials`] (one auth method: OAuth 1.0a, OAuth 2.0
//! or a personal access token), the webhook [`token`] and [`routes`], how an install
//! is [`save`](install_record::save)d, its [`webhook_registration`], and the one way to
//! call its Jira ([`Integration::with_jira`], which keeps an OAuth 2.0 token fresh),
//! the [`rotation`] of its webhook secrets, and its [`messages`] (the message
//! types and webhook headers the queues carry).
//! Used by the worker, the admin commands, `demo` and the ingress's router.

mod access;
pub mod cloud_record;
mod credentials;
pub mod install_record;
pub mod messages;
mod metadata;
mod provider;
pub mod rotation;
pub mod routes;
mod row;
mod store;
pub mod token;
pub mod webhook_registration;

pub use access::AccessError;
pub use credentials::{AuthMethod, Credentials, Stored};
pub use metadata::Metadata;
pub use provider::{
    ACTIVITY_PROVIDER, CLOUD_ACTIVITY_PROVIDER, CLOUD_PROVIDER, Kind as Provider, PROVIDER,
    PROVIDERS, jira_client,
};
pub use row::{ACTIVE, DISABLED, Integration};
pub use store::{
    ACTIVE_VERSIONS, FIND_ACTIVE, FIND_ACTIVE_CLOUD, Version, active_versions, all, by_id,
    credentials, find, find_active, set_status,
};

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
            "no jira_server integration has id 7 (rotating a Jira Cloud integration's webhook \
             secrets is not supported yet)"
        );
        assert_eq!(
            token::Rejected::UnknownIntegration.to_string(),
            "no active integration matches the token"
        );
    }
}
