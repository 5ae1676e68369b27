//! Outbound sync when Jira or the queue misbehave (issue #24, "Bad input and
//! faults"), end to end against the real Postgres and RabbitMQ, the real
//! worker, and a fake Jira ([`FakeJira`] here) that keeps its issues' status
//! and assignee, checks every call (method, path, the whole query, the
//! credentials, the body) and records each with the time it came: the status
//! pushed and reopened, a 500 retried and pushed once, retries exhausted, a 429
//! honoured by every worker, a transition that demands a field refused and
//! replayed once fixed, a group deleted while its push waits, an unverified
//! email never sent, and the push with a PAT and with OAuth 2.0 leaving no
//! token in the audit, the dead letter or the worker's log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jirasync::outbound::mapping::{self, Mapping};
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use crate::common::app::WAIT;
use crate::common::fake_jira;
use crate::common::fake_oauth2::{CLIENT_SECRET, FakeOAuth2, PAT, SecretFile};
use crate::common::seed::Org;
use crate::common::{self, TestApp as Scene, eventually};

const OPEN: (&str, &str) = ("1", "Open");
const DONE: (&str, &str) = ("10001", "Done");
const REOPENED: (&str, &str) = ("4", "Reopened");
const CLOSED: (&str, &str) = ("6", "Closed");
/// The custom field the resolve transition demands when the workflow is strict.
const ROOT_CAUSE: &str = "customfield_10100";

/// How the fake checks a call's credentials.
enum Auth {
    /// An OAuth 1.0a signature with the app's access token.
    OAuth1(Arc<fake_jira::FakeJira>),
    /// `Authorization: Bearer <token>`.
    Bearer(String),
}

/// One call the fake received.
#[derive(Debug, Clone)]
struct Call {
    at: Instant,
    method: String,
    path: String,
    query: String,
    body: Value,
    answered: u16,
}

/// What the fake holds and saw.
#[derive(Default)]
struct Books {
    /// Issue key → status (id, name).
    status: HashMap<String, (&'static str, &'static str)>,
    /// Issue key → assignee name.
    assignee: HashMap<String, Option<String>>,
    /// Lower-case email → Jira user name, for `user/assignable/search`.
    users: HashMap<String, String>,
    /// Issue key → (answer to its writes instead of taking them, how many times).
    faults: HashMap<String, (Answered, usize)>,
    /// Whether `Resolve Issue` demands [`ROOT_CAUSE`].
    strict: bool,
    /// Writes taken, for `updated`.
    writes: u32,
    calls: Vec<Call>,
    /// Calls the fake did not expect (or whose credentials failed).
    unexpected: Vec<String>,
}

/// A Jira with a workflow Open/Reopened → (Resolve Issue) Done, → (Close Issue)
/// Closed, Done/Closed → (Reopen Issue) Reopened.
struct FakeJira {
    auth: Auth,
    books: Mutex<Books>,
}

/// An answer and its status (a `ResponseTemplate` does not tell its own).
type Answered = (u16, ResponseTemplate);

/// An answer with `status` and a JSON `body`.
fn answer(status: u16, body: Value) -> Answered {
    (status, ResponseTemplate::new(status).set_body_json(body))
}

/// The responder mounted for every path.
struct Answer(Arc<FakeJira>);

impl Respond for Answer {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.answer(request)
    }
}

impl FakeJira {
    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Mounts it as the app's Jira, answering every call.
    async fn mount(app: &Scene, auth: Auth) -> Arc<Self> {
        let fake = Arc::new(Self {
            auth,
            books: Mutex::new(Books::default()),
        });
        Mock::given(any())
            .respond_with(Answer(Arc::clone(&fake)))
            .mount(&app.server)
            .await;
        fake
    }

    /// An issue `key` in status Open, unassigned.
    fn issue(&self, key: &str) {
        let mut books = self.books();
        books.status.insert(key.to_owned(), OPEN);
        books.assignee.insert(key.to_owned(), None);
    }

    /// A Jira user `name` whose address is `email`.
    fn user(&self, email: &str, name: &str) {
        self.books()
            .users
            .insert(email.to_lowercase(), name.to_owned());
    }

    /// The next `times` writes to `key` are answered `answer` (and not taken).
    fn fail_writes(&self, key: &str, answer: Answered, times: usize) {
        self.books().faults.insert(key.to_owned(), (answer, times));
    }

    fn calls(&self) -> Vec<Call> {
        self.books().calls.clone()
    }

    /// The bodies of the transitions posted to `key` (taken or not).
    fn transitions_posted(&self, key: &str) -> Vec<Value> {
        let path = format!("/rest/api/2/issue/{key}/transitions");
        self.calls()
            .into_iter()
            .filter(|call| call.method == "POST" && call.path == path)
            .map(|call| call.body)
            .collect()
    }

    fn status_of(&self, key: &str) -> &'static str {
        self.books().status.get(key).map_or("", |status| status.1)
    }

    /// Fails the test when a call was not one the fake expects.
    fn assert_expected(&self) {
        let unexpected = self.books().unexpected.clone();
        assert!(unexpected.is_empty(), "unexpected calls: {unexpected:#?}");
    }

    fn authorized(&self, request: &Request) -> bool {
        match &self.auth {
            Auth::OAuth1(jira) => jira.verify(request).is_ok(),
            Auth::Bearer(token) => {
                request
                    .headers
                    .get("authorization")
                    .and_then(|value| value.to_str().ok())
                    == Some(&format!("Bearer {token}"))
            }
        }
    }

    fn answer(&self, request: &Request) -> ResponseTemplate {
        let method = request.method.as_str().to_owned();
        let path = request.url.path().to_owned();
        let query = request.url.query().unwrap_or_default().to_owned();
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let ((answered, template), expected) = if self.authorized(request) {
            self.route(&method, &path, &query, &body)
        } else {
            (
                answer(401, json!({"errorMessages": ["bad credentials"]})),
                false,
            )
        };
        let mut books = self.books();
        if !expected {
            books
                .unexpected
                .push(format!("{method} {path}?{query} {body}"));
        }
        books.calls.push(Call {
            at: Instant::now(),
            method,
            path,
            query,
            body,
            answered,
        });
        template
    }

    /// The answer to a call, and whether the fake expects the call.
    fn route(&self, method: &str, path: &str, query: &str, body: &Value) -> (Answered, bool) {
        let not_found = || answer(404, json!({"errorMessages": ["no such thing"]}));
        let mut books = self.books();
        if method == "GET" && path == "/rest/api/2/user/assignable/search" {
            let pairs: HashMap<String, String> = url_pairs(query);
            let email = pairs.get("username").cloned().unwrap_or_default();
            let key = pairs.get("issueKey").cloned().unwrap_or_default();
            if pairs.len() != 2 || !books.status.contains_key(&key) {
                return (not_found(), false);
            }
            let found: Vec<Value> = books
                .users
                .get(&email.to_lowercase())
                .map(|name| json!({"name": name, "key": format!("JIRAUSER-{name}"), "emailAddress": email.to_lowercase(), "active": true}))
                .into_iter()
                .collect();
            return (answer(200, json!(found)), true);
        }
        let Some(rest) = path.strip_prefix("/rest/api/2/issue/") else {
            return (not_found(), false);
        };
        let (key, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let Some(&status) = books.status.get(key) else {
            return (not_found(), false);
        };
        let key = key.to_owned();
        match (method, tail) {
            ("GET", "") if url_pairs(query) == fields_query() => {
                let assignee = books.assignee.get(&key).cloned().flatten();
                let updated = format!("2024-01-01T10:{:02}:00.000+0000", books.writes % 60);
                (
                    answer(
                        200,
                        json!({
                            "key": key,
                            "fields": {
                                "assignee": assignee.map(|name| json!({"name": name})),
                                "status": {"id": status.0, "name": status.1},
                                "project": {"id": "10000", "key": "OUT"},
                                "updated": updated,
                            }
                        }),
                    ),
                    true,
                )
            }
            ("GET", "transitions") if query == "expand=transitions.fields" => {
                let transitions: Vec<Value> = offered(status, books.strict)
                    .into_iter()
                    .map(|(id, name, to, fields)| {
                        json!({"id": id, "name": name, "to": {"id": to.0, "name": to.1}, "fields": fields})
                    })
                    .collect();
                (
                    answer(
                        200,
                        json!({"expand": "transitions", "transitions": transitions}),
                    ),
                    true,
                )
            }
            ("POST", "transitions") if query.is_empty() => {
                let id = body["transition"]["id"].as_str().unwrap_or_default();
                let Some((_, _, to, fields)) = offered(status, books.strict)
                    .into_iter()
                    .find(|transition| transition.0 == id)
                else {
                    return (
                        answer(
                            400,
                            json!({"errorMessages": [format!("no transition {id}")], "errors": {}}),
                        ),
                        false,
                    );
                };
                let sent = body["fields"].as_object().cloned().unwrap_or_default();
                let keys_ok = body
                    .as_object()
                    .is_some_and(|b| b.keys().all(|k| k == "transition" || k == "fields"));
                let resolution_ok = match fields.get("resolution") {
                    Some(_) => sent.get("resolution") == Some(&json!({"name": "Fixed"})),
                    None => !sent.contains_key("resolution"),
                };
                let missing = fields
                    .as_object()
                    .is_some_and(|f| f.keys().any(|k| k != "resolution" && !sent.contains_key(k)));
                if !keys_ok || !resolution_ok || sent.keys().any(|k| k != "resolution") {
                    return (
                        answer(400, json!({"errorMessages": ["bad body"], "errors": {}})),
                        false,
                    );
                }
                if missing {
                    return (
                        answer(
                            400,
                            json!({"errorMessages": [], "errors": {ROOT_CAUSE: "Root cause is required."}}),
                        ),
                        true,
                    );
                }
                if let Some(fault) = books.fault(&key) {
                    return (fault, true);
                }
                books.status.insert(key, to);
                books.writes += 1;
                ((204, ResponseTemplate::new(204)), true)
            }
            ("PUT", "assignee") if query.is_empty() => {
                let Some(name) = body
                    .get("name")
                    .filter(|_| body.as_object().map(|b| b.len()) == Some(1))
                else {
                    return (
                        answer(400, json!({"errorMessages": ["bad assignee"]})),
                        false,
                    );
                };
                let name = name.as_str().map(str::to_owned);
                if name
                    .as_ref()
                    .is_some_and(|name| !books.users.values().any(|n| n == name))
                {
                    return (
                        answer(400, json!({"errorMessages": ["bad assignee"]})),
                        false,
                    );
                }
                if let Some(fault) = books.fault(&key) {
                    return (fault, true);
                }
                books.assignee.insert(key, name);
                books.writes += 1;
                ((204, ResponseTemplate::new(204)), true)
            }
            _ => (not_found(), false),
        }
    }
}

impl Books {
    /// The fault answer to the next write to `key`, if one is due.
    fn fault(&mut self, key: &str) -> Option<Answered> {
        let (answer, times) = self.faults.get_mut(key)?;
        if *times == 0 {
            return None;
        }
        *times -= 1;
        Some(answer.clone())
    }
}

/// The transitions offered from `status`: (id, name, to, fields).
fn offered(
    status: (&str, &str),
    strict: bool,
) -> Vec<(
    &'static str,
    &'static str,
    (&'static str, &'static str),
    Value,
)> {
    if status == DONE || status == CLOSED {
        return vec![("3", "Reopen Issue", REOPENED, json!({}))];
    }
    let mut resolve =
        json!({"resolution": {"required": true, "name": "Resolution", "hasDefaultValue": false}});
    if strict {
        resolve[ROOT_CAUSE] =
            json!({"required": true, "name": "Root cause", "hasDefaultValue": false});
    }
    vec![
        ("5", "Resolve Issue", DONE, resolve),
        ("2", "Close Issue", CLOSED, json!({})),
    ]
}

/// The query of `GET …/issue/{key}` jirasync must send.
fn fields_query() -> HashMap<String, String> {
    HashMap::from([(
        "fields".to_owned(),
        "assignee,status,project,updated".to_owned(),
    )])
}

/// A query's pairs, decoded.
fn url_pairs(query: &str) -> HashMap<String, String> {
    reqwest::Url::parse(&format!("http://q/?{query}"))
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

impl Scene {
    /// Turns on the push of statuses (and assignments) for the organization.
    async fn forward(&self, organization: i64) {
        self.db
            .execute(
                "UPDATE organization_integrations
                    SET config = config || '{\"sync_status_forward\": true, \"sync_forward_assignment\": true}'
                  WHERE organization_id = $1",
                &[&organization],
            )
            .await
            .expect("forward");
    }

    /// Stores the status map of project OUT for `org` (the `status_map` store):
    /// resolved → `resolved`, unresolved → Reopened, resolution Fixed.
    async fn map_statuses(&self, org: &Org, resolved: &str) {
        let slug = self.slug(org).await;
        let pool = jirasync::db::connect(&self.settings.database, 1)
            .await
            .expect("a pool");
        let db = pool.get().await.expect("a connection");
        let link = mapping::link(&db, self.integration, &slug)
            .await
            .expect("the organization is linked");
        let map = Mapping {
            project: "OUT".into(),
            resolved_status: Some(resolved.into()),
            unresolved_status: Some(REOPENED.1.into()),
            resolution: Some("Fixed".into()),
        };
        mapping::set(&db, &link, &map).await.expect("status map");
    }

    async fn slug(&self, org: &Org) -> String {
        self.db
            .query_one("SELECT slug FROM organizations WHERE id = $1", &[&org.id])
            .await
            .expect("slug")
            .get(0)
    }

    /// The application sets the group's status.
    async fn host_sets_status(&self, group: i64, status: &str) {
        self.db
            .execute(
                "UPDATE groups SET status = $2 WHERE id = $1",
                &[&group, &status],
            )
            .await
            .expect("host sets the status");
    }

    /// Waits until `count` decisions with `outcome` are recorded about `key`; their details.
    async fn wait_decisions(&self, key: &str, outcome: &str, count: usize) -> Vec<Value> {
        let find = || async {
            self.outbound_events(key)
                .await
                .into_iter()
                .filter(|(_, o, _)| o == outcome)
                .map(|(_, _, detail)| detail)
                .collect::<Vec<_>>()
        };
        eventually(
            &format!("{key} recorded {outcome} ×{count}"),
            WAIT,
            || async { find().await.len() >= count },
        )
        .await;
        find().await
    }

    /// Every `sync_events` row as text.
    async fn audit_text(&self) -> String {
        self.db
            .query("SELECT row_to_json(e)::text FROM sync_events e", &[])
            .await
            .expect("sync events")
            .iter()
            .map(|row| row.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn pending(&self) -> i64 {
        self.db
            .query_one("SELECT count(*) FROM outbound_pending", &[])
            .await
            .expect("pending")
            .get(0)
    }
}

/// A scene whose worker the test starts, with the fake Jira (OAuth 1.0a) mounted.
async fn with_no_worker() -> (Scene, Arc<FakeJira>) {
    let s = Scene::builder()
        .credentials(Some("acc-tok"))
        .no_worker()
        .start()
        .await;
    let jira = FakeJira::mount(&s, Auth::OAuth1(Arc::clone(&s.jira))).await;
    (s, jira)
}

/// An organization with assignee and status push on, its group unresolved and
/// linked to `key`, which the fake holds Open; the status map stored.
async fn pushing_org(s: &Scene, jira: &FakeJira, key: &str) -> Org {
    let org = s.seed().org(s.integration, true, key).await;
    s.forward(org.id).await;
    s.map_statuses(&org, DONE.1).await;
    jira.issue(key);
    org
}

#[tokio::test]
async fn a_resolution_is_pushed_with_its_resolution_and_a_regression_reopens_the_issue() {
    let s = Scene::builder().credentials(Some("acc-tok")).start().await;
    let jira = FakeJira::mount(&s, Auth::OAuth1(Arc::clone(&s.jira))).await;
    let org = pushing_org(&s, &jira, "FLT-1").await;

    s.host_sets_status(org.group_id, "resolved").await;
    let pushed = s.wait_decisions("FLT-1", "pushed", 1).await;
    assert_eq!(pushed[0]["change"], "resolve");
    assert_eq!(pushed[0]["to"], DONE.1);
    assert_eq!(
        jira.transitions_posted("FLT-1"),
        [json!({"transition": {"id": "5"}, "fields": {"resolution": {"name": "Fixed"}}})]
    );
    assert_eq!(jira.status_of("FLT-1"), DONE.1);

    // The application unresolves it again: Jira's issue is reopened.
    s.host_sets_status(org.group_id, "unresolved").await;
    let pushed = s.wait_decisions("FLT-1", "pushed", 2).await;
    assert_eq!(pushed[1]["change"], "unresolve");
    assert_eq!(pushed[1]["to"], REOPENED.1);
    assert_eq!(
        jira.transitions_posted("FLT-1")[1..],
        [json!({"transition": {"id": "3"}})]
    );
    assert_eq!(jira.status_of("FLT-1"), REOPENED.1);
    jira.assert_expected();
    s.finish().await;
}

#[tokio::test]
async fn a_jira_500_on_the_write_is_retried_and_the_push_lands_once() {
    let s = Scene::builder().credentials(Some("acc-tok")).start().await;
    let jira = FakeJira::mount(&s, Auth::OAuth1(Arc::clone(&s.jira))).await;
    let org = pushing_org(&s, &jira, "FLT-2").await;
    jira.fail_writes(
        "FLT-2",
        (
            500,
            ResponseTemplate::new(500).set_body_string("Internal Server Error"),
        ),
        1,
    );

    s.host_sets_status(org.group_id, "resolved").await;
    s.wait_decisions("FLT-2", "pushed", 1).await;
    let answers: Vec<u16> = jira
        .calls()
        .iter()
        .filter(|call| call.method == "POST")
        .map(|call| call.answered)
        .collect();
    assert_eq!(answers, [500, 204], "tried again after the 500, taken once");
    assert_eq!(jira.status_of("FLT-2"), DONE.1);
    eventually("nothing pending", WAIT, || async { s.pending().await == 0 }).await;
    let outcomes: Vec<String> = s
        .outbound_events("FLT-2")
        .await
        .into_iter()
        .map(|d| d.1)
        .collect();
    assert_eq!(outcomes, ["pushed"], "one decision");
    assert_eq!(s.dead_letters().await, 0);
    jira.assert_expected();
    s.finish().await;
}

#[tokio::test]
async fn a_push_whose_retries_run_out_is_recorded_failed_with_the_last_error_and_dead_lettered() {
    let s = Scene::builder()
        .credentials(Some("acc-tok"))
        .configure(|settings| settings.worker.jira_outage_max = Duration::from_secs(3))
        .start()
        .await;
    let jira = FakeJira::mount(&s, Auth::OAuth1(Arc::clone(&s.jira))).await;
    let org = pushing_org(&s, &jira, "FLT-3").await;
    jira.fail_writes(
        "FLT-3",
        (
            502,
            ResponseTemplate::new(502).set_body_string("Bad Gateway from the proxy"),
        ),
        usize::MAX,
    );

    s.host_sets_status(org.group_id, "resolved").await;
    let failed = s.wait_decisions("FLT-3", "failed", 1).await;
    let message = failed[0]["jira_message"].as_str().unwrap_or_default();
    assert!(message.contains("502"), "the last error: {failed:?}");
    eventually("dead-lettered", WAIT, || async {
        s.dead_letters().await == 1
    })
    .await;
    let tries = jira.transitions_posted("FLT-3").len();
    assert!(tries >= 2, "retried before giving up: {tries}");
    assert_eq!(jira.status_of("FLT-3"), OPEN.1);
    assert_eq!(s.pending().await, 0, "the pending push is settled");
    jira.assert_expected();
    s.finish().await;
}

#[tokio::test]
async fn after_a_429_no_worker_calls_that_jira_before_its_retry_after_then_both_push() {
    let retry_after = Duration::from_secs(4);
    let (s, jira) = with_no_worker().await;
    let workers = [
        common::spawn_worker(&s.settings),
        common::spawn_worker(&s.settings),
    ];
    let first = pushing_org(&s, &jira, "FLT-4").await;
    let second = pushing_org(&s, &jira, "FLT-5").await;
    jira.fail_writes(
        "FLT-4",
        (
            429,
            ResponseTemplate::new(429)
                .insert_header("Retry-After", retry_after.as_secs().to_string().as_str())
                .set_body_string("Too many requests"),
        ),
        1,
    );

    s.host_sets_status(first.group_id, "resolved").await;
    eventually("Jira answered 429", WAIT, || async {
        jira.calls().iter().any(|call| call.answered == 429)
    })
    .await;
    eventually("the throttle is stored", WAIT, || async {
        let rows: i64 =
            s.db.query_one("SELECT count(*) FROM outbound_throttles", &[])
                .await
                .expect("throttles")
                .get(0);
        rows == 1
    })
    .await;
    // The other issue changes while Jira asks for quiet.
    s.host_sets_status(second.group_id, "resolved").await;
    s.wait_decisions("FLT-4", "pushed", 1).await;
    s.wait_decisions("FLT-5", "pushed", 1).await;

    let calls = jira.calls();
    let throttled_at = calls
        .iter()
        .find(|call| call.answered == 429)
        .map(|call| call.at)
        .expect("the 429");
    let early: Vec<String> = calls
        .iter()
        .filter(|call| call.at > throttled_at && call.at < throttled_at + retry_after)
        .map(|call| {
            format!(
                "{} {} after {:?}",
                call.method,
                call.path,
                call.at - throttled_at
            )
        })
        .collect();
    assert!(early.is_empty(), "calls within Retry-After: {early:#?}");
    assert_eq!(jira.status_of("FLT-4"), DONE.1);
    assert_eq!(jira.status_of("FLT-5"), DONE.1);
    jira.assert_expected();
    for worker in workers {
        worker.stop().await;
    }
    s.finish().await;
}

#[tokio::test]
async fn a_transition_that_demands_a_field_is_refused_and_replayed_once_the_mapping_is_fixed() {
    let s = Scene::builder().credentials(Some("acc-tok")).start().await;
    let jira = FakeJira::mount(&s, Auth::OAuth1(Arc::clone(&s.jira))).await;
    let org = pushing_org(&s, &jira, "FLT-6").await;
    jira.books().strict = true;

    s.host_sets_status(org.group_id, "resolved").await;
    let refused = s.wait_decisions("FLT-6", "refused", 1).await;
    let message = refused[0]["jira_message"].as_str().unwrap_or_default();
    assert!(message.contains(ROOT_CAUSE), "{refused:?}");
    eventually("dead-lettered", WAIT, || async {
        s.dead_letters().await == 1
    })
    .await;
    assert!(jira.transitions_posted("FLT-6").is_empty(), "nothing sent");
    let outcomes: Vec<String> = s
        .outbound_events("FLT-6")
        .await
        .into_iter()
        .map(|d| d.1)
        .collect();
    assert_eq!(
        outcomes,
        ["refused"],
        "the dead letter records nothing more"
    );

    // The mapping is fixed: resolved issues go to Closed, which needs no field.
    let slug = s.slug(&org).await;
    let integration = s.integration.to_string();
    let set = common::output(
        &[
            "status-map",
            "set",
            "--integration",
            &integration,
            "--organization",
            &slug,
            "--project",
            "OUT",
            "--resolved",
            CLOSED.1,
            "--unresolved",
            REOPENED.1,
            "--no-check",
        ],
        &s.settings,
    );
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let replay = common::output(&["dlq", "replay"], &s.settings);
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );

    let pushed = s.wait_decisions("FLT-6", "pushed", 1).await;
    assert_eq!(pushed[0]["to"], CLOSED.1);
    assert_eq!(
        jira.transitions_posted("FLT-6"),
        [json!({"transition": {"id": "2"}})]
    );
    assert_eq!(jira.status_of("FLT-6"), CLOSED.1);
    assert_eq!(s.dead_letters().await, 0);
    jira.assert_expected();
    s.finish().await;
}

#[tokio::test]
async fn a_group_deleted_while_its_push_waits_sends_nothing_and_dead_letters_nothing() {
    let log = SecretFile::new("");
    let (s, jira) = with_no_worker().await;
    let org = pushing_org(&s, &jira, "FLT-7").await;
    // The push's lock held, so it waits between its message and its claim.
    let mut holder = common::db(&s.settings).await;
    let lock = holder.transaction().await.expect("transaction");
    lock.execute(
        jirasync::outbound::claim::LOCK,
        &[&org.external_issue_id, &"status"],
    )
    .await
    .expect("lock");
    let worker = common::process_logged(
        "worker",
        &s.settings,
        &[("RUST_LOG", "info".into())],
        &log.0,
    );

    s.host_sets_status(org.group_id, "resolved").await;
    eventually("the push waits for its lock", WAIT, || async {
        common::a_backend_waits_on_a_lock(&s.db).await
    })
    .await;
    s.db.execute("DELETE FROM groups WHERE id = $1", &[&org.group_id])
        .await
        .expect("the application deletes the group");
    lock.commit().await.expect("release");

    eventually("the push is dropped", WAIT, || async {
        s.pending().await == 0
    })
    .await;
    eventually("the drop is logged", WAIT, || async {
        std::fs::read_to_string(&log.0).is_ok_and(|text| text.contains("not pushed"))
    })
    .await;
    assert!(jira.calls().is_empty(), "nothing sent: {:?}", jira.calls());
    assert!(
        s.outbound_events("FLT-7").await.is_empty(),
        "no decision to record"
    );
    assert_eq!(s.dead_letters().await, 0, "no dead letter");
    drop(worker);
    s.finish().await;
}

#[tokio::test]
async fn an_unverified_email_that_matches_a_jira_user_is_never_sent() {
    let s = Scene::builder().credentials(Some("acc-tok")).start().await;
    let jira = FakeJira::mount(&s, Auth::OAuth1(Arc::clone(&s.jira))).await;
    let org = pushing_org(&s, &jira, "FLT-8").await;
    let email = "mallory@example.org";
    jira.user(email, "mallory");
    let user = s.seed().user(email, false, true).await;
    s.seed().member(&org, user, true).await;

    s.host_assigns(org.group_id, org.project_id, user).await;
    let decided = s.wait_decisions("FLT-8", "no_jira_user", 1).await;
    assert_eq!(decided[0]["change"], "assign");
    let leaked: Vec<Call> = jira
        .calls()
        .into_iter()
        .filter(|call| call.query.contains("mallory") || call.body.to_string().contains("mallory"))
        .collect();
    assert!(
        leaked.is_empty(),
        "the unverified address reached Jira: {leaked:?}"
    );
    assert_eq!(jira.books().assignee.get("FLT-8"), Some(&None));
    jira.assert_expected();
    s.finish().await;
}

/// Pushes a resolution with the integration's Bearer `token`, and has a second
/// issue refused (a dead letter); asserts no secret in the audit, the dead
/// letter or the worker's log.
async fn a_push_with_a_bearer(s: Scene, token: &str, secrets: &[&str]) {
    let log = SecretFile::new("");
    let worker = common::process_logged(
        "worker",
        &s.settings,
        &[("RUST_LOG", "debug".into())],
        &log.0,
    );
    let jira = FakeJira::mount(&s, Auth::Bearer(token.to_owned())).await;
    let org = pushing_org(&s, &jira, "FLT-9").await;
    let other = pushing_org(&s, &jira, "FLT-10").await;
    jira.fail_writes(
        "FLT-10",
        answer(
            403,
            json!({"errorMessages": ["You do not have permission."], "errors": {}}),
        ),
        usize::MAX,
    );

    s.host_sets_status(org.group_id, "resolved").await;
    s.host_sets_status(other.group_id, "resolved").await;
    s.wait_decisions("FLT-9", "pushed", 1).await;
    s.wait_decisions("FLT-10", "refused", 1).await;
    assert_eq!(jira.status_of("FLT-9"), DONE.1);
    jira.assert_expected();
    assert!(!jira.calls().is_empty());

    let names = common::names(&s.settings);
    let dead = common::get_one(&s.channel, &names.dead(), WAIT)
        .await
        .expect("the refused push is dead-lettered");
    let letter = format!(
        "{:?} {}",
        dead.delivery.properties,
        String::from_utf8_lossy(&dead.delivery.data)
    );
    let audit = s.audit_text().await;
    let logged = std::fs::read_to_string(&log.0).unwrap_or_default();
    assert!(
        logged.contains("FLT-9") || logged.contains("push"),
        "the log is captured"
    );
    for secret in secrets {
        assert!(!audit.contains(secret), "a secret in sync_events: {audit}");
        assert!(
            !letter.contains(secret),
            "a secret in the dead letter: {letter}"
        );
        assert!(
            !logged.contains(secret),
            "a secret in the worker's log: {logged}"
        );
    }
    drop(worker);
    s.finish().await;
}

#[tokio::test]
async fn a_push_with_a_pat_carries_it_as_bearer_and_leaves_it_nowhere() {
    let s = Scene::builder().no_worker().start().await;
    s.db
        .execute(
            "INSERT INTO integration_credentials (integration_id, auth_method, consumer_key, private_key, access_token)
             VALUES ($1, 'pat', '', '', $2)",
            &[&s.integration, &PAT],
        )
        .await
        .expect("PAT credentials");
    a_push_with_a_bearer(s, PAT, &[PAT]).await;
}

#[tokio::test]
async fn a_push_with_oauth2_carries_its_access_token_as_bearer_and_leaves_no_secret() {
    let s = Scene::builder().no_worker().start().await;
    let fake = FakeOAuth2::new(Duration::from_secs(3600));
    let tokens = fake.grant();
    s.seed()
        .oauth2_credentials(s.integration, &tokens, 3600.0)
        .await;
    let access = tokens.0.clone();
    a_push_with_a_bearer(s, &access, &[&tokens.0, &tokens.1, CLIENT_SECRET]).await;
}

/// Rounds of resolutions at most, until the poisoned push has shared its batch.
const ROUNDS: usize = 5;
/// Groups resolved together in a round; the first one's decision fails.
const TOGETHER: usize = 6;

#[tokio::test]
async fn a_push_whose_decision_fails_in_its_batch_leaves_the_others_decided_once() {
    let log = SecretFile::new("");
    let (s, jira) = with_no_worker().await;
    // A poisoned issue's watermark cannot move: its push's decision fails
    // (for good) whenever it is written, alone or in a batch.
    s.db.batch_execute(
        "CREATE TABLE poisoned (key text PRIMARY KEY);
         CREATE FUNCTION poisoned() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF EXISTS (SELECT 1 FROM poisoned WHERE key = NEW.key) THEN
             RAISE EXCEPTION 'the test poisoned %', NEW.key;
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER poisoned BEFORE UPDATE OF status_synced_at ON external_issues
           FOR EACH ROW EXECUTE FUNCTION poisoned();",
    )
    .await
    .expect("the poison");
    // Debug for the consumer: it logs a retry in process there.
    let worker = common::process_logged(
        "worker",
        &s.settings,
        &[("RUST_LOG", "info,jirasync::queue::consumer=debug".into())],
        &log.0,
    );
    let fell_back = || {
        std::fs::read_to_string(&log.0)
            .is_ok_and(|text| text.contains("a batch of pushes failed; each is pushed alone"))
    };

    let mut round = 0;
    while round < ROUNDS && !fell_back() {
        let keys: Vec<String> = (0..TOGETHER)
            .map(|n| format!("BAT-{}", round * TOGETHER + n))
            .collect();
        let mut groups = Vec::new();
        for key in &keys {
            groups.push(pushing_org(&s, &jira, key).await.group_id);
        }
        s.db.execute("INSERT INTO poisoned VALUES ($1)", &[&keys[0]])
            .await
            .expect("poison the first");
        // Resolved in one transaction: captured together, published together,
        // delivered to the worker together.
        s.db.execute(
            "UPDATE groups SET status = 'resolved' WHERE id = ANY($1)",
            &[&groups],
        )
        .await
        .expect("the application resolves them");

        let failed = s.wait_decisions(&keys[0], "failed", 1).await;
        let reason = failed[0]["jira_message"].as_str().unwrap_or_default();
        assert!(
            reason.contains("the test poisoned"),
            "the poisoned push's own reason: {failed:?}\n{}",
            std::fs::read_to_string(&log.0).unwrap_or_default()
        );
        for key in &keys[1..] {
            eventually(&format!("{key} decided"), WAIT, || async {
                !s.outbound_events(key).await.is_empty()
            })
            .await;
        }
        eventually("nothing pending", WAIT, || async { s.pending().await == 0 }).await;
        for key in &keys[1..] {
            let outcomes: Vec<String> = s
                .outbound_events(key)
                .await
                .into_iter()
                .map(|event| event.1)
                .collect();
            // Pushed; or written in the batch that failed, then found in Jira
            // by its push alone.
            assert!(
                outcomes == ["pushed"] || outcomes == ["unchanged"],
                "{key} decided once: {outcomes:?}"
            );
            assert_eq!(jira.status_of(key), DONE.1, "{key} resolved in Jira");
            assert_eq!(jira.transitions_posted(key).len(), 1, "{key} written once");
        }
        round += 1;
        eventually("the poisoned push dead-lettered", WAIT, || async {
            s.dead_letters().await as usize >= round
        })
        .await;
        assert_eq!(
            s.dead_letters().await as usize,
            round,
            "only the poisoned pushes dead-lettered"
        );
    }
    assert!(
        fell_back(),
        "in {ROUNDS} rounds the poisoned push never shared a batch"
    );
    // The others of its batch were pushed alone at once, not retried.
    let text = std::fs::read_to_string(&log.0).unwrap_or_default();
    assert!(
        !text.contains("retrying in process") && !text.contains("retrying later"),
        "a push was retried"
    );
    jira.assert_expected();
    // Stopped before the scene removes its queues, which it would declare again.
    drop(worker);
    s.finish().await;
}

/// Records, for each write that settles a push, its table, issue, kind and
/// transaction.
const SETTLED_IN: &str = "
CREATE TABLE settled_in (tbl text, issue bigint, kind text, txid bigint);
CREATE FUNCTION settled_in() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  r jsonb := CASE TG_OP WHEN 'DELETE' THEN to_jsonb(OLD) ELSE to_jsonb(NEW) END;
BEGIN
  INSERT INTO settled_in VALUES (TG_TABLE_NAME,
    COALESCE(r->>'external_issue_id',
             CASE TG_TABLE_NAME WHEN 'external_issues' THEN r->>'id' END)::bigint,
    r->>'kind', txid_current());
  RETURN NULL;
END $$;
CREATE TRIGGER settled_in AFTER UPDATE OF assignee_synced_at, status_synced_at
  ON external_issues FOR EACH ROW EXECUTE FUNCTION settled_in();
CREATE TRIGGER settled_in AFTER DELETE ON outbound_pending
  FOR EACH ROW EXECUTE FUNCTION settled_in();
CREATE TRIGGER settled_in AFTER UPDATE OF jira_updated ON outbound_writes
  FOR EACH ROW EXECUTE FUNCTION settled_in();
CREATE TRIGGER settled_in AFTER INSERT ON sync_events
  FOR EACH ROW EXECUTE FUNCTION settled_in();";

/// A watermark ahead of anything Jira answers in this test.
const AHEAD: &str = "2030-01-01T00:00:00Z";

#[tokio::test]
async fn a_batch_of_pushes_writes_in_the_transaction_of_its_locks_and_moves_watermarks_forward_only()
 {
    let (s, jira) = with_no_worker().await;
    s.db.batch_execute(SETTLED_IN).await.expect("the record");
    let worker = common::process("worker", &s.settings, &[]);
    let ahead: chrono::DateTime<chrono::Utc> = AHEAD.parse().expect("a time");

    let mut shared = false;
    let mut round = 0;
    while round < ROUNDS && !shared {
        let keys: Vec<String> = (0..TOGETHER)
            .map(|n| format!("TXN-{}", round * TOGETHER + n))
            .collect();
        let mut changes = Vec::new();
        for key in &keys {
            let org = pushing_org(&s, &jira, key).await;
            let email = format!("{}@example.org", key.to_lowercase());
            jira.user(&email, &key.to_lowercase());
            let user = s.seed().user(&email, true, true).await;
            s.seed().member(&org, user, true).await;
            changes.push(format!(
                "INSERT INTO group_assignees (group_id, project_id, user_id)
                 VALUES ({}, {}, {user});
                 UPDATE groups SET status = 'resolved' WHERE id = {};",
                org.group_id, org.project_id, org.group_id
            ));
        }
        // The first issue's status watermark is ahead of what Jira will answer.
        s.db.execute(
            "UPDATE external_issues SET status_synced_at = $2 WHERE key = $1",
            &[&keys[0], &ahead],
        )
        .await
        .expect("a watermark ahead");
        s.db.execute("TRUNCATE settled_in", &[])
            .await
            .expect("a fresh record");
        // Assigned and resolved in one transaction: captured, published and
        // delivered together, both kinds of each issue.
        s.db.batch_execute(&format!("BEGIN; {} COMMIT;", changes.concat()))
            .await
            .expect("the application assigns and resolves them");
        for key in &keys {
            s.wait_decisions(key, "pushed", 2).await;
        }
        eventually("nothing pending", WAIT, || async { s.pending().await == 0 }).await;

        // Every write that settled a push ran in a transaction that settled its
        // pending row and wrote its decision, not after the commit on its own.
        let transactions =
            s.db.query(
                "SELECT txid, array_agg(DISTINCT tbl ORDER BY tbl) FROM settled_in GROUP BY txid",
                &[],
            )
            .await
            .expect("the record");
        for row in &transactions {
            let tables: Vec<String> = row.get(1);
            assert_eq!(
                tables,
                [
                    "external_issues",
                    "outbound_pending",
                    "outbound_writes",
                    "sync_events"
                ],
                "transaction {} wrote only some of a push's settlement",
                row.get::<_, i64>(0)
            );
        }
        // Both watermarks of each issue moved to Jira's `updated`; the one
        // ahead stayed.
        let marks =
            s.db.query(
                "SELECT key, assignee_synced_at, status_synced_at FROM external_issues
                  WHERE key = ANY($1)",
                &[&keys],
            )
            .await
            .expect("the watermarks");
        assert_eq!(marks.len(), keys.len());
        for row in &marks {
            let key: String = row.get(0);
            let assignee: Option<chrono::DateTime<chrono::Utc>> = row.get(1);
            let status: Option<chrono::DateTime<chrono::Utc>> = row.get(2);
            assert!(
                assignee.is_some_and(|at| at < ahead),
                "{key}'s assignee watermark: {assignee:?}"
            );
            if key == keys[0] {
                assert_eq!(status, Some(ahead), "{key}'s watermark moved back");
            } else {
                assert!(
                    status.is_some_and(|at| at < ahead),
                    "{key}'s status watermark: {status:?}"
                );
            }
        }
        // Whether both kinds of one issue were settled together.
        shared =
            s.db.query_one(
                "SELECT EXISTS (SELECT 1 FROM settled_in WHERE tbl = 'outbound_pending'
                                 GROUP BY txid, issue HAVING count(DISTINCT kind) = 2)",
                &[],
            )
            .await
            .expect("the record")
            .get(0);
        round += 1;
    }
    assert!(
        shared,
        "in {ROUNDS} rounds no batch held both kinds of one issue"
    );
    jira.assert_expected();
    drop(worker);
    s.finish().await;
}
