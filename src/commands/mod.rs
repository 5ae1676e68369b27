//! The commands of the `jirasync` binary other than `ingress` and `worker` (whose
//! arguments live with them): one file each, owning its arguments
//! (docs/reference.md §1).

pub mod config;
pub mod console;
pub mod demo;
pub mod dlq;
pub mod explain;
pub mod integration;
mod integration_migrate;
pub(crate) mod integration_status;
mod job;
mod link;
pub mod migrate;
pub mod oauth;
mod oauth2;
mod oauth2_cloud;
mod oauth_session;
pub mod reconcile;
mod rotate_webhook_secret;
pub mod run;
pub mod secrets;
pub mod status_map;
mod transport;
pub mod user_map;

pub use link::AppLink;

use anyhow::Context;
use deadpool_postgres::Object;

use crate::config::DatabaseSettings;
use crate::db::DbPool;
use crate::secrets::Keyring;

/// A small pool for a command (a refresh of an OAuth 2.0 token takes a connection
/// of its own), with an error naming the URL when Postgres cannot be reached.
async fn pool(settings: &DatabaseSettings) -> anyhow::Result<DbPool> {
    crate::db::connect(settings, 2).await
}

/// One database connection for a command, with an error naming the URL when
/// Postgres cannot be reached, and the keys of the secrets stored through it.
async fn database(settings: &DatabaseSettings) -> anyhow::Result<(Object, Keyring)> {
    let pool = pool(settings).await?;
    let client = connection(&pool).await?;
    Ok((client, pool.keys().clone()))
}

/// A connection of `pool`, whose transaction a command begins itself.
async fn connection(pool: &DbPool) -> anyhow::Result<Object> {
    pool.get()
        .await
        .context("failed to get a database connection")
}
