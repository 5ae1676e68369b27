//! Cost that stays flat as the data grows (issue 17 §3): on an installation of
//! realistic shape (`bench/seed_big.sql`, a tenth of the benchmark's big seed), every
//! statement a webhook, a job, the outbound relay or `explain` runs is planned — as
//! the worker runs it, prepared, with the generic plan Postgres switches to —
//! without a sequential scan of any table holding more than a few thousand rows.
//! And a statement on a table that starts empty and grows with every push
//! (`outbound_writes`) is planned as the table is when it runs, not as it was
//! when the connection first ran it.

use crate::common;

use jirasync::cloud::delivery::duplicates;
use jirasync::db::{batch, rekey, status_sync, sync};
use jirasync::integration::FIND_ACTIVE;
use jirasync::outbound::{Kind, assignee, claim, echo, pending, status};
use jirasync::sync::audit;
use jirasync::sync::unit::GENERIC_PLANS;
use jirasync::worker::jobs::outbound;
use serde_json::Value;

const SEED: &str = include_str!("../../bench/seed.sql");
const SEED_BIG: &str = include_str!("../../bench/seed_big.sql");
/// A table with more rows than this must not be read whole.
const LARGE: f64 = 5_000.0;

/// Each hot statement with arguments of its types.
fn statements() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("FIND_ACTIVE", FIND_ACTIVE, "('bench.jira.local:bench')"),
        (
            "LOCK_ISSUES (a batch)",
            batch::LOCK_ISSUES,
            "(ARRAY[1, 1], ARRAY['BIG-77', 'BIG-78'])",
        ),
        (
            "LINKED_GROUPS (a batch)",
            batch::LINKED_GROUPS,
            "(ARRAY[77, 78], ARRAY[5, 5])",
        ),
        (
            "LOCK_ASSIGNEES (a batch)",
            batch::LOCK_ASSIGNEES,
            "(ARRAY[77, 78])",
        ),
        (
            "FIND_ASSIGNEES (a batch)",
            batch::FIND_ASSIGNEES,
            "(ARRAY[77, 78], ARRAY['big77@example.org', 'big78@example.org'])",
        ),
        (
            "PUSH_WRITES (a batch)",
            batch::PUSH_WRITES,
            "(ARRAY[77, 78])",
        ),
        (
            "SET_WATERMARKS (a batch)",
            batch::SET_WATERMARKS,
            "(ARRAY[77, 78], ARRAY[now(), NULL], ARRAY[NULL, now()]::timestamptz[])",
        ),
        (
            "ASSIGN_ALL (a batch)",
            batch::ASSIGN_ALL,
            "(ARRAY[77, 78], ARRAY[5, 5], ARRAY[77, 78], 1)",
        ),
        (
            "UNASSIGN_ALL (a batch)",
            batch::UNASSIGN_ALL,
            "(ARRAY[77, 78], 1)",
        ),
        (
            "INSERT_ACTIVITIES (a batch)",
            batch::INSERT_ACTIVITIES,
            "(ARRAY[77, 78], ARRAY[5, 5], ARRAY['assigned', 'assigned'], ARRAY['{}', '{}']::jsonb[])",
        ),
        (
            "RECORD_ALL (Cloud deliveries of a batch)",
            duplicates::RECORD_ALL,
            "(ARRAY[1, 1], ARRAY['a', 'b'], ARRAY['m', 'n'])",
        ),
        (
            "LOCK_ALL (a batch of pushes)",
            claim::LOCK_ALL,
            "(ARRAY[77, 78], ARRAY['assignee', 'status'])",
        ),
        (
            "PENDING_ALL (a batch of pushes)",
            claim::PENDING_ALL,
            "(ARRAY[77, 78], ARRAY['assignee', 'status'])",
        ),
        (
            "TARGET (a push)",
            claim::TARGET,
            "(77, 77, 'sync_forward_assignment')",
        ),
        ("CURRENT (an assignee push)", assignee::CURRENT, "(77)"),
        ("CURRENT (a status push)", status::CURRENT, "(77)"),
        (
            "CANDIDATES (an assignee push)",
            assignee::CANDIDATES,
            "(1, 5)",
        ),
        ("THROTTLED (a push)", outbound::THROTTLED, "(1)"),
        (
            "WRITING_ALL (the writes of a batch of pushes)",
            echo::WRITING_ALL,
            "(ARRAY[77, 78], ARRAY['assignee', 'assignee'], ARRAY['amy', 'bob'])",
        ),
        (
            "WRITTEN (a push)",
            echo::WRITTEN,
            "(77, 'assignee', 'amy', now())",
        ),
        ("DECIDED (a push)", claim::DECIDED, "(77, 'assignee', 1)"),
        (
            "MARK_ASSIGNEE_SYNCED (a push)",
            sync::MARK_ASSIGNEE_SYNCED,
            "(77, now())",
        ),
        (
            "MARK_STATUS_SYNCED (a push)",
            sync::MARK_STATUS_SYNCED,
            "(77, now())",
        ),
        (
            "REJECTED_CANDIDATES",
            sync::REJECTED_CANDIDATES,
            "(5, 'big99@example.org')",
        ),
        ("MAPPED_USER", sync::MAPPED_USER, "(1, 'jdoe')"),
        ("ELIGIBLE", sync::ELIGIBLE, "(77, 5)"),
        (
            "STATUS_SYNC_ENABLED",
            status_sync::STATUS_SYNC_ENABLED,
            "(1, 'BIG-77')",
        ),
        (
            "TRANSITION",
            status_sync::TRANSITION,
            "(77, 'unresolved', 'resolved', 1)",
        ),
        (
            "LOCK_MOVING (issue move, organizations with sync on)",
            rekey::LOCK_MOVING,
            "(1, ARRAY['BIG-77', 'OPS-1'])",
        ),
        (
            "INSERT_SYNC_EVENT",
            audit::INSERT_SYNC_EVENT,
            "('m', 1, 'BIG-77', now(), 'assignee', 5, 'assigned', '{}')",
        ),
        (
            "INSERT_SYNC_EVENTS (several, a batch)",
            audit::INSERT_SYNC_EVENTS,
            "(ARRAY['m', 'n'], ARRAY[1, 1], ARRAY['BIG-77', 'BIG-78'], ARRAY[now(), now()], ARRAY['assignee', 'assignee'], ARRAY[5, 5], ARRAY['assigned', 'assigned'], ARRAY['{}', '{}']::jsonb[])",
        ),
        ("RECENT (explain)", audit::RECENT, "('BIG-77', NULL, 20)"),
        ("MOVE (outbound relay)", pending::MOVE, "(10000)"),
        (
            "PUBLISHABLE (outbound relay)",
            pending::PUBLISHABLE,
            "(500)",
        ),
        (
            "PUBLISHED (outbound relay)",
            pending::PUBLISHED,
            "(ARRAY[77], ARRAY['assignee'], ARRAY[77])",
        ),
        ("PRUNE_CUTOFF", audit::PRUNE_CUTOFF, "(2592000)"),
        ("PRUNE", audit::PRUNE, "(1000)"),
    ]
}

/// The relations a plan reads sequentially, with the planner's row count.
fn seq_scans(plan: &Value, found: &mut Vec<(String, f64)>) {
    if plan["Node Type"] == "Seq Scan" {
        found.push((
            plan["Relation Name"].as_str().unwrap_or("?").to_owned(),
            plan["Plan Rows"].as_f64().unwrap_or(0.0),
        ));
    }
    for child in plan["Plans"].as_array().into_iter().flatten() {
        seq_scans(child, found);
    }
}

/// `bench/seed.sql` with `users` users and `issues` issues.
async fn seeded(db: &tokio_postgres::Client, users: usize, issues: usize) {
    let seed = SEED
        .replace("{users}", &users.to_string())
        .replace("{issues}", &issues.to_string())
        .replace("{secret}", "plans");
    db.batch_execute(&seed).await.expect("bench/seed.sql");
}

#[tokio::test]
async fn no_hot_statement_scans_a_large_table_on_a_big_installation() {
    let settings = common::migrated().await;
    let db = common::db(&settings).await;
    seeded(&db, 20, 200).await;
    let big = SEED_BIG
        .replace("{orgs}", "1000")
        .replace("{users}", "10000")
        .replace("{issues}", "100000")
        .replace("{events}", "100000");
    db.batch_execute(&big).await.expect("bench/seed_big.sql");
    let sizes = db
        .query(
            "SELECT relname, reltuples FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace",
            &[],
        )
        .await
        .expect("table sizes");
    let size = |table: &str| {
        sizes
            .iter()
            .find(|row| row.get::<_, String>(0) == table)
            .map_or(0.0, |row| f64::from(row.get::<_, f32>(1)))
    };
    assert!(
        size("groups") > 90_000.0,
        "the seed is big: {}",
        size("groups")
    );
    db.batch_execute("SET plan_cache_mode = force_generic_plan")
        .await
        .expect("generic plans");
    let mut failures = Vec::new();
    for (i, (name, sql, args)) in statements().into_iter().enumerate() {
        db.batch_execute(&format!("PREPARE plan_{i} AS {sql}"))
            .await
            .unwrap_or_else(|e| panic!("{name} prepares: {}", jirasync::db::error_chain(&e)));
        // EXPLAIN without ANALYZE: nothing is written.
        let row = db
            .query_one(
                &format!("EXPLAIN (FORMAT JSON) EXECUTE plan_{i}{args}"),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("{name} explains: {}", jirasync::db::error_chain(&e)));
        let plan: Value = row.get(0);
        let mut scans = Vec::new();
        seq_scans(&plan[0]["Plan"], &mut scans);
        for (table, _) in scans {
            if size(&table) > LARGE {
                failures.push(format!(
                    "{name} scans {table} ({} rows) sequentially:\n{:#}",
                    size(&table),
                    plan[0]["Plan"]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Sequential scans of `outbound_writes` this backend has not yet reported.
async fn scans_of_writes(db: &tokio_postgres::Client) -> i64 {
    db.query_one(
        "SELECT COALESCE(sum(seq_scan), 0)::bigint FROM pg_stat_xact_user_tables \
          WHERE relname = 'outbound_writes'",
        &[],
    )
    .await
    .expect("the transaction's scans")
    .get(0)
}

/// `outbound_writes` starts empty and grows by a row per write. A plan made
/// once per connection while it held a few rows would read it whole for good:
/// the record of Jira's `updated` after a write (`echo::written`) is planned as
/// the table is when it runs, on a pooled connection as the worker's.
#[tokio::test]
async fn a_write_read_back_into_a_grown_table_reads_it_by_key() {
    let settings = common::migrated().await;
    let db = common::db(&settings).await;
    seeded(&db, 2, 200).await;
    let record = |values: i64| {
        format!(
            "INSERT INTO outbound_writes (external_issue_id, kind, value)
             SELECT id, 'assignee', 'user' || n FROM external_issues, generate_series(1, {values}) n
             ON CONFLICT DO NOTHING"
        )
    };
    db.batch_execute(&format!("{}; ANALYZE outbound_writes", record(1)))
        .await
        .expect("a few writes, analyzed");
    let pool = jirasync::db::connect(&settings.database, 1)
        .await
        .expect("a pool on the test database");
    let client = pool.get().await.expect("a pooled connection");
    let issue: i64 = db
        .query_one("SELECT min(external_issue_id) FROM outbound_writes", &[])
        .await
        .expect("an issue written")
        .get(0);
    assert_eq!(
        read_back(&client, issue).await,
        1,
        "the premise: a table of 200 rows is read whole"
    );
    // Grown to 10,000 rows, with the statistics of 200.
    db.batch_execute(&record(50))
        .await
        .expect("the table grows");
    assert_eq!(
        read_back(&client, issue).await,
        0,
        "the read-back scanned outbound_writes whole"
    );
}

/// Records Jira's `updated` after a write to `issue` on `client` as a push
/// does, in a transaction with generic plans; how often it read
/// `outbound_writes` whole.
async fn read_back(client: &deadpool_postgres::Object, issue: i64) -> i64 {
    client
        .batch_execute(&format!("BEGIN; {GENERIC_PLANS}"))
        .await
        .expect("begin");
    // A backend's counts reach the statistics between transactions, never within one.
    let before = scans_of_writes(client).await;
    echo::written(client, issue, Kind::Assignee, "user1", chrono::Utc::now())
        .await
        .expect("the read-back recorded");
    let scans = scans_of_writes(client).await - before;
    client.batch_execute("COMMIT").await.expect("commit");
    scans
}
