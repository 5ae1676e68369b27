//! `jirasync integration migrate` (docs/reference.md §11.7): a Data Center
//! integration's issues, links, sync flags, status maps and user map move to a
//! Jira Cloud one — by the real binary, against a fake Cloud that checks the API
//! token on every user search.

use base64::Engine;
use jirasync::integration::Credentials;
use jirasync::integration::install_record::{self, CloudInstall};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::seed::Org;
use crate::common::{self, TestApp};

/// The Cloud integration's account and API token.
const EMAIL: &str = "migrator@corp.example";
const API_TOKEN: &str = "cloud-api-token-7f3a9c1e";

/// A Data Center integration (the test app's) and a Cloud one on a fake site.
struct World {
    app: TestApp,
    cloud: MockServer,
    dc: i64,
    to: i64,
}

impl World {
    async fn new() -> Self {
        let app = TestApp::builder()
            .no_worker()
            .secret_key(common::SECRET_KEY_A)
            .start()
            .await;
        let cloud = MockServer::start().await;
        let to = cloud_integration(&app, &cloud, &format!("cloud-{}", common::unique())).await;
        Self {
            dc: app.integration,
            app,
            cloud,
            to,
        }
    }

    /// `jirasync integration migrate --from DC --to CLOUD ARGS… --json`.
    fn migrate(&self, args: &[&str]) -> std::process::Output {
        let (from, to) = (self.dc.to_string(), self.to.to_string());
        let mut all = vec!["integration", "migrate", "--from", &from, "--to", &to];
        all.extend_from_slice(args);
        let output = common::output(&all, &self.app.settings);
        for stream in [&output.stdout, &output.stderr] {
            let text = String::from_utf8_lossy(stream);
            assert!(
                !text.contains(API_TOKEN),
                "the API token was printed: {text}"
            );
        }
        output
    }

    /// As [`migrate`](Self::migrate), which must succeed: its JSON.
    fn migrated(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let output = self.migrate(&all);
        assert!(
            output.status.success(),
            "migrate failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("one JSON object")
    }

    /// The fake Cloud answers a search for `email` with `users`, once the API
    /// token authorizes it.
    async fn users(&self, email: &str, users: Value) {
        Mock::given(method("GET"))
            .and(path("/rest/api/3/user/search"))
            .and(query_param("query", email))
            .and(header("authorization", basic().as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(users))
            .mount(&self.cloud)
            .await;
    }

    /// The queries the fake Cloud was asked.
    async fn searched(&self) -> Vec<String> {
        let requests = self.cloud.received_requests().await.unwrap_or_default();
        requests
            .iter()
            .filter_map(|request| {
                request
                    .url
                    .query_pairs()
                    .find(|(name, _)| name == "query")
                    .map(|(_, value)| value.into_owned())
            })
            .collect()
    }

    /// The test database's rows (sequences aside: a rolled-back insert moves them).
    fn dump(&self) -> String {
        common::pg_dump(&self.app.settings)
            .lines()
            .filter(|line| {
                !line.contains("setval")
                    && !line.starts_with("\\restrict")
                    && !line.starts_with("\\unrestrict")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn integration_of(&self, external_issue: i64) -> Option<i64> {
        self.app
            .db
            .query_opt(
                "SELECT integration_id FROM external_issues WHERE id = $1",
                &[&external_issue],
            )
            .await
            .expect("query")
            .map(|row| row.get(0))
    }

    async fn count(&self, sql: &str) -> i64 {
        self.app
            .db
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    /// A user mapped from `jira_user` of the Data Center integration, with
    /// `emails` (address, verified) in this order.
    async fn mapped_user(&self, jira_user: &str, emails: &[(&str, bool)]) -> (i64, String) {
        let (first, verified) = emails[0];
        let user = self.app.seed().user(first, verified, true).await;
        for (email, verified) in &emails[1..] {
            self.app
                .db
                .execute(
                    "INSERT INTO user_emails (user_id, email, is_verified) VALUES ($1, $2, $3)",
                    &[&user, email, verified],
                )
                .await
                .expect("email");
        }
        self.map(self.dc, jira_user, user).await;
        (user, self.app.username(user).await)
    }

    async fn map(&self, integration: i64, jira_user: &str, user: i64) {
        self.app
            .db
            .execute(
                "INSERT INTO jira_user_mappings (integration_id, jira_user, user_id) VALUES ($1, $2, $3)",
                &[&integration, &jira_user, &user],
            )
            .await
            .expect("mapping");
    }

    /// Issue `key` of `integration` in `org`, linked to `group`.
    async fn linked_issue(&self, org: &Org, integration: i64, key: &str, group: i64) -> i64 {
        let issue = self.app.seed().issue(org.id, integration, key).await;
        self.app
            .seed()
            .link(group, org.project_id, "issue", issue)
            .await;
        issue
    }
}

/// `Basic base64(email:token)`.
fn basic() -> String {
    let pair = format!("{EMAIL}:{API_TOKEN}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// A `jira_cloud` integration of the site `cloud` (API token), saved as
/// `integration add --cloud` saves one.
async fn cloud_integration(app: &TestApp, cloud: &MockServer, cloud_id: &str) -> i64 {
    let pool = jirasync::db::connect(&app.settings.database, 1)
        .await
        .expect("pool");
    let client = pool.get().await.expect("connection");
    let credentials = Credentials::ApiToken {
        email: EMAIL.to_owned(),
        token: API_TOKEN.to_owned(),
    };
    let install = CloudInstall {
        site: &cloud.uri(),
        cloud_id,
        base_url: &cloud.uri(),
        name: Some("Cloud"),
        credentials: &credentials,
    };
    install_record::save_cloud(&client, pool.keys(), &install)
        .await
        .expect("save the Cloud integration")
        .id
}

/// The report `--json` prints.
#[allow(clippy::too_many_arguments)]
fn report(
    world: &World,
    issues: (u64, u64),
    links: (u64, u64),
    organizations: (u64, u64),
    users: (u64, u64, Value),
    source_disabled: bool,
    dry_run: bool,
) -> Value {
    json!({
        "from": world.dc,
        "to": world.to,
        "dry_run": dry_run,
        "issues_moved": issues.0,
        "issues_merged": issues.1,
        "links": links.0,
        "duplicate_links_dropped": links.1,
        "organizations_linked": organizations.0,
        "organizations_updated": organizations.1,
        "user_map": {"translated": users.0, "already_mapped": users.1, "unresolved": users.2},
        "source_disabled": source_disabled,
    })
}

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
    let (jane, jane_name) = world
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
    let _ = jane_name;
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
    world
        .users(
            "jane@corp.example",
            json!([{"accountId": "5b10-jane", "emailAddress": "jane@corp.example"}]),
        )
        .await;
    let first = world.migrated(&[]);
    assert_eq!(
        first,
        report(
            &world,
            (1, 0),
            (1, 0),
            (1, 0),
            (1, 0, json!([])),
            false,
            false
        )
    );
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
    world
        .users(
            "jane@corp.example",
            json!([{"accountId": "5b10-jane", "emailAddress": "jane@corp.example"}]),
        )
        .await;
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
    world
        .users(
            "jane@corp.example",
            json!([{"accountId": "5b10-jane", "emailAddress": "jane@corp.example"}]),
        )
        .await;
    let done = world.migrated(&[]);
    assert_eq!(
        done,
        report(
            &world,
            (1, 0),
            (1, 0),
            (1, 0),
            (1, 0, json!([])),
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
    world
        .users(
            "jane@corp.example",
            json!([{"accountId": "5b10-jane", "emailAddress": "jane@corp.example"}]),
        )
        .await;
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
    let (_, known) = world
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
    let _ = known;
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
            jirasync::db::sync::LOCK_EXTERNAL_ISSUES,
            &[&world.dc, &"ABC-1"],
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
    world
        .users(
            "jane@corp.example",
            json!([{"accountId": "5b10-jane", "emailAddress": "jane@corp.example"}]),
        )
        .await;
    let done = world.migrated(&[]);
    assert_eq!(
        done,
        report(
            &world,
            (1, 0),
            (1, 0),
            (1, 0),
            (1, 0, json!([])),
            false,
            false
        )
    );
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
