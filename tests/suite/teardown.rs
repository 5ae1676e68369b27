//! Teardown that cannot be skipped: a test that fails leaves neither its
//! database nor its queues behind (`common::Isolated`), so `cargo test` run
//! again and again starts clean.

use crate::common::{self, TestApp};

/// Whether the database `name` exists.
async fn database_exists(name: &str) -> bool {
    let (admin, connection) = tokio_postgres::connect(
        &format!("{}/postgres", common::postgres_server()),
        tokio_postgres::NoTls,
    )
    .await
    .expect("admin connection");
    tokio::spawn(connection);
    admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .expect("pg_database")
        .is_some()
}

/// Whether `queue` exists on the shared broker (a passive declare succeeds).
async fn queue_exists(queue: &str) -> bool {
    let (_connection, channel) = common::amqp().await;
    channel
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .is_ok()
}

#[tokio::test]
async fn a_test_that_panics_leaves_no_database_and_no_queue_behind() {
    let (names_tx, names_rx) = tokio::sync::oneshot::channel();
    // A failing test: it runs the worker, holds the database and panics midway.
    let failed = tokio::spawn(async move {
        let app = TestApp::builder().concurrency(1).start().await;
        app.settle().await;
        let database = app
            .settings
            .database
            .url
            .rsplit('/')
            .next()
            .map(str::to_owned);
        let names = common::names(&app.settings);
        let queues = names.all_queues(&app.settings.retries.delays.0);
        let _ = names_tx.send((database.expect("a database name"), queues));
        panic!("this test fails on purpose");
    })
    .await;
    assert!(failed.is_err(), "the inner test panicked");
    let (database, queues) = names_rx.await.expect("the test got as far as its names");
    assert!(database.starts_with("jst_"), "{database}");
    assert!(!database_exists(&database).await, "{database} was dropped");
    for queue in &queues {
        assert!(!queue_exists(queue).await, "{queue} was deleted");
    }
}
