//! Where a sealed value is stored ([`Slot`]: its column, one of [`place`], and
//! its row): the associated data it is sealed with, and what errors name.

use std::fmt;

/// The columns sealed values are stored in: with the row, the associated data
/// each is sealed with, so a value copied into another column, key or table
/// does not open.
pub mod place {
    /// `integrations.metadata->>'webhook_secret'`.
    pub const WEBHOOK_SECRET: &str = "integrations.metadata.webhook_secret";
    /// `integrations.metadata->>'webhook_hmac_secret'`.
    pub const WEBHOOK_HMAC_SECRET: &str = "integrations.metadata.webhook_hmac_secret";
    /// `integrations.metadata->>'previous_webhook_secret'`: valid until `previous_valid_until`.
    pub const PREVIOUS_WEBHOOK_SECRET: &str = "integrations.metadata.previous_webhook_secret";
    /// `integrations.metadata->>'previous_webhook_hmac_secret'`.
    pub const PREVIOUS_WEBHOOK_HMAC_SECRET: &str =
        "integrations.metadata.previous_webhook_hmac_secret";
    /// `integration_credentials.private_key`.
    pub const PRIVATE_KEY: &str = "integration_credentials.private_key";
    /// `integration_credentials.access_token` (OAuth 1.0a and 2.0 tokens, PATs).
    pub const ACCESS_TOKEN: &str = "integration_credentials.access_token";
    /// `integration_credentials.access_token_secret`.
    pub const ACCESS_TOKEN_SECRET: &str = "integration_credentials.access_token_secret";
    /// `integration_credentials.client_secret`.
    pub const CLIENT_SECRET: &str = "integration_credentials.client_secret";
    /// `integration_credentials.refresh_token`.
    pub const REFRESH_TOKEN: &str = "integration_credentials.refresh_token";
    /// `oauth_sessions.private_key`.
    pub const SESSION_PRIVATE_KEY: &str = "oauth_sessions.private_key";
    /// `oauth_sessions.client_secret`.
    pub const SESSION_CLIENT_SECRET: &str = "oauth_sessions.client_secret";
    /// `oauth_sessions.code_verifier`.
    pub const SESSION_CODE_VERIFIER: &str = "oauth_sessions.code_verifier";
    /// `oauth_sessions.request_token_secret`.
    pub const SESSION_REQUEST_TOKEN_SECRET: &str = "oauth_sessions.request_token_secret";
}

/// Where one sealed value is stored: its column (one of [`place`]) and the key of
/// its row — the integration id for `integrations` and `integration_credentials`,
/// the session id for `oauth_sessions`. Sealed as associated data; named in errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub(super) column: &'static str,
    row: String,
}

impl Slot {
    /// Column `column` (one of [`place`]) of the row whose key is `row`.
    pub fn new(column: &'static str, row: impl fmt::Display) -> Self {
        Self {
            column,
            row: row.to_string(),
        }
    }

    /// The column.
    pub fn column(&self) -> &'static str {
        self.column
    }

    /// What holds the value, as errors name it: `integration 12`, `OAuth session …`.
    pub fn owner(&self) -> String {
        if self.column.starts_with("oauth_sessions.") {
            format!("OAuth session {}", self.row)
        } else {
            format!("integration {}", self.row)
        }
    }

    /// The associated data of a row-bound value: the format, the column (which
    /// names the table) and the row key, separated by a byte neither contains.
    pub(super) fn associated_data(&self) -> String {
        format!("jsenc2\u{1f}{}\u{1f}{}", self.column, self.row)
    }
}
