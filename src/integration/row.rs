//! An integration row as one typed thing: its id, external id, status and
//! [`Metadata`], and the webhook URL it hands Jira.

use super::metadata::Metadata;
use super::provider::Kind;
use super::{routes, token};

/// The status of an integration that takes webhooks and jobs.
pub const ACTIVE: &str = "active";
/// The status `integration disable` sets: webhooks dropped, no verdict, kept by
/// `integration add` and the install jobs.
pub const DISABLED: &str = "disabled";

/// An integration row. `Debug` shows no secret (see [`Metadata`]).
#[derive(Debug, Clone)]
pub struct Integration {
    /// Row id.
    pub id: i64,
    /// Data Center (`jira_server`) or Cloud (`jira_cloud`).
    pub provider: Kind,
    /// The webhook token's `id` claim: `<host[:port]>:<consumer key>` for Data
    /// Center, the site's cloudId for Cloud.
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
        Ok(match self.provider {
            Kind::Server => routes::webhook_url(public_url, &token),
            Kind::Cloud => routes::cloud_webhook_url(public_url, &token),
        })
    }
}
