//! Jira Cloud beside Data Center (docs/reference.md §11): what only a
//! `jira_cloud` integration does. The integration row, its credentials and the
//! client are the `integration` module's, shared with `jira_server`; the
//! ingress, queues, sync rules, audit and dead letters are the same for both.
//!
//! - [`connect`]: `integration add --cloud` — the site's cloudId, the check of
//!   the credentials (site, then API gateway), the admin webhook (§11.3, §11.4);
//! - [`dynamic_webhook`]: a 3LO integration's dynamic webhook — registered,
//!   refreshed, registered again when gone (§11.3);
//! - [`delivery`]: a Cloud delivery's signature (HMAC or delivery JWT) and its
//!   duplicates (§11.4);
//! - [`migrate`]: `integration migrate` from Data Center (§11.7);
//! - [`oauth`]: the rules of the OAuth 2.0 (3LO) install — the authorize URL,
//!   the scopes, the site among those a token reaches (§11.3b).

pub mod connect;
pub mod delivery;
pub mod dynamic_webhook;
pub mod migrate;
pub mod oauth;
