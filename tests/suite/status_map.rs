//! The status mapping (docs/reference.md §10.6): `jirasync status-map set` asks the
//! integration's Jira for its statuses, with the integration's own auth, before it
//! stores a project's row, and stores nothing when a status is unknown or Jira
//! cannot be asked (unless `--no-check`); `list` and `remove`; and `find`, which a
//! status push uses, prefers the project's key to its id.

use jirasync::outbound::mapping::{self, Mapping};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::common::seed::Org;
use crate::common::{self, TestApp};

const STATUS_PATH: &str = "/rest/api/2/status";

/// Jira's statuses, as `GET /rest/api/2/status` answers them.
fn statuses() -> Value {
    json!([
        {"id": "1", "name": "Open", "statusCategory": {"key": "new"}},
        {"id": "3", "name": "In Progress", "statusCategory": {"key": "indeterminate"}},
        {"id": "10001", "name": "Done", "statusCategory": {"key": "done"}},
    ])
}

/// `jirasync status-map ARGS…`.
fn status_map(app: &TestApp, args: &[&str]) -> std::process::Output {
    let mut all = vec!["status-map"];
    all.extend_from_slice(args);
    common::output(&all, &app.settings)
}

/// `jirasync status-map set --integration I --organization ORG ARGS…`.
fn set(app: &TestApp, integration: i64, org: &str, args: &[&str]) -> std::process::Output {
    let integration = integration.to_string();
    let mut all = vec!["set", "--integration", &integration, "--organization", org];
    all.extend_from_slice(args);
    status_map(app, &all)
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The JSON a successful command printed.
fn printed(output: &std::process::Output) -> Value {
    assert!(output.status.success(), "{}", stderr(output));
    serde_json::from_slice(&output.stdout).expect("JSON")
}

async fn slug(app: &TestApp, org: i64) -> String {
    app.db
        .query_one("SELECT slug FROM organizations WHERE id = $1", &[&org])
        .await
        .expect("organization")
        .get(0)
}

/// A test app without a worker whose integration has OAuth 1.0a credentials with
/// `access_token` (none: no credentials), and an organization linked to it with
/// the issue `key`: the app, the organization and its slug.
async fn scene(access_token: Option<&str>, key: &str) -> (TestApp, Org, String) {
    let builder = TestApp::builder().no_worker();
    let app = match access_token {
        Some(token) => builder.credentials(Some(token)),
        None => builder,
    }
    .start()
    .await;
    let org = app.seed().org(app.integration, true, key).await;
    let slug = slug(&app, org.id).await;
    (app, org, slug)
}

/// Every stored mapping: (integration, project, resolved, unresolved, resolution).
type Row = (i64, String, Option<String>, Option<String>, Option<String>);

async fn rows(app: &TestApp) -> Vec<Row> {
    app.db
        .query(
            "SELECT oi.integration_id, p.external_id, p.resolved_status, p.unresolved_status, p.resolution
               FROM integration_external_projects p
               JOIN organization_integrations oi ON oi.id = p.organization_integration_id
              ORDER BY oi.integration_id, p.external_id",
            &[],
        )
        .await
        .expect("mappings")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)))
        .collect()
}

fn some(text: &str) -> Option<String> {
    Some(text.to_owned())
}

/// A second integration of the test's organization, calling the fake Jira with
/// the personal access token `token`.
async fn pat_integration(app: &TestApp, org: i64, token: &str) -> i64 {
    let (id, _) = app
        .seed()
        .integration(json!({"base_url": app.server.uri()}))
        .await;
    app.db
        .execute(
            "INSERT INTO integration_credentials (integration_id, auth_method, consumer_key, private_key, access_token)
             VALUES ($1, 'pat', '', '', $2)",
            &[&id, &token],
        )
        .await
        .expect("PAT credentials");
    app.db
        .execute(
            "INSERT INTO organization_integrations (organization_id, integration_id) VALUES ($1, $2)",
            &[&org, &id],
        )
        .await
        .expect("organization integration");
    id
}

#[tokio::test]
async fn set_checks_each_status_with_a_signed_call_and_replaces_the_projects_row() {
    let (app, _, slug) = scene(Some("acc-tok"), "SM-1").await;
    Mock::given(method("GET"))
        .and(path(STATUS_PATH))
        .respond_with(
            app.jira
                .verified(ResponseTemplate::new(200).set_body_json(statuses())),
        )
        .mount(&app.server)
        .await;
    let mut outputs = Vec::new();

    // A name in any case, an id: both are Jira's; the key is Jira's upper case.
    let stored = set(
        &app,
        app.integration,
        &slug,
        &[
            "--project",
            "acc",
            "--resolved",
            "done",
            "--unresolved",
            "1",
            "--resolution",
            "Fixed",
        ],
    );
    let entry = json!({"integration_id": app.integration, "organization": slug, "project": "ACC",
        "resolved_status": "done", "unresolved_status": "1", "resolution": "Fixed"});
    assert_eq!(printed(&stored), entry);
    let first: Row = (
        app.integration,
        "ACC".to_owned(),
        some("done"),
        some("1"),
        some("Fixed"),
    );
    assert_eq!(rows(&app).await, std::slice::from_ref(&first));
    assert_eq!(
        app.jira.verified_requests().len(),
        1,
        "the statuses were read with the integration's signature"
    );
    outputs.push(stored);

    // A status Jira does not list: named with its flag and Jira's statuses; the
    // row stays as it was.
    let refused = set(
        &app,
        app.integration,
        &slug,
        &[
            "--project",
            "ACC",
            "--resolved",
            "Closed",
            "--unresolved",
            "in progress",
        ],
    );
    assert!(!refused.status.success());
    let error = stderr(&refused);
    for expected in [
        "has no status \"Closed\" (--resolved): a status is given by its id",
        "Open (1), In Progress (3), Done (10001)",
        "nothing was stored",
    ] {
        assert!(error.contains(expected), "{expected:?} in {error}");
    }
    assert!(!error.contains("--unresolved"), "{error}");
    assert_eq!(rows(&app).await, [first]);
    outputs.push(refused);

    // Set again: the whole row is replaced, what is left out is cleared.
    let replaced = set(
        &app,
        app.integration,
        &slug,
        &["--project", "ACC", "--unresolved", "in progress"],
    );
    let entry = json!({"integration_id": app.integration, "organization": slug, "project": "ACC",
        "resolved_status": null, "unresolved_status": "in progress", "resolution": null});
    assert_eq!(printed(&replaced), entry);
    let row: Row = (
        app.integration,
        "ACC".to_owned(),
        None,
        some("in progress"),
        None,
    );
    assert_eq!(rows(&app).await, [row]);
    outputs.push(replaced);

    let listed = status_map(&app, &["list", "--json"]);
    let lines: Vec<Value> = stdout(&listed)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(lines, [entry]);
    let other = status_map(&app, &["list", "--organization", "no-such-org", "--json"]);
    assert_eq!(stdout(&other), "");
    let table = status_map(&app, &["list"]);
    let text = stdout(&table);
    for expected in [&slug, "ACC", "in progress"] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    outputs.extend([listed, table]);

    assert_eq!(app.requests_to(STATUS_PATH).await.len(), 3);
    for output in &outputs {
        let all = format!("{}{}", stdout(output), stderr(output));
        assert!(!all.contains("acc-tok"), "no token in {all}");
    }
    app.finish().await;
}

#[tokio::test]
async fn set_stores_nothing_when_jira_cannot_be_asked_unless_told_not_to_check() {
    let (app, org, slug) = scene(None, "SM-2").await;

    // An OAuth 1.0a link without an access token cannot call Jira.
    let no_token = set(
        &app,
        app.integration,
        &slug,
        &["--project", "ACC", "--resolved", "Done"],
    );
    assert!(!no_token.status.success());
    let error = stderr(&no_token);
    for expected in ["has no access token", "--no-check", "nothing was stored"] {
        assert!(error.contains(expected), "{expected:?} in {error}");
    }
    assert!(rows(&app).await.is_empty());

    // A personal access token is sent as a bearer token; Jira answers 503 once.
    let pat = pat_integration(&app, org.id, "pat-secret").await;
    let bearer = || {
        Mock::given(method("GET"))
            .and(path(STATUS_PATH))
            .and(header("authorization", "Bearer pat-secret"))
    };
    bearer()
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&app.server)
        .await;
    bearer()
        .respond_with(ResponseTemplate::new(200).set_body_json(statuses()))
        .mount(&app.server)
        .await;
    let args = ["--project", "ACC", "--resolved", "Done"];
    let unavailable = set(&app, pat, &slug, &args);
    assert!(!unavailable.status.success());
    let error = stderr(&unavailable);
    let base_url = app.server.uri();
    for expected in [
        &format!("failed to read the statuses of Jira at {base_url}"),
        "HTTP 503",
        "--no-check",
        "nothing was stored",
    ] {
        assert!(error.contains(expected), "{expected:?} in {error}");
    }
    assert!(rows(&app).await.is_empty());

    let answered = set(&app, pat, &slug, &args);
    assert_eq!(printed(&answered)["resolved_status"], "Done");
    assert_eq!(app.requests_to(STATUS_PATH).await.len(), 2);

    // --no-check stores without a call, also for the integration without a token.
    let unchecked = set(
        &app,
        pat,
        &slug,
        &["--project", "ACC", "--resolved", "Gone", "--no-check"],
    );
    assert_eq!(printed(&unchecked)["resolved_status"], "Gone");
    let unchecked_oauth1 = set(
        &app,
        app.integration,
        &slug,
        &["--project", "CF", "--unresolved", "Reopened", "--no-check"],
    );
    assert_eq!(printed(&unchecked_oauth1)["project"], "CF");
    assert_eq!(app.requests_to(STATUS_PATH).await.len(), 2);
    assert_eq!(
        rows(&app).await,
        [
            (
                app.integration,
                "CF".to_owned(),
                None,
                some("Reopened"),
                None
            ),
            (pat, "ACC".to_owned(), some("Gone"), None, None),
        ]
    );
    for output in [no_token, unavailable, answered, unchecked, unchecked_oauth1] {
        let all = format!("{}{}", stdout(&output), stderr(&output));
        assert!(!all.contains("pat-secret"), "no token in {all}");
    }
    app.finish().await;
}

#[tokio::test]
async fn set_refuses_unknown_integrations_and_organizations_and_remove_says_what_it_removed() {
    let (app, _, slug) = scene(Some("acc-tok"), "SM-3").await;
    app.db
        .execute(
            "INSERT INTO organizations (slug, name) VALUES ('unlinked', 'Unlinked')",
            &[],
        )
        .await
        .expect("an organization without the integration");
    let integration = app.integration;
    let status = ["--project", "ACC", "--resolved", "Done"];
    for (case, output, expected) in [
        (
            "unknown integration",
            set(&app, 999_999, &slug, &status),
            "no integration has id 999999".to_owned(),
        ),
        (
            "unknown organization",
            set(&app, integration, "no-such-org", &status),
            "no organization has slug \"no-such-org\"".to_owned(),
        ),
        (
            "organization without the integration",
            set(&app, integration, "unlinked", &status),
            format!("organization \"unlinked\" is not linked to integration {integration}"),
        ),
        (
            "no status",
            set(
                &app,
                integration,
                &slug,
                &["--project", "ACC", "--resolution", "Fixed"],
            ),
            "--resolved".to_owned(),
        ),
        (
            "empty project",
            set(
                &app,
                integration,
                &slug,
                &["--project", "", "--resolved", "Done"],
            ),
            "--project".to_owned(),
        ),
    ] {
        assert!(!output.status.success(), "{case}");
        let error = stderr(&output);
        assert!(error.contains(&expected), "{case}: {expected:?} in {error}");
    }
    let asked = app.server.received_requests().await.unwrap_or_default();
    assert!(asked.is_empty(), "no call to Jira: {asked:?}");
    assert!(rows(&app).await.is_empty());

    let stored = set(
        &app,
        integration,
        &slug,
        &["--project", "ACC", "--resolved", "Done", "--no-check"],
    );
    assert!(stored.status.success(), "{}", stderr(&stored));
    let integration = integration.to_string();
    let remove = |project: &str, org: &str| {
        let args = [
            "remove",
            "--integration",
            &integration,
            "--organization",
            org,
            "--project",
            project,
        ];
        printed(&status_map(&app, &args))
    };
    assert_eq!(remove("ACC", "unlinked"), json!({"removed": false}));
    assert_eq!(remove("acc", &slug), json!({"removed": true}));
    assert_eq!(remove("ACC", &slug), json!({"removed": false}));
    assert!(rows(&app).await.is_empty());
    app.finish().await;
}

#[tokio::test]
async fn a_push_finds_the_mapping_of_the_projects_key_before_the_one_of_its_id() {
    let (app, org, slug) = scene(None, "SM-4").await;
    let other = app.seed().org(app.integration, true, "SM-5").await;
    let link: i64 = app
        .db
        .query_one(
            "SELECT id FROM organization_integrations WHERE organization_id = $1",
            &[&org.id],
        )
        .await
        .expect("the link")
        .get(0);
    // Rows as the host application writes them: Sentry keys projects by id.
    app.db
        .execute(
            "INSERT INTO integration_external_projects
                    (organization_integration_id, external_id, resolved_status, resolution)
             VALUES ($1, '10000', 'by id', NULL), ($1, 'acc', 'by key', 'Fixed'), ($1, '', 'empty', NULL)",
            &[&link],
        )
        .await
        .expect("host-written mappings");
    let pool = jirasync::db::connect(&app.settings.database, 1)
        .await
        .expect("a pool");
    let client = pool.get().await.expect("a connection");
    let find = |organization: i64, integration: i64, key: &'static str, id: &'static str| {
        let client = &client;
        async move {
            mapping::find(client, organization, integration, key, id)
                .await
                .expect("find")
        }
    };
    let by_key = Mapping {
        project: "acc".to_owned(),
        resolved_status: some("by key"),
        unresolved_status: None,
        resolution: some("Fixed"),
    };
    assert_eq!(
        find(org.id, app.integration, "ACC", "10000").await,
        Some(by_key)
    );
    let by_id = find(org.id, app.integration, "CF", "10000").await;
    assert_eq!(by_id.as_ref().and_then(|m| m.target(true)), Some("by id"));
    assert_eq!(by_id.as_ref().and_then(|m| m.target(false)), None);
    assert_eq!(find(org.id, app.integration, "", "").await, None, "empty");
    assert_eq!(find(other.id, app.integration, "ACC", "10000").await, None);
    assert_eq!(
        find(org.id, app.integration + 1, "ACC", "10000").await,
        None
    );

    // `set` replaces the project's row whatever the case it was written in.
    let args = ["--project", "Acc", "--resolved", "Done", "--no-check"];
    assert!(set(&app, app.integration, &slug, &args).status.success());
    let found = find(org.id, app.integration, "acc", "").await;
    assert_eq!(
        found.map(|m| (m.project, m.resolved_status)),
        Some(("ACC".to_owned(), some("Done")))
    );
    let projects: Vec<String> = rows(&app).await.into_iter().map(|row| row.1).collect();
    assert_eq!(projects, ["", "10000", "ACC"]);
    app.finish().await;
}
