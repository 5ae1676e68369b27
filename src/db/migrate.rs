//! `jirasync migrate` for the database: creates it when asked, then applies the
//! embedded SQL migrations under an advisory lock so concurrent runs cannot race.

use anyhow::Context;
use tokio_postgres::error::SqlState;

use super::{parse_url, unreachable};

refinery::embed_migrations!("migrations");

/// Key of the advisory lock held while migrations run ("jirasync" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x6a69_7261_7379_6e63;

/// Creates the database named in `url` when it does not exist yet.
pub async fn create_database(url: &str) -> anyhow::Result<()> {
    let target = parse_url(url)?;
    let name = target
        .config
        .get_dbname()
        .context("DATABASE_URL names no database")?
        .to_owned();
    let mut admin = target.config.clone();
    admin.dbname("postgres");
    let (client, connection) = admin
        .connect(target.tls.clone())
        .await
        .map_err(|e| unreachable(url, &e))?;
    let driver = tokio::spawn(connection);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .context("failed to look up the database")?
        .is_some();
    if !exists {
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        match client.batch_execute(&sql).await {
            Ok(()) => tracing::info!(database = %name, "created database"),
            // Another `migrate --create-database` created it at the same moment.
            Err(e)
                if matches!(
                    e.code(),
                    Some(&SqlState::DUPLICATE_DATABASE) | Some(&SqlState::UNIQUE_VIOLATION)
                ) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("failed to create database {name:?}"));
            }
        }
    }
    drop(client);
    let _ = driver.await;
    Ok(())
}

/// Applies every pending migration; a second run changes nothing.
pub async fn run(url: &str) -> anyhow::Result<()> {
    let target = parse_url(url)?;
    let (mut client, connection) = target
        .config
        .connect(target.tls.clone())
        .await
        .map_err(|e| unreachable(url, &e))?;
    let driver = tokio::spawn(connection);
    // refinery takes no lock of its own.
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .context("failed to take the migration lock")?;
    let report = migrations::runner()
        .set_abort_divergent(true)
        .run_async(&mut client)
        .await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await;
    let report = report.context("failed to apply the database migrations")?;
    unlock.context("failed to release the migration lock")?;
    for migration in report.applied_migrations() {
        tracing::info!(migration = %migration, "applied migration");
    }
    drop(client);
    let _ = driver.await;
    Ok(())
}
