//! Jira Server: the OAuth 1.0a RSA-SHA1 signer and a small REST client for the
//! OAuth install flow, webhook registration and user lookup. Used by the worker.

pub mod oauth;

pub use oauth::{KeyError, OAuthParams, SignError, Signer};
