//! Postgres over TLS as `DATABASE_URL`'s `sslmode` and `sslrootcert` say
//! (docs/reference.md §2), against private clusters: one that accepts TLS only
//! (`ssl = on`, `hostnossl … reject`) with a certificate of the test's own CA for
//! the name `localhost`, and one without TLS. `migrate`, the CLI and a worker
//! process connect with `verify-full`; a wrong CA or host name is refused, as is
//! `require` against a server without TLS.

use std::time::Duration;

use crate::common::private_pg::{PrivatePg, free_port};
use crate::common::test_ca::TestCa;
use crate::common::{self, Process};

const WAIT: Duration = Duration::from_secs(30);

/// `postgres://postgres@HOST:PORT/DB?QUERY`.
fn url(host: &str, pg: &PrivatePg, db: &str, query: &str) -> String {
    let port = pg.url().rsplit(':').next().unwrap_or_default().to_owned();
    format!("postgres://postgres@{host}:{port}/{db}?{query}")
}

/// Whether the connection jirasync makes with `url` is encrypted, or its error.
async fn encrypted(url: &str) -> Result<bool, String> {
    let database = jirasync::config::DatabaseSettings {
        url: url.to_owned(),
        secret_key: None,
        secret_key_old: None,
    };
    let pool = jirasync::db::connect(&database, 1)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

fn refused(result: Result<bool, String>, what: &str) -> String {
    match result {
        Ok(ssl) => panic!("{what}: connected (ssl {ssl})"),
        Err(error) => error,
    }
}

#[tokio::test]
async fn verify_full_connects_with_the_right_ca_and_host_and_refuses_the_rest() {
    let ca = TestCa::new("jst test CA");
    let other = TestCa::new("jst other CA");
    let server = ca.issue("server", &["localhost"]);
    let pg = PrivatePg::start_tls_only(&server.certificate, &server.key).await;
    let root = ca.certificate().display().to_string();
    let wrong = other.certificate().display().to_string();

    let full = |host: &str, root: &str| {
        url(
            host,
            &pg,
            "postgres",
            &format!("sslmode=verify-full&sslrootcert={root}"),
        )
    };
    assert_eq!(encrypted(&full("localhost", &root)).await, Ok(true));
    let error = refused(encrypted(&full("localhost", &wrong)).await, "a wrong CA");
    assert!(
        error.contains("certificate") && error.contains("check that sslrootcert is the CA"),
        "{error}"
    );
    let error = refused(
        encrypted(&full("127.0.0.1", &root)).await,
        "a host the certificate does not name",
    );
    assert!(error.contains("certificate"), "{error}");

    let ca_only = url(
        "127.0.0.1",
        &pg,
        "postgres",
        &format!("sslmode=verify-ca&sslrootcert={root}"),
    );
    assert_eq!(
        encrypted(&ca_only).await,
        Ok(true),
        "verify-ca ignores the name"
    );
    let error = refused(
        encrypted(&url(
            "127.0.0.1",
            &pg,
            "postgres",
            &format!("sslmode=verify-ca&sslrootcert={wrong}"),
        ))
        .await,
        "verify-ca with a wrong CA",
    );
    assert!(error.contains("certificate"), "{error}");

    // libpq's default, prefer, uses TLS when the server offers it.
    let prefer = pg.url() + "/postgres";
    assert_eq!(encrypted(&prefer).await, Ok(true));
    let error = refused(
        encrypted(&url("127.0.0.1", &pg, "postgres", "sslmode=disable")).await,
        "no TLS to a TLS-only server",
    );
    assert!(error.contains("set sslmode=require"), "{error}");
}

#[tokio::test]
async fn require_refuses_a_server_without_tls_and_prefer_falls_back() {
    let pg = PrivatePg::start().await;
    let error = refused(
        encrypted(&url("127.0.0.1", &pg, "postgres", "sslmode=require")).await,
        "require without TLS",
    );
    assert!(error.contains("turn `ssl` on in Postgres"), "{error}");
    assert_eq!(
        encrypted(&url("127.0.0.1", &pg, "postgres", "sslmode=prefer")).await,
        Ok(false)
    );
}

#[tokio::test]
async fn migrate_the_cli_and_a_worker_run_over_verify_full() {
    let ca = TestCa::new("jst test CA");
    let server = ca.issue("server", &["localhost"]);
    let pg = PrivatePg::start_tls_only(&server.certificate, &server.key).await;
    let mut settings = common::settings();
    settings.database.url = url(
        "localhost",
        &pg,
        "jirasync",
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            ca.certificate().display()
        ),
    );
    let migrate = common::output(&["migrate", "--create-database"], &settings);
    assert!(
        migrate.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let list = common::output(&["integration", "list"], &settings);
    assert!(
        list.status.success(),
        "integration list: {}",
        String::from_utf8_lossy(&list.stderr)
    );
    let port = free_port();
    let _worker = Process::spawn(&mut common::jirasync(
        &["worker"],
        &settings,
        &[("JIRASYNC_METRICS_LISTEN", format!("127.0.0.1:{port}"))],
    ));
    common::eventually("the worker consumes", WAIT, || async {
        reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    let pool = jirasync::db::connect(&settings.database, 1)
        .await
        .expect("connect");
    let client = pool.get().await.expect("a connection");
    let plain: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
              WHERE a.datname = 'jirasync' AND a.application_name = 'jirasync' AND NOT s.ssl",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert_eq!(plain, 0, "every jirasync connection is encrypted");
}
