//! Cost that stays flat as the data grows (issue 17 §3): on an installation of
//! realistic shape (`bench/seed_big.sql`, a tenth of the benchmark's big seed), every
//! statement a webhook, a job, the outbound relay or `explain` runs is planned — as
//! the worker runs it, prepared, with the generic plan Postgres switches to —
//! without a sequential scan of any table holding more than a few thousand rows;
//! a push's statements also as a batch of pushes plans them, with sequential
//! scans off, without reading such a table whole through an index instead.
//! And a statement on a table that starts empty and grows with every push
//! (`outbound_writes`) is planned as the table is when it runs, not as it was
//! when the connection first ran it.

use crate::common;

use jirasync::cloud::delivery::duplicates;
use jirasync::db::{batch, rekey, status_sync, sync};
use jirasync::integration::{ACTIVE_VERSIONS, FIND_ACTIVE};
use jirasync::outbound::{Kind, assignee, claim, echo, pending, status};
use jirasync::sync::audit;
use jirasync::sync::unit::GENERIC_PLANS;
use jirasync::worker::jobs::outbound;
use jirasync::worker::jobs::outbound::batch::PUSH_PLANS;
use serde_json::Value;

const SEED: &str = include_str!("../../bench/seed.sql");
const SEED_BIG: &str = include_str!("../../bench/seed_big.sql");
/// A table with more rows than this must not be read whole.
const LARGE: f64 = 5_000.0;
/// The planner's cost above which a scan reads more than a few rows by key.
const COSTLY: f64 = 1_000.0;

/// Each hot statement with arguments of its types.
fn statements() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("FIND_ACTIVE", FIND_ACTIVE, "('bench.jira.local:bench')"),
        (
            "ACTIVE_VERSIONS (a batch)",
            ACTIVE_VERSIONS,
            "(ARRAY[1, 2])",
        ),
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
            "WRITTEN_ALL (a batch of pushes)",
            echo::WRITTEN_ALL,
            "(ARRAY[77, 78], ARRAY['assignee', 'status'], ARRAY['amy', 'Done'], ARRAY[now(), now()])",
        ),
        ("DECIDED (a push)", claim::DECIDED, "(77, 'assignee', 1)"),
        (
            "DECIDED_ALL (a batch of pushes)",
            claim::DECIDED_ALL,
            "(ARRAY[77, 78], ARRAY['assignee', 'status'], ARRAY[1, 2])",
        ),
        (
            "MARK_SYNCED_ALL (a batch of pushes)",
            sync::MARK_SYNCED_ALL,
            "(ARRAY[77, 78], ARRAY[now(), NULL], ARRAY[now(), now()])",
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
        let plan = explained(&db, &format!("plan_{i}"), name, sql, args).await;
        let mut scans = Vec::new();
        seq_scans(&plan, &mut scans);
        for (table, _) in scans {
            if size(&table) > LARGE {
                failures.push(format!(
                    "{name} scans {table} ({} rows) sequentially:\n{plan:#}",
                    size(&table),
                ));
            }
        }
    }
    // A batch of pushes plans with sequential scans off (`PUSH_PLANS`): its
    // statements must not read a large table whole by an index instead.
    db.batch_execute("SET enable_seqscan = off")
        .await
        .expect("sequential scans off");
    let pushes = statements()
        .into_iter()
        .enumerate()
        .filter(|(_, (name, ..))| name.contains("push"));
    for (i, (name, sql, args)) in pushes {
        let plan = explained(&db, &format!("push_{i}"), name, sql, args).await;
        let mut scans = Vec::new();
        seq_scans(&plan, &mut scans);
        costly_scans(&plan, &mut scans);
        for (table, _) in scans {
            if size(&table) > LARGE {
                failures.push(format!(
                    "{name}, planned as a batch of pushes, reads {table} ({} rows) whole:\n{plan:#}",
                    size(&table),
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The plan of `sql` prepared as `prepared` and executed with `args` (EXPLAIN
/// without ANALYZE: nothing is written).
async fn explained(
    db: &tokio_postgres::Client,
    prepared: &str,
    name: &str,
    sql: &str,
    args: &str,
) -> Value {
    db.batch_execute(&format!("PREPARE {prepared} AS {sql}"))
        .await
        .unwrap_or_else(|e| panic!("{name} prepares: {}", jirasync::db::error_chain(&e)));
    let row = db
        .query_one(
            &format!("EXPLAIN (FORMAT JSON) EXECUTE {prepared}{args}"),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{name} explains: {}", jirasync::db::error_chain(&e)));
    let plan: Value = row.get(0);
    plan[0]["Plan"].clone()
}

/// The relations a plan reads at a cost of more than [`COSTLY`] (a read by key
/// costs tens; a large table read whole through an index, by a trivial
/// condition, thousands), with the planner's cost.
fn costly_scans(plan: &Value, found: &mut Vec<(String, f64)>) {
    let cost = plan["Total Cost"].as_f64().unwrap_or(0.0);
    if let Some(table) = plan["Relation Name"].as_str()
        && cost > COSTLY
    {
        found.push((table.to_owned(), cost));
    }
    for child in plan["Plans"].as_array().into_iter().flatten() {
        costly_scans(child, found);
    }
}

/// Sequential scans of `table` this backend has not yet reported.
async fn scans_of(db: &tokio_postgres::Client, table: &str) -> i64 {
    db.query_one(
        "SELECT COALESCE(sum(seq_scan), 0)::bigint FROM pg_stat_xact_user_tables \
          WHERE relname = $1",
        &[&table],
    )
    .await
    .expect("the transaction's scans")
    .get(0)
}

/// A table a batch of pushes settles, grown to 10,000 rows (from one per issue
/// to 50) by the statement `rows(n)` writes.
struct Growing {
    table: &'static str,
    rows: fn(i64) -> String,
}

/// `outbound_writes` starts empty and grows by a row per write; `outbound_pending`
/// holds nothing while pushes keep up and a backlog after an outage. A plan made
/// once per connection while either held a few rows would read it whole for
/// good. The statements that settle a batch of pushes on them (the read-back of
/// Jira's `updated` after a write, `echo::written_all`; the pending rows
/// decided, `claim::decided_all`), planned as a batch of pushes plans them
/// (`PUSH_PLANS`) on a pooled connection as the worker's, read them by key
/// whatever their size when first run.
#[tokio::test]
async fn a_batch_of_pushes_settles_rows_of_a_grown_table_by_key() {
    let settings = common::migrated().await;
    let db = common::db(&settings).await;
    seeded(&db, 2, 200).await;
    let pool = jirasync::db::connect(&settings.database, 2)
        .await
        .expect("a pool on the test database");
    let (generic, pushing) = (
        pool.get().await.expect("a pooled connection"),
        pool.get().await.expect("another"),
    );
    let tables = [
        Growing {
            table: "outbound_writes",
            rows: |values| {
                format!(
                    "INSERT INTO outbound_writes (external_issue_id, kind, value)
                     SELECT id, 'assignee', 'user' || n FROM external_issues,
                            generate_series(1, {values}) n
                     ON CONFLICT DO NOTHING"
                )
            },
        },
        Growing {
            table: "outbound_pending",
            rows: |copies| {
                // More issues: the key is (issue, kind).
                format!(
                    "INSERT INTO external_issues (integration_id, key, organization_id)
                     SELECT integration_id, key || '-' || n, organization_id
                       FROM external_issues, generate_series(2, {copies}) n
                      WHERE key NOT LIKE '%-%-%';
                     INSERT INTO outbound_pending (external_issue_id, kind, group_id,
                            integration_id, seq, first_at, changed_at)
                     SELECT id, 'assignee', 1, integration_id, 1, now(), now()
                       FROM external_issues
                     ON CONFLICT DO NOTHING"
                )
            },
        },
    ];
    for Growing { table, rows } in tables {
        db.batch_execute(&format!("{}; ANALYZE {table}", rows(1)))
            .await
            .unwrap_or_else(|e| panic!("a few rows in {table}: {e}"));
        assert_eq!(
            settle(&generic, GENERIC_PLANS, table).await,
            1,
            "the premise: with generic plans alone, {table} of 200 rows is read whole"
        );
        assert_eq!(
            settle(&pushing, PUSH_PLANS, table).await,
            0,
            "settling a batch of pushes scanned {table} of 200 rows whole"
        );
        // Grown to 10,000 rows, with the statistics of 200.
        db.batch_execute(&rows(50))
            .await
            .unwrap_or_else(|e| panic!("{table} grows: {e}"));
        assert_eq!(
            settle(&pushing, PUSH_PLANS, table).await,
            0,
            "settling a batch of pushes scanned {table} whole once grown"
        );
    }
}

/// Settles, on `client` as a batch of pushes does (in a transaction planned
/// with `settings`, prepared once per connection), two of the rows of `table`;
/// how often it read `table` whole.
async fn settle(client: &deadpool_postgres::Object, settings: &str, table: &str) -> i64 {
    let issues: Vec<i64> = client
        .query(
            &format!("SELECT external_issue_id FROM {table} ORDER BY 1 LIMIT 2"),
            &[],
        )
        .await
        .expect("rows of the table")
        .iter()
        .map(|row| row.get(0))
        .collect();
    client
        .batch_execute(&format!("BEGIN; {settings}"))
        .await
        .expect("begin");
    // A backend's counts reach the statistics between transactions, never within one.
    let before = scans_of(client, table).await;
    let now = chrono::Utc::now();
    let settled = match table {
        "outbound_writes" => {
            let writes: Vec<_> = issues
                .iter()
                .map(|&issue| (issue, Kind::Assignee, "user1", now))
                .collect();
            let statement = client.prepare_cached(echo::WRITTEN_ALL).await;
            let statement = statement.expect("prepared");
            echo::written_all(client, &statement, &writes).await
        }
        _ => {
            let pushes: Vec<_> = issues
                .iter()
                .map(|&issue| (issue, Kind::Assignee, 1))
                .collect();
            let statement = client.prepare_cached(claim::DECIDED_ALL).await;
            let statement = statement.expect("prepared");
            claim::decided_all(client, &statement, &pushes).await
        }
    };
    settled.unwrap_or_else(|e| panic!("{table} settled: {e}"));
    let scans = scans_of(client, table).await - before;
    client.batch_execute("ROLLBACK").await.expect("roll back");
    scans
}
