//! A fake Atlassian for the Jira Cloud tests: three wiremock servers — the site
//! (`https://acme.atlassian.net`), the API gateway (`<API>/ex/jira/<cloudId>/…`)
//! and the authorization server (`<AUTH>/oauth/token`) — that answer as
//! Atlassian does: the site gives its cloudId without auth; `myself` and the
//! webhook resource check the `Authorization` header they require (an unscoped
//! API token works at the site and the gateway, a scoped one only at the
//! gateway, a service account's bearer token only at the gateway) and answer
//! 401 to anything else; the token endpoint checks its JSON body exactly. Other
//! helpers may copy it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The fake site's cloudId.
pub const CLOUD_ID: &str = "0f3a5c2e-1d4b-4c7a-9e8f-0123456789ab";
/// The site admin's email and unscoped API token.
pub const EMAIL: &str = "admin@acme.example";
pub const API_TOKEN: &str = "atl-unscoped-token-7788";
/// A scoped API token of the same account: refused at the site, taken by the gateway.
pub const SCOPED_TOKEN: &str = "atl-scoped-token-9911";
/// A service account's OAuth 2.0 credential.
pub const CLIENT_ID: &str = "svc-client-4455";
pub const CLIENT_SECRET: &str = "svc-secret-6677";
/// Atlassian's id of the admin webhook the fake registers.
pub const WEBHOOK_ID: &str = "12";
/// The admin webhook resource.
pub const WEBHOOK_PATH: &str = "/rest/webhooks/1.0/webhook";

#[derive(Default)]
struct Books {
    /// Service-account access tokens issued → still accepted.
    access: HashMap<String, bool>,
    /// Whether the client secret is still valid.
    credential_revoked: bool,
    /// Whether the API token's account is a Jira admin.
    not_admin: bool,
    /// Whether an admin deleted the registered webhook.
    webhook_deleted: bool,
    issued: usize,
    /// Dynamic webhooks registered by the 3LO app, by id.
    dynamic: std::collections::BTreeMap<i64, DynamicWebhook>,
    /// The id the next dynamic webhook gets.
    next_dynamic_id: i64,
    /// How many refreshes of dynamic webhooks were asked.
    dynamic_refreshes: usize,
}

/// A dynamic webhook as the fake keeps it.
#[derive(Debug, Clone)]
pub struct DynamicWebhook {
    pub url: String,
    pub jql: String,
    /// Epoch milliseconds.
    pub expires_at_ms: i64,
}

/// Atlassian's documented life of a dynamic webhook: 30 days.
const DYNAMIC_LIFETIME_MS: i64 = 30 * 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

/// The three servers and what they know.
pub struct FakeCloud {
    pub site: MockServer,
    pub api: MockServer,
    pub auth: MockServer,
    books: Arc<Mutex<Books>>,
}

/// A responder from a closure.
struct Answer<F>(F);

impl<F: Fn(&Request) -> ResponseTemplate + Send + Sync + 'static> Respond for Answer<F> {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        (self.0)(request)
    }
}

fn authorization(request: &Request) -> String {
    request
        .headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// `Basic base64(email:token)`.
pub fn basic(email: &str, token: &str) -> String {
    let pair = format!("{email}:{token}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

fn unauthorized() -> ResponseTemplate {
    // What Atlassian answers to a missing or wrong credential.
    ResponseTemplate::new(401).set_body_json(json!({
        "errorMessages": ["You are not authorized to perform this operation. Please log in."],
        "errors": {}
    }))
}

fn myself() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "accountId": "5b10a2844c20165700ede21g",
        "accountType": "atlassian",
        "emailAddress": EMAIL,
        "displayName": "Site Admin",
        "active": true
    }))
}

impl FakeCloud {
    /// The three servers, with Atlassian's resources mounted.
    pub async fn start() -> Self {
        let fake = Self {
            site: MockServer::start().await,
            api: MockServer::start().await,
            auth: MockServer::start().await,
            books: Arc::new(Mutex::new(Books::default())),
        };
        fake.mount().await;
        fake
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().expect("books")
    }

    /// The gateway base of the site: `<API>/ex/jira/<cloudId>`.
    pub fn gateway(&self) -> String {
        format!("{}/ex/jira/{CLOUD_ID}", self.api.uri())
    }

    /// The variables that point jirasync at the fake's gateway and auth server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("JIRASYNC_ATLASSIAN_AUTH_URL", self.auth.uri()),
            ("JIRASYNC_ATLASSIAN_API_URL", self.api.uri()),
        ]
    }

    /// The account is no Jira admin: registering a webhook answers 403.
    pub fn not_admin(&self) {
        self.books().not_admin = true;
    }

    /// An admin deletes the registered webhook in Jira.
    pub fn delete_webhook(&self) {
        self.books().webhook_deleted = true;
    }

    /// Every service-account token issued so far is refused from now on.
    pub fn revoke_access_tokens(&self) {
        for live in self.books().access.values_mut() {
            *live = false;
        }
    }

    /// The client secret is revoked: the token endpoint refuses it.
    pub fn revoke_credential(&self) {
        self.books().credential_revoked = true;
    }

    /// An OAuth 2.0 access token the gateway takes from now on (as the 3LO
    /// token endpoint would have issued it).
    pub fn grant_access_token(&self, token: &str) {
        self.books().access.insert(token.to_owned(), true);
    }

    /// The dynamic webhooks Jira holds now, by id (expired ones are gone).
    pub fn dynamic_webhooks(&self) -> Vec<(i64, DynamicWebhook)> {
        let now = now_ms();
        let books = self.books();
        books
            .dynamic
            .iter()
            .filter(|(_, webhook)| webhook.expires_at_ms > now)
            .map(|(id, webhook)| (*id, webhook.clone()))
            .collect()
    }

    /// Every dynamic webhook is gone (expired, or deleted by an admin).
    pub fn drop_dynamic_webhooks(&self) {
        self.books().dynamic.clear();
    }

    /// How many dynamic-webhook refreshes were asked.
    pub fn dynamic_refreshes(&self) -> usize {
        self.books().dynamic_refreshes
    }

    /// How many tokens the auth server issued.
    pub fn issued(&self) -> usize {
        self.books().issued
    }

    /// The requests `server` received on `path`.
    pub async fn requests(server: &MockServer, path: &str) -> Vec<Request> {
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|request| request.url.path() == path)
            .collect()
    }

    async fn mount(&self) {
        // The site: its cloudId without auth; `myself` and webhooks with the
        // unscoped API token only.
        Mock::given(method("GET"))
            .and(path("/_edge/tenant_info"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"cloudId": CLOUD_ID})))
            .mount(&self.site)
            .await;
        let site_auth = |request: &Request| authorization(request) == basic(EMAIL, API_TOKEN);
        Mock::given(method("GET"))
            .and(path("/rest/api/3/myself"))
            .respond_with(Answer(move |request: &Request| match site_auth(request) {
                true => myself(),
                false => unauthorized(),
            }))
            .mount(&self.site)
            .await;
        let books = Arc::clone(&self.books);
        let site_uri = self.site.uri();
        Mock::given(method("POST"))
            .and(path(WEBHOOK_PATH))
            .respond_with(Answer(move |request: &Request| {
                register(&books, &site_uri, request, site_auth(request))
            }))
            .mount(&self.site)
            .await;
        let books = Arc::clone(&self.books);
        Mock::given(method("PUT"))
            .and(path(format!("{WEBHOOK_PATH}/{WEBHOOK_ID}")))
            .respond_with(Answer(move |request: &Request| {
                update(&books, request, site_auth(request))
            }))
            .mount(&self.site)
            .await;

        // The gateway: either API token, or a live service-account token.
        let books = Arc::clone(&self.books);
        let gateway_auth = move |request: &Request| {
            let header = authorization(request);
            if header == basic(EMAIL, API_TOKEN) || header == basic(EMAIL, SCOPED_TOKEN) {
                return true;
            }
            let token = header.strip_prefix("Bearer ").unwrap_or_default();
            books.lock().expect("books").access.get(token) == Some(&true)
        };
        let prefix = format!("/ex/jira/{CLOUD_ID}");
        let auth = gateway_auth.clone();
        Mock::given(method("GET"))
            .and(path(format!("{prefix}/rest/api/3/myself")))
            .respond_with(Answer(move |request: &Request| match auth(request) {
                true => myself(),
                false => unauthorized(),
            }))
            .mount(&self.api)
            .await;
        let auth = gateway_auth.clone();
        Mock::given(method("GET"))
            .and(path(format!("{prefix}/rest/api/2/serverInfo")))
            .respond_with(Answer(move |request: &Request| match auth(request) {
                true => ResponseTemplate::new(200).set_body_json(json!({
                    "baseUrl": "https://acme.atlassian.net",
                    "version": "1001.0.0-SNAPSHOT",
                    "versionNumbers": [1001, 0, 0],
                    "deploymentType": "Cloud"
                })),
                false => unauthorized(),
            }))
            .mount(&self.api)
            .await;
        let books = Arc::clone(&self.books);
        let gateway = self.gateway();
        Mock::given(method("POST"))
            .and(path(format!("{prefix}{WEBHOOK_PATH}")))
            .respond_with(Answer(move |request: &Request| {
                register(&books, &gateway, request, gateway_auth(request))
            }))
            .mount(&self.api)
            .await;

        // Dynamic webhooks (REST v3 `webhook` group): only an OAuth 2.0 app's
        // bearer token may manage them.
        let bearer_auth = {
            let books = Arc::clone(&self.books);
            move |request: &Request| {
                let header = authorization(request);
                let token = header.strip_prefix("Bearer ").unwrap_or_default();
                books.lock().expect("books").access.get(token) == Some(&true)
            }
        };
        let dynamic = format!("{prefix}/rest/api/3/webhook");
        let (books, auth) = (Arc::clone(&self.books), bearer_auth.clone());
        Mock::given(method("POST"))
            .and(path(dynamic.clone()))
            .respond_with(Answer(move |request: &Request| {
                if !auth(request) {
                    return unauthorized();
                }
                register_dynamic(&books, request)
            }))
            .mount(&self.api)
            .await;
        let (books, auth) = (Arc::clone(&self.books), bearer_auth.clone());
        Mock::given(method("GET"))
            .and(path(dynamic.clone()))
            .respond_with(Answer(move |request: &Request| {
                if !auth(request) {
                    return unauthorized();
                }
                list_dynamic(&books, request)
            }))
            .mount(&self.api)
            .await;
        let books = Arc::clone(&self.books);
        Mock::given(method("PUT"))
            .and(path(format!("{dynamic}/refresh")))
            .respond_with(Answer(move |request: &Request| {
                if !bearer_auth(request) {
                    return unauthorized();
                }
                refresh_dynamic(&books, request)
            }))
            .mount(&self.api)
            .await;

        // The authorization server: client credentials, the body checked exactly.
        let books = Arc::clone(&self.books);
        Mock::given(method("POST"))
            .and(path("/oauth/token"))
            .respond_with(Answer(move |request: &Request| {
                let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                let expected = json!({
                    "grant_type": "client_credentials",
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                });
                let json_type = request
                    .headers
                    .get("content-type")
                    .and_then(|value| value.to_str().ok())
                    .is_some_and(|value| value.starts_with("application/json"));
                let mut books = books.lock().expect("books");
                if body != expected || !json_type || books.credential_revoked {
                    return ResponseTemplate::new(401).set_body_json(
                        json!({"error": "access_denied", "error_description": "Unauthorized"}),
                    );
                }
                books.issued += 1;
                let token = format!("svc-access-{}-{}", books.issued, super::unique());
                books.access.insert(token.clone(), true);
                ResponseTemplate::new(200).set_body_json(json!({
                    "access_token": token,
                    "expires_in": 3600,
                    "token_type": "Bearer",
                    "scope": "read:jira-user read:jira-work write:jira-work"
                }))
            }))
            .mount(&self.auth)
            .await;
    }
}

/// `PUT …/rest/webhooks/1.0/webhook/<id>`: as a registration, 404 once the
/// webhook was deleted, else 200.
fn update(books: &Mutex<Books>, request: &Request, authorized: bool) -> ResponseTemplate {
    if let Some(refused) = refusal(books, request, authorized) {
        return refused;
    }
    if books.lock().expect("books").webhook_deleted {
        return ResponseTemplate::new(404).set_body_json(json!({
            "errorMessages": ["Webhook not found"], "errors": {}
        }));
    }
    ResponseTemplate::new(200).set_body_json(json!({"name": "jirasync", "enabled": true}))
}

/// `POST …/rest/webhooks/1.0/webhook`: as [`refusal`], then 201 with the
/// webhook's `self` (a registration after a deletion gets the same id).
fn register(
    books: &Mutex<Books>,
    base: &str,
    request: &Request,
    authorized: bool,
) -> ResponseTemplate {
    if let Some(refused) = refusal(books, request, authorized) {
        return refused;
    }
    books.lock().expect("books").webhook_deleted = false;
    ResponseTemplate::new(201).set_body_json(json!({
        "name": "jirasync",
        "self": format!("{base}{WEBHOOK_PATH}/{WEBHOOK_ID}"),
        "enabled": true
    }))
}

/// The checks of both webhook calls, the refusal when one fails: 401 without
/// the right credential, 403 for an account that is no admin, 400 for a body
/// other than jirasync's.
fn refusal(books: &Mutex<Books>, request: &Request, authorized: bool) -> Option<ResponseTemplate> {
    if !authorized {
        return Some(unauthorized());
    }
    if books.lock().expect("books").not_admin {
        return Some(ResponseTemplate::new(403).set_body_json(json!({
            "errorMessages": ["Only Jira administrators can access webhooks."],
            "errors": {}
        })));
    }
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let secret = body["secret"].as_str().unwrap_or_default();
    let expected = json!({
        "name": "jirasync",
        "url": body["url"],
        "events": ["jira:issue_created", "jira:issue_updated"],
        "filters": {"issue-related-events-section": ""},
        "excludeBody": false,
        "secret": secret,
    });
    let url_ok = body["url"]
        .as_str()
        .is_some_and(|url| url.contains("/extensions/jira-cloud/issue-updated/"));
    if body != expected || secret.len() < 32 || !url_ok {
        return Some(ResponseTemplate::new(400).set_body_json(json!({
            "errorMessages": ["Invalid webhook"], "errors": {}
        })));
    }
    None
}

/// `POST /rest/api/3/webhook`: the body must be exactly one registration of
/// jirasync's Cloud route for issue created and updated events with a JQL
/// filter; answers the new id, or Atlassian's per-webhook `errors`.
fn register_dynamic(books: &Mutex<Books>, request: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let url = body["url"].as_str().unwrap_or_default().to_owned();
    let jql = body["webhooks"][0]["jqlFilter"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let expected = json!({
        "url": url,
        "webhooks": [{"events": ["jira:issue_created", "jira:issue_updated"], "jqlFilter": jql}],
    });
    if body != expected || !url.contains("/extensions/jira-cloud/issue-updated/") {
        return ResponseTemplate::new(400).set_body_json(json!({
            "errorMessages": ["Invalid request payload."], "errors": {}
        }));
    }
    if jql.contains('~') {
        // Atlassian allows only a few operators in a webhook's JQL.
        return ResponseTemplate::new(200).set_body_json(json!({
            "webhookRegistrationResult": [{"errors": ["The JQL query is not supported: operator '~'"]}]
        }));
    }
    let mut books = books.lock().expect("books");
    books.next_dynamic_id = books.next_dynamic_id.max(10_000) + 1;
    let id = books.next_dynamic_id;
    let expires_at_ms = now_ms() + DYNAMIC_LIFETIME_MS;
    books.dynamic.insert(
        id,
        DynamicWebhook {
            url,
            jql,
            expires_at_ms,
        },
    );
    ResponseTemplate::new(200).set_body_json(json!({
        "webhookRegistrationResult": [{"createdWebhookId": id}]
    }))
}

/// `GET /rest/api/3/webhook?startAt=`: pages of two, expired webhooks gone.
fn list_dynamic(books: &Mutex<Books>, request: &Request) -> ResponseTemplate {
    let start: usize = request
        .url
        .query_pairs()
        .find(|(key, _)| key == "startAt")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let now = now_ms();
    let books = books.lock().expect("books");
    let live: Vec<Value> = books
        .dynamic
        .iter()
        .filter(|(_, webhook)| webhook.expires_at_ms > now)
        .map(|(id, webhook)| {
            json!({
                "id": id,
                "jqlFilter": webhook.jql,
                "events": ["jira:issue_created", "jira:issue_updated"],
                "expirationDate": webhook.expires_at_ms,
            })
        })
        .collect();
    let page: Vec<Value> = live.iter().skip(start).take(2).cloned().collect();
    let is_last = start + page.len() >= live.len();
    ResponseTemplate::new(200).set_body_json(json!({
        "maxResults": 2, "startAt": start, "total": live.len(), "isLast": is_last, "values": page
    }))
}

/// `PUT /rest/api/3/webhook/refresh` `{"webhookIds":[…]}`: each live webhook
/// named gets 30 more days; the answer is the new expiry (a date string, as
/// Atlassian's example shows it).
fn refresh_dynamic(books: &Mutex<Books>, request: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let Some(ids) = body["webhookIds"].as_array().filter(|ids| !ids.is_empty()) else {
        return ResponseTemplate::new(400).set_body_json(json!({
            "errorMessages": ["webhookIds must not be empty"], "errors": {}
        }));
    };
    let now = now_ms();
    let expires_at_ms = now + DYNAMIC_LIFETIME_MS;
    let mut books = books.lock().expect("books");
    books.dynamic_refreshes += 1;
    for id in ids.iter().filter_map(Value::as_i64) {
        if let Some(webhook) = books.dynamic.get_mut(&id).filter(|w| w.expires_at_ms > now) {
            webhook.expires_at_ms = expires_at_ms;
        }
    }
    let date = chrono::DateTime::from_timestamp_millis(expires_at_ms)
        .map(|at| at.to_rfc3339())
        .unwrap_or_default();
    ResponseTemplate::new(200).set_body_json(json!({ "expirationDate": date }))
}

/// A Jira Data Center at a URL given as `--site`: no cloudId, a `serverInfo`.
pub async fn data_center() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/2/serverInfo"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "version": "10.3.1", "versionNumbers": [10, 3, 1], "deploymentType": "DataCenter"
        })))
        .mount(&server)
        .await;
    server
}

/// Connects the Cloud site at `site` (also where its REST calls go) with
/// `credentials`, through the library as `integration add --cloud` saves one,
/// into the database of `settings`: the integration a test's worker serves.
pub async fn connected_site(
    settings: &jirasync::config::Settings,
    site: &str,
    cloud_id: &str,
    credentials: &jirasync::integration::Credentials,
) -> jirasync::integration::Integration {
    let pool = jirasync::db::connect(&settings.database, 1)
        .await
        .expect("a pool");
    let client = pool.get().await.expect("a connection");
    let install = jirasync::integration::install_record::CloudInstall {
        site,
        cloud_id,
        base_url: site,
        name: None,
        credentials,
    };
    jirasync::integration::install_record::save_cloud(&client, pool.keys(), &install)
        .await
        .expect("save the Cloud integration")
}
