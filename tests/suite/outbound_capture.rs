//! Capture and relay of outbound sync (docs/reference.md §10.1): what
//! Postgres records of the application's changes, with which origin, which issues
//! get a pending push, and how the relay publishes them on `P.outbound`. The
//! pushes themselves are not handled here: these tests read `P.outbound`
//! themselves or run the relay without a consuming worker.

use crate::common::app::WAIT;
use crate::common::{self, TestApp, seed::Org, seed::Seed};

use std::collections::BTreeSet;
use std::time::Duration;

use jirasync::db::DbPool;
use jirasync::db::batch::{ASSIGN_ALL, UNASSIGN_ALL};
use jirasync::db::status_sync::TRANSITION;
use jirasync::integration::messages::OUTBOUND;
use jirasync::outbound::Kind;
use jirasync::outbound::message::Push;
use jirasync::outbound::pending::{self, MOVE_BATCH, Moved};
use jirasync::outbound::relay::Relay;
use jirasync::queue::job::Job;
use jirasync::queue::message::message_type;
use jirasync::shutdown::Shutdown;
use serde_json::json;
use tokio_postgres::Client;

/// An organization of `integration` with its group and linked issue `key`,
/// syncing assignees (`assignee`) and statuses (`status`) to Jira or not.
async fn forwarding(
    seed: &Seed<'_>,
    integration: i64,
    key: &str,
    assignee: bool,
    status: bool,
) -> Org {
    let org = seed.org(integration, false, key).await;
    seed.db
        .execute(
            "UPDATE organization_integrations
                SET config = config || jsonb_build_object('sync_forward_assignment', $2::bool,
                                                          'sync_status_forward', $3::bool)
              WHERE organization_id = $1",
            &[&org.id, &assignee, &status],
        )
        .await
        .expect("forward flags");
    org
}

/// The group's captured changes, oldest first: (kind, origin).
async fn changes(db: &Client, group: i64) -> Vec<(String, Option<i64>)> {
    db.query(
        "SELECT kind, origin_integration_id FROM outbound_changes WHERE group_id = $1 ORDER BY id",
        &[&group],
    )
    .await
    .expect("captured changes")
    .iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect()
}

/// A pending push as the relay left it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    external_issue_id: i64,
    kind: String,
    group_id: i64,
    seq: i64,
    origin: Option<i64>,
    published_seq: Option<i64>,
}

async fn pending_rows(db: &Client) -> Vec<Pending> {
    db.query(
        "SELECT external_issue_id, kind, group_id, seq, origin_integration_id, published_seq
           FROM outbound_pending ORDER BY external_issue_id, kind",
        &[],
    )
    .await
    .expect("pending pushes")
    .iter()
    .map(|row| Pending {
        external_issue_id: row.get(0),
        kind: row.get(1),
        group_id: row.get(2),
        seq: row.get(3),
        origin: row.get(4),
        published_seq: row.get(5),
    })
    .collect()
}

/// A pool on the test database, as a worker has.
async fn pool(settings: &jirasync::config::Settings) -> DbPool {
    jirasync::db::connect(&settings.database, 4)
        .await
        .expect("a pool on the test database")
}

/// One move of up to `batch` changes, committed.
async fn move_changes(pool: &DbPool, batch: i64) -> Moved {
    let mut client = pool.get().await.expect("a connection");
    let tx = client.transaction().await.expect("begin");
    let moved = pending::move_changes(&tx, batch).await.expect("move");
    tx.commit().await.expect("commit");
    moved
}

/// Assigns `user` to the group as the host application does (no origin).
async fn assign(db: &Client, org: &Org, group: i64, user: i64) {
    db.execute(
        "INSERT INTO group_assignees (group_id, project_id, user_id) VALUES ($1, $2, $3)
         ON CONFLICT (group_id) DO UPDATE SET user_id = EXCLUDED.user_id, team_id = NULL",
        &[&group, &org.project_id, &user],
    )
    .await
    .expect("assign");
}

/// A relay of its own on the test's database and broker; stopped with its token.
async fn relay(settings: &jirasync::config::Settings) -> (Shutdown, tokio::task::JoinHandle<()>) {
    let shutdown = Shutdown::new();
    let relay = Relay::new(&settings.services(), pool(settings).await).expect("a relay");
    let task = relay.spawn(shutdown.clone());
    (shutdown, task)
}

async fn stop(relay: (Shutdown, tokio::task::JoinHandle<()>)) {
    relay.0.cancel();
    tokio::time::timeout(WAIT, relay.1)
        .await
        .expect("the relay stops on shutdown")
        .expect("the relay's task ends well");
}

/// Waits until every pending push is published.
async fn all_published(db: &Client, rows: usize) {
    common::eventually(
        &format!("{rows} pending pushes are published"),
        WAIT,
        || async {
            let pending = pending_rows(db).await;
            pending.len() == rows && pending.iter().all(|p| p.published_seq == Some(p.seq))
        },
    )
    .await;
}

#[tokio::test]
async fn assignments_and_resolutions_are_captured_when_committed_and_never_when_rolled_back() {
    let settings = common::migrated().await;
    let mut db = common::db(&settings).await;
    let seed = Seed { db: &db };
    let (integration, _) = seed.integration(json!({})).await;
    let org = forwarding(&seed, integration, "CAP-1", true, true).await;
    let amy = seed.user("amy@example.org", true, true).await;
    let ben = seed.user("ben@example.org", true, true).await;
    let group = org.group_id;

    let tx = db.transaction().await.expect("begin");
    tx.execute(
        "INSERT INTO group_assignees (group_id, project_id, user_id) VALUES ($1, $2, $3)",
        &[&group, &org.project_id, &amy],
    )
    .await
    .expect("assign");
    tx.execute(
        "UPDATE groups SET status = 'resolved' WHERE id = $1",
        &[&group],
    )
    .await
    .expect("resolve");
    tx.rollback().await.expect("rollback");
    assert!(changes(&db, group).await.is_empty(), "a rolled-back change");

    // Assign, then an update of date_added only (no change), reassign, a team,
    // unassign.
    db.execute(
        "INSERT INTO group_assignees (group_id, project_id, user_id) VALUES ($1, $2, $3)",
        &[&group, &org.project_id, &amy],
    )
    .await
    .expect("assign");
    db.execute(
        "UPDATE group_assignees SET date_added = now() - interval '1 day' WHERE group_id = $1",
        &[&group],
    )
    .await
    .expect("touch date_added");
    db.execute(
        "UPDATE group_assignees SET user_id = $2 WHERE group_id = $1",
        &[&group, &ben],
    )
    .await
    .expect("reassign");
    db.execute(
        "UPDATE group_assignees SET user_id = NULL, team_id = $2 WHERE group_id = $1",
        &[&group, &org.team_id],
    )
    .await
    .expect("assign the team");
    db.execute("DELETE FROM group_assignees WHERE group_id = $1", &[&group])
        .await
        .expect("unassign");
    let assignee = ("assignee".to_owned(), None);
    assert_eq!(
        changes(&db, group).await,
        vec![assignee.clone(); 4],
        "assign, reassign, team, unassign; not date_added"
    );

    // To resolved or unresolved from another status, and only then.
    for status in [
        "resolved",
        "ignored",
        "unresolved",
        "unresolved",
        "resolved",
    ] {
        db.execute(
            "UPDATE groups SET status = $2 WHERE id = $1",
            &[&group, &status],
        )
        .await
        .expect("status");
    }
    let status = ("status".to_owned(), None);
    let mut expected = vec![assignee; 4];
    expected.extend([status.clone(), status.clone(), status]);
    assert_eq!(changes(&db, group).await, expected);
}

#[tokio::test]
async fn a_webhook_the_worker_applies_records_its_integration_as_origin_and_a_host_write_none() {
    // No relay: the changes stay where the capture put them.
    let app = TestApp::builder()
        .configure(|settings| settings.worker.outbound = false)
        .start()
        .await;
    let org = app.seed().org(app.integration, true, "ORI-1").await;
    app.forward_assignments(org.id).await;
    let amy = app.seed().teammate(&org, "amy@example.org").await;
    app.send(&common::seed::assignee_changed(
        "ORI-1",
        common::seed::jira_user("amy@example.org"),
        common::app::T1,
    ))
    .await;
    app.wait_assignee(org.group_id, Some(amy)).await;
    assert_eq!(
        changes(&app.db, org.group_id).await,
        [("assignee".to_owned(), Some(app.integration))]
    );

    app.db
        .execute(
            "DELETE FROM group_assignees WHERE group_id = $1",
            &[&org.group_id],
        )
        .await
        .expect("unassign");
    assert_eq!(
        changes(&app.db, org.group_id).await,
        [
            ("assignee".to_owned(), Some(app.integration)),
            ("assignee".to_owned(), None)
        ]
    );
    app.finish().await;
}

#[tokio::test]
async fn each_write_of_a_pipelined_transaction_records_its_own_integration_as_origin() {
    let settings = common::migrated().await;
    let mut db = common::db(&settings).await;
    let seed = Seed { db: &db };
    let (first, _) = seed.integration(json!({})).await;
    let (second, _) = seed.integration(json!({})).await;
    let assigned = forwarding(&seed, first, "PIPE-1", true, true).await;
    let resolved = forwarding(&seed, second, "PIPE-2", true, true).await;
    let unassigned = forwarding(&seed, first, "PIPE-3", true, true).await;
    let amy = seed.user("amy@example.org", true, true).await;
    assign(&db, &unassigned, unassigned.group_id, amy).await;

    // As a batch of the worker sends them: on one connection, one transaction,
    // without waiting for each answer.
    let tx = db.transaction().await.expect("begin");
    let (groups, projects, users) = (
        vec![assigned.group_id],
        vec![assigned.project_id],
        vec![amy],
    );
    let assigning: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&groups, &projects, &users, &first];
    let resolving: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&resolved.group_id, &"unresolved", &"resolved", &second];
    let unassigned_groups = vec![unassigned.group_id];
    let unassigning: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&unassigned_groups, &first];
    let (a, b, c) = tokio::join!(
        tx.execute(ASSIGN_ALL, &assigning),
        tx.execute(TRANSITION, &resolving),
        tx.execute(UNASSIGN_ALL, &unassigning),
    );
    for (what, result) in [("assign", a), ("resolve", b), ("unassign", c)] {
        assert_eq!(result.expect(what), 1, "{what} wrote its row");
    }
    tx.commit().await.expect("commit");

    assert_eq!(
        changes(&db, assigned.group_id).await,
        [("assignee".to_owned(), Some(first))]
    );
    assert_eq!(
        changes(&db, resolved.group_id).await,
        [("status".to_owned(), Some(second))]
    );
    assert_eq!(
        changes(&db, unassigned.group_id).await,
        [
            ("assignee".to_owned(), None),
            ("assignee".to_owned(), Some(first))
        ],
        "the host's assignment, then the integration's unassignment"
    );
    // The setting lived as long as its transaction.
    db.execute(
        "UPDATE groups SET status = 'unresolved' WHERE id = $1",
        &[&resolved.group_id],
    )
    .await
    .expect("reopen");
    assert_eq!(
        changes(&db, resolved.group_id).await,
        [
            ("status".to_owned(), Some(second)),
            ("status".to_owned(), None)
        ]
    );
}

#[tokio::test]
async fn only_issues_of_organizations_that_sync_to_jira_get_a_pending_push() {
    let settings = common::migrated().await;
    let db = common::db(&settings).await;
    let seed = Seed { db: &db };
    let (integration, _) = seed.integration(json!({})).await;
    let (disabled, _) = seed.integration(json!({})).await;
    let amy = seed.user("amy@example.org", true, true).await;

    // Assignees to Jira, not statuses.
    let syncing = forwarding(&seed, integration, "TGT-1", true, false).await;
    let flags_off = forwarding(&seed, integration, "TGT-2", false, false).await;
    let org_inactive = forwarding(&seed, integration, "TGT-3", true, true).await;
    let link_inactive = forwarding(&seed, integration, "TGT-4", true, true).await;
    let integration_inactive = forwarding(&seed, disabled, "TGT-5", true, true).await;
    let deleting = forwarding(&seed, integration, "TGT-6", true, true).await;
    let other = forwarding(&seed, integration, "TGT-7", true, true).await;
    for (sql, id) in [
        (
            "UPDATE organizations SET status = 'disabled' WHERE id = $1",
            org_inactive.id,
        ),
        (
            "UPDATE organization_integrations SET status = 'disabled' WHERE organization_id = $1",
            link_inactive.id,
        ),
        (
            "UPDATE integrations SET status = 'disabled' WHERE id = $1",
            disabled,
        ),
        (
            "UPDATE groups SET status = 'pending_deletion' WHERE id = $1",
            deleting.group_id,
        ),
    ] {
        db.execute(sql, &[&id])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    // A group of `syncing`'s project linked to its issue as a commit, and one
    // linked to the issue of another organization.
    let by_commit = seed.group(syncing.project_id, "unresolved").await;
    seed.link(
        by_commit,
        syncing.project_id,
        "commit",
        syncing.external_issue_id,
    )
    .await;
    let elsewhere = seed.group(syncing.project_id, "unresolved").await;
    seed.link(
        elsewhere,
        syncing.project_id,
        "issue",
        other.external_issue_id,
    )
    .await;

    for org in [
        &syncing,
        &flags_off,
        &org_inactive,
        &link_inactive,
        &integration_inactive,
        &deleting,
    ] {
        assign(&db, org, org.group_id, amy).await;
    }
    assign(&db, &syncing, by_commit, amy).await;
    assign(&db, &syncing, elsewhere, amy).await;
    db.execute(
        "UPDATE groups SET status = 'resolved' WHERE id = $1",
        &[&syncing.group_id],
    )
    .await
    .expect("resolve");
    let captured: i64 = db
        .query_one("SELECT count(*) FROM outbound_changes", &[])
        .await
        .expect("count")
        .get(0);
    // Captured: the changes of groups linked to an issue whose organization link
    // has the kind's flag on (the syncing assignment, the inactive ones', the
    // group linked to another organization's issue); not the flags-off
    // organization's, the group linked as a commit, or the resolution nobody
    // pushes.
    assert_eq!(
        captured, 6,
        "a change is captured when its group is linked to an issue with the kind's flag on"
    );

    let pool = pool(&settings).await;
    assert_eq!(
        move_changes(&pool, MOVE_BATCH).await,
        Moved {
            changes: 6,
            pending: 1
        }
    );
    let rows = pending_rows(&db).await;
    assert_eq!(
        rows.iter()
            .map(|p| (
                p.external_issue_id,
                p.kind.as_str(),
                p.group_id,
                p.origin,
                p.published_seq
            ))
            .collect::<Vec<_>>(),
        [(
            syncing.external_issue_id,
            "assignee",
            syncing.group_id,
            None,
            None
        )],
        "only the syncing organization's issue, and only its assignee"
    );
    let left: i64 = db
        .query_one("SELECT count(*) FROM outbound_changes", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 0, "a change without a target leaves nothing");
}

#[tokio::test]
async fn a_change_committed_while_no_relay_runs_is_published_once_one_starts() {
    let settings = common::migrated().await;
    let db = common::db(&settings).await;
    let seed = Seed { db: &db };
    let (integration, _) = seed.integration(json!({})).await;
    let org = forwarding(&seed, integration, "LATE-1", true, true).await;
    let amy = seed.user("amy@example.org", true, true).await;
    assign(&db, &org, org.group_id, amy).await;
    let (seq, committed_at): (i64, chrono::DateTime<chrono::Utc>) = {
        let row = db
            .query_one("SELECT id, committed_at FROM outbound_changes", &[])
            .await
            .expect("the change waits");
        (row.get(0), row.get(1))
    };

    let relay = relay(&settings).await;
    let (_connection, channel) = common::amqp().await;
    let message = common::get_one(&channel, &common::names(&settings).outbound(), WAIT)
        .await
        .expect("a push on P.outbound");
    assert_eq!(message_type(&message.delivery.properties), OUTBOUND);
    let push = Push::parse(&message.delivery.data).expect("a push");
    assert_eq!(
        push,
        Push {
            kind: Kind::Assignee,
            group_id: org.group_id,
            external_issue_id: org.external_issue_id,
            integration_id: integration,
            organization_id: org.id,
            issue_key: "LATE-1".into(),
            seq,
            committed_at_ms: committed_at.timestamp_millis(),
            origin_integration_id: None,
        }
    );
    all_published(&db, 1).await;
    stop(relay).await;
}

#[tokio::test]
async fn a_worker_relays_and_consumes_pushes_unless_outbound_is_off() {
    let app = TestApp::builder().no_worker().start().await;
    let org = forwarding(&app.seed(), app.integration, "SW-1", true, false).await;
    let amy = app.seed().user("amy@example.org", true, true).await;
    assign(&app.db, &org, org.group_id, amy).await;
    let queue = common::names(&app.settings).outbound();
    let push = Push {
        kind: Kind::Assignee,
        group_id: org.group_id,
        external_issue_id: org.external_issue_id,
        integration_id: app.integration,
        organization_id: org.id,
        issue_key: "SW-1".into(),
        seq: 0,
        committed_at_ms: 0,
        origin_integration_id: None,
    };
    let (_, body, properties) = push.to_message();
    common::publish(&app.channel, &app.settings, OUTBOUND, &body, properties).await;

    let mut off = (*app.settings).clone();
    off.worker.outbound = false;
    let worker = common::spawn_worker(&off);
    // Once the worker has handled a webhook, its relay would have moved the change.
    app.settle().await;
    assert_eq!(
        changes(&app.db, org.group_id).await.len(),
        1,
        "the change waits"
    );
    assert!(pending_rows(&app.db).await.is_empty());
    assert_eq!(
        common::depth(&app.channel, &queue).await,
        1,
        "P.outbound is not consumed"
    );
    worker.stop().await;

    let worker = common::spawn_worker(&app.settings);
    common::eventually("the worker's relay publishes the change", WAIT, || async {
        // Published, or already decided by a push (which deletes the row).
        changes(&app.db, org.group_id).await.is_empty()
            && pending_rows(&app.db)
                .await
                .iter()
                .all(|p| p.published_seq == Some(p.seq))
    })
    .await;
    common::eventually("the worker consumes P.outbound", WAIT, || async {
        common::depth(&app.channel, &queue).await == 0
    })
    .await;
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn two_relays_never_publish_one_row_twice() {
    const ISSUES: i64 = 1_200;
    let settings = common::migrated().await;
    let db = common::db(&settings).await;
    let seed = Seed { db: &db };
    let (integration, _) = seed.integration(json!({})).await;
    let org = forwarding(&seed, integration, "TWO-0", true, false).await;
    let amy = seed.user("amy@example.org", true, true).await;
    // More issues than one relay publishes in one batch, each with its group.
    db.batch_execute(&format!(
        "WITH groups_made AS (
           INSERT INTO groups (project_id, title) SELECT {project}, 'TWO-' || n FROM generate_series(1, {ISSUES}) n
           RETURNING id, title),
         issues_made AS (
           INSERT INTO external_issues (organization_id, integration_id, key)
           SELECT {org}, {integration}, title FROM groups_made RETURNING id, key)
         INSERT INTO group_links (group_id, project_id, linked_type, linked_id)
         SELECT g.id, {project}, 'issue', i.id FROM groups_made g JOIN issues_made i ON i.key = g.title;
         INSERT INTO group_assignees (group_id, project_id, user_id)
         SELECT id, {project}, {amy} FROM groups WHERE title LIKE 'TWO-%';",
        project = org.project_id,
        org = org.id,
    ))
    .await
    .expect("issues and their assignments");
    let pool = pool(&settings).await;
    let moved = move_changes(&pool, MOVE_BATCH).await;
    assert_eq!(moved.pending, ISSUES);

    // A relay's rows are skipped by the other while it publishes them.
    let mut first = pool.get().await.expect("a connection");
    let mut second = pool.get().await.expect("a connection");
    let first_tx = first.transaction().await.expect("begin");
    let second_tx = second.transaction().await.expect("begin");
    let taken = pending::publishable(&first_tx, 2 * ISSUES)
        .await
        .expect("publishable");
    assert_eq!(i64::try_from(taken.len()), Ok(ISSUES));
    let also = pending::publishable(&second_tx, 2 * ISSUES)
        .await
        .expect("publishable");
    assert!(also.is_empty(), "rows locked by a relay are skipped");
    drop((first_tx, second_tx));

    let relays = [relay(&settings).await, relay(&settings).await];
    all_published(&db, usize::try_from(ISSUES).expect("a count")).await;
    for relay in relays {
        stop(relay).await;
    }
    let (_connection, channel) = common::amqp().await;
    let queue = common::names(&settings).outbound();
    assert_eq!(
        i64::from(common::depth(&channel, &queue).await),
        ISSUES,
        "one message per pending push"
    );
    let mut seen = BTreeSet::new();
    while let Some(message) = common::get_one(&channel, &queue, Duration::ZERO).await {
        let push = Push::parse(&message.delivery.data).expect("a push");
        assert!(
            seen.insert(push.external_issue_id),
            "issue {} published twice",
            push.external_issue_id
        );
    }
    assert_eq!(i64::try_from(seen.len()), Ok(ISSUES));
}

#[tokio::test]
async fn the_changes_of_one_transaction_count_as_one() {
    let settings = common::migrated().await;
    let mut db = common::db(&settings).await;
    let seed = Seed { db: &db };
    let (integration, _) = seed.integration(json!({})).await;
    let org = forwarding(&seed, integration, "ONE-1", true, true).await;
    let amy = seed.user("amy@example.org", true, true).await;
    let ben = seed.user("ben@example.org", true, true).await;
    let later = forwarding(&seed, integration, "ONE-2", true, false).await;

    let tx = db.transaction().await.expect("begin");
    let reassign =
        "INSERT INTO group_assignees (group_id, project_id, user_id) VALUES ($1, $2, $3)";
    tx.execute(reassign, &[&org.group_id, &org.project_id, &amy])
        .await
        .expect("assign");
    tx.execute(
        "DELETE FROM group_assignees WHERE group_id = $1",
        &[&org.group_id],
    )
    .await
    .expect("unassign");
    tx.execute(reassign, &[&org.group_id, &org.project_id, &ben])
        .await
        .expect("assign again");
    tx.execute(
        "UPDATE groups SET status = 'resolved' WHERE id = $1",
        &[&org.group_id],
    )
    .await
    .expect("resolve");
    tx.commit().await.expect("commit");
    let newest_assignee: i64 = db
        .query_one(
            "SELECT max(id) FROM outbound_changes WHERE kind = 'assignee'",
            &[],
        )
        .await
        .expect("newest")
        .get(0);
    // Another transaction's change, after it.
    assign(&db, &later, later.group_id, amy).await;

    // A move of one change takes the whole transaction, and only it.
    let pool = pool(&settings).await;
    assert_eq!(
        move_changes(&pool, 1).await,
        Moved {
            changes: 4,
            pending: 2
        }
    );
    assert_eq!(changes(&db, later.group_id).await.len(), 1);
    let rows = pending_rows(&db).await;
    assert_eq!(
        rows.iter()
            .map(|p| (p.kind.as_str(), p.group_id))
            .collect::<Vec<_>>(),
        [("assignee", org.group_id), ("status", org.group_id)]
    );
    assert_eq!(rows[0].seq, newest_assignee, "the newest change's");

    let relay = relay(&settings).await;
    all_published(&db, 3).await;
    stop(relay).await;
    let (_connection, channel) = common::amqp().await;
    let queue = common::names(&settings).outbound();
    assert_eq!(
        common::depth(&channel, &queue).await,
        3,
        "one push per kind of the transaction, one of the later one"
    );
}

#[tokio::test]
async fn a_change_committed_late_makes_its_issue_publishable_again_with_a_newer_seq() {
    let settings = common::migrated().await;
    let db = common::db(&settings).await;
    let mut early = common::db(&settings).await;
    let seed = Seed { db: &db };
    let (integration, _) = seed.integration(json!({})).await;
    let org = forwarding(&seed, integration, "SEQ-1", true, false).await;
    // A second group linked to the same issue.
    let sibling = seed.group(org.project_id, "unresolved").await;
    seed.link(sibling, org.project_id, "issue", org.external_issue_id)
        .await;
    let amy = seed.user("amy@example.org", true, true).await;
    let pool = pool(&settings).await;

    // The first change takes its id first and commits last.
    let slow = early.transaction().await.expect("begin");
    slow.execute(
        "INSERT INTO group_assignees (group_id, project_id, user_id) VALUES ($1, $2, $3)",
        &[&sibling, &org.project_id, &amy],
    )
    .await
    .expect("assign the sibling");
    assign(&db, &org, org.group_id, amy).await;
    move_changes(&pool, MOVE_BATCH).await;
    let first = pending_rows(&db).await;
    assert_eq!(first.len(), 1);
    {
        let mut client = pool.get().await.expect("a connection");
        let tx = client.transaction().await.expect("begin");
        let pushes = pending::publishable(&tx, 10).await.expect("publishable");
        pending::published(&tx, &pushes.iter().collect::<Vec<_>>())
            .await
            .expect("published");
        tx.commit().await.expect("commit");
    }
    slow.commit().await.expect("commit late");
    move_changes(&pool, MOVE_BATCH).await;

    let second = pending_rows(&db).await;
    assert_eq!(second.len(), 1);
    assert!(
        second[0].seq > first[0].seq,
        "{second:?} is newer than {first:?}"
    );
    assert_eq!(second[0].group_id, sibling, "the group changed last");
    assert_eq!(
        second[0].published_seq,
        Some(first[0].seq),
        "its newer seq is not published yet"
    );
}
