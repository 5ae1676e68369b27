//! Jira Server: webhook payload types, the OAuth 1.0a RSA-SHA1 signer and the REST client.

pub mod webhook;
