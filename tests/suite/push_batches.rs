//! A batch of pushes in Postgres (docs/reference.md §10.2, "Pushes settled
//! together"), against the real Postgres: `claim::LOCK_ALL` takes a batch's
//! locks in the order of their keys, whatever the order of the batch, so two
//! batches that share issues wait for each other and never deadlock; and of
//! statements sent together, the one that failed is named, not the others'
//! "transaction aborted" — also when a statement prepared first is sent after
//! the one that failed (`jirasync::statements!`, which webhook batches use),
//! and when the statements are a push's reads, failing as a handler's
//! `Failure`s.

use std::time::Duration;

use jirasync::config::Settings;
use jirasync::db::pipelined;
use jirasync::outbound::claim;
use jirasync::queue::handler::Failure;
use tokio_postgres::error::SqlState;

use crate::common::{self, eventually};

const WAIT: Duration = Duration::from_secs(20);

/// A transaction that takes the locks of `ids` (status pushes) in one
/// statement, then commits.
async fn lock_all(settings: &Settings, ids: Vec<i64>) -> Result<(), tokio_postgres::Error> {
    let mut client = common::db(settings).await;
    let tx = client.transaction().await?;
    let kinds = vec!["status"; ids.len()];
    tx.execute(claim::LOCK_ALL, &[&ids, &kinds]).await?;
    tx.commit().await
}

#[tokio::test]
async fn two_batches_that_share_issues_in_opposite_orders_wait_for_each_other_without_deadlock() {
    let settings = common::migrated().await;
    let db = common::db(&settings).await;
    // The two issues in the order of their locks' keys.
    let key = |id: i64| {
        let db = &db;
        async move {
            db.query_one(
                "SELECT hashtextextended('jirasync.outbound:' || $1::bigint || ':status', 0)",
                &[&id],
            )
            .await
            .expect("the lock's key")
            .get::<_, i64>(0)
        }
    };
    let (low, high) = if key(1).await < key(2).await {
        (1, 2)
    } else {
        (2, 1)
    };

    // The first lock held elsewhere; batch A queues for it first, then batch B,
    // whose issues come the other way round. Taken in the batch's order, B would
    // hold `high` while it waits for `low`, and A, once it has `low`, would wait
    // for `high`: a deadlock, which Postgres breaks by failing one of them.
    let mut holder = common::db(&settings).await;
    let held = holder.transaction().await.expect("transaction");
    held.execute(claim::LOCK, &[&low, &"status"])
        .await
        .expect("hold the first lock");
    let a = tokio::spawn({
        let settings = Settings::clone(&settings);
        async move { lock_all(&settings, vec![low, high]).await }
    });
    eventually("batch A waits", WAIT, || async {
        common::backends_waiting_on_locks(&db).await == 1
    })
    .await;
    let b = tokio::spawn({
        let settings = Settings::clone(&settings);
        async move { lock_all(&settings, vec![high, low]).await }
    });
    eventually("batch B waits", WAIT, || async {
        common::backends_waiting_on_locks(&db).await == 2
    })
    .await;
    held.commit().await.expect("release");

    let (a, b) = (a.await.expect("task A"), b.await.expect("task B"));
    assert!(a.is_ok(), "batch A took its locks: {a:?}");
    assert!(b.is_ok(), "batch B took its locks: {b:?}");
}

#[tokio::test]
async fn of_statements_sent_together_the_one_that_failed_is_named() {
    let settings = common::migrated().await;
    let db = common::db(&settings).await;
    let fails = db.prepare("SELECT 1 / $1::int").await.expect("prepare");
    let succeeds = db.prepare("SELECT $1::int").await.expect("prepare");
    db.batch_execute("BEGIN").await.expect("begin");
    // Sent together, in this order (`join3` polls in order): the first fails,
    // the two after it find the transaction aborted.
    let (a, b, c) = futures_util::future::join3(
        db.execute(&fails, &[&0]),
        db.execute(&succeeds, &[&2]),
        db.execute(&succeeds, &[&3]),
    )
    .await;
    assert!(b.as_ref().is_err_and(pipelined::is_aborted), "{b:?}");
    let error = pipelined::root_cause([c.map(drop), b.map(drop), a.map(drop)])
        .expect_err("a statement failed");
    assert_eq!(error.code(), Some(&SqlState::DIVISION_BY_ZERO), "{error}");
    assert!(pipelined::root_cause([Ok(()), Ok(())]).is_ok());
}

/// The statements of a webhook batch, as `jirasync::statements!` joins them.
async fn joined<A, B>(a: A, b: B) -> Result<(), tokio_postgres::Error>
where
    A: Future<Output = Result<u64, tokio_postgres::Error>>,
    B: Future<Output = Result<u64, tokio_postgres::Error>>,
{
    jirasync::statements!(a = a, b = b);
    Ok(())
}

/// Two statements sent together in a transaction, `a` prepared first but sent
/// after `b` failed at its prepare (no such table): their answers, `a`'s the
/// aborted one.
async fn aborted_before_the_failure(
    db: &tokio_postgres::Client,
) -> (
    Result<u64, tokio_postgres::Error>,
    Result<u64, tokio_postgres::Error>,
) {
    db.batch_execute("BEGIN").await.expect("begin");
    let mut a = std::pin::pin!(db.execute("SELECT $1::int", &[&1]));
    let b = db.execute("SELECT * FROM no_such_table WHERE 1 = $1::int", &[&1]);
    let mut b = std::pin::pin!(b);
    // Both prepares go out, `a`'s first; `a`, answered, sends its statement
    // after `b`'s prepare, which aborted the transaction.
    assert!(futures_util::poll!(a.as_mut()).is_pending());
    assert!(futures_util::poll!(b.as_mut()).is_pending());
    let a = a.await;
    assert!(a.as_ref().is_err_and(pipelined::is_aborted), "{a:?}");
    (a, b.await)
}

#[tokio::test]
async fn a_statement_prepared_first_but_sent_after_the_failed_one_does_not_name_the_batch() {
    let settings = common::migrated().await;
    let db = common::db(&settings).await;
    let (a, b) = aborted_before_the_failure(&db).await;
    // `a`'s aborted answer is there first, as when a batch's join is polled
    // late: an in-order join would name it.
    let error = joined(std::future::ready(a), std::future::ready(b))
        .await
        .expect_err("b failed");
    assert_eq!(error.code(), Some(&SqlState::UNDEFINED_TABLE), "{error}");
}

/// A push's reads, as `jirasync::statements!` joins them: each future fails
/// as a handler's `Failure`.
async fn joined_reads<A, B>(a: A, b: B) -> Result<(), Failure>
where
    A: Future<Output = Result<u64, Failure>>,
    B: Future<Output = Result<u64, Failure>>,
{
    jirasync::statements!(a = a, b = b);
    Ok(())
}

#[tokio::test]
async fn of_a_pushs_reads_sent_together_the_one_that_failed_is_named() {
    let settings = common::migrated().await;
    let db = common::db(&settings).await;
    // As above: `a`'s aborted answer comes first, `b` failed.
    let (a, b) = aborted_before_the_failure(&db).await;
    let (a, b) = (a.map_err(Failure::from), b.map_err(Failure::from));
    let (a_text, b_text) = (
        a.as_ref().expect_err("aborted").to_string(),
        b.as_ref().expect_err("no such table").to_string(),
    );
    assert!(a_text.contains("25P02"), "{a_text}");
    assert!(b_text.contains("42P01"), "{b_text}");
    // A push's reads in one join, and a batch's pushes' in a list.
    let error = joined_reads(std::future::ready(a), std::future::ready(b))
        .await
        .expect_err("b failed");
    assert!(error.to_string().contains("42P01"), "{error}");
    // A batch's pushes' reads, as a list (`pipelined::values`).
    db.batch_execute("ROLLBACK; BEGIN").await.expect("begin");
    let missing = failure(&db, "SELECT * FROM no_such_table").await;
    let mut aborted = Vec::new();
    for _ in 0..3 {
        aborted.push(failure(&db, "SELECT 1").await);
    }
    let (first, second, third) = (aborted.remove(0), aborted.remove(0), aborted.remove(0));
    let error =
        pipelined::values([Err(first), Ok(1), Err(missing), Err(second)]).expect_err("one failed");
    assert!(error.to_string().contains("42P01"), "{error}");
    let error = pipelined::values([Ok(1), Err(third)]).expect_err("only aborted");
    assert!(error.to_string().contains("25P02"), "{error}");
    assert_eq!(
        pipelined::values([Ok::<_, Failure>(1), Ok(2)]).ok(),
        Some(vec![1, 2])
    );
}

/// The failure of `sql`, which fails.
async fn failure(db: &tokio_postgres::Client, sql: &str) -> Failure {
    Failure::from(db.execute(sql, &[]).await.expect_err("fails"))
}
