//! Jira Server / Data Center: the webhook payload the worker reads, the OAuth
//! 1.0a RSA-SHA1 signer, OAuth 2.0 with PKCE, and a small REST client for the
//! install flows, webhook registration, user lookup, statuses, issue search and
//! what Jira says about itself.

mod auth;
pub mod client;
pub mod error;
mod form;
pub mod oauth;
pub mod oauth2;
pub mod oauth_flow;
pub mod payload;
pub mod search;
pub mod server;
pub mod status;
pub mod user;
pub mod webhook;

pub use auth::Auth;
pub use client::{ClientOptions, JiraClient};
pub use error::JiraError;
pub use oauth::{KeyError, OAuthParams, SignError, Signer};
pub use oauth_flow::{AccessToken, RequestToken};
pub use server::ServerInfo;
pub use status::JiraStatus;
pub use user::{JiraUser, UserRef};
pub use webhook::{ISSUE_EVENTS, WebhookApi, WebhookRegistration};
