//! The unit of work (`sync::unit`, docs/reference.md §5.12) on its own, against
//! the real Postgres: a batch that cannot be applied as one — a row held locked
//! past the lock timeout, a change Postgres refuses — falls back to each change
//! alone, so the others commit and only the failing one fails.

use std::time::Duration;

use jirasync::cloud::delivery::duplicates::{self, Seen};
use jirasync::db::pipelined::Pipelined;
use jirasync::sync::assignee::Action;
use jirasync::sync::clock::EventTime;
use jirasync::sync::unit::{Answer, Pending};
use jirasync::sync::{Applied, Change, Email, Error, IssueKey, Unit};
use tokio_postgres::error::SqlState;

use crate::batching::issues;
use crate::common;
use common::app::{TestApp, WAIT};

/// A test app without a worker: the tests apply the changes themselves.
async fn app() -> TestApp {
    TestApp::builder().no_worker().start().await
}

/// A pool of at most `size` connections to the test's database.
async fn pool(app: &TestApp, size: usize) -> jirasync::db::DbPool {
    jirasync::db::connect(&app.settings.database, size)
        .await
        .expect("connect to the test's database")
}

/// The unit of work on the test's database.
async fn unit(app: &TestApp) -> Unit {
    Unit::new(pool(app, 8).await, true)
}

/// Begins `transaction` with `settings` and makes `table` in it, in one round trip.
async fn begin_making(transaction: &Pipelined<'_>, settings: &str, table: &str) {
    let create = format!("CREATE TABLE {table} (id int)");
    futures_util::try_join!(
        transaction.begin(settings),
        transaction.client().batch_execute(&create),
    )
    .expect("begun, and the table made in it");
}

/// The change that assigns `key` to the user with `email`, as the webhook handler builds it.
fn assignment(app: &TestApp, key: &str, email: &str) -> Change {
    Change {
        message_id: format!("unit-{key}"),
        integration_id: app.integration,
        integration_version: None,
        provider: &jirasync::integration::ACTIVITY_PROVIDER,
        key: IssueKey::new(key),
        moved_from: None,
        event_time: EventTime {
            at: Some(chrono::Utc::now()),
            clamped_from: None,
        },
        skew: Duration::from_secs(60),
        assignee: Some(Action::Assign {
            email: Email::parse(email),
            jira_user: None,
        }),
        status: None,
        status_to: None,
    }
}

/// Hands `changes` to the unit of work as one batch; why it fell back, and each change's answer.
async fn settle(unit: &Unit, changes: Vec<Change>) -> (Option<String>, Vec<Answer>) {
    let (batch, answers): (Vec<_>, Vec<_>) = changes.into_iter().map(Pending::new).unzip();
    let failure = tokio::time::timeout(WAIT, unit.settle(batch))
        .await
        .expect("the batch gives up on a held lock");
    (failure, answers)
}

#[tokio::test]
async fn a_row_held_past_the_lock_timeout_holds_up_only_its_own_change() {
    let app = app().await;
    let issues = issues(&app, "UOW", 4).await;
    let held = &issues[1];
    let holder = common::db(&app.settings).await;
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT id FROM external_issues WHERE key = '{}' FOR UPDATE",
            held.key
        ))
        .await
        .expect("lock one issue row");
    let unit = unit(&app).await;
    let changes = issues
        .iter()
        .map(|issue| assignment(&app, &issue.key, &issue.email))
        .collect();
    let (failure, answers) = settle(&unit, changes).await;
    let failure = failure.expect("the batch failed");
    assert!(failure.contains("lock timeout"), "{failure}");
    let mut waiting = None;
    for (issue, answer) in issues.iter().zip(answers) {
        if issue.key == held.key {
            waiting = Some(tokio::spawn(answer.get()));
            continue;
        }
        let applied = tokio::time::timeout(WAIT, answer.get())
            .await
            .expect("committed while the other row is held");
        assert_eq!(
            applied.expect("applied"),
            Applied::Assigned,
            "{}",
            issue.key
        );
        assert_eq!(app.assignee(issue.group).await, Some(issue.user));
    }
    let waiting = waiting.expect("the held issue's answer");
    assert!(!waiting.is_finished(), "the held change waits for its row");
    assert_eq!(app.assignee(held.group).await, None);
    holder
        .batch_execute("COMMIT")
        .await
        .expect("release the row");
    let applied = tokio::time::timeout(WAIT, waiting)
        .await
        .expect("applied once the row is free")
        .expect("no panic");
    assert_eq!(applied.expect("applied"), Applied::Assigned);
    assert_eq!(app.assignee(held.group).await, Some(held.user));
    assert_eq!(common::doubled_activities(&app.db).await, 0);
    app.finish().await;
}

#[tokio::test]
async fn a_change_postgres_refuses_fails_alone_and_its_batch_mates_commit() {
    let app = app().await;
    let issues = issues(&app, "REF", 3).await;
    let unit = unit(&app).await;
    let mut changes: Vec<Change> = issues
        .iter()
        .map(|issue| assignment(&app, &issue.key, &issue.email))
        .collect();
    // A key Postgres refuses (a NUL byte): its first statement fails.
    changes.insert(1, assignment(&app, "REF-\u{0}", "ref0@acme.io"));
    let (failure, mut answers) = settle(&unit, changes).await;
    let failure = failure.expect("the batch failed");
    assert!(failure.contains("invalid byte sequence"), "{failure}");
    let refused = answers.remove(1).get().await;
    match refused {
        Err(Error::Db(error)) => assert_eq!(
            error.code(),
            Some(&SqlState::CHARACTER_NOT_IN_REPERTOIRE),
            "{error:?}"
        ),
        other => panic!("the refused change fails with its database error: {other:?}"),
    }
    for (issue, answer) in issues.iter().zip(answers) {
        assert_eq!(answer.get().await.expect("applied"), Applied::Assigned);
        assert_eq!(app.assignee(issue.group).await, Some(issue.user));
    }
    let decisions: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM sync_events WHERE message_id LIKE 'unit-REF-%'",
            &[],
        )
        .await
        .expect("sync_events")
        .get(0);
    assert_eq!(
        decisions, 3,
        "each committed change wrote its decision once"
    );
    app.finish().await;
}

#[tokio::test]
async fn an_issue_reassigned_within_one_batch_ends_with_the_last_and_an_activity_each() {
    let app = app().await;
    let org = app.seed().org(app.integration, true, "SEQ-1").await;
    let amy = app.seed().teammate(&org, "amy@acme.io").await;
    let bob = app.seed().teammate(&org, "bob@acme.io").await;
    let unit = unit(&app).await;
    let at = chrono::Utc::now();
    // Amy, Bob, Amy again in Jira's order, then a change older than all three.
    let steps = [
        ("amy@acme.io", 0),
        ("bob@acme.io", 1),
        ("amy@acme.io", 2),
        ("bob@acme.io", -5),
    ];
    let changes = steps
        .iter()
        .map(|&(email, ms)| {
            let mut change = assignment(&app, "SEQ-1", email);
            change.message_id = format!("seq-{ms}");
            change.event_time.at = Some(at + chrono::Duration::milliseconds(ms));
            change
        })
        .collect();
    let (failure, answers) = settle(&unit, changes).await;
    assert_eq!(failure, None, "one transaction");
    let mut applied = Vec::new();
    for answer in answers {
        applied.push(answer.get().await.expect("applied"));
    }
    assert_eq!(
        applied,
        [
            Applied::Assigned,
            Applied::Assigned,
            Applied::Assigned,
            Applied::Stale
        ],
        "each change saw what the ones before it in the batch did"
    );
    assert_eq!(app.assignee(org.group_id).await, Some(amy));
    let assigned: Vec<i64> = app
        .activities(org.group_id)
        .await
        .iter()
        .map(|(kind, data)| {
            assert_eq!(kind, "assigned");
            data["assignee"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .expect("assignee")
        })
        .collect();
    assert_eq!(
        assigned,
        [amy, bob, amy],
        "an activity per change, in order"
    );
    let watermark: Option<chrono::DateTime<chrono::Utc>> = app
        .db
        .query_one(
            "SELECT assignee_synced_at FROM external_issues WHERE id = $1",
            &[&org.external_issue_id],
        )
        .await
        .expect("watermark")
        .get(0);
    let last = at + chrono::Duration::milliseconds(2);
    let moved = watermark.expect("moved");
    assert!(
        (moved - last).num_milliseconds().abs() < 1,
        "the watermark is the latest event time: {moved} vs {last}"
    );
    app.finish().await;
}

#[tokio::test]
async fn two_batches_of_the_same_issues_in_opposite_orders_never_deadlock() {
    let app = app().await;
    let issues = issues(&app, "DLK", 6).await;
    let (first, second) = (unit(&app).await, unit(&app).await);
    for round in 0..10 {
        let batch = |reverse: bool| {
            let mut changes: Vec<Change> = issues
                .iter()
                .map(|issue| {
                    let mut change = assignment(&app, &issue.key, &issue.email);
                    change.message_id = format!("dlk-{round}-{reverse}-{}", issue.key);
                    change
                })
                .collect();
            if reverse {
                changes.reverse();
            }
            changes
        };
        let (a, b) = tokio::join!(settle(&first, batch(false)), settle(&second, batch(true)));
        assert_eq!(a.0, None, "round {round}: the first batch committed as one");
        assert_eq!(
            b.0, None,
            "round {round}: the second batch committed as one"
        );
        for answer in a.1.into_iter().chain(b.1) {
            answer.get().await.expect("applied");
        }
    }
    for issue in &issues {
        assert_eq!(app.assignee(issue.group).await, Some(issue.user));
    }
    app.finish().await;
}

/// A batch's Cloud deliveries are recorded by one statement
/// (`duplicates::record_all`, docs/reference.md §11.4): the batch's second delivery
/// of a pair is a duplicate of its first, a pair recorded before is a duplicate of
/// the message that carried it, the same message again is not a duplicate of
/// itself, and a pair another transaction records meanwhile is told once that
/// transaction commits.
#[tokio::test]
async fn a_batch_records_its_cloud_deliveries_once_and_tells_each_duplicate() {
    let app = app().await;
    let pool = pool(&app, 3).await;
    let client = pool.get().await.expect("a connection");
    let id = app.integration;
    let first = duplicates::record_all(&client, &[(id, "before", "m0")])
        .await
        .expect("recorded");
    assert_eq!(first, vec![Seen::First]);
    let seen = duplicates::record_all(
        &client,
        &[
            (id, "new", "m1"),
            (id, "new", "m2"),
            (id, "before", "m3"),
            (id, "before", "m0"),
        ],
    )
    .await
    .expect("recorded");
    let duplicate = |first: &str| Seen::Duplicate {
        first_message_id: first.to_owned(),
    };
    assert_eq!(
        seen,
        vec![Seen::First, duplicate("m1"), duplicate("m0"), Seen::First]
    );
    let rows: Vec<(String, String)> = app
        .db
        .query(
            "SELECT identifier, message_id FROM cloud_webhook_deliveries ORDER BY identifier",
            &[],
        )
        .await
        .expect("deliveries")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("before".to_owned(), "m0".to_owned()),
            ("new".to_owned(), "m1".to_owned())
        ]
    );

    // Another transaction records "race" and has not committed: the batch's
    // statement waits for it, then tells its delivery a duplicate of that one.
    let mut other = pool.get().await.expect("a connection");
    let tx = other.transaction().await.expect("begin");
    duplicates::record_all(&tx, &[(id, "race", "ma")])
        .await
        .expect("recorded");
    let racing = tokio::spawn(async move {
        let client = pool.get().await.expect("a connection");
        duplicates::record_all(&client, &[(id, "race", "mb"), (id, "late", "mc")]).await
    });
    common::eventually(
        "the batch's statement waits for the other transaction",
        WAIT,
        || async { common::a_backend_waits_on_a_lock(&app.db).await },
    )
    .await;
    tx.commit().await.expect("commit");
    let seen = racing.await.expect("joined").expect("recorded");
    assert_eq!(seen, vec![duplicate("ma"), Seen::First]);
    drop(client);
    app.finish().await;
}

/// A batch's transaction sends `BEGIN` with its first statements
/// (`db::pipelined`): dropped unfinished (a batch that failed), it is rolled back
/// before the connection's next user runs anything; committed, it stays.
#[tokio::test]
async fn a_pipelined_transaction_dropped_unfinished_is_rolled_back_before_the_next_user() {
    let app = app().await;
    // One connection: the next user gets the same one back.
    let pool = pool(&app, 1).await;
    {
        let client = pool.get().await.expect("a connection");
        let transaction = Pipelined::new(&client);
        begin_making(
            &transaction,
            "SET LOCAL lock_timeout = '7s'",
            "pipelined_dropped",
        )
        .await;
        // Dropped unfinished here, the connection back in the pool.
    }
    let client = pool.get().await.expect("the same connection");
    let row = client
        .query_one(
            "SELECT to_regclass('pipelined_dropped') IS NULL, current_setting('lock_timeout')",
            &[],
        )
        .await
        .expect("the connection answers");
    // On the same connection, a transaction still open would show its own table.
    let (gone, lock_timeout): (bool, String) = (row.get(0), row.get(1));
    assert!(gone, "the table made in the dropped transaction is gone");
    assert_eq!(lock_timeout, "0", "the transaction's settings went with it");
    drop(client);

    {
        let client = pool.get().await.expect("a connection");
        let transaction = Pipelined::new(&client);
        begin_making(&transaction, "", "pipelined_committed").await;
        transaction.commit().await.expect("committed");
    }
    let made: bool = app
        .db
        .query_one("SELECT to_regclass('pipelined_committed') IS NOT NULL", &[])
        .await
        .expect("the table")
        .get(0);
    assert!(made, "a committed transaction's table stays");
    app.finish().await;
}

#[tokio::test]
async fn a_change_prepared_with_an_integration_row_changed_since_is_left_out_of_its_batch() {
    let app = app().await;
    let issues = issues(&app, "VER", 4).await;
    let pool = pool(&app, 2).await;
    let version = || async {
        let client = pool.get().await.expect("a connection");
        let (_, version) = jirasync::integration::find_active(
            &client,
            pool.keys(),
            jirasync::integration::Provider::Server,
            &app.external_id,
        )
        .await
        .expect("read the integration")
        .expect("active");
        version
    };
    let kept = version().await;
    // Any write of the row makes the version the changes were prepared with stale.
    app.db
        .execute(
            "UPDATE integrations SET metadata = metadata || '{\"domain_name\": \"changed\"}' WHERE id = $1",
            &[&app.integration],
        )
        .await
        .expect("change the integration's row");
    let current = version().await;
    assert_ne!(kept, current);
    let unit = unit(&app).await;
    let versions = [Some(kept), None, Some(current), Some(kept)];
    let changes = issues
        .iter()
        .zip(versions)
        .map(|(issue, version)| Change {
            integration_version: version,
            ..assignment(&app, &issue.key, &issue.email)
        })
        .collect();
    let (failure, answers) = settle(&unit, changes).await;
    assert_eq!(failure, None, "one batch, no fallback");
    for ((issue, version), answer) in issues.iter().zip(versions).zip(answers) {
        let answer = answer.get().await;
        if version == Some(kept) {
            assert!(
                matches!(answer, Err(Error::IntegrationChanged)),
                "{}: {answer:?}",
                issue.key
            );
            assert_eq!(app.assignee(issue.group).await, None, "{}", issue.key);
        } else {
            assert_eq!(answer.expect("applied"), Applied::Assigned, "{}", issue.key);
            assert_eq!(app.assignee(issue.group).await, Some(issue.user));
        }
    }

    // Disabled: even the current version is no longer applied.
    app.db
        .execute(
            "UPDATE integrations SET status = 'disabled' WHERE id = $1",
            &[&app.integration],
        )
        .await
        .expect("disable");
    let (failure, answers) = settle(
        &unit,
        vec![Change {
            integration_version: Some(current),
            ..assignment(&app, &issues[0].key, &issues[0].email)
        }],
    )
    .await;
    assert_eq!(failure, None);
    let answer = answers.into_iter().next().expect("an answer").get().await;
    assert!(
        matches!(answer, Err(Error::IntegrationChanged)),
        "{answer:?}"
    );
    assert_eq!(app.assignee(issues[0].group).await, None);
    app.finish().await;
}
