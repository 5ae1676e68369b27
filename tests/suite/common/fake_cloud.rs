//! A fake Atlassian for the Jira Cloud tests: three wiremock servers — the site
//! (`https://acme.atlassian.net`), the API gateway (`<API>/ex/jira/<cloudId>/…`)
//! and the authorization server (`<AUTH>/oauth/token`) — that answer as
//! Atlassian does: the site gives its cloudId without auth; `myself` and the
//! webhook resource check the `Authorization` header they require (an unscoped
//! API token works at the site and the gateway, a scoped one only at the
//! gateway, a service account's bearer token only at the gateway) and answer
//! 401 to anything else; the token endpoint checks its JSON body exactly and
//! dispatches on its `grant_type`: a service account's client credentials, and
//! a 3LO app's authorization code (one use, issued by [`FakeCloud::authorize`]
//! as the browser's consent would) and rotating refresh tokens (a used one is
//! dead: `403 invalid_grant`); the gateway lists the sites a 3LO token reaches
//! (`/oauth/token/accessible-resources`). Other helpers may copy it.

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
/// A 3LO app of the developer console (OAuth 2.0 authorization code grants).
pub const APP_CLIENT_ID: &str = "3lo-app-client-8899";
pub const APP_CLIENT_SECRET: &str = "3lo-app-secret-1122";
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
    /// Whether registering a dynamic webhook is refused (403).
    dynamic_refused: bool,
    /// 3LO: codes consented to and not yet exchanged → their redirect_uri.
    codes: HashMap<String, String>,
    /// 3LO refresh tokens issued → still accepted (a used one is dead).
    refresh: HashMap<String, bool>,
    /// Every 3LO code and token issued, for the tests' "never shown" checks.
    app_secrets: Vec<String>,
    /// Codes exchanged, and refresh grants answered with a new pair.
    exchanges: usize,
    refreshes: usize,
    /// The `scope` a code grant answers; `None`: all five jirasync asks for.
    granted_scope: Option<String>,
    /// The sites a 3LO token reaches: (url, cloudId).
    sites: Vec<(String, String)>,
    /// `expires_in` of 3LO access tokens.
    expires_in: i64,
}

/// The scopes of a 3LO grant that holds all jirasync asks for.
pub const APP_SCOPES: &str =
    "read:jira-user read:jira-work write:jira-work manage:jira-webhook offline_access";

/// What the browser's consent gave: the code, and what the authorize URL said.
#[derive(Debug, Clone)]
pub struct Consent {
    pub code: String,
    pub state: String,
    pub redirect_uri: String,
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
        {
            let mut books = fake.books();
            books.sites = vec![(fake.site.uri(), CLOUD_ID.to_owned())];
            books.expires_in = 3600;
        }
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

    /// Registering a dynamic webhook is refused from now on, as Atlassian
    /// refuses a token whose grant lacks `manage:jira-webhook`.
    pub fn refuse_dynamic_webhooks(&self) {
        self.books().dynamic_refused = true;
    }

    /// How many dynamic-webhook refreshes were asked.
    pub fn dynamic_refreshes(&self) -> usize {
        self.books().dynamic_refreshes
    }

    /// How many tokens the auth server issued.
    pub fn issued(&self) -> usize {
        self.books().issued
    }

    /// The consent screen: checks the authorize URL jirasync printed as
    /// Atlassian would (its host and path, audience, the five scopes, code
    /// response, consent prompt, the 3LO app's client id) and, the user
    /// accepting, issues a code for its redirect_uri ([`FakeCloud::consent`]).
    pub fn authorize(&self, authorize_url: &str) -> Consent {
        let url = reqwest::Url::parse(authorize_url).expect("an authorize URL");
        assert_eq!(
            format!("{}{}", url.origin().ascii_serialization(), url.path()),
            format!("{}/authorize", self.auth.uri()),
            "the authorize URL is <AUTH>/authorize"
        );
        let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
        let get = |name: &str| query.get(name).cloned().unwrap_or_default();
        assert_eq!(get("audience"), "api.atlassian.com", "{authorize_url}");
        assert_eq!(get("scope"), APP_SCOPES, "{authorize_url}");
        assert_eq!(get("response_type"), "code", "{authorize_url}");
        assert_eq!(get("prompt"), "consent", "{authorize_url}");
        assert_eq!(get("client_id"), APP_CLIENT_ID, "{authorize_url}");
        assert!(!query.contains_key("code_challenge"), "no PKCE");
        let redirect_uri = get("redirect_uri");
        Consent {
            code: self.consent(APP_CLIENT_ID, &redirect_uri),
            state: get("state"),
            redirect_uri,
        }
    }

    /// A code for the 3LO app `client_id` and `redirect_uri`, as the user's
    /// consent issues it; exchangeable once.
    pub fn consent(&self, client_id: &str, redirect_uri: &str) -> String {
        assert_eq!(client_id, APP_CLIENT_ID, "the fake knows one 3LO app");
        let code = format!("3lo-code-{}", super::unique());
        let mut books = self.books();
        books.codes.insert(code.clone(), redirect_uri.to_owned());
        books.app_secrets.push(code.clone());
        code
    }

    /// Code grants answer `scope` (e.g. lacking one jirasync needs).
    pub fn grant_scope(&self, scope: &str) {
        self.books().granted_scope = Some(scope.to_owned());
    }

    /// The sites a 3LO token reaches, as (url, cloudId).
    pub fn set_sites(&self, sites: &[(&str, &str)]) {
        self.books().sites = sites
            .iter()
            .map(|(url, id)| ((*url).to_owned(), (*id).to_owned()))
            .collect();
    }

    /// Every 3LO refresh token issued so far is refused from now on (revoked).
    pub fn revoke_refresh_tokens(&self) {
        for live in self.books().refresh.values_mut() {
            *live = false;
        }
    }

    /// The 3LO refresh tokens still accepted.
    pub fn live_refresh_tokens(&self) -> Vec<String> {
        let books = self.books();
        let live = books.refresh.iter().filter(|(_, live)| **live);
        live.map(|(token, _)| token.clone()).collect()
    }

    /// How many codes were exchanged, and refresh grants answered.
    pub fn grants(&self) -> (usize, usize) {
        let books = self.books();
        (books.exchanges, books.refreshes)
    }

    /// Every 3LO code and token issued so far.
    pub fn app_secrets(&self) -> Vec<String> {
        self.books().app_secrets.clone()
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
        let (books, auth) = (Arc::clone(&self.books), bearer_auth.clone());
        Mock::given(method("PUT"))
            .and(path(format!("{dynamic}/refresh")))
            .respond_with(Answer(move |request: &Request| {
                if !auth(request) {
                    return unauthorized();
                }
                refresh_dynamic(&books, request)
            }))
            .mount(&self.api)
            .await;

        // The authorization server: each grant's body checked exactly.
        let books = Arc::clone(&self.books);
        Mock::given(method("POST"))
            .and(path("/oauth/token"))
            .respond_with(Answer(move |request: &Request| token(&books, request)))
            .mount(&self.auth)
            .await;

        // The sites a 3LO token reaches (on the gateway, as Atlassian serves it).
        let books = Arc::clone(&self.books);
        Mock::given(method("GET"))
            .and(path("/oauth/token/accessible-resources"))
            .respond_with(Answer(move |request: &Request| {
                if !bearer_auth(request) {
                    return unauthorized();
                }
                let books = books.lock().expect("books");
                let sites: Vec<Value> = books
                    .sites
                    .iter()
                    .map(|(url, id)| {
                        let name = url.rsplit('/').next().unwrap_or_default();
                        json!({"id": id, "url": url, "name": name,
                               "scopes": APP_SCOPES.split(' ').collect::<Vec<_>>(),
                               "avatarUrl": "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/rocket.png"})
                    })
                    .collect();
                ResponseTemplate::new(200).set_body_json(sites)
            }))
            .mount(&self.api)
            .await;
    }
}

/// `POST <AUTH>/oauth/token`, by `grant_type`: only a JSON body of exactly a
/// grant's fields is taken; anything else is refused as Atlassian refuses it.
fn token(books: &Mutex<Books>, request: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let json_type = request
        .headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    let refused = |status: u16, error: &str| {
        ResponseTemplate::new(status)
            .set_body_json(json!({"error": error, "error_description": "refused by the fake"}))
    };
    if !json_type {
        return refused(400, "invalid_request");
    }
    let mut books = books.lock().expect("books");
    match body["grant_type"].as_str() {
        Some("client_credentials") => {
            let expected = json!({
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            });
            if body != expected || books.credential_revoked {
                return refused(401, "access_denied");
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
        }
        Some("authorization_code") => {
            let code = body["code"].as_str().unwrap_or_default().to_owned();
            let redirect_uri = books.codes.get(&code).cloned().unwrap_or_default();
            let expected = json!({
                "grant_type": "authorization_code",
                "client_id": APP_CLIENT_ID,
                "client_secret": APP_CLIENT_SECRET,
                "code": code,
                "redirect_uri": redirect_uri,
            });
            if body["client_id"] != APP_CLIENT_ID || body["client_secret"] != APP_CLIENT_SECRET {
                return refused(401, "access_denied");
            }
            if books.codes.remove(&code).is_none() {
                // Unknown, or used once already.
                return refused(403, "invalid_grant");
            }
            if body != expected {
                return refused(400, "invalid_request");
            }
            books.exchanges += 1;
            let scope = books
                .granted_scope
                .clone()
                .unwrap_or_else(|| APP_SCOPES.to_owned());
            pair(&mut books, Some(scope))
        }
        Some("refresh_token") => {
            let refresh = body["refresh_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let expected = json!({
                "grant_type": "refresh_token",
                "client_id": APP_CLIENT_ID,
                "client_secret": APP_CLIENT_SECRET,
                "refresh_token": refresh,
            });
            if body != expected {
                return refused(400, "invalid_request");
            }
            // Rotating refresh tokens: the one used is dead from now on.
            match books.refresh.get_mut(&refresh) {
                Some(live) if *live => *live = false,
                _ => return refused(403, "invalid_grant"),
            }
            books.refreshes += 1;
            pair(&mut books, None)
        }
        _ => refused(400, "unsupported_grant_type"),
    }
}

/// A new 3LO access and refresh token, both live.
fn pair(books: &mut Books, scope: Option<String>) -> ResponseTemplate {
    let (access, refresh) = (
        format!("3lo-access-{}", super::unique()),
        format!("3lo-refresh-{}", super::unique()),
    );
    books.access.insert(access.clone(), true);
    books.refresh.insert(refresh.clone(), true);
    books.app_secrets.extend([access.clone(), refresh.clone()]);
    let mut answer = json!({
        "access_token": access,
        "refresh_token": refresh,
        "expires_in": books.expires_in,
        "token_type": "Bearer",
    });
    if let Some(scope) = scope {
        answer["scope"] = json!(scope);
    }
    ResponseTemplate::new(200).set_body_json(answer)
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
    if books.lock().expect("books").dynamic_refused {
        return ResponseTemplate::new(403).set_body_json(json!({
            "errorMessages": ["Unauthorized; scope does not match"], "errors": {}
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
