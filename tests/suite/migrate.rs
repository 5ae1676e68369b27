//! `jirasync migrate` against the real Postgres and RabbitMQ: every contract table
//! and queue, idempotence, and two runs at once.

use crate::common;

use std::collections::BTreeMap;

/// docs/reference.md §8: every table with the columns that must exist.
const TABLES: &[(&str, &[&str])] = &[
    ("organizations", &["id", "slug", "name", "status"]),
    ("users", &["id", "username", "name", "is_active"]),
    ("user_emails", &["id", "user_id", "email", "is_verified"]),
    (
        "organization_members",
        &["id", "organization_id", "user_id", "role"],
    ),
    (
        "teams",
        &["id", "organization_id", "slug", "name", "status"],
    ),
    (
        "team_members",
        &["id", "team_id", "organization_member_id", "is_active"],
    ),
    ("projects", &["id", "organization_id", "slug", "name"]),
    ("project_teams", &["project_id", "team_id"]),
    ("groups", &["id", "project_id", "title", "status"]),
    (
        "integrations",
        &[
            "id",
            "provider",
            "external_id",
            "name",
            "metadata",
            "status",
        ],
    ),
    (
        "integration_credentials",
        &[
            "integration_id",
            "consumer_key",
            "private_key",
            "access_token",
            "access_token_secret",
        ],
    ),
    (
        "organization_integrations",
        &[
            "id",
            "organization_id",
            "integration_id",
            "config",
            "status",
        ],
    ),
    (
        "external_issues",
        &[
            "id",
            "organization_id",
            "integration_id",
            "key",
            "assignee_synced_at",
            "status_synced_at",
            "key_synced_at",
        ],
    ),
    (
        "group_links",
        &[
            "id",
            "group_id",
            "project_id",
            "linked_type",
            "linked_id",
            "relationship",
        ],
    ),
    (
        "group_assignees",
        &[
            "id",
            "group_id",
            "project_id",
            "user_id",
            "team_id",
            "date_added",
        ],
    ),
    (
        "activities",
        &[
            "id",
            "group_id",
            "project_id",
            "type",
            "user_id",
            "data",
            "created_at",
        ],
    ),
    (
        "oauth_sessions",
        &[
            "id",
            "base_url",
            "consumer_key",
            "private_key",
            "verify_ssl",
            "state",
            "request_token",
            "request_token_secret",
            "authorize_url",
            "error",
            "integration_id",
            "created_at",
            "updated_at",
        ],
    ),
];

async fn columns(client: &tokio_postgres::Client) -> BTreeMap<String, Vec<String>> {
    let rows = client
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
            &[],
        )
        .await
        .expect("read the schema");
    let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows {
        tables.entry(row.get(0)).or_default().push(row.get(1));
    }
    tables
}

#[tokio::test]
async fn migrate_creates_every_contract_table_and_queue() {
    let mut settings = common::settings();
    settings.retries.delays = jirasync::config::Settings::defaults().retries.delays;
    common::migrate(&settings, true).await.expect("migrate");
    let client = common::db(&settings).await;
    let tables = columns(&client).await;
    for (table, expected) in TABLES {
        let got = tables
            .get(*table)
            .unwrap_or_else(|| panic!("table {table} is missing"));
        for column in *expected {
            assert!(
                got.iter().any(|c| c == column),
                "{table}.{column} is missing"
            );
        }
    }
    // The uniqueness the worker relies on.
    for (table, definition) in [
        ("group_assignees", "(group_id)"),
        ("integrations", "(provider, external_id)"),
        ("external_issues", "(organization_id, integration_id, key)"),
        ("group_links", "(group_id, linked_type, linked_id)"),
    ] {
        let found: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_indexes WHERE tablename = $1 AND indexdef LIKE 'CREATE UNIQUE%' AND indexdef LIKE '%' || $2",
                &[&table, &definition],
            )
            .await
            .expect("pg_indexes")
            .get(0);
        assert_eq!(found, 1, "unique {table}{definition}");
    }
    let lower_email: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'user_emails' AND indexdef LIKE '%lower(email)%'",
            &[],
        )
        .await
        .expect("pg_indexes")
        .get(0);
    assert_eq!(lower_email, 1, "index on lower(email)");

    let (_connection, channel) = common::amqp().await;
    for queue in common::names(&settings).all_queues(&settings.retries.delays.0) {
        // Passive declare fails (and closes the channel) when the queue is missing.
        assert_eq!(
            common::depth(&channel, &queue).await,
            0,
            "{queue} exists and is empty"
        );
    }
    assert_eq!(
        common::names(&settings)
            .all_queues(&settings.retries.delays.0)
            .len(),
        4 + 3 * 5,
        "webhooks, jobs, outbound, dead and five retry tiers for each source"
    );
}

#[tokio::test]
async fn a_second_migrate_changes_nothing() {
    let settings = common::migrated().await;
    let client = common::db(&settings).await;
    let before = columns(&client).await;
    let history: i64 = client
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .expect("history")
        .get(0);
    common::migrate(&settings, true)
        .await
        .expect("second migrate");
    assert_eq!(columns(&client).await, before);
    let again: i64 = client
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .expect("history")
        .get(0);
    assert_eq!(again, history, "no migration applied twice");
}

#[tokio::test]
async fn two_migrate_runs_started_at_once_both_succeed() {
    let settings = common::settings();
    let (a, b) = tokio::join!(
        common::migrate(&settings, true),
        common::migrate(&settings, true)
    );
    a.expect("first run");
    b.expect("second run");
    let client = common::db(&settings).await;
    assert!(columns(&client).await.contains_key("group_assignees"));
}

#[tokio::test]
async fn migrate_without_create_database_names_the_missing_database() {
    let settings = common::settings();
    let error = common::migrate(&settings, false)
        .await
        .expect_err("the database does not exist");
    let text = format!("{error:#}");
    assert!(
        text.contains(&settings.database.url),
        "names the URL: {text}"
    );
    assert!(
        text.contains("--create-database"),
        "says what to do: {text}"
    );
}
