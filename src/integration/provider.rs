//! The provider this integration module is: its name (the one place the crate
//! spells it), how its activity rows name it, and the one constructor of
//! clients of its Jira.

use crate::db::sync::Provider;
use crate::jira::{Auth, ClientOptions, HttpClients, JiraClient, JiraError};

/// The provider's name, for the statements that must hold it as a literal
/// (`FIND_ACTIVE`, matched by `bench/assign.sql`); everything else binds or
/// formats [`PROVIDER`].
macro_rules! provider {
    () => {
        "jira_server"
    };
}
pub(crate) use provider;

/// `integrations.provider` of every row this crate reads or writes: the one place
/// the crate names it. Bound into SQL, formatted into messages and activities.
pub const PROVIDER: &str = provider!();

/// The provider as the `activities` rows of its writes name it.
pub static ACTIVITY_PROVIDER: Provider = Provider {
    key: PROVIDER,
    name: "Jira Server",
};

/// The one constructor of Jira clients: the Jira at `base_url`, its certificate
/// verified unless `verify_ssl` is false, authenticating with `auth`. Used for
/// installed integrations ([`Integration::with_jira`]), OAuth sessions and the checks
/// of the admin commands.
pub fn jira_client(base_url: &str, verify_ssl: bool, auth: Auth) -> Result<JiraClient, JiraError> {
    JiraClient::new(base_url, auth, &options(verify_ssl))
}

/// As [`jira_client`], on the HTTP client `shared` keeps for these options
/// (its connections kept between calls): what the workers' calls use.
pub fn shared_jira_client(
    shared: &HttpClients,
    base_url: &str,
    verify_ssl: bool,
    auth: Auth,
) -> Result<JiraClient, JiraError> {
    JiraClient::shared(shared, base_url, auth, &options(verify_ssl))
}

/// The options of every client of this provider's Jira.
fn options(verify_ssl: bool) -> ClientOptions {
    ClientOptions {
        verify_ssl,
        ..ClientOptions::default()
    }
}
