//! The providers this integration module serves — `jira_server` (Data Center)
//! and `jira_cloud` (docs/reference.md §11): their names (the one place the
//! crate spells them), how their activity rows name them, and the one
//! constructor of clients of their Jira.

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

/// `integrations.provider` of a Jira Cloud site's integration (one per cloudId).
pub const CLOUD_PROVIDER: &str = "jira_cloud";

/// Every provider this crate serves, as `integrations.provider` names them.
pub const PROVIDERS: [&str; 2] = [PROVIDER, CLOUD_PROVIDER];

/// A Jira Cloud integration as the `activities` rows of its writes name it.
pub static CLOUD_ACTIVITY_PROVIDER: Provider = Provider {
    key: CLOUD_PROVIDER,
    name: "Jira Cloud",
};

/// Which Jira an integration is: Data Center (`jira_server`) or Cloud
/// (`jira_cloud`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Kind {
    /// Jira Server / Data Center.
    #[default]
    Server,
    /// Jira Cloud.
    Cloud,
}

impl Kind {
    /// `jira_server` or `jira_cloud`: `integrations.provider`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Server => PROVIDER,
            Self::Cloud => CLOUD_PROVIDER,
        }
    }

    /// The provider a stored name names, if it is one of ours.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            PROVIDER => Some(Self::Server),
            CLOUD_PROVIDER => Some(Self::Cloud),
            _ => None,
        }
    }

    /// How the `activities` rows of its writes name it.
    pub fn activity(self) -> &'static Provider {
        match self {
            Self::Server => &ACTIVITY_PROVIDER,
            Self::Cloud => &CLOUD_ACTIVITY_PROVIDER,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
