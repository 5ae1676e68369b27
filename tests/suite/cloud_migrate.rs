//! `jirasync integration migrate` (docs/reference.md §11.5, contract §11.7): a
//! Data Center integration's issues, links, sync flags, status maps and user map
//! move to a Jira Cloud one — by the real binary, against a fake Cloud that checks
//! the API token on every user search (`cloud_migrate/world.rs`). Keys the target
//! holds already, `--project` and locking are in `cloud_migrate/merges.rs`;
//! dry runs, failures and refusals in `cloud_migrate/failures.rs`.

mod failures;
mod merges;
mod world;

use serde_json::{Value, json};

use crate::common::{self, TestApp};
use world::{World, one_issue_and_jane, report};

#[tokio::test]
async fn a_migration_moves_issues_links_flags_status_maps_and_users_and_explain_tells_it() {
    let world = World::new().await;
    let app = &world.app;
    // Two organizations: ABC-1 and ABC-2 (two groups) in one, XYZ-9 in the other.
    let first = app.seed().org(world.dc, true, "ABC-1").await;
    let second_group = app.seed().group(first.project_id, "unresolved").await;
    let abc2 = world
        .linked_issue(&first, world.dc, "ABC-2", second_group)
        .await;
    let other = app.seed().org(world.dc, true, "XYZ-9").await;
    app.db
        .execute(
            "UPDATE organization_integrations SET config = config || '{\"sync_forward_assignment\": true}', status = 'disabled'
              WHERE organization_id = $1",
            &[&other.id],
        )
        .await
        .expect("flags");
    app.db
        .execute(
            "INSERT INTO integration_external_projects (organization_integration_id, external_id, resolved_status, unresolved_status)
             SELECT id, 'ABC', 'Done', 'To Do' FROM organization_integrations WHERE organization_id = $1",
            &[&first.id],
        )
        .await
        .expect("status map");
    // What the Data Center integration decided about ABC-1 before.
    app.db
        .execute(
            "INSERT INTO sync_events (integration_id, issue_key, kind, organization_id, outcome, detail)
             VALUES ($1, 'ABC-1', 'key', $2, 'rekeyed', '{\"from\": \"OLD-7\", \"to\": \"ABC-1\"}')",
            &[&world.dc, &first.id],
        )
        .await
        .expect("history");
    // A push to Data Center not yet decided: it goes to Cloud with its issue.
    app.db
        .execute(
            "INSERT INTO outbound_pending (external_issue_id, kind, group_id, integration_id, seq, first_at, changed_at)
             VALUES ($1, 'assignee', $2, $3, 1, now(), now())",
            &[&first.external_issue_id, &first.group_id, &world.dc],
        )
        .await
        .expect("pending push");
    let (jane, _) = world
        .mapped_user("jdoe", &[("jane@corp.example", true)])
        .await;
    world
        .users(
            "jane@corp.example",
            json!([{"accountId": "5b10-jane", "emailAddress": "Jane@Corp.example", "displayName": "Jane"}]),
        )
        .await;

    let done = world.migrated(&[]);
    assert_eq!(
        done,
        report(
            &world,
            (3, 0),
            (3, 0),
            (2, 0),
            (1, 0, json!([])),
            false,
            false
        )
    );

    for issue in [first.external_issue_id, abc2, other.external_issue_id] {
        assert_eq!(world.integration_of(issue).await, Some(world.to), "{issue}");
    }
    let links = format!(
        "SELECT count(*) FROM group_links gl JOIN external_issues ei ON ei.id = gl.linked_id
          WHERE gl.linked_type = 'issue' AND ei.integration_id = {}",
        world.to
    );
    assert_eq!(world.count(&links).await, 3);
    let link = app
        .db
        .query_one(
            "SELECT config, status FROM organization_integrations WHERE organization_id = $1 AND integration_id = $2",
            &[&other.id, &world.to],
        )
        .await
        .expect("the organization is linked to Cloud");
    assert_eq!(
        link.get::<_, Value>(0),
        json!({"sync_reverse_assignment": true, "sync_status_reverse": false, "sync_forward_assignment": true})
    );
    assert_eq!(link.get::<_, String>(1), "disabled");
    let map = app
        .db
        .query_one(
            "SELECT p.external_id, p.resolved_status, p.unresolved_status FROM integration_external_projects p
               JOIN organization_integrations oi ON oi.id = p.organization_integration_id
              WHERE oi.integration_id = $1",
            &[&world.to],
        )
        .await
        .expect("the status map is copied");
    assert_eq!(
        (map.get::<_, String>(0), map.get::<_, String>(1)),
        ("ABC".to_owned(), "Done".to_owned())
    );
    let pending: i64 = app
        .db
        .query_one(
            "SELECT integration_id FROM outbound_pending WHERE external_issue_id = $1",
            &[&first.external_issue_id],
        )
        .await
        .expect("the pending push stays")
        .get(0);
    assert_eq!(pending, world.to);
    let mapped: i64 = app
        .db
        .query_one(
            "SELECT user_id FROM jira_user_mappings WHERE integration_id = $1 AND jira_user = '5b10-jane'",
            &[&world.to],
        )
        .await
        .expect("the Cloud account is mapped")
        .get(0);
    assert_eq!(mapped, jane);
    let events = app
        .db
        .query(
            "SELECT integration_id, organization_id, detail FROM sync_events
              WHERE kind = 'key' AND outcome = 'migrated' ORDER BY issue_key",
            &[],
        )
        .await
        .expect("events");
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].get::<_, Option<i64>>(0), Some(world.to));
    assert_eq!(events[0].get::<_, Option<i64>>(1), Some(first.id));
    assert_eq!(
        events[0].get::<_, Value>(2),
        json!({"from_integration": world.dc, "to_integration": world.to})
    );
    // The source is left as it was.
    let status: String = app
        .db
        .query_one(
            "SELECT status FROM integrations WHERE id = $1",
            &[&world.dc],
        )
        .await
        .expect("source")
        .get(0);
    assert_eq!(status, "active");

    let explain = common::output(&["explain", "ABC-1"], &app.settings);
    let text = String::from_utf8_lossy(&explain.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains(&format!(
            "moved ABC-1 in {} from Data Center integration {} to Jira Cloud integration {}",
            org_slug(app, first.id).await,
            world.dc,
            world.to
        )),
        "{text}"
    );
    assert!(lines[1].contains("re-keyed OLD-7 to ABC-1"), "{text}");
    assert_eq!(world.searched().await, ["jane@corp.example"]);
}

async fn org_slug(app: &TestApp, org: i64) -> String {
    app.db
        .query_one("SELECT slug FROM organizations WHERE id = $1", &[&org])
        .await
        .expect("org")
        .get(0)
}

#[tokio::test]
async fn a_second_run_moves_and_translates_nothing() {
    let world = World::new().await;
    let org = world.app.seed().org(world.dc, true, "ABC-1").await;
    world
        .mapped_user("jdoe", &[("jane@corp.example", true)])
        .await;
    world.jane_on_cloud().await;
    let first = world.migrated(&[]);
    assert_eq!(first, one_issue_and_jane(&world));
    let again = world.migrated(&[]);
    assert_eq!(
        again,
        report(
            &world,
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 1, json!([])),
            false,
            false
        )
    );
    assert_eq!(
        world.integration_of(org.external_issue_id).await,
        Some(world.to)
    );
    assert_eq!(
        world
            .count("SELECT count(*) FROM sync_events WHERE outcome = 'migrated'")
            .await,
        1
    );
}

#[tokio::test]
async fn the_user_map_is_translated_by_verified_email_and_says_why_not() {
    let world = World::new().await;
    let app = &world.app;
    // In the order of the source's map.
    let (jane, _) = world
        .mapped_user(
            "jdoe",
            &[("jane@home.example", false), ("jane@corp.example", true)],
        )
        .await;
    let (_, lost) = world
        .mapped_user("lost", &[("lost@corp.example", true)])
        .await;
    let (_, shy) = world
        .mapped_user("shy", &[("shy@corp.example", true)])
        .await;
    let (_, twin) = world
        .mapped_user("twin", &[("twin@corp.example", true)])
        .await;
    let (_, unverified) = world
        .mapped_user("unverified", &[("unverified@corp.example", false)])
        .await;
    world
        .mapped_user("known", &[("known@corp.example", true)])
        .await;
    let someone = app.seed().user("someone@corp.example", true, true).await;
    world.map(world.to, "5b10-known", someone).await;

    world
        .users(
            "jane@corp.example",
            json!([{"accountId": "5b10-jane", "emailAddress": "jane@corp.example"},
                   {"accountId": "5b10-janet", "emailAddress": "jane@corp.example.org"}]),
        )
        .await;
    world.users("lost@corp.example", json!([])).await;
    world
        .users(
            "shy@corp.example",
            json!([{"accountId": "5b10-shy", "displayName": "Shy"}]),
        )
        .await;
    world
        .users(
            "twin@corp.example",
            json!([{"accountId": "5b10-a", "emailAddress": "twin@corp.example"},
                   {"accountId": "5b10-b", "emailAddress": "TWIN@corp.example"}]),
        )
        .await;
    world
        .users(
            "known@corp.example",
            json!([{"accountId": "5b10-known", "emailAddress": "known@corp.example"}]),
        )
        .await;

    let done = world.migrated(&[]);
    let unresolved = json!([
        {"jira_user": "lost", "user": lost, "reason": "not_found"},
        {"jira_user": "shy", "user": shy, "reason": "email_hidden"},
        {"jira_user": "twin", "user": twin, "reason": "ambiguous"},
        {"jira_user": "unverified", "user": unverified, "reason": "no_verified_email"},
    ]);
    assert_eq!(
        done,
        report(
            &world,
            (0, 0),
            (0, 0),
            (0, 0),
            (1, 1, unresolved),
            false,
            false
        )
    );

    let mut searched = world.searched().await;
    searched.sort();
    assert_eq!(
        searched,
        [
            "jane@corp.example",
            "known@corp.example",
            "lost@corp.example",
            "shy@corp.example",
            "twin@corp.example"
        ],
        "an unverified email is never sent"
    );
    let maps: Vec<(String, i64)> = app
        .db
        .query(
            "SELECT jira_user, user_id FROM jira_user_mappings WHERE integration_id = $1 ORDER BY jira_user",
            &[&world.to],
        )
        .await
        .expect("maps")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        maps,
        [
            ("5b10-jane".to_owned(), jane),
            ("5b10-known".to_owned(), someone)
        ],
        "an account the target maps already keeps its user"
    );
}

#[tokio::test]
async fn disable_source_disables_the_data_center_integration() {
    let world = World::new().await;
    world.app.seed().org(world.dc, true, "ABC-1").await;
    let done = world.migrated(&["--disable-source"]);
    assert_eq!(
        done,
        report(
            &world,
            (1, 0),
            (1, 0),
            (1, 0),
            (0, 0, json!([])),
            true,
            false
        )
    );
    let status: String = world
        .app
        .db
        .query_one(
            "SELECT status FROM integrations WHERE id = $1",
            &[&world.dc],
        )
        .await
        .expect("source")
        .get(0);
    assert_eq!(status, "disabled");
    // Migrating from a disabled source again is allowed and moves nothing.
    let again = world.migrated(&["--disable-source"]);
    assert_eq!(
        again,
        report(
            &world,
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 0, json!([])),
            true,
            false
        )
    );
}
