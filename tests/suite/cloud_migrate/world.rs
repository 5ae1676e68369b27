//! The world of the migration tests: the test app's Data Center integration, a
//! Cloud integration on a fake site (`wiremock`) whose user search checks the API
//! token, and the helpers that run `jirasync integration migrate` and look at rows.

use base64::Engine;
use jirasync::integration::Credentials;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::seed::Org;
use crate::common::{self, TestApp};

/// The Cloud integration's account and API token.
pub const EMAIL: &str = "migrator@corp.example";
pub const API_TOKEN: &str = "cloud-api-token-7f3a9c1e";

/// A Data Center integration (the test app's) and a Cloud one on a fake site.
pub struct World {
    pub app: TestApp,
    pub cloud: MockServer,
    pub dc: i64,
    pub to: i64,
}

impl World {
    pub async fn new() -> Self {
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

    /// Cloud's user search finds Jane by her address, with it visible.
    pub async fn jane_on_cloud(&self) {
        self.users(
            "jane@corp.example",
            json!([{"accountId": "5b10-jane", "emailAddress": "jane@corp.example"}]),
        )
        .await;
    }

    /// `jirasync integration migrate --from DC --to CLOUD ARGS… --json`.
    pub fn migrate(&self, args: &[&str]) -> std::process::Output {
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
    pub fn migrated(&self, args: &[&str]) -> Value {
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
    pub async fn users(&self, email: &str, users: Value) {
        Mock::given(method("GET"))
            .and(path("/rest/api/3/user/search"))
            .and(query_param("query", email))
            .and(header("authorization", basic().as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(users))
            .mount(&self.cloud)
            .await;
    }

    /// The queries the fake Cloud was asked.
    pub async fn searched(&self) -> Vec<String> {
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
    pub fn dump(&self) -> String {
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

    pub async fn integration_of(&self, external_issue: i64) -> Option<i64> {
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

    pub async fn count(&self, sql: &str) -> i64 {
        self.app
            .db
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    /// A user mapped from `jira_user` of the Data Center integration, with
    /// `emails` (address, verified) in this order.
    pub async fn mapped_user(&self, jira_user: &str, emails: &[(&str, bool)]) -> (i64, String) {
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

    pub async fn map(&self, integration: i64, jira_user: &str, user: i64) {
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
    pub async fn linked_issue(&self, org: &Org, integration: i64, key: &str, group: i64) -> i64 {
        let issue = self.app.seed().issue(org.id, integration, key).await;
        self.app
            .seed()
            .link(group, org.project_id, "issue", issue)
            .await;
        issue
    }
}

/// `Basic base64(email:token)`.
pub fn basic() -> String {
    let pair = format!("{EMAIL}:{API_TOKEN}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// A `jira_cloud` integration of the site `cloud` (API token), saved as
/// `integration add --cloud` saves one.
pub async fn cloud_integration(app: &TestApp, cloud: &MockServer, cloud_id: &str) -> i64 {
    let credentials = Credentials::ApiToken {
        email: EMAIL.to_owned(),
        token: API_TOKEN.to_owned(),
    };
    crate::common::fake_cloud::connected_site(&app.settings, &cloud.uri(), cloud_id, &credentials)
        .await
        .id
}

/// The report `--json` prints.
#[allow(clippy::too_many_arguments)]
/// The report of a run that moved one issue with its link into a new
/// organization link and translated Jane's mapping.
pub fn one_issue_and_jane(world: &World) -> Value {
    report(
        world,
        (1, 0),
        (1, 0),
        (1, 0),
        (1, 0, json!([])),
        false,
        false,
    )
}

pub fn report(
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
