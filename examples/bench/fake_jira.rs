//! The Jira of rows (8), (10)–(11) and (14): an axum server inside the benchmark
//! process answering what a reconciliation asks — Data Center's `POST
//! /rest/api/2/search` with pages by `startAt` in Jira Server's shape, or (row 14)
//! Jira Cloud's `POST /rest/api/3/search/jql` with pages by `nextPageToken`, issues
//! in Cloud's shape (`search_jql`), every issue assigned to a benchmark user with an
//! email — and, in case the client grows calls, `serverInfo` and `myself`; and what
//! an assignee push asks (`outbound.rs`): the issue (`GET /rest/api/2/issue/{key}`),
//! the assignable users (`GET …/user/assignable/search`) and the write (`PUT
//! …/issue/{key}/assignee`), each after about 1 ms, keeping every issue's assignee
//! and recording when each PUT arrived. It checks the `Authorization` header of the
//! integration's credentials and counts every request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use jirasync::integration::Provider;
use serde_json::{Value, json};

/// Jira's own cap on `maxResults` (`jira.search.views.default.max`).
const MAX_RESULTS: usize = 1000;

/// How many requests the fake Jira has answered.
#[derive(Debug, Default)]
pub struct Counts {
    /// `POST /rest/api/2/search` (a Cloud fake answers it `410`, as Cloud does).
    pub searches: AtomicUsize,
    /// `POST /rest/api/3/search/jql` (a Cloud fake's only).
    pub jql_searches: AtomicUsize,
    /// Those of them asking for a page after the first (with a `nextPageToken`).
    pub next_pages: AtomicUsize,
    /// Searches answered `400`/`415`: a body Jira would refuse.
    pub malformed: AtomicUsize,
    /// Anything else (server info, myself, unknown paths).
    pub other: AtomicUsize,
    /// Requests without the expected bearer token (answered 401).
    pub unauthorized: AtomicUsize,
    /// `GET /rest/api/2/issue/{key}`.
    pub issue_reads: AtomicUsize,
    /// `GET /rest/api/2/user/assignable/search`.
    pub assignable: AtomicUsize,
}

/// How long the push's calls take to answer: a Jira on the same network.
const ANSWER_DELAY: Duration = Duration::from_millis(1);

/// Waits [`ANSWER_DELAY`], on a thread of the blocking pool: Tokio's timer
/// counts in whole milliseconds and wakes on the tick after the deadline, so
/// its 1 ms sleep took 2.1–2.3 ms here (the push's three calls 8.8 ms, not the
/// "about 1 ms" each that row (10) states); the thread's sleep takes 1.1–1.3 ms.
async fn answer_delay() {
    let _ = tokio::task::spawn_blocking(|| std::thread::sleep(ANSWER_DELAY)).await;
}

/// One `PUT …/issue/{key}/assignee` the fake Jira took.
#[derive(Debug, Clone)]
pub struct Put {
    /// The issue key.
    pub key: String,
    /// The user name written; `None` unassigned.
    pub name: Option<String>,
    /// When the request arrived.
    pub at: Instant,
}

/// The pushes' side of the fake Jira: each issue's assignee (unassigned until a
/// PUT names one) and every PUT, in the order they arrived.
#[derive(Debug, Default)]
pub struct Writes {
    assignees: Mutex<HashMap<String, String>>,
    puts: Mutex<Vec<Put>>,
}

impl Writes {
    /// The PUTs taken so far.
    pub fn puts(&self) -> Vec<Put> {
        self.puts.lock().unwrap().clone()
    }

    /// How many issues of `expected` (key → user name) hold that user now.
    pub fn holding(&self, expected: &HashMap<String, String>) -> usize {
        let assignees = self.assignees.lock().unwrap();
        expected
            .iter()
            .filter(|(key, name)| assignees.get(*key) == Some(*name))
            .count()
    }

    /// How many PUTs were taken so far.
    pub fn count(&self) -> usize {
        self.puts.lock().unwrap().len()
    }
}

#[derive(Clone)]
struct Fake {
    provider: Provider,
    base_url: String,
    /// The `Authorization` header every request must carry.
    authorization: String,
    users: usize,
    /// Jira's `updated` of every issue.
    updated: String,
    counts: Arc<Counts>,
    writes: Arc<Writes>,
}

/// A running fake Jira; it stops when the benchmark's runtime ends or on `stop`.
pub struct FakeJira {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// What it has answered so far.
    pub counts: Arc<Counts>,
    /// The assignees written and the PUTs taken.
    pub writes: Arc<Writes>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeJira {
    /// Listens on a free port as the Jira of `provider`, taking requests that
    /// carry `authorization` (the whole header: `Bearer …`, `Basic …`); every issue
    /// `<prefix>-<n>` it finds is assigned to `bench<m>@example.org`, m = n mod
    /// `users` + 1, and was updated a minute ago.
    pub async fn start(
        provider: Provider,
        authorization: String,
        users: usize,
    ) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let counts = Arc::new(Counts::default());
        let writes = Arc::new(Writes::default());
        let updated = (chrono::Utc::now() - chrono::Duration::minutes(1))
            .format("%Y-%m-%dT%H:%M:%S%.3f%z")
            .to_string();
        let fake = Fake {
            provider,
            base_url: base_url.clone(),
            authorization,
            users: users.max(1),
            updated,
            counts: Arc::clone(&counts),
            writes: Arc::clone(&writes),
        };
        let search_jql = match provider {
            Provider::Cloud => post(search_jql),
            Provider::Server => post(not_found),
        };
        let app = axum::Router::new()
            .route("/rest/api/2/search", post(search))
            .route("/rest/api/3/search/jql", search_jql)
            .route("/rest/api/2/serverInfo", get(server_info))
            .route("/rest/api/2/myself", get(myself))
            .route("/rest/api/2/issue/{key}", get(get_issue))
            .route("/rest/api/2/issue/{key}/assignee", put(put_assignee))
            .route("/rest/api/2/user/assignable/search", get(assignable))
            .fallback(not_found)
            .with_state(fake);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            base_url,
            counts,
            writes,
            task,
        })
    }

    /// Stops serving.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for FakeJira {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Answer = (StatusCode, Json<Value>);

fn unauthorized(fake: &Fake, headers: &HeaderMap) -> Option<Answer> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if given == Some(fake.authorization.as_str()) {
        return None;
    }
    fake.counts.unauthorized.fetch_add(1, Ordering::Relaxed);
    Some((
        StatusCode::UNAUTHORIZED,
        Json(json!({"errorMessages": ["You are not authenticated."], "errors": {}})),
    ))
}

/// The issues of `key in ("A-1", …)`, `startAt` … `startAt + maxResults`.
async fn search(State(fake): State<Fake>, headers: HeaderMap, Json(body): Json<Value>) -> Answer {
    fake.counts.searches.fetch_add(1, Ordering::Relaxed);
    if let Some(refused) = unauthorized(&fake, &headers) {
        return refused;
    }
    if fake.provider == Provider::Cloud {
        return (
            StatusCode::GONE,
            Json(json!({
                "errorMessages": ["The requested API has been removed. Please migrate to the /rest/api/3/search/jql API."],
                "errors": {}
            })),
        );
    }
    let keys = keys_of(body["jql"].as_str().unwrap_or_default());
    let start_at = body["startAt"].as_u64().unwrap_or(0) as usize;
    let max_results = (body["maxResults"].as_u64().unwrap_or(50) as usize).min(MAX_RESULTS);
    let issues: Vec<Value> = keys
        .iter()
        .skip(start_at)
        .take(max_results)
        .map(|key| issue(&fake, key))
        .collect();
    (
        StatusCode::OK,
        Json(json!({
            "expand": "schema,names",
            "startAt": start_at,
            "maxResults": max_results,
            "total": keys.len(),
            "issues": issues,
        })),
    )
}

/// One issue as Jira Server 9 writes it with `fields: assignee, status, updated`.
fn issue(fake: &Fake, key: &str) -> Value {
    let n = issue_number(key);
    let user = n % fake.users + 1;
    let base = &fake.base_url;
    json!({
        "expand": "operations,versionedRepresentations,editmeta,changelog,renderedFields",
        "id": (10_000 + n).to_string(),
        "self": format!("{base}/rest/api/2/issue/{}", 10_000 + n),
        "key": key,
        "fields": {
            "assignee": {
                "self": format!("{base}/rest/api/2/user?username=bench{user}"),
                "name": format!("bench{user}"),
                "key": format!("JIRAUSER{}", 10_000 + user),
                "emailAddress": format!("bench{user}@example.org"),
                "avatarUrls": {
                    "48x48": format!("{base}/secure/useravatar?avatarId=10122"),
                    "24x24": format!("{base}/secure/useravatar?size=small&avatarId=10122"),
                    "16x16": format!("{base}/secure/useravatar?size=xsmall&avatarId=10122"),
                    "32x32": format!("{base}/secure/useravatar?size=medium&avatarId=10122")
                },
                "displayName": format!("Bench User {user}"),
                "active": true,
                "timeZone": "Etc/UTC"
            },
            "status": {
                "self": format!("{base}/rest/api/2/status/3"),
                "description": "This issue is being actively worked on at the moment by the assignee.",
                "iconUrl": format!("{base}/images/icons/statuses/inprogress.png"),
                "name": "In Progress",
                "id": "3",
                "statusCategory": {
                    "self": format!("{base}/rest/api/2/statuscategory/4"),
                    "id": 4, "key": "indeterminate", "colorName": "yellow", "name": "In Progress"
                }
            },
            "updated": fake.updated,
        }
    })
}

/// The most issues a Cloud page holds, whatever `maxResults` asks: the
/// endpoint's default page size. Cloud may answer fewer issues than asked
/// (Atlassian: page sizes are not part of the API), so reconciliation's pages of
/// 100 keys take two pages each, the second by `nextPageToken`.
pub const CLOUD_PAGE: usize = 50;

/// What a `search/jql` body may hold (Atlassian's `SearchAndReconcileRequestBean`);
/// anything else, `startAt` or `validateQuery` included, is refused as Cloud does.
const JQL_BODY_KEYS: [&str; 9] = [
    "jql",
    "nextPageToken",
    "maxResults",
    "fields",
    "expand",
    "properties",
    "fieldsByKeys",
    "failFast",
    "reconcileIssues",
];

/// A `400` as Cloud writes it, counted.
fn malformed(fake: &Fake, message: &str) -> Answer {
    fake.counts.malformed.fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"errorMessages": [message], "errors": {}})),
    )
}

/// Jira Cloud's `POST /rest/api/3/search/jql`: the issues of `key in ("A-1", …)
/// AND …`, at most `min(maxResults, CLOUD_PAGE)` a page, from where
/// `nextPageToken` says; `nextPageToken` and `isLast: false` while more are left,
/// `isLast: true` and no token on the last page. Only the `fields` asked for are
/// written. A body that is not JSON, carries a key Cloud does not take, a value of
/// the wrong type, a JQL the fake cannot read or a token it did not hand out for
/// that JQL is answered `400` (`415` without a JSON content type).
async fn search_jql(State(fake): State<Fake>, headers: HeaderMap, body: Bytes) -> Answer {
    fake.counts.jql_searches.fetch_add(1, Ordering::Relaxed);
    if let Some(refused) = unauthorized(&fake, &headers) {
        return refused;
    }
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_body {
        fake.counts.malformed.fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Json(json!({"errorMessages": ["Unsupported media type."], "errors": {}})),
        );
    }
    let invalid = "Invalid request payload. Refer to the REST API documentation and try again.";
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return malformed(&fake, invalid);
    };
    if body
        .keys()
        .any(|key| !JQL_BODY_KEYS.contains(&key.as_str()))
    {
        return malformed(&fake, invalid);
    }
    let Some(jql) = body.get("jql").and_then(Value::as_str) else {
        return malformed(&fake, invalid);
    };
    let fields: Vec<&str> = match body.get("fields") {
        None => Vec::new(),
        Some(Value::Array(fields)) => match fields.iter().map(Value::as_str).collect() {
            Some(fields) => fields,
            None => return malformed(&fake, invalid),
        },
        Some(_) => return malformed(&fake, invalid),
    };
    let max_results = match body.get("maxResults") {
        None => CLOUD_PAGE,
        Some(max) => match max.as_u64().and_then(|max| usize::try_from(max).ok()) {
            Some(max) if max > 0 => max.min(CLOUD_PAGE),
            _ => return malformed(&fake, invalid),
        },
    };
    let start = match body.get("nextPageToken") {
        None | Some(Value::Null) => 0,
        Some(token) => {
            fake.counts.next_pages.fetch_add(1, Ordering::Relaxed);
            match token.as_str().and_then(|token| page_start(jql, token)) {
                Some(start) => start,
                None => return malformed(&fake, "Invalid nextPageToken."),
            }
        }
    };
    let keys = keys_of(jql);
    if keys.is_empty() {
        return malformed(
            &fake,
            &format!("Error in the JQL Query: the fake cannot read {jql:?}."),
        );
    }
    let issues: Vec<Value> = keys
        .iter()
        .skip(start)
        .take(max_results)
        .map(|key| cloud_issue(&fake, key, &fields))
        .collect();
    let next = start + issues.len();
    let mut answer = json!({"issues": issues, "isLast": next >= keys.len()});
    if next < keys.len() {
        answer["nextPageToken"] = Value::String(page_token(jql, next));
    }
    (StatusCode::OK, Json(answer))
}

/// The opaque token of the page of `jql` that starts at `start`.
fn page_token(jql: &str, start: usize) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    jql.hash(&mut hasher);
    format!("{:016x}.{start}", hasher.finish())
}

/// Where the page a token names starts, if the fake handed it out for `jql`.
fn page_start(jql: &str, token: &str) -> Option<usize> {
    let start = token.split_once('.')?.1.parse().ok()?;
    (page_token(jql, start) == token && start > 0).then_some(start)
}

/// One issue as Jira Cloud writes it, with the `fields` asked for (`*all` and
/// `*navigable`: every one it has): the assignee by `accountId`, with the email
/// the site shows, and the update time.
fn cloud_issue(fake: &Fake, key: &str, fields: &[&str]) -> Value {
    let n = issue_number(key);
    let user = n % fake.users + 1;
    let id = (10_000 + n).to_string();
    let base = &fake.base_url;
    let account_id = format!("5b10ac8d82e05b22cc7d{user:04x}");
    let all = json!({
        "assignee": {
            "self": format!("{base}/rest/api/3/user?accountId={account_id}"),
            "accountId": account_id,
            "emailAddress": format!("bench{user}@example.org"),
            "avatarUrls": {
                "48x48": format!("https://secure.gravatar.com/avatar/{account_id}?d=mm&s=48"),
                "24x24": format!("https://secure.gravatar.com/avatar/{account_id}?d=mm&s=24"),
                "16x16": format!("https://secure.gravatar.com/avatar/{account_id}?d=mm&s=16"),
                "32x32": format!("https://secure.gravatar.com/avatar/{account_id}?d=mm&s=32")
            },
            "displayName": format!("Bench User {user}"),
            "active": true,
            "timeZone": "Etc/UTC",
            "accountType": "atlassian"
        },
        "updated": fake.updated,
    });
    let every = fields.iter().any(|f| *f == "*all" || *f == "*navigable");
    let chosen: serde_json::Map<String, Value> = all
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(name, _)| every || fields.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    json!({
        "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
        "id": id,
        "self": format!("{base}/rest/api/3/issue/{id}"),
        "key": key,
        "fields": chosen,
    })
}

/// The number of an issue key (`7` of `REC-7`; 0 without one).
fn issue_number(key: &str) -> usize {
    key.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The quoted keys of `key in ("A-1", "B\"2", …) AND …`.
fn keys_of(jql: &str) -> Vec<String> {
    let Some(list) = jql
        .split_once("key in (")
        .and_then(|(_, rest)| rest.split_once(") AND").map(|(list, _)| list))
    else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    let mut chars = list.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut key = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => key.extend(chars.next()),
                '"' => break,
                c => key.push(c),
            }
        }
        keys.push(key);
    }
    keys
}

async fn server_info(State(fake): State<Fake>, headers: HeaderMap) -> Answer {
    fake.counts.other.fetch_add(1, Ordering::Relaxed);
    if let Some(refused) = unauthorized(&fake, &headers) {
        return refused;
    }
    (
        StatusCode::OK,
        Json(json!({
            "baseUrl": fake.base_url, "version": "9.12.2", "versionNumbers": [9, 12, 2],
            "deploymentType": "Server", "buildNumber": 9_120_002,
            "buildDate": "2024-01-01T00:00:00.000+0000", "scmInfo": "bench",
            "serverTitle": "Bench Jira"
        })),
    )
}

async fn myself(State(fake): State<Fake>, headers: HeaderMap) -> Answer {
    fake.counts.other.fetch_add(1, Ordering::Relaxed);
    if let Some(refused) = unauthorized(&fake, &headers) {
        return refused;
    }
    (
        StatusCode::OK,
        Json(json!({
            "self": format!("{}/rest/api/2/user?username=bench-pat", fake.base_url),
            "name": "bench-pat", "key": "JIRAUSER10000", "emailAddress": "pat@example.org",
            "displayName": "Bench PAT", "active": true, "timeZone": "Etc/UTC"
        })),
    )
}

/// When the pushes' issues were last updated: now, as Jira writes it.
fn now_jira() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3f%z")
        .to_string()
}

/// A user of the benchmark as Jira Server writes it; its name is the address's
/// local part (`bench7` for `bench7@example.org`).
fn jira_user(base: &str, name: &str) -> Value {
    json!({
        "self": format!("{base}/rest/api/2/user?username={name}"),
        "name": name,
        "key": format!("JIRAUSER-{name}"),
        "emailAddress": format!("{name}@example.org"),
        "displayName": format!("Bench User {name}"),
        "active": true,
        "timeZone": "Etc/UTC"
    })
}

/// `GET /rest/api/2/issue/{key}?fields=…`: the issue with the assignee last PUT
/// (none at first), In Progress, in project OUT, updated now.
async fn get_issue(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Answer {
    fake.counts.issue_reads.fetch_add(1, Ordering::Relaxed);
    answer_delay().await;
    if let Some(refused) = unauthorized(&fake, &headers) {
        return refused;
    }
    let assignee = fake.writes.assignees.lock().unwrap().get(&key).cloned();
    let base = &fake.base_url;
    (
        StatusCode::OK,
        Json(json!({
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
            "id": "10001",
            "self": format!("{base}/rest/api/2/issue/10001"),
            "key": key,
            "fields": {
                "assignee": assignee.map(|name| jira_user(base, &name)),
                "status": {"self": format!("{base}/rest/api/2/status/3"), "name": "In Progress", "id": "3"},
                "project": {"self": format!("{base}/rest/api/2/project/10000"), "id": "10000", "key": "OUT", "name": "Outbound"},
                "updated": now_jira(),
            }
        })),
    )
}

/// `GET /rest/api/2/user/assignable/search?issueKey=…&username=…`: the benchmark
/// user whose address it names, if it names one.
async fn assignable(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    fake.counts.assignable.fetch_add(1, Ordering::Relaxed);
    answer_delay().await;
    if let Some(refused) = unauthorized(&fake, &headers) {
        return refused;
    }
    if query.get("issueKey").is_none_or(String::is_empty) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"errorMessages": ["The issue key is required."], "errors": {}})),
        );
    }
    let users: Vec<Value> = query
        .get("username")
        .and_then(|address| address.strip_suffix("@example.org"))
        .filter(|name| name.starts_with("bench"))
        .map(|name| jira_user(&fake.base_url, name))
        .into_iter()
        .collect();
    (StatusCode::OK, Json(Value::Array(users)))
}

/// `PUT /rest/api/2/issue/{key}/assignee` with `{"name": …}`: kept and recorded; 204.
async fn put_assignee(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let at = Instant::now();
    answer_delay().await;
    if let Some(refused) = unauthorized(&fake, &headers) {
        return refused.into_response();
    }
    let Some(name) = body
        .get("name")
        .map(|name| name.as_str().map(str::to_owned))
    else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"errorMessages": [], "errors": {"assignee": "No name given."}})),
        )
            .into_response();
    };
    {
        let mut assignees = fake.writes.assignees.lock().unwrap();
        match &name {
            Some(name) => assignees.insert(key.clone(), name.clone()),
            None => assignees.remove(&key),
        };
    }
    fake.writes.puts.lock().unwrap().push(Put { key, name, at });
    StatusCode::NO_CONTENT.into_response()
}

async fn not_found(State(fake): State<Fake>, uri: Uri) -> Answer {
    fake.counts.other.fetch_add(1, Ordering::Relaxed);
    eprintln!("fake Jira: no such resource {}", uri.path());
    (
        StatusCode::NOT_FOUND,
        Json(json!({"errorMessages": ["No such resource."], "errors": {}})),
    )
}
