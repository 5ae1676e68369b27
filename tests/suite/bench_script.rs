//! `bench/assign.sql` is the database's limit in the benchmark (docs/performance.md): pgbench
//! running, per transaction, the SQL a worker runs for one assignment webhook. These
//! tests keep it honest: its statements are the code's own, and run on the
//! benchmark's data it writes what the worker writes.

use crate::common;

use std::process::Command;
use std::time::Duration;

use jirasync::db::batch::{
    ASSIGN_ALL, FIND_ASSIGNEES, INSERT_ACTIVITIES, LINKED_GROUPS, LOCK_ASSIGNEES, LOCK_ISSUES,
    PUSH_WRITES, SET_WATERMARKS,
};
use jirasync::integration::ACTIVE_VERSIONS;
use jirasync::sync::audit::INSERT_SYNC_EVENT;
use jirasync::sync::unit::GENERIC_PLANS;

const SCRIPT: &str = include_str!("../../bench/assign.sql");
const SEED: &str = include_str!("../../bench/seed.sql");

/// The script's SQL statements, whitespace collapsed, without their terminator
/// (`;`, `\gset …`, `\aset …`); comments and meta-commands dropped.
fn script_statements(script: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in script.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("--") || line.starts_with('\\') {
            continue;
        }
        let (text, ends) = match line.find(" \\gset").or_else(|| line.find(" \\aset")) {
            Some(at) => (&line[..at], true),
            None => match line.strip_suffix(';') {
                Some(text) => (text, true),
                None => (line, false),
            },
        };
        current.push(' ');
        current.push_str(text);
        if ends {
            statements.push(collapse(&current));
            current.clear();
        }
    }
    assert!(
        current.trim().is_empty(),
        "unterminated statement: {current}"
    );
    statements
}

fn collapse(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `sql` with `$1`… replaced by the script's variables or expressions.
fn bind(sql: &str, params: &[&str]) -> String {
    let mut sql = sql.to_owned();
    // Highest first, so `$1` does not eat the start of `$10`.
    for (i, value) in params.iter().enumerate().rev() {
        sql = sql.replace(&format!("${}", i + 1), value);
    }
    collapse(&sql)
}

#[test]
fn every_statement_of_the_pgbench_script_is_the_workers_own() {
    // What the worker sends for `assign` as `$4` (src/db/sync.rs::assign).
    let activity_data = "jsonb_build_object('assignee', :u_id::text, 'assigneeEmail', :u_email::text, \
         'assigneeType', 'user', 'integration', 'jira_server', 'integration_id', :integration_id::bigint)";
    // One decision per organization, as `sync::assignee` notes it.
    let audit_detail = "jsonb_build_object('email', :email::text, 'jira_user', 'u', 'groups', \
         jsonb_build_array(jsonb_build_object('group_id', :g_id::bigint, 'project', :g_slug::text, \
         'result', 'assigned', 'via', 'email', 'user', jsonb_build_object('id', :u_id::bigint, \
         'username', :u_username::text, 'email', :u_email::text, 'team', :u_slug::text))))";
    let expected = vec![
        // Not the worker's: the values it takes from the webhook.
        collapse(
            "SELECT 'BENCH-' || :n::int AS key, 'bench' || :u::int || '@example.org' AS email, now() AS at",
        ),
        "BEGIN".to_owned(),
        GENERIC_PLANS.to_owned(),
        bind(ACTIVE_VERSIONS, &["ARRAY[:integration_id]::bigint[]"]),
        bind(LOCK_ISSUES, &["ARRAY[:integration_id]", "ARRAY[:key]"]),
        bind(
            LINKED_GROUPS,
            &["ARRAY[:ei_id]", "ARRAY[:ei_organization_id]"],
        ),
        bind(LOCK_ASSIGNEES, &["ARRAY[:ei_id]::bigint[]"]),
        bind(PUSH_WRITES, &["ARRAY[:ei_id]::bigint[]"]),
        bind(FIND_ASSIGNEES, &["ARRAY[:ei_id]", "ARRAY[:email]"]),
        // The watermark moved forward, as the worker moves it in memory.
        bind(
            SET_WATERMARKS,
            &[
                "ARRAY[:ei_id]",
                "ARRAY[GREATEST(COALESCE(NULLIF(:ei_assignee_synced_at, '')::timestamptz, :at), :at)]",
                "ARRAY[NULL]",
            ],
        ),
        bind(
            ASSIGN_ALL,
            &[
                "ARRAY[:g_id]",
                "ARRAY[:g_project_id]",
                "ARRAY[:u_id]",
                ":integration_id",
            ],
        ),
        bind(
            INSERT_ACTIVITIES,
            &[
                "ARRAY[:g_id]",
                "ARRAY[:g_project_id]",
                "ARRAY['assigned']",
                &format!("ARRAY[{activity_data}]"),
            ],
        ),
        bind(
            INSERT_SYNC_EVENT,
            &[
                "'bench'",
                ":integration_id",
                ":key",
                ":at",
                "'assignee'",
                ":ei_organization_id",
                "'assigned'",
                audit_detail,
            ],
        ),
        "COMMIT".to_owned(),
    ];
    let actual = script_statements(SCRIPT);
    for (i, (want, got)) in expected.iter().zip(&actual).enumerate() {
        assert_eq!(
            got, want,
            "statement {i} of bench/assign.sql differs from the worker's query"
        );
    }
    assert_eq!(actual.len(), expected.len(), "statements: {actual:#?}");
    // The assignee and its activity are written only when the group's assignee
    // differs, as `sync::state` decides.
    assert!(
        SCRIPT.contains("\\if :ga_user_id != :u_id\nINSERT INTO group_assignees"),
        "the writes must depend on the assignee read"
    );
}

#[test]
fn the_parser_sees_a_changed_statement() {
    // The check above fails when a query changes: a sanity check of the parser.
    let changed = SCRIPT.replace("AND ue.is_verified", "AND true");
    assert_ne!(script_statements(&changed), script_statements(SCRIPT));
}

fn pgbench(settings: &jirasync::config::Settings, integration: i64, transactions: &str) -> String {
    let database = settings.database.url.rsplit('/').next().unwrap_or_default();
    let output = Command::new("pgbench")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["-h", "127.0.0.1", "-U", "postgres", "-n", "-M", "prepared"])
        .args(["-f", "bench/assign.sql", "-t", transactions, "-c", "2"])
        .args(["-D", "issues=5", "-D", "users=3"])
        .args(["-D", &format!("integration_id={integration}"), database])
        .output()
        .expect("pgbench runs (Debian: postgresql-client)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "pgbench failed: {text}");
    text
}

#[tokio::test]
async fn the_script_writes_what_the_worker_writes_for_one_webhook() {
    let settings = common::migrated().await;
    let db = common::db(&settings).await;
    let secret = "bench-script-secret";
    let seed = SEED
        .replace("{users}", "3")
        .replace("{issues}", "5")
        .replace("{secret}", secret);
    db.batch_execute(&seed).await.expect("bench/seed.sql");

    // The worker's write for one webhook: BENCH-1 assigned to bench2.
    let worker = common::spawn_worker(&settings);
    let (_connection, channel) = common::amqp().await;
    let token = common::seed::token("bench.jira.local:bench", secret);
    let body = common::seed::assignee_changed(
        "BENCH-1",
        common::seed::jira_user("bench2@example.org"),
        "2020-01-01T00:00:00.000+0000",
    );
    common::publish_webhook(
        &channel,
        &settings,
        &token,
        body.to_string().as_bytes(),
        None,
    )
    .await;
    let group: i64 = db
        .query_one("SELECT id FROM groups WHERE title = 'BENCH-1'", &[])
        .await
        .expect("group")
        .get(0);
    let mut by_worker = Vec::new();
    common::eventually(
        "the worker assigns BENCH-1",
        Duration::from_secs(30),
        || {
            let db = &db;
            async move { !common::activities(db, group).await.is_empty() }
        },
    )
    .await;
    by_worker.extend(common::activities(&db, group).await);
    worker.stop().await;
    let worker_user = common::assignee(&db, group).await;

    // The script, on the same data, with assignments pushed to Jira: the capture
    // records the changes of groups something pushes, only.
    db.execute(
        r#"UPDATE organization_integrations
            SET config = config || '{"sync_forward_assignment": true}'"#,
        &[],
    )
    .await
    .expect("forward assignments");
    let integration: i64 = db
        .query_one(
            "SELECT id FROM integrations WHERE external_id = 'bench.jira.local:bench'",
            &[],
        )
        .await
        .expect("the bench's integration")
        .get(0);
    let text = pgbench(&settings, integration, "20");
    assert!(text.contains("number of failed transactions: 0"), "{text}");
    // Its writes are tagged as the worker's: captured with the integration as origin
    // (the worker, stopped, moves none of them away).
    let origins = db
        .query(
            "SELECT c.origin_integration_id = i.id, count(*)
               FROM outbound_changes c, integrations i
              WHERE i.external_id = 'bench.jira.local:bench'
              GROUP BY 1",
            &[],
        )
        .await
        .expect("captured changes");
    let origins: Vec<(Option<bool>, i64)> =
        origins.iter().map(|row| (row.get(0), row.get(1))).collect();
    assert!(
        matches!(origins.as_slice(), [(Some(true), n)] if *n > 0),
        "the script's changes are captured with its integration as origin: {origins:?}"
    );
    let rows = db
        .query(
            "SELECT a.type, a.data, a.user_id, ue.email
               FROM activities a JOIN groups g ON g.id = a.group_id
               LEFT JOIN user_emails ue ON ue.user_id = (a.data->>'assignee')::bigint
              WHERE a.id > (SELECT min(id) FROM activities)
              ORDER BY a.id",
            &[],
        )
        .await
        .expect("activities");
    assert!(!rows.is_empty(), "pgbench wrote no activity: {text}");
    let (kind, data) = &by_worker[0];
    let keys = |v: &serde_json::Value| {
        let mut keys: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        keys
    };
    for row in &rows {
        let (script_kind, script_data): (String, serde_json::Value) = (row.get(0), row.get(1));
        let user_id: Option<i64> = row.get(2);
        let email: Option<String> = row.get(3);
        assert_eq!(&script_kind, kind);
        assert_eq!(keys(&script_data), keys(data), "{script_data} vs {data}");
        assert_eq!(script_data["assigneeEmail"].as_str(), email.as_deref());
        assert_eq!(script_data["integration_id"], data["integration_id"]);
        assert_eq!(script_data["assigneeType"], data["assigneeType"]);
        assert_eq!(
            user_id, None,
            "the integration writes activities without a user"
        );
    }
    // The worker's assignee of BENCH-1 is the user whose email the webhook named.
    let bench2: i64 = db
        .query_one(
            "SELECT user_id FROM user_emails WHERE email = 'bench2@example.org'",
            &[],
        )
        .await
        .expect("bench2")
        .get(0);
    assert_eq!(worker_user, Some(bench2));
    // An activity only when the upsert changed the row (40 transactions over 5
    // groups and 3 users repeat assignments): per group, consecutive activities name
    // different users, and the last names the group's assignee.
    let history = db
        .query(
            "SELECT a.group_id, (a.data->>'assignee')::bigint, ga.user_id
               FROM activities a JOIN group_assignees ga ON ga.group_id = a.group_id
              ORDER BY a.group_id, a.id",
            &[],
        )
        .await
        .expect("history");
    let mut per_group: std::collections::BTreeMap<i64, (Vec<i64>, i64)> = Default::default();
    for row in &history {
        let entry = per_group
            .entry(row.get(0))
            .or_insert_with(|| (Vec::new(), row.get(2)));
        entry.0.push(row.get(1));
    }
    let transactions = 40;
    assert!(
        history.len() < transactions + 1,
        "an activity for every transaction: {history:?}"
    );
    for (group, (users, current)) in &per_group {
        assert!(
            users.windows(2).all(|w| w[0] != w[1]),
            "group {group}: an activity without a change: {users:?}"
        );
        assert_eq!(users.last(), Some(current), "group {group}");
    }
    drop(db);
}
