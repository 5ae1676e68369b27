//! A fake Jira Data Center OAuth 2.0 provider (an incoming *External application*
//! link) for the OAuth 2.0 and personal-access-token tests: it plays the browser's
//! part of the authorization (checking the authorize URL and issuing a code bound
//! to its PKCE challenge and redirect URI), serves `/rest/oauth2/latest/token`
//! like Jira — client id and secret checked, codes single-use, the verifier
//! checked against the challenge, refresh tokens rotated, a reused one answering
//! `invalid_grant` — and guards REST resources with its bearer tokens, which
//! expire after a few seconds.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use super::TestApp;

/// The fake link's client id and secret.
pub const CLIENT_ID: &str = "jirasync-client";
pub const CLIENT_SECRET: &str = "client-secret-0123";
/// A personal access token the fake knows, and its user.
pub const PAT: &str = "pat-token-4567";
pub const PAT_USER: &str = "pat-user";

/// What the browser's part returned.
#[derive(Debug, Clone)]
pub struct Authorized {
    pub code: String,
    pub state: String,
    pub redirect_uri: String,
    pub scope: String,
}

#[derive(Default)]
struct Books {
    /// code → (challenge, redirect_uri, used)
    codes: HashMap<String, (String, String, bool)>,
    /// access token → when it expires
    access: HashMap<String, Instant>,
    /// refresh token → still valid
    refresh: HashMap<String, bool>,
    issued: usize,
    exchanges: usize,
    refreshes: usize,
    invalid_grants: usize,
    rejected_bearers: usize,
    /// Whether the PAT was revoked.
    pat_revoked: bool,
    /// The last (access, refresh) tokens issued.
    latest: (String, String),
    /// What the answers give as `expires_in`: `None` its lifetime, `Some(None)`
    /// nothing, `Some(Some(json))` that JSON text as it is.
    expires_in: Option<Option<String>>,
}

/// The provider.
pub struct FakeOAuth2 {
    lifetime: Duration,
    books: Mutex<Books>,
}

impl FakeOAuth2 {
    /// A provider whose access tokens live `lifetime`.
    pub fn new(lifetime: Duration) -> Arc<Self> {
        Arc::new(Self {
            lifetime,
            books: Mutex::new(Books::default()),
        })
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().expect("books")
    }

    /// The user's part: opens `authorize_url` (checking what Jira checks) and
    /// allows access; the code Jira would put in the redirect.
    pub fn authorize(&self, authorize_url: &str) -> Authorized {
        let url = reqwest::Url::parse(authorize_url).expect("the authorize URL is a URL");
        assert_eq!(url.path(), "/rest/oauth2/latest/authorize", "{url}");
        let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
        let get = |name: &str| {
            query
                .get(name)
                .unwrap_or_else(|| panic!("the authorize URL has no {name}: {url}"))
                .clone()
        };
        assert_eq!(get("client_id"), CLIENT_ID);
        assert_eq!(get("response_type"), "code");
        assert_eq!(get("code_challenge_method"), "S256");
        let state = get("state");
        assert!(state.len() >= 32, "an unguessable state: {state}");
        let code = format!("code-{}", super::unique());
        self.books().codes.insert(
            code.clone(),
            (get("code_challenge"), get("redirect_uri"), false),
        );
        Authorized {
            code,
            state,
            redirect_uri: get("redirect_uri"),
            scope: get("scope"),
        }
    }

    /// Tokens as an earlier install obtained them: (access, refresh).
    pub fn grant(&self) -> (String, String) {
        self.issue(&mut self.books())
    }

    fn issue(&self, books: &mut Books) -> (String, String) {
        books.issued += 1;
        let n = books.issued;
        let (access, refresh) = (
            format!("access-{n}-{}", super::unique()),
            format!("refresh-{n}-{}", super::unique()),
        );
        books
            .access
            .insert(access.clone(), Instant::now() + self.lifetime);
        books.refresh.insert(refresh.clone(), true);
        books.latest = (access.clone(), refresh.clone());
        (access, refresh)
    }

    /// The last (access, refresh) tokens issued.
    pub fn latest(&self) -> (String, String) {
        self.books().latest.clone()
    }

    /// Whether `refresh` is a refresh token the fake still takes.
    pub fn takes_refresh_token(&self, refresh: &str) -> bool {
        self.books().refresh.get(refresh) == Some(&true)
    }

    /// Makes the token answers give `expires_in` as this JSON text (`None`:
    /// no `expires_in` at all), as a misbehaving Jira or proxy might.
    pub fn answer_expires_in(&self, json: Option<&str>) {
        self.books().expires_in = Some(json.map(str::to_owned));
    }

    /// Codes exchanged, refreshes done, refresh tokens refused (used twice),
    /// REST calls refused for an expired or unknown token.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let books = self.books();
        (
            books.exchanges,
            books.refreshes,
            books.invalid_grants,
            books.rejected_bearers,
        )
    }

    /// Every code, access token and refresh token it issued.
    pub fn issued(&self) -> Vec<String> {
        let books = self.books();
        let codes = books.codes.keys();
        codes
            .chain(books.access.keys())
            .chain(books.refresh.keys())
            .cloned()
            .collect()
    }

    /// Revokes every refresh token: the next refresh answers `invalid_grant`.
    pub fn revoke_refresh_tokens(&self) {
        for valid in self.books().refresh.values_mut() {
            *valid = false;
        }
    }

    /// Revokes the PAT (`true`) or issues it again (`false`).
    pub fn revoke_pat(&self, revoked: bool) {
        self.books().pat_revoked = revoked;
    }

    /// Expires every access token now.
    pub fn expire_access_tokens(&self) {
        for expiry in self.books().access.values_mut() {
            *expiry = Instant::now();
        }
    }

    /// The responder of `POST /rest/oauth2/latest/token`.
    pub fn token_endpoint(self: &Arc<Self>) -> TokenEndpoint {
        TokenEndpoint(Arc::clone(self))
    }

    /// A responder answering `ok` to a request with a live bearer token (or the
    /// fake's PAT), `401` otherwise.
    pub fn bearer(self: &Arc<Self>, ok: ResponseTemplate) -> Bearer {
        Bearer {
            oauth2: Arc::clone(self),
            ok,
        }
    }

    fn token_answer(&self, request: &Request) -> ResponseTemplate {
        let body = String::from_utf8_lossy(&request.body);
        let form: HashMap<String, String> = reqwest::Url::parse(&format!("http://form/?{body}"))
            .map(|url| url.query_pairs().into_owned().collect())
            .unwrap_or_default();
        let get = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
        let refuse = |status: u16, error: &str| {
            ResponseTemplate::new(status)
                .set_body_json(json!({"error": error, "error_description": "fake"}))
        };
        if get("client_id") != CLIENT_ID || get("client_secret") != CLIENT_SECRET {
            return refuse(401, "invalid_client");
        }
        let mut books = self.books();
        match get("grant_type") {
            "authorization_code" => {
                let Some((challenge, redirect_uri, used)) = books.codes.get_mut(get("code")) else {
                    books.invalid_grants += 1;
                    return refuse(400, "invalid_grant");
                };
                let verified =
                    URL_SAFE_NO_PAD.encode(Sha256::digest(get("code_verifier").as_bytes()));
                if *used || *redirect_uri != get("redirect_uri") || *challenge != verified {
                    books.invalid_grants += 1;
                    return refuse(400, "invalid_grant");
                }
                *used = true;
                books.exchanges += 1;
            }
            "refresh_token" => {
                let refresh = get("refresh_token").to_owned();
                if books.refresh.get(&refresh) != Some(&true) {
                    books.invalid_grants += 1;
                    return refuse(400, "invalid_grant");
                }
                books.refresh.insert(refresh, false);
                books.refreshes += 1;
            }
            _ => return refuse(400, "unsupported_grant_type"),
        }
        let (access, refresh) = self.issue(&mut books);
        let expires_in = match &books.expires_in {
            None => Some(self.lifetime.as_secs().to_string()),
            Some(json) => json.clone(),
        };
        // Written by hand: the JSON text may be beyond what serde_json would write (`1e400`).
        let expires_in = expires_in
            .map(|json| format!(r#","expires_in":{json}"#))
            .unwrap_or_default();
        let body = format!(
            r#"{{"access_token":{},"refresh_token":{},"token_type":"bearer"{expires_in}}}"#,
            json!(access),
            json!(refresh)
        );
        ResponseTemplate::new(200).set_body_raw(body, "application/json")
    }

    fn bearer_is_live(&self, request: &Request) -> bool {
        let token = request
            .headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        let mut books = self.books();
        let live = (token == PAT && !books.pat_revoked)
            || books
                .access
                .get(token)
                .is_some_and(|expiry| *expiry > Instant::now());
        if !live {
            books.rejected_bearers += 1;
        }
        live
    }
}

/// `POST /rest/oauth2/latest/token`.
pub struct TokenEndpoint(Arc<FakeOAuth2>);

impl Respond for TokenEndpoint {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.token_answer(request)
    }
}

/// A REST resource behind bearer tokens.
pub struct Bearer {
    oauth2: Arc<FakeOAuth2>,
    ok: ResponseTemplate,
}

impl Respond for Bearer {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if self.oauth2.bearer_is_live(request) {
            self.ok.clone()
        } else {
            ResponseTemplate::new(401)
        }
    }
}

pub const TOKEN_PATH: &str = "/rest/oauth2/latest/token";
pub const JIRA10_WEBHOOK_PATH: &str = "/rest/jira-webhook/1.0/webhooks";
pub const LEGACY_WEBHOOK_PATH: &str = "/rest/webhooks/1.0/webhook";

/// A file holding a secret, removed when dropped.
pub struct SecretFile(pub PathBuf);

impl SecretFile {
    pub fn new(secret: &str) -> Self {
        let path = std::env::temp_dir().join(format!("jst_secret_{}", super::unique()));
        std::fs::write(&path, format!("{secret}\n")).expect("write the secret file");
        Self(path)
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `serverInfo` of a Jira of `major` version.
/// `oauth start --client-id` for the fake Jira.
pub fn oauth2_start_args(
    app: &TestApp,
    secret: &SecretFile,
) -> jirasync::commands::oauth::StartArgs {
    jirasync::commands::oauth::StartArgs {
        link: jirasync::commands::AppLink {
            base_url: app.server.uri(),
            consumer_key: None,
            private_key_file: None,
            no_verify_ssl: false,
        },
        cloud: false,
        site: None,
        client_id: Some(CLIENT_ID.into()),
        client_secret_file: Some(secret.0.clone()),
        scope: None,
        wait: None,
        services: app.settings.services(),
        public: app.settings.public.clone(),
        atlassian: app.settings.atlassian.clone(),
    }
}

pub fn server_info(major: u32) -> Value {
    json!({"version": format!("{major}.3.1"), "versionNumbers": [major, 3, 1], "deploymentType": "DataCenter"})
}

/// Mounts the fake's `POST /rest/oauth2/latest/token`.
pub async fn mount_token_endpoint(app: &TestApp, fake: &Arc<FakeOAuth2>) {
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(fake.token_endpoint())
        .mount(&app.server)
        .await;
}

/// Mounts the fake's token endpoint and, behind its bearer tokens, `serverInfo`
/// of a Jira `major`, `myself` (the PAT's user) and both webhook resources, with
/// updates of the webhook each registers.
pub async fn mount_jira(app: &TestApp, fake: &Arc<FakeOAuth2>, major: u32) {
    mount_token_endpoint(app, fake).await;
    Mock::given(method("GET"))
        .and(path("/rest/api/2/serverInfo"))
        .respond_with(fake.bearer(ResponseTemplate::new(200).set_body_json(server_info(major))))
        .mount(&app.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/2/myself"))
        .respond_with(fake.bearer(ResponseTemplate::new(200).set_body_json(
            json!({"name": PAT_USER, "key": "JIRAUSER-pat", "displayName": "PAT user", "active": true}),
        )))
        .mount(&app.server)
        .await;
    for (webhook_path, answer) in [
        (JIRA10_WEBHOOK_PATH, json!({"id": 42})),
        (
            LEGACY_WEBHOOK_PATH,
            json!({"self": "https://jira/rest/webhooks/1.0/webhook/7"}),
        ),
    ] {
        Mock::given(method("POST"))
            .and(path(webhook_path))
            .respond_with(fake.bearer(ResponseTemplate::new(201).set_body_json(answer)))
            .mount(&app.server)
            .await;
    }
    // Updates of the webhooks it registered, as Jira documents them: `PUT
    // <resource>/<id>` with the registration's body, answered with the webhook.
    for (webhook_path, id) in [
        (JIRA10_WEBHOOK_PATH, JIRA10_WEBHOOK_ID),
        (LEGACY_WEBHOOK_PATH, LEGACY_WEBHOOK_ID),
    ] {
        Mock::given(method("PUT"))
            .and(path(format!("{webhook_path}/{id}")))
            .respond_with(fake.bearer(
                ResponseTemplate::new(200).set_body_json(json!({"id": id, "name": "jirasync"})),
            ))
            .mount(&app.server)
            .await;
    }
}

/// Jira's ids of the webhooks the fake registers on each resource.
pub const JIRA10_WEBHOOK_ID: &str = "42";
pub const LEGACY_WEBHOOK_ID: &str = "7";

/// `GET /rest/api/2/user?username=<name>` answers, behind the bearer tokens, a
/// user whose email is `email`.
pub async fn mount_user(app: &TestApp, fake: &Arc<FakeOAuth2>, name: &str, email: &str) {
    Mock::given(method("GET"))
        .and(path("/rest/api/2/user"))
        .and(wiremock::matchers::query_param("username", name))
        .respond_with(fake.bearer(ResponseTemplate::new(200).set_body_json(
            json!({"name": name, "key": format!("JIRAUSER-{name}"), "emailAddress": email, "active": true}),
        )))
        .mount(&app.server)
        .await;
}
