//! Migrations that meet the target's rows: `--project` takes only its keys, a key
//! the target holds merges as an issue move merges, and a migration waits for a
//! change holding the issue's rows (the worker's lock) and keeps what it wrote.

use serde_json::{Value, json};

use super::world::{World, report};
use crate::common;

#[tokio::test]
async fn project_restricts_the_migration_to_its_keys() {
    let world = World::new().await;
    let app = &world.app;
    let org = app.seed().org(world.dc, true, "ABC-1").await;
    let abc2 = world
        .linked_issue(&org, world.dc, "ABC-2", org.group_id)
        .await;
    // A key that starts like the project's but is another project's.
    let abcd = world
        .linked_issue(&org, world.dc, "ABCD-1", org.group_id)
        .await;
    let xyz = world
        .linked_issue(&org, world.dc, "X_Y-1", org.group_id)
        .await;

    let abc = world.migrated(&["--project", "abc"]);
    assert_eq!(
        abc,
        report(
            &world,
            (2, 0),
            (2, 0),
            (1, 0),
            (0, 0, json!([])),
            false,
            false
        )
    );
    assert_eq!(
        world.integration_of(org.external_issue_id).await,
        Some(world.to)
    );
    assert_eq!(world.integration_of(abc2).await, Some(world.to));
    assert_eq!(world.integration_of(abcd).await, Some(world.dc));
    assert_eq!(world.integration_of(xyz).await, Some(world.dc));

    // The rest, project by project: the organization is linked already.
    let rest = world.migrated(&["--project", "ABCD", "--project", "X_Y"]);
    assert_eq!(
        rest,
        report(
            &world,
            (2, 0),
            (2, 0),
            (0, 0),
            (0, 0, json!([])),
            false,
            false
        )
    );
    assert_eq!(world.integration_of(abcd).await, Some(world.to));
    assert_eq!(world.integration_of(xyz).await, Some(world.to));
}

#[tokio::test]
async fn a_key_the_target_holds_merges_as_an_issue_move_merges() {
    let world = World::new().await;
    let app = &world.app;
    // Organization A has ABC-1 in both; its Cloud link has assignee sync off.
    let a = app.seed().org(world.dc, true, "ABC-1").await;
    let only_dc = app.seed().group(a.project_id, "unresolved").await;
    let only_cloud = app.seed().group(a.project_id, "unresolved").await;
    app.seed()
        .link(only_dc, a.project_id, "issue", a.external_issue_id)
        .await;
    app.db
        .execute(
            "INSERT INTO organization_integrations (organization_id, integration_id, config)
             VALUES ($1, $2, '{\"sync_reverse_assignment\": false, \"sync_status_forward\": true}')",
            &[&a.id, &world.to],
        )
        .await
        .expect("Cloud link");
    // Both links map project ABC; the Cloud one's mapping is kept.
    app.db
        .execute(
            "INSERT INTO integration_external_projects (organization_integration_id, external_id, resolved_status)
             SELECT id, 'ABC', CASE WHEN integration_id = $2 THEN 'Closed' ELSE 'Done' END
               FROM organization_integrations WHERE organization_id = $1",
            &[&a.id, &world.to],
        )
        .await
        .expect("status maps");
    let survivor = world.linked_issue(&a, world.to, "ABC-1", a.group_id).await;
    app.seed()
        .link(only_cloud, a.project_id, "issue", survivor)
        .await;
    // The Data Center row's assignee watermark is later, the Cloud row's status one.
    app.db
        .execute(
            "UPDATE external_issues SET assignee_synced_at = '2024-03-02T00:00:00Z', status_synced_at = '2024-01-01T00:00:00Z'
              WHERE id = $1",
            &[&a.external_issue_id],
        )
        .await
        .expect("watermarks");
    app.db
        .execute(
            "UPDATE external_issues SET assignee_synced_at = '2024-03-01T00:00:00Z', status_synced_at = '2024-02-01T00:00:00Z'
              WHERE id = $1",
            &[&survivor],
        )
        .await
        .expect("watermarks");
    // Organization B has ABC-1 only in Data Center (Cloud's ABC-1 is A's): it moves.
    let b = app.seed().org(world.dc, true, "ABC-1").await;

    let done = world.migrated(&[]);
    assert_eq!(
        done,
        report(
            &world,
            (1, 1),
            (2, 1),
            (1, 1),
            (0, 0, json!([])),
            false,
            false
        )
    );
    assert_eq!(world.integration_of(a.external_issue_id).await, None);
    assert_eq!(
        world.integration_of(b.external_issue_id).await,
        Some(world.to)
    );
    let groups: Vec<i64> = app
        .db
        .query(
            "SELECT group_id FROM group_links WHERE linked_type = 'issue' AND linked_id = $1 ORDER BY group_id",
            &[&survivor],
        )
        .await
        .expect("links")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut expected = vec![a.group_id, only_dc, only_cloud];
    expected.sort_unstable();
    assert_eq!(groups, expected, "one link per group");
    let row = app
        .db
        .query_one(
            "SELECT assignee_synced_at::text, status_synced_at::text FROM external_issues WHERE id = $1",
            &[&survivor],
        )
        .await
        .expect("survivor");
    assert_eq!(row.get::<_, String>(0), "2024-03-02 00:00:00+00");
    assert_eq!(row.get::<_, String>(1), "2024-02-01 00:00:00+00");
    let kept: Vec<String> = app
        .db
        .query(
            "SELECT p.resolved_status FROM integration_external_projects p
               JOIN organization_integrations oi ON oi.id = p.organization_integration_id
              WHERE oi.organization_id = $1 AND oi.integration_id = $2",
            &[&a.id, &world.to],
        )
        .await
        .expect("status maps")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(kept, ["Closed"], "the target's own status map is kept");
    let config: Value = app
        .db
        .query_one(
            "SELECT config FROM organization_integrations WHERE organization_id = $1 AND integration_id = $2",
            &[&a.id, &world.to],
        )
        .await
        .expect("Cloud link")
        .get(0);
    assert_eq!(
        config,
        json!({"sync_reverse_assignment": true, "sync_status_forward": true, "sync_status_reverse": false})
    );
}

#[tokio::test]
async fn a_migration_waits_for_a_change_holding_the_issue_and_keeps_what_it_wrote() {
    let world = World::new().await;
    let org = world.app.seed().org(world.dc, true, "ABC-1").await;
    // A webhook being applied: the worker's lock on the issue's rows, and the
    // watermark it moves.
    let mut worker = common::db(&world.app.settings).await;
    let tx = worker.transaction().await.expect("begin");
    let locked = tx
        .query(
            jirasync::db::batch::LOCK_ISSUES,
            &[&vec![world.dc], &vec!["ABC-1"]],
        )
        .await
        .expect("lock as the worker does");
    assert_eq!(locked.len(), 1);
    tx.execute(
        "UPDATE external_issues SET assignee_synced_at = '2024-05-01T00:00:00Z' WHERE id = $1",
        &[&org.external_issue_id],
    )
    .await
    .expect("watermark");

    let settings = (*world.app.settings).clone();
    let (from, to) = (world.dc.to_string(), world.to.to_string());
    let migration = tokio::task::spawn_blocking(move || {
        common::output(
            &[
                "integration",
                "migrate",
                "--from",
                &from,
                "--to",
                &to,
                "--json",
            ],
            &settings,
        )
    });
    common::eventually(
        "the migration waits on the issue's lock",
        crate::common::app::WAIT,
        || common::a_backend_waits_on_a_lock(&world.app.db),
    )
    .await;
    assert!(!migration.is_finished());
    tx.commit().await.expect("commit");

    let output = migration.await.expect("the migration ends");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let done: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(done["issues_moved"], 1);
    let row = world
        .app
        .db
        .query_one(
            "SELECT integration_id, assignee_synced_at::text FROM external_issues WHERE id = $1",
            &[&org.external_issue_id],
        )
        .await
        .expect("row");
    assert_eq!(row.get::<_, i64>(0), world.to);
    assert_eq!(row.get::<_, String>(1), "2024-05-01 00:00:00+00");
}
