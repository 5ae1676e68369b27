//! The commands of the `jirasync` binary other than `ingress` and `worker` (whose
//! arguments live with them): one file each, owning its arguments
//! (docs/reference.md §1).

pub mod config;
pub mod demo;
pub mod dlq;
pub mod integration;
mod job;
pub mod migrate;
pub mod oauth;
pub mod reconcile;
pub mod run;

use anyhow::Context;
use deadpool_postgres::Object;

use crate::config::DatabaseSettings;

/// One database connection for a command, with an error naming the URL when
/// Postgres cannot be reached.
async fn database(settings: &DatabaseSettings) -> anyhow::Result<Object> {
    let pool = crate::db::connect(&settings.url, 1).await?;
    pool.get()
        .await
        .context("failed to get a database connection")
}
