//! Hidden assignee emails (docs/reference.md §5.5) against the real RabbitMQ and Postgres and
//! the signature-verifying fake Jira: an assignee without `emailAddress` is looked
//! up with `GET /rest/api/2/user`, the answer is cached, Jira 5xx is retried, and an
//! integration without an access token asks nothing.

use crate::common;

use common::TestApp as Scene;
use common::app::T1;
use common::seed::assignee_changed;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

const USER_PATH: &str = "/rest/api/2/user";
const ACCESS_TOKEN: &str = "acc-tok";

/// A worker and an integration whose `base_url` is the fake Jira, with
/// credentials carrying `access_token` (or none).
async fn scene(concurrency: u16, access_token: Option<&str>) -> Scene {
    Scene::builder()
        .concurrency(concurrency)
        .credentials(access_token)
        .start()
        .await
}

/// Jira's assignee object with the email hidden.
fn hidden(name: &str) -> Value {
    json!({"name": name, "key": format!("JIRAUSER-{name}"), "displayName": name, "active": true})
}

impl Scene {
    /// `GET /rest/api/2/user?username=<name>` answers `status` with `body`, signature checked.
    async fn mount_user(&self, name: &str, status: u16, body: Value, times: Option<u64>) {
        let mock = Mock::given(method("GET"))
            .and(path(USER_PATH))
            .and(query_param("username", name))
            .respond_with(
                self.jira
                    .verified(ResponseTemplate::new(status).set_body_json(body)),
            );
        let mock = match times {
            Some(n) => mock.up_to_n_times(n),
            None => mock,
        };
        mock.mount(&self.server).await;
    }

    async fn user_requests(&self) -> usize {
        self.requests_to(USER_PATH).await.len()
    }
}

#[tokio::test]
async fn an_assignee_without_email_is_looked_up_in_jira_and_assigned() {
    let s = scene(2, Some(ACCESS_TOKEN)).await;
    let org = s.seed().org(s.integration, true, "HID-1").await;
    let user = s.seed().teammate(&org, "Hidden.Dev@Example.org").await;
    s.mount_user(
        "hdev",
        200,
        json!({"name": "hdev", "key": "JIRAUSER-hdev", "emailAddress": "hidden.dev@example.org", "active": true}),
        None,
    )
    .await;

    s.send(&assignee_changed("HID-1", hidden("hdev"), T1)).await;
    s.wait_assignee(org.group_id, Some(user)).await;

    let signed = s.jira.verified_requests();
    assert_eq!(signed.len(), 1, "one signed lookup");
    assert_eq!(
        signed[0].get("oauth_token").map(String::as_str),
        Some(ACCESS_TOKEN),
        "signed with the integration's access token"
    );
    let activity: Value =
        s.db.query_one(
            "SELECT data FROM activities WHERE group_id = $1 AND type = 'assigned'",
            &[&org.group_id],
        )
        .await
        .expect("assigned activity")
        .get(0);
    assert_eq!(activity["assigneeEmail"], "Hidden.Dev@Example.org");
    s.finish().await;
}

#[tokio::test]
async fn many_webhooks_for_the_same_user_make_one_lookup() {
    let s = scene(4, Some(ACCESS_TOKEN)).await;
    s.mount_user(
        "cached",
        200,
        json!({"name": "cached", "emailAddress": "cached@example.org"}),
        None,
    )
    .await;
    let mut expected = Vec::new();
    for n in 0..6 {
        let key = format!("CACHE-{n}");
        let org = s.seed().org(s.integration, true, &key).await;
        let user = s.seed().teammate(&org, "cached@example.org").await;
        expected.push((org.group_id, user));
    }

    for n in 0..6 {
        s.send(&assignee_changed(
            &format!("CACHE-{n}"),
            hidden("cached"),
            T1,
        ))
        .await;
    }
    for (group, user) in expected {
        s.wait_assignee(group, Some(user)).await;
    }
    assert_eq!(s.user_requests().await, 1, "one lookup for six webhooks");
    s.finish().await;
}

#[tokio::test]
async fn an_integration_without_access_token_asks_nothing_and_assigns_nothing() {
    let s = scene(1, None).await;
    let org = s.seed().org(s.integration, true, "NOTOK-1").await;
    s.seed().teammate(&org, "nobody@example.org").await;
    s.mount_user(
        "nobody",
        200,
        json!({"name": "nobody", "emailAddress": "nobody@example.org"}),
        None,
    )
    .await;

    s.send(&assignee_changed("NOTOK-1", hidden("nobody"), T1))
        .await;
    s.settle().await;

    assert_eq!(s.user_requests().await, 0, "no request can be signed");
    assert_eq!(s.assignee(org.group_id).await, None);
    assert_eq!(s.dead_letters().await, 0);
    s.finish().await;
}

#[tokio::test]
async fn a_user_jira_does_not_know_or_whose_email_it_hides_is_not_assigned() {
    let s = scene(1, Some(ACCESS_TOKEN)).await;
    let org = s.seed().org(s.integration, true, "GONE-1").await;
    s.seed().teammate(&org, "gone@example.org").await;
    s.mount_user("gone", 404, json!({"errorMessages": ["no user"]}), None)
        .await;
    s.mount_user("shy", 200, json!({"name": "shy", "emailAddress": ""}), None)
        .await;

    s.send(&assignee_changed("GONE-1", hidden("gone"), T1))
        .await;
    s.send(&assignee_changed("GONE-1", hidden("shy"), T1)).await;
    s.settle().await;

    assert_eq!(s.user_requests().await, 2);
    assert_eq!(s.assignee(org.group_id).await, None);
    assert_eq!(s.dead_letters().await, 0);
    s.finish().await;
}

#[tokio::test]
async fn jira_unavailable_then_back_is_retried_and_assigned() {
    let s = scene(1, Some(ACCESS_TOKEN)).await;
    let org = s.seed().org(s.integration, true, "FLAKY-1").await;
    let user = s.seed().teammate(&org, "flaky@example.org").await;
    // Mounted first, so it answers first; then the 200 takes over.
    s.mount_user("flaky", 503, json!({}), Some(1)).await;
    s.mount_user(
        "flaky",
        200,
        json!({"name": "flaky", "emailAddress": "flaky@example.org"}),
        None,
    )
    .await;

    s.send(&assignee_changed("FLAKY-1", hidden("flaky"), T1))
        .await;
    s.wait_assignee(org.group_id, Some(user)).await;

    assert_eq!(s.user_requests().await, 2, "a 503, then the retry");
    assert_eq!(s.dead_letters().await, 0);
    s.finish().await;
}
