//! The Jira of row (8): an axum server inside the benchmark process answering
//! what a reconciliation asks — `POST /rest/api/2/search` with paged JSON in Jira
//! Server's shape, every issue assigned to a benchmark user with an email — and,
//! in case the client grows calls, `serverInfo` and `myself`. It checks the
//! bearer token and counts every request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// Jira's own cap on `maxResults` (`jira.search.views.default.max`).
const MAX_RESULTS: usize = 1000;

/// How many requests the fake Jira has answered.
#[derive(Debug, Default)]
pub struct Counts {
    /// `POST /rest/api/2/search`.
    pub searches: AtomicUsize,
    /// Anything else (server info, myself, unknown paths).
    pub other: AtomicUsize,
    /// Requests without the expected bearer token (answered 401).
    pub unauthorized: AtomicUsize,
}

#[derive(Clone)]
struct Fake {
    base_url: String,
    token: String,
    users: usize,
    /// Jira's `updated` of every issue.
    updated: String,
    counts: Arc<Counts>,
}

/// A running fake Jira; it stops when the benchmark's runtime ends or on `stop`.
pub struct FakeJira {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// What it has answered so far.
    pub counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeJira {
    /// Listens on a free port; every issue `REC-<n>` it finds is assigned to
    /// `bench<m>@example.org`, m = n mod `users` + 1, and was updated a minute ago.
    pub async fn start(token: &str, users: usize) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let counts = Arc::new(Counts::default());
        let updated = (chrono::Utc::now() - chrono::Duration::minutes(1))
            .format("%Y-%m-%dT%H:%M:%S%.3f%z")
            .to_string();
        let fake = Fake {
            base_url: base_url.clone(),
            token: format!("Bearer {token}"),
            users: users.max(1),
            updated,
            counts: Arc::clone(&counts),
        };
        let app = axum::Router::new()
            .route("/rest/api/2/search", post(search))
            .route("/rest/api/2/serverInfo", get(server_info))
            .route("/rest/api/2/myself", get(myself))
            .fallback(not_found)
            .with_state(fake);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            base_url,
            counts,
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
    if given == Some(fake.token.as_str()) {
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
    let n: usize = key
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
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

async fn not_found(State(fake): State<Fake>, uri: Uri) -> Answer {
    fake.counts.other.fetch_add(1, Ordering::Relaxed);
    eprintln!("fake Jira: no such resource {}", uri.path());
    (
        StatusCode::NOT_FOUND,
        Json(json!({"errorMessages": ["No such resource."], "errors": {}})),
    )
}
