//! Reconciliation (docs/reference.md §6.2) against the real RabbitMQ and Postgres and the
//! signature-verifying fake Jira serving `POST /rest/api/2/search`: a lost webhook
//! is applied by the next reconciliation, an older search result does not undo a
//! newer webhook, a row held locked holds up only its own issue (the lock
//! timeout), one integration reconciles once at a time, and the CLI enqueues.

use crate::common;

use std::time::Duration;

use common::TestApp as Scene;
use common::app::{T1, WAIT};
use common::seed::{assignee_changed, jira_user};
use jirasync::commands::reconcile;
use jirasync::config::Settings;
use jirasync::queue::job::Job;
use jirasync::queue::message::message_type;
use jirasync::worker::jobs::Reconcile;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const SEARCH_PATH: &str = "/rest/api/2/search";
const T2: &str = "2024-01-01T11:00:00.000+0000";

/// An integration (with an access token) whose `base_url` is the fake Jira; no worker yet.
async fn scene() -> Scene {
    Scene::builder()
        .no_worker()
        .credentials(Some("acc-tok"))
        .configure(|settings| settings.worker.reconcile_interval = Duration::ZERO)
        .start()
        .await
}

/// `jirasync reconcile [--integration ID] [--since DURATION]` on these settings.
fn cli(settings: &Settings, integration: Option<i64>, since: Option<Duration>) -> reconcile::Args {
    reconcile::Args {
        integration,
        since,
        services: settings.services(),
    }
}

/// A search answer with one issue.
fn found(key: &str, assignee: Value, updated: &str) -> Value {
    json!({"startAt": 0, "maxResults": 100, "total": 1,
           "issues": [{"id": "10001", "key": key, "fields": {"assignee": assignee, "updated": updated}}]})
}

impl Scene {
    async fn mount_search(&self, answer: Value, delay: Duration) {
        Mock::given(method("POST"))
            .and(path(SEARCH_PATH))
            .respond_with(
                self.jira.verified(
                    ResponseTemplate::new(200)
                        .set_body_json(answer)
                        .set_delay(delay),
                ),
            )
            .mount(&self.server)
            .await;
    }

    async fn searches(&self) -> Vec<Value> {
        self.requests_to(SEARCH_PATH)
            .await
            .iter()
            .map(|request| serde_json::from_slice(&request.body).expect("search body is JSON"))
            .collect()
    }

    async fn reconcile(&self) {
        let job = Reconcile {
            integration_id: self.integration,
            since_ms: None,
        };
        let (_, body, props) = job.to_message();
        common::publish(&self.channel, &self.settings, Reconcile::TYPE, &body, props).await;
    }

    async fn reconciled(&self) -> bool {
        self.db
            .query_opt(
                "SELECT 1 FROM integration_reconciliations
                  WHERE integration_id = $1 AND reconciled_at IS NOT NULL",
                &[&self.integration],
            )
            .await
            .expect("integration_reconciliations")
            .is_some()
    }

    async fn wait_reconciled(&self) {
        common::eventually("the reconciliation is recorded", WAIT, || async move {
            self.reconciled().await
        })
        .await;
    }
}

#[tokio::test]
async fn a_lost_webhook_is_applied_by_the_next_reconciliation() {
    let scene = scene().await;
    let org = scene.seed().org(scene.integration, true, "LOST-1").await;
    let user = scene.seed().teammate(&org, "lost@example.org").await;
    scene
        .mount_search(
            found("LOST-1", jira_user("lost@example.org"), T1),
            Duration::ZERO,
        )
        .await;
    let worker = common::spawn_worker(&scene.settings);

    // The webhook that assigned the issue in Jira never arrived.
    scene.reconcile().await;
    scene.wait_assignee(org.group_id, Some(user)).await;
    scene.wait_reconciled().await;

    let searches = scene.searches().await;
    assert_eq!(searches.len(), 1, "one search: {searches:?}");
    let jql = searches[0]["jql"].as_str().expect("jql");
    assert!(
        jql.starts_with(r#"key in ("LOST-1") AND updated >= "-"#),
        "jql: {jql}"
    );
    assert_eq!(
        searches[0]["fields"],
        json!(["assignee", "status", "updated"])
    );
    assert_eq!(
        scene.jira.verified_requests().len(),
        1,
        "the search was signed"
    );

    worker.stop().await;
    scene.finish().await;
}

#[tokio::test]
async fn a_reconciliation_older_than_a_newer_webhook_does_not_undo_it() {
    let scene = scene().await;
    let org = scene.seed().org(scene.integration, true, "RACE-1").await;
    let newer = scene.seed().teammate(&org, "newer@example.org").await;
    let _older = scene.seed().teammate(&org, "older@example.org").await;
    scene
        .mount_search(
            found("RACE-1", jira_user("older@example.org"), T1),
            Duration::ZERO,
        )
        .await;
    let worker = common::spawn_worker(&scene.settings);

    let webhook = assignee_changed("RACE-1", jira_user("newer@example.org"), T2);
    scene.send(&webhook).await;
    scene.wait_assignee(org.group_id, Some(newer)).await;

    scene.reconcile().await;
    scene.wait_reconciled().await;
    assert_eq!(scene.searches().await.len(), 1);
    assert_eq!(scene.assignee(org.group_id).await, Some(newer));

    worker.stop().await;
    scene.finish().await;
}

#[tokio::test]
async fn a_row_held_locked_holds_up_only_its_own_issue_of_a_page() {
    let scene = scene().await;
    let held = scene.seed().org(scene.integration, true, "HELD-1").await;
    let held_user = scene.seed().teammate(&held, "held@example.org").await;
    let free = scene.seed().org(scene.integration, true, "FREE-1").await;
    let free_user = scene.seed().teammate(&free, "free@example.org").await;
    let issue = |id: &str, key: &str, email: &str| json!({"id": id, "key": key, "fields": {"assignee": jira_user(email), "updated": T1}});
    let answer = json!({"startAt": 0, "maxResults": 100, "total": 2, "issues": [
        issue("10001", "HELD-1", "held@example.org"),
        issue("10002", "FREE-1", "free@example.org"),
    ]});
    scene.mount_search(answer, Duration::ZERO).await;
    let holder = common::db(&scene.settings).await;
    holder
        .batch_execute("BEGIN; SELECT id FROM external_issues WHERE key = 'HELD-1' FOR UPDATE")
        .await
        .expect("lock one issue row");
    let worker = common::spawn_worker(&scene.settings);

    // The page's transaction gives up on the held row after the lock timeout,
    // and each issue is applied alone: the free one at once.
    scene.reconcile().await;
    scene.wait_assignee(free.group_id, Some(free_user)).await;
    assert_eq!(scene.assignee(held.group_id).await, None);
    assert!(
        !scene.reconciled().await,
        "the reconciliation waits for the held row"
    );
    holder
        .batch_execute("COMMIT")
        .await
        .expect("release the row");
    scene.wait_assignee(held.group_id, Some(held_user)).await;
    scene.wait_reconciled().await;
    assert_eq!(common::doubled_activities(&scene.db).await, 0);

    worker.stop().await;
    scene.finish().await;
}

#[tokio::test]
async fn two_reconcile_jobs_for_one_integration_search_once() {
    let mut scene = scene().await;
    scene.settings.worker.concurrency = 2;
    let org = scene.seed().org(scene.integration, true, "ONCE-1").await;
    let user = scene.seed().teammate(&org, "once@example.org").await;
    // The first search holds the lock for a while; the second job arrives meanwhile.
    scene
        .mount_search(
            found("ONCE-1", jira_user("once@example.org"), T1),
            Duration::from_secs(3),
        )
        .await;
    scene.reconcile().await;
    scene.reconcile().await;
    let worker = common::spawn_worker(&scene.settings);
    let second = common::spawn_worker(&scene.settings);

    scene.wait_assignee(org.group_id, Some(user)).await;
    scene.wait_reconciled().await;
    let jobs = common::names(&scene.settings).jobs();
    common::eventually("both jobs are consumed", WAIT, || async {
        common::depth(&scene.channel, &jobs).await == 0
    })
    .await;
    assert_eq!(
        scene.searches().await.len(),
        1,
        "only one reconciliation searched"
    );

    worker.stop().await;
    second.stop().await;
    scene.finish().await;
}

#[tokio::test]
async fn the_cli_enqueues_a_reconcile_job_and_refuses_an_unknown_integration() {
    let scene = scene().await;
    let _org = scene.seed().org(scene.integration, true, "CLI-1").await;

    let printed = reconcile::enqueue(&cli(
        &scene.settings,
        Some(scene.integration),
        Some(Duration::from_secs(3600)),
    ))
    .await
    .expect("reconcile enqueues");
    assert_eq!(
        printed["enqueued"][0]["integration_id"],
        json!(scene.integration)
    );

    let queue = common::names(&scene.settings).jobs();
    let message = common::get_one(&scene.channel, &queue, WAIT)
        .await
        .expect("a job was enqueued");
    assert_eq!(message_type(&message.delivery.properties), Reconcile::TYPE);
    let body: Value = serde_json::from_slice(&message.delivery.data).expect("job body is JSON");
    assert_eq!(body["integration_id"], json!(scene.integration));
    assert_eq!(body["since_ms"], printed["since_ms"]);

    let error = reconcile::enqueue(&cli(&scene.settings, Some(999_999), None))
        .await
        .expect_err("an unknown integration is refused");
    assert!(
        error
            .to_string()
            .contains("no active integration with id 999999"),
        "{error:#}"
    );
    scene.finish().await;
}

#[tokio::test]
async fn the_worker_schedules_reconciliations_every_interval() {
    let mut scene = scene().await;
    scene.settings.worker.reconcile_interval = Duration::from_secs(1);
    let org = scene.seed().org(scene.integration, true, "TICK-1").await;
    let user = scene.seed().teammate(&org, "tick@example.org").await;
    scene
        .mount_search(
            found("TICK-1", jira_user("tick@example.org"), T1),
            Duration::ZERO,
        )
        .await;
    let worker = common::spawn_worker(&scene.settings);

    scene.wait_assignee(org.group_id, Some(user)).await;
    scene.wait_reconciled().await;
    common::eventually("a second interval reconciles again", WAIT, || async {
        scene.searches().await.len() >= 2
    })
    .await;

    worker.stop().await;
    scene.finish().await;
}

/// A search answer with each of `keys` assigned to `email`.
fn found_all(keys: &[String], email: &str) -> Value {
    let issues: Vec<Value> = keys
        .iter()
        .map(|key| json!({"id": "1", "key": key, "fields": {"assignee": jira_user(email), "updated": T1}}))
        .collect();
    json!({"startAt": 0, "maxResults": 100, "total": issues.len(), "issues": issues})
}

/// `count` linked issues `RUN-0001`… in `org`'s project, each in a group of
/// its own; their groups.
async fn link_many(
    scene: &Scene,
    org: &common::seed::Org,
    count: usize,
) -> (Vec<String>, Vec<i64>) {
    let mut keys = Vec::new();
    let mut groups = Vec::new();
    for n in 1..=count {
        let key = format!("RUN-{n:04}");
        let group = scene.seed().group(org.project_id, "unresolved").await;
        let issue = scene.seed().issue(org.id, scene.integration, &key).await;
        scene
            .seed()
            .link(group, org.project_id, "issue", issue)
            .await;
        keys.push(key);
        groups.push(group);
    }
    (keys, groups)
}

/// Mounts, for each page of 100 of `keys`, a search answering them assigned
/// to `email`, matched by the page's first key.
async fn mount_pages(scene: &Scene, keys: &[String], email: &str, status: u16, times: u64) {
    for page in keys.chunks(100) {
        let first = format!("\"{}\"", page[0]);
        let names_first = move |request: &wiremock::Request| {
            serde_json::from_slice::<Value>(&request.body)
                .is_ok_and(|body| body["jql"].as_str().is_some_and(|jql| jql.contains(&first)))
        };
        let mock = Mock::given(method("POST"))
            .and(path(SEARCH_PATH))
            .and(names_first)
            .respond_with(scene.jira.verified(match status {
                200 => ResponseTemplate::new(200).set_body_json(found_all(page, email)),
                other => ResponseTemplate::new(other),
            }));
        let mock = if times > 0 {
            mock.up_to_n_times(times)
        } else {
            mock
        };
        mock.mount(&scene.server).await;
    }
}

/// How many searches asked for the page starting with `key`.
async fn searched(scene: &Scene, key: &str) -> usize {
    let quoted = format!("\"{key}\"");
    scene
        .searches()
        .await
        .iter()
        .filter(|search| {
            search["jql"]
                .as_str()
                .is_some_and(|jql| jql.contains(&quoted))
        })
        .count()
}

#[tokio::test]
async fn a_reconciliation_runs_in_slices_each_a_job_of_its_own() {
    let scene = Scene::builder()
        .no_worker()
        .credentials(Some("acc-tok"))
        .configure(|settings| {
            settings.worker.reconcile_interval = Duration::ZERO;
            // One search per delivery.
            settings.worker.reconcile_slice = Duration::ZERO;
        })
        .start()
        .await;
    let org = scene.seed().org(scene.integration, true, "RUN-0000").await;
    let user = scene.seed().teammate(&org, "slices@example.org").await;
    let (keys, groups) = link_many(&scene, &org, 250).await;
    let mut all = vec!["RUN-0000".to_owned()];
    all.extend(keys);
    mount_pages(&scene, &all, "slices@example.org", 200, 0).await;
    let worker = common::spawn_worker(&scene.settings);

    scene.reconcile().await;
    scene.wait_reconciled().await;
    for group in groups.iter().chain([&org.group_id]) {
        assert_eq!(scene.assignee(*group).await, Some(user), "group {group}");
    }
    // Three pages, each searched once, by three deliveries.
    for first in ["RUN-0000", "RUN-0100", "RUN-0200"] {
        assert_eq!(searched(&scene, first).await, 1, "page of {first}");
    }
    assert_eq!(scene.searches().await.len(), 3);
    // Each page was applied by a delivery of its own: its audit rows name it.
    let row = scene
        .db
        .query_one(
            "SELECT count(DISTINCT message_id),
                    count(DISTINCT (message_id, substr(issue_key, 1, 6)))
               FROM sync_events WHERE kind = 'assignee' AND issue_key LIKE 'RUN-%'",
            &[],
        )
        .await
        .expect("audit rows");
    let (deliveries, pairs): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!((deliveries, pairs), (3, 3), "one delivery per page");
    let run: Option<String> = scene
        .db
        .query_one(
            "SELECT run_after_key FROM integration_reconciliations WHERE integration_id = $1",
            &[&scene.integration],
        )
        .await
        .expect("the reconciliation row")
        .get(0);
    assert_eq!(run, None, "the run ended");
    assert_eq!(scene.dead_letters().await, 0);
    worker.stop().await;
    scene.finish().await;
}

#[tokio::test]
async fn a_reconciliation_that_fails_half_way_resumes_where_it_stopped() {
    let scene = scene().await;
    let org = scene.seed().org(scene.integration, true, "RUN-0000").await;
    let user = scene.seed().teammate(&org, "resume@example.org").await;
    let (keys, groups) = link_many(&scene, &org, 250).await;
    let mut all = vec!["RUN-0000".to_owned()];
    all.extend(keys);
    // The third page fails once (Jira answers 503), then answers.
    mount_pages(&scene, &all[200..], "resume@example.org", 503, 1).await;
    mount_pages(&scene, &all, "resume@example.org", 200, 0).await;
    let worker = common::spawn_worker(&scene.settings);

    scene.reconcile().await;
    scene.wait_reconciled().await;
    for group in groups.iter().chain([&org.group_id]) {
        assert_eq!(scene.assignee(*group).await, Some(user), "group {group}");
    }
    // The redelivery asked again only for the page that failed.
    assert_eq!(searched(&scene, "RUN-0000").await, 1);
    assert_eq!(searched(&scene, "RUN-0100").await, 1);
    assert_eq!(searched(&scene, "RUN-0200").await, 2);
    assert_eq!(scene.dead_letters().await, 0);
    worker.stop().await;
    scene.finish().await;
}
