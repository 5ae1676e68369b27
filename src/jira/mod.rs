//! Jira Server: the webhook payload the worker reads, the OAuth 1.0a RSA-SHA1
//! signer, and a small REST client for the OAuth install flow, webhook
//! registration, user lookup, the list of statuses and issue search.

mod auth;
pub mod client;
pub mod error;
mod form;
pub mod oauth;
pub mod oauth_flow;
pub mod payload;
pub mod search;
pub mod status;
pub mod user;
pub mod webhook;

pub use auth::Auth;
pub use client::{ClientOptions, JiraClient};
pub use error::JiraError;
pub use oauth::{KeyError, OAuthParams, SignError, Signer};
pub use oauth_flow::{AccessToken, RequestToken};
pub use status::JiraStatus;
pub use user::{JiraUser, UserRef};
pub use webhook::{ISSUE_EVENTS, WebhookApi, WebhookRegistration};
