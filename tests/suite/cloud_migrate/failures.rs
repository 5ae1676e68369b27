//! Runs that change nothing: a dry run, a Cloud search that fails or asks to
//! wait too long, a failure inside the transaction, a wrong or inactive
//! integration — and the run after each, which succeeds.

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use super::world::{World, cloud_integration, one_issue_and_jane, report};
use crate::common;

#[tokio::test]
async fn a_dry_run_changes_nothing_and_prints_what_the_run_then_does() {
    let world = World::new().await;
    let org = world.app.seed().org(world.dc, true, "ABC-1").await;
    let (_, name) = world
        .mapped_user("ghost", &[("ghost@corp.example", true)])
        .await;
    world
        .mapped_user("jdoe", &[("jane@corp.example", true)])
        .await;
    world.users("ghost@corp.example", json!([])).await;
    world.jane_on_cloud().await;
    let before = world.dump();

    let dry = world.migrated(&["--dry-run", "--disable-source"]);
    let unresolved = json!([{"jira_user": "ghost", "user": name, "reason": "not_found"}]);
    assert_eq!(
        dry,
        report(
            &world,
            (1, 0),
            (1, 0),
            (1, 0),
            (1, 0, unresolved.clone()),
            false,
            true
        )
    );
    assert_eq!(world.dump(), before, "a dry run changed rows");

    // The readable summary says the same.
    let text = world.migrate(&["--dry-run"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("Dry run"), "{text}");
    assert!(text.contains("issues moved"), "{text}");
    assert!(text.contains("ghost (user"), "{text}");

    let done = world.migrated(&[]);
    assert_eq!(
        done,
        report(
            &world,
            (1, 0),
            (1, 0),
            (1, 0),
            (1, 0, unresolved),
            false,
            false
        )
    );
    assert_eq!(
        world.integration_of(org.external_issue_id).await,
        Some(world.to)
    );
}

#[tokio::test]
async fn a_failed_cloud_search_changes_nothing_and_a_run_after_it_succeeds() {
    let world = World::new().await;
    let org = world.app.seed().org(world.dc, true, "ABC-1").await;
    world
        .mapped_user("jdoe", &[("jane@corp.example", true)])
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/user/search"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&world.cloud)
        .await;
    let before = world.dump();

    let failed = world.migrate(&["--json", "--disable-source"]);
    assert!(!failed.status.success());
    assert!(failed.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("failed to search the users of Jira Cloud")
            && last.contains("nothing was changed"),
        "{stderr}"
    );
    assert_eq!(world.dump(), before, "a failed run changed rows");

    world.cloud.reset().await;
    world.jane_on_cloud().await;
    let done = world.migrated(&[]);
    assert_eq!(done, one_issue_and_jane(&world));
    assert_eq!(
        world.integration_of(org.external_issue_id).await,
        Some(world.to)
    );
}

#[tokio::test]
async fn a_failure_inside_the_transaction_changes_nothing_and_a_run_after_it_succeeds() {
    let world = World::new().await;
    let app = &world.app;
    let org = app.seed().org(world.dc, true, "ABC-1").await;
    let abc2 = world
        .linked_issue(&org, world.dc, "ABC-2", org.group_id)
        .await;
    world
        .mapped_user("jdoe", &[("jane@corp.example", true)])
        .await;
    world.jane_on_cloud().await;
    // The audit row of the second issue fails: by then the user map, the first
    // issue and its audit row are written in the transaction.
    app.db
        .batch_execute(
            "CREATE FUNCTION refuse_abc2() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
             CREATE TRIGGER refuse_abc2 BEFORE INSERT ON sync_events
                FOR EACH ROW WHEN (NEW.issue_key = 'ABC-2') EXECUTE FUNCTION refuse_abc2();",
        )
        .await
        .expect("trigger");
    let before = world.dump();

    let failed = world.migrate(&["--disable-source"]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(world.dump(), before, "a failed run changed rows");

    app.db
        .batch_execute("DROP TRIGGER refuse_abc2 ON sync_events")
        .await
        .expect("drop trigger");
    let done = world.migrated(&["--disable-source"]);
    assert_eq!(
        done,
        report(
            &world,
            (2, 0),
            (2, 0),
            (1, 0),
            (1, 0, json!([])),
            true,
            false
        )
    );
    assert_eq!(world.integration_of(abc2).await, Some(world.to));
}

#[tokio::test]
async fn a_wrong_provider_or_an_inactive_target_is_refused_with_one_line() {
    let world = World::new().await;
    world.app.seed().org(world.dc, true, "ABC-1").await;
    let disabled = cloud_integration(&world.app, &world.cloud, "cloud-disabled").await;
    world
        .app
        .db
        .execute(
            "UPDATE integrations SET status = 'disabled' WHERE id = $1",
            &[&disabled],
        )
        .await
        .expect("disable");
    let before = world.dump();
    let (dc, to, off) = (
        world.dc.to_string(),
        world.to.to_string(),
        disabled.to_string(),
    );
    for (name, from, target, expected) in [
        (
            "from a Cloud integration",
            &to,
            &to,
            "no jira_server integration has this id",
        ),
        (
            "from no integration",
            &"999999".to_owned(),
            &to,
            "no jira_server integration has this id",
        ),
        (
            "to a Data Center integration",
            &dc,
            &dc,
            "no jira_cloud integration has this id",
        ),
        (
            "to a disabled Cloud integration",
            &dc,
            &off,
            "is disabled, not active",
        ),
    ] {
        let output = common::output(
            &[
                "integration",
                "migrate",
                "--from",
                from,
                "--to",
                target,
                "--json",
            ],
            &world.app.settings,
        );
        assert!(!output.status.success(), "{name}");
        assert!(output.stdout.is_empty(), "{name}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{name}: {stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
    }
    assert_eq!(world.dump(), before, "a refused run changed rows");
    assert!(world.searched().await.is_empty());
}

#[tokio::test]
async fn a_throttled_search_waits_and_asks_again_and_a_long_wait_fails_with_nothing_changed() {
    let world = World::new().await;
    let org = world.app.seed().org(world.dc, true, "ABC-1").await;
    world
        .mapped_user("jdoe", &[("jane@corp.example", true)])
        .await;
    let throttled = |seconds: &str| {
        Mock::given(method("GET"))
            .and(path("/rest/api/3/user/search"))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", seconds))
            .with_priority(1)
    };
    // Longer than a run waits: it fails, nothing changed.
    throttled("120").up_to_n_times(1).mount(&world.cloud).await;
    let before = world.dump();
    let failed = world.migrate(&["--json"]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("429"), "{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(world.dump(), before);

    // A second's wait, twice: waited out, then answered.
    throttled("1").up_to_n_times(2).mount(&world.cloud).await;
    world.jane_on_cloud().await;
    let done = world.migrated(&[]);
    assert_eq!(done, one_issue_and_jane(&world));
    assert_eq!(
        world.searched().await.len(),
        4,
        "one refused, two waited out, one answered"
    );
    assert_eq!(
        world.integration_of(org.external_issue_id).await,
        Some(world.to)
    );
}
