//! Jira Server / Data Center: the webhook payload the worker reads, the OAuth
//! 1.0a RSA-SHA1 signer and the OAuth 1.0a and 2.0 install flows, and a small
//! REST client for webhook registration, user lookup, statuses, issue search,
//! the issue reads and writes of outbound sync and what Jira says about itself.
//! No database.

pub mod auth;
pub mod client;
pub mod cloud_webhooks;
pub mod error;
mod form;
pub mod issue;
pub mod oauth1_flow;
pub mod oauth1_signing;
pub mod oauth2_flow;
pub mod payload;
pub mod search;
pub mod server;
pub mod status;
pub mod user;
pub mod user_search;
pub mod webhooks_api;

pub use auth::Auth;
pub use client::{ClientOptions, HttpClients, JiraClient};
pub use error::JiraError;
pub use issue::{Issue, Transition};
pub use oauth1_flow::{AccessToken, RequestToken};
pub use oauth1_signing::{KeyError, OAuthParams, SignError, Signer};
pub use server::ServerInfo;
pub use status::JiraStatus;
pub use user::{JiraUser, UserRef};
pub use webhooks_api::{ISSUE_EVENTS, WebhookApi, WebhookRegistration};
