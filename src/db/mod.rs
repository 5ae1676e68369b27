//! Postgres: the connection pool, the migration runner and one file of queries
//! per concern (the integration's own are in `integration/store.rs`). Query
//! functions take a client or transaction; callers own commits.

/// The condition that an organization syncs `$config` (`sync_reverse_assignment`
/// or `sync_status_reverse`) back from its link `oi` to an integration, `o` being
/// the organization (docs/reference.md §5.6): written once, used by every query
/// that asks.
macro_rules! syncing_org {
    ($config:literal) => {
        concat!(
            "oi.status = 'active' AND oi.config->>'",
            $config,
            "' = 'true' AND o.status = 'active'"
        )
    };
}

/// `FROM … WHERE` of the `external_issues` rows (`ei`) of integration `$1` in
/// organizations that sync `$config` back.
macro_rules! syncing_issues {
    ($config:literal) => {
        concat!(
            " FROM external_issues ei
   JOIN organization_integrations oi
     ON oi.organization_id = ei.organization_id AND oi.integration_id = ei.integration_id
   JOIN organizations o ON o.id = ei.organization_id
  WHERE ei.integration_id = $1 AND ",
            syncing_org!($config)
        )
    };
}

/// The `FROM` item that names integration `$n` the origin of the statement's
/// writes (docs/reference.md §10.1): it sets the transaction-local
/// `jirasync.origin` that the capture triggers of `migrations/V7__outbound.sql`
/// record, before the statement writes its row, so that each statement of a
/// batch that pipelines several integrations' changes on one connection tags
/// its own. The statement must use `tagged.origin` (here `IS NOT NULL`, always
/// true) or Postgres may leave the call out.
macro_rules! tagged_origin {
    ($n:literal) => {
        concat!(
            "(SELECT set_config('jirasync.origin', $",
            $n,
            "::bigint::text, true) AS origin) tagged"
        )
    };
}

pub mod activity;
pub mod batch;
pub mod migrate;
pub mod oauth_sessions;
pub mod pipelined;
pub mod reconcile;
pub mod rekey;
pub mod sealed_columns;
pub mod status_sync;
pub mod sync;
pub mod tls;
pub mod user_map;
pub mod webhook_refresh;

use std::sync::{Arc, Once};
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

use crate::config::{DatabaseSettings, redact_url};
use crate::jira::HttpClients;
use crate::secrets::{Keyring, Unreadable};
pub use tls::Target;

/// A pool of Postgres connections, with the keys that seal and open the secrets
/// stored through it (`crate::secrets`) and the HTTP clients that call the Jiras
/// whose credentials they open (their connections kept between calls, on this
/// process's runtime). Derefs to the pool.
#[derive(Clone)]
pub struct DbPool {
    pool: Pool,
    keys: Arc<Keyring>,
    jira_http: Arc<HttpClients>,
}

impl std::ops::Deref for DbPool {
    type Target = Pool;

    fn deref(&self) -> &Pool {
        &self.pool
    }
}

impl DbPool {
    /// The keys of `JIRASYNC_SECRET_KEY` and `JIRASYNC_SECRET_KEY_OLD`.
    pub fn keys(&self) -> &Keyring {
        &self.keys
    }

    /// The HTTP clients calls to the integrations' Jiras share.
    pub fn jira_http(&self) -> &HttpClients {
        &self.jira_http
    }
}

/// Why stored data could not be read or written: the database failed, or a
/// stored secret does not open with the configured keys.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    /// A stored secret does not open.
    #[error(transparent)]
    Unreadable(#[from] Unreadable),
}

/// Parses `DATABASE_URL`, its TLS settings included, with a clear error naming
/// the (redacted) URL.
pub fn parse_url(url: &str) -> anyhow::Result<Target> {
    let mut target = Target::parse(url).with_context(|| {
        format!(
            "DATABASE_URL {} is not a valid Postgres URL",
            redact_url(url)
        )
    })?;
    let config = &mut target.config;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    if config.get_application_name().is_none() {
        config.application_name("jirasync");
    }
    Ok(target)
}

/// Builds a pool of at most `size` connections and checks that the database
/// answers. Without `JIRASYNC_SECRET_KEY` the process warns, once.
pub async fn connect(database: &DatabaseSettings, size: usize) -> anyhow::Result<DbPool> {
    let keys = Arc::new(database.keyring()?);
    if !keys.seals() {
        static WARNED: Once = Once::new();
        WARNED.call_once(|| {
            tracing::warn!(
                "JIRASYNC_SECRET_KEY is not set: private keys, tokens and secrets are stored \
                 in Postgres in plaintext; set it (`openssl rand -base64 32`) and run \
                 `jirasync secrets reencrypt`"
            );
        });
    }
    let url = database.url.as_str();
    let target = parse_url(url)?;
    let manager = Manager::from_config(
        target.config,
        target.tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .context("failed to build the Postgres pool")?;
    // Pool creation never fails when the database is down: fail fast here.
    drop(pool.get().await.map_err(|e| unreachable(url, &e))?);
    Ok(DbPool {
        pool,
        keys,
        jira_http: Arc::default(),
    })
}

/// As [`connect`], but while Postgres cannot be reached it waits (retrying with
/// backoff up to 5 s, a warning every minute) instead of failing; `None` when
/// `shutdown` came first. A URL that does not parse is still an error at once.
pub async fn connect_waiting(
    database: &DatabaseSettings,
    size: usize,
    shutdown: &crate::shutdown::Shutdown,
) -> anyhow::Result<Option<DbPool>> {
    parse_url(&database.url)?;
    database.keyring()?;
    let mut warned = false;
    let pool = crate::reconnect::until_ok(
        crate::reconnect::DATABASE,
        shutdown,
        || connect(database, size),
        |error| {
            tracing::warn!(%error, "waiting for Postgres");
            warned = true;
        },
    )
    .await;
    if pool.is_some() && warned {
        tracing::info!("Postgres answers; starting");
    }
    Ok(pool)
}

/// `error` and its sources, joined with `: ` (tokio-postgres's own `Display`
/// says only "db error" or "error performing TLS handshake").
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let shown = cause.to_string();
        // deadpool repeats its cause's text in its own.
        if !text.ends_with(&shown) {
            text.push_str(&format!(": {shown}"));
        }
        source = cause.source();
    }
    text
}

/// The one-line error for a database that cannot be reached, with what to check.
pub fn unreachable(url: &str, error: &dyn std::error::Error) -> anyhow::Error {
    let error = error_chain(error);
    let advice = if error.contains("does not support TLS") {
        "the server offers no TLS: turn `ssl` on in Postgres, or lower sslmode in DATABASE_URL"
    } else if error.contains("certificate") || error.contains("TLS handshake") {
        "check that sslrootcert is the CA that signed the server's certificate, and (with \
         sslmode=verify-full) that the host in DATABASE_URL is a name the certificate carries"
    } else if error.contains("no encryption") || error.contains("SSL off") {
        "the server accepts only TLS connections here: set sslmode=require (or verify-full) in \
         DATABASE_URL"
    } else {
        "check that Postgres is running and DATABASE_URL is right (run `jirasync migrate \
         --create-database` if the database does not exist yet)"
    };
    anyhow::anyhow!(
        "cannot connect to Postgres at {}: {error}; {advice}",
        redact_url(url)
    )
}
