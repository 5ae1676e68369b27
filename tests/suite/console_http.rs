//! The operator console over HTTP (docs/reference.md §12): the real router on
//! port 0 against the test's own Postgres database and queues, and `jirasync
//! console` / `jirasync run` as processes for the start-up refusals and the
//! ingress's port. Browser tests come separately.

use std::time::Duration;

use jirasync::config::TrustedProxies;
use reqwest::header::HeaderMap;
use reqwest::{Response, StatusCode, redirect};
use serde_json::json;

use crate::common::{self, Isolated, seed};

use common::console::{API_TOKEN, PASSWORD, Served, publish_dead_letter};

/// A console served in this process on port 0.
struct Console {
    base: String,
    http: reqwest::Client,
    db: tokio_postgres::Client,
    // Before the settings: the console stops before its database goes.
    _served: Served,
    settings: Isolated,
}

/// A session: its cookie and CSRF token.
#[derive(Debug, Clone)]
struct Session {
    cookie: String,
    csrf: String,
}

async fn start() -> Console {
    start_with(TrustedProxies::default()).await
}

async fn start_with(trusted_proxies: TrustedProxies) -> Console {
    start_on(trusted_proxies, None).await
}

/// A console; with `broker_url`, one whose RabbitMQ is there instead.
async fn start_on(trusted_proxies: TrustedProxies, broker_url: Option<String>) -> Console {
    let settings = common::migrated().await;
    let mut served_settings = (*settings).clone();
    if let Some(url) = broker_url {
        served_settings.broker.url = url;
    }
    let served = common::console::serve(&served_settings, trusted_proxies).await;
    let http = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .expect("a client");
    let db = common::db(&settings).await;
    Console {
        base: served.base(),
        http,
        db,
        _served: served,
        settings,
    }
}

impl Console {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str, session: Option<&Session>) -> Response {
        let mut request = self.http.get(self.url(path));
        if let Some(session) = session {
            request = request.header("cookie", &session.cookie);
        }
        request.send().await.expect("GET")
    }

    async fn post_form(
        &self,
        path: &str,
        session: Option<&Session>,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Response {
        let mut request = self.http.post(self.url(path)).form(fields);
        if let Some(session) = session {
            request = request.header("cookie", &session.cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("POST")
    }

    async fn login_from(&self, forwarded_for: Option<&str>, password: &str) -> Response {
        let headers: Vec<(&str, &str)> = forwarded_for
            .map(|ip| vec![("x-forwarded-for", ip)])
            .unwrap_or_default();
        self.post_form("/login", None, &[("password", password)], &headers)
            .await
    }

    async fn login(&self) -> Session {
        let response = self.login_from(None, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .expect("a session cookie")
            .to_owned();
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(cookie.contains(attribute), "{attribute}: {cookie}");
        }
        assert!(!cookie.contains("Secure"), "loopback: no Secure: {cookie}");
        let cookie = cookie.split(';').next().expect("name=value").to_owned();
        let page = self
            .get(
                "/",
                Some(&Session {
                    cookie: cookie.clone(),
                    csrf: String::new(),
                }),
            )
            .await;
        assert_eq!(page.status(), StatusCode::OK);
        let text = page.text().await.expect("the overview");
        let csrf = meta_csrf(&text);
        Session { cookie, csrf }
    }
}

/// The `<meta name="csrf-token">` of a page.
fn meta_csrf(page: &str) -> String {
    let marker = "<meta name=\"csrf-token\" content=\"";
    let start = page.find(marker).expect("a csrf meta tag") + marker.len();
    page[start..]
        .split('"')
        .next()
        .expect("its content")
        .to_owned()
}

const PAGES: [&str; 5] = [
    "/",
    "/issues?key=DEMO-1",
    "/events",
    "/dead-letters",
    "/user-map",
];
const APIS: [&str; 7] = [
    "/api/integrations",
    "/api/queues",
    "/api/outbound",
    "/api/issues/DEMO-1/events",
    "/api/events",
    "/api/dead-letters",
    "/api/user-map",
];

/// The security headers every answer carries.
fn assert_security_headers(what: &str, headers: &HeaderMap) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{what}: no {name}"))
            .to_owned()
    };
    let csp = header("content-security-policy");
    for directive in [
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
        "script-src 'self'",
    ] {
        assert!(csp.contains(directive), "{what}: {csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{what}: {csp}"
    );
    assert_eq!(header("x-frame-options"), "DENY", "{what}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
    let referrer = header("referrer-policy");
    assert!(
        referrer == "no-referrer" || referrer == "same-origin",
        "{what}: {referrer}"
    );
}

#[tokio::test]
async fn console_pages_and_api_without_a_session_are_closed_and_every_answer_has_the_headers() {
    let console = start().await;
    for page in PAGES {
        let response = console.get(page, None).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{page}");
        assert_security_headers(page, response.headers());
        let location = response.headers()["location"].to_str().expect("text");
        assert!(location.starts_with("/login?next="), "{page}: {location}");
    }
    for (path, fields) in [
        ("/dead-letters/replay", &[("all", "true")][..]),
        (
            "/user-map",
            &[("integration", "1"), ("jira_user", "x"), ("user", "y")],
        ),
        (
            "/user-map/remove",
            &[("integration", "1"), ("jira_user", "x")],
        ),
        ("/logout", &[]),
    ] {
        let response = console.post_form(path, None, fields, &[]).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "POST {path}");
    }
    for api in APIS {
        let response = console.get(api, None).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{api}");
        assert_security_headers(api, response.headers());
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{api}");
        let body: serde_json::Value = response.json().await.expect("JSON");
        assert!(body["error"].is_string(), "{api}: {body}");
    }
    let replay = console
        .http
        .post(console.url("/api/dead-letters/replay"))
        .json(&json!({"all": true}))
        .send()
        .await
        .expect("POST");
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);

    // Open to all: the login form, the probes, the static files.
    for open in [
        "/login",
        "/healthz",
        "/readyz",
        "/static/console.js",
        "/static/console.css",
    ] {
        let response = console.get(open, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{open}");
        assert_security_headers(open, response.headers());
    }

    // With a session every page opens, uncached; the bearer token opens the API only.
    let session = console.login().await;
    for page in PAGES {
        let response = console.get(page, Some(&session)).await;
        assert_eq!(response.status(), StatusCode::OK, "{page}");
        assert_security_headers(page, response.headers());
        assert_eq!(response.headers()["cache-control"], "no-store", "{page}");
        let text = response.text().await.expect("a page");
        for link in [
            "href=\"/events\"",
            "href=\"/dead-letters\"",
            "action=\"/logout\"",
        ] {
            assert!(text.contains(link), "{page}: {link}");
        }
    }
    for api in APIS {
        let response = console.get(api, Some(&session)).await;
        assert_eq!(response.status(), StatusCode::OK, "{api} with a session");
        let response = console
            .http
            .get(console.url(api))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), StatusCode::OK, "{api} with the token");
        assert_security_headers(api, response.headers());
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{api}"
        );
    }
    let page = console
        .http
        .get(console.url("/"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("GET");
    assert_eq!(
        page.status(),
        StatusCode::SEE_OTHER,
        "a token opens no page"
    );

    // Logged out, the cookie opens nothing.
    let out = console
        .post_form(
            "/logout",
            Some(&session),
            &[("csrf_token", &session.csrf)],
            &[],
        )
        .await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        console.get("/", Some(&session)).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        console
            .get("/api/integrations", Some(&session))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn console_login_sends_a_local_next_only() {
    let console = start().await;
    for (next, location) in [
        ("/events?outcome=assigned", "/events?outcome=assigned"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
    ] {
        let response = console
            .post_form(
                "/login",
                None,
                &[("password", PASSWORD), ("next", next)],
                &[],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{next}");
        assert_eq!(response.headers()["location"], location, "{next}");
    }
}

#[tokio::test]
async fn console_wrong_passwords_get_401_and_the_fifth_blocks_only_that_client() {
    let proxy: TrustedProxies = "127.0.0.1/32".parse().expect("a block");
    let console = start_with(proxy).await;
    let (blocked, other) = ("198.51.100.7", "198.51.100.8");
    for attempt in 1..=5 {
        let response = console.login_from(Some(blocked), "not-the-password").await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
        assert!(response.headers().get("set-cookie").is_none());
        let text = response.text().await.expect("the form");
        assert!(text.contains("Wrong password"), "{text}");
        assert!(text.contains("name=\"password\""), "{text}");
    }
    let refused = console.login_from(Some(blocked), PASSWORD).await;
    assert_eq!(
        refused.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password"
    );
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((800..=900).contains(&retry), "{retry}");
    let api = console
        .http
        .get(console.url("/api/integrations"))
        .bearer_auth(API_TOKEN)
        .header("x-forwarded-for", blocked)
        .send()
        .await
        .expect("GET");
    assert_eq!(api.status(), StatusCode::TOO_MANY_REQUESTS, "the API too");
    assert!(api.headers().contains_key("retry-after"));

    // Another client is not affected; its wrong bearer tokens count as failures.
    let fine = console.login_from(Some(other), PASSWORD).await;
    assert_eq!(fine.status(), StatusCode::SEE_OTHER);
    for attempt in 1..=5 {
        let wrong = console
            .http
            .get(console.url("/api/queues"))
            .bearer_auth("a-wrong-token-of-enough-length-0123456789")
            .header("x-forwarded-for", other)
            .send()
            .await
            .expect("GET");
        assert_eq!(
            wrong.status(),
            StatusCode::UNAUTHORIZED,
            "token attempt {attempt}"
        );
    }
    let now_blocked = console.login_from(Some(other), PASSWORD).await;
    assert_eq!(now_blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    let third = console.login_from(Some("198.51.100.9"), PASSWORD).await;
    assert_eq!(third.status(), StatusCode::SEE_OTHER);
}

/// A user and an integration to map, and how many mappings there are.
async fn mappable(console: &Console) -> (i64, String) {
    let (integration, _) = console
        .db
        .query_one(
            "INSERT INTO integrations (provider, external_id, name, metadata)
             VALUES ('jira_server', 'jira.example.org:csrf', 'Jira', '{}') RETURNING id",
            &[],
        )
        .await
        .map(|row| (row.get::<_, i64>(0), ()))
        .expect("an integration");
    let username = format!("user-{}", common::unique());
    console
        .db
        .execute(
            "INSERT INTO users (username, is_active) VALUES ($1, true)",
            &[&username],
        )
        .await
        .expect("a user");
    (integration, username)
}

async fn mappings(console: &Console) -> i64 {
    console
        .db
        .query_one("SELECT count(*) FROM jira_user_mappings", &[])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
async fn console_posts_without_this_sessions_csrf_token_are_refused_and_do_nothing() {
    let console = start().await;
    let (integration, username) = mappable(&console).await;
    let integration = integration.to_string();
    let session = console.login().await;
    let other = console.login().await;
    assert_ne!(session.csrf, other.csrf);
    let fields = |csrf: Option<&str>| {
        let mut fields = vec![
            ("integration", integration.clone()),
            ("jira_user", "jdoe".to_owned()),
            ("user", username.clone()),
        ];
        if let Some(csrf) = csrf {
            fields.push(("csrf_token", csrf.to_owned()));
        }
        fields
    };
    let as_refs =
        |fields: &[(&'static str, String)]| -> Vec<(&'static str, String)> { fields.to_vec() };
    for (case, csrf) in [
        ("none", None),
        ("another session's", Some(other.csrf.as_str())),
    ] {
        let form = as_refs(&fields(csrf));
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let response = console
            .post_form("/user-map", Some(&session), &form, &[])
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{case}");
        assert_security_headers(case, response.headers());
        assert_eq!(mappings(&console).await, 0, "{case}: nothing stored");
    }
    let header = console
        .post_form(
            "/logout",
            Some(&session),
            &[],
            &[("x-csrf-token", other.csrf.as_str())],
        )
        .await;
    assert_eq!(
        header.status(),
        StatusCode::FORBIDDEN,
        "a foreign header token"
    );
    assert_eq!(
        console.get("/", Some(&session)).await.status(),
        StatusCode::OK,
        "still logged in"
    );
    let api = console
        .http
        .post(console.url("/api/dead-letters/replay"))
        .header("cookie", &session.cookie)
        .json(&json!({"all": true}))
        .send()
        .await
        .expect("POST");
    assert_eq!(
        api.status(),
        StatusCode::FORBIDDEN,
        "the API with a session needs it too"
    );

    // With its own token, in the form or the header, it acts.
    let form = fields(Some(&session.csrf));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let saved = console
        .post_form("/user-map", Some(&session), &form, &[])
        .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    assert_eq!(mappings(&console).await, 1);
    let page = console
        .get("/user-map", Some(&session))
        .await
        .text()
        .await
        .expect("page");
    assert!(page.contains("jdoe") && page.contains(&username), "{page}");
    let removed = console
        .post_form(
            "/user-map/remove",
            Some(&session),
            &[("integration", &integration), ("jira_user", "jdoe")],
            &[("x-csrf-token", session.csrf.as_str())],
        )
        .await;
    assert_eq!(removed.status(), StatusCode::SEE_OTHER);
    assert_eq!(mappings(&console).await, 0);

    // A refused mapping shows its error and stores nothing.
    let form = [
        ("integration", integration.as_str()),
        ("jira_user", "jdoe"),
        ("user", "nobody-by-this-name"),
        ("csrf_token", session.csrf.as_str()),
    ];
    let refused = console
        .post_form("/user-map", Some(&session), &form, &[])
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let text = refused.text().await.expect("page");
    assert!(text.contains("no user has username"), "{text}");
    assert_eq!(mappings(&console).await, 0);
}

#[tokio::test]
async fn console_refuses_cross_site_posts_by_sec_fetch_site_and_by_origin() {
    let console = start().await;
    let (integration, username) = mappable(&console).await;
    let integration = integration.to_string();
    let session = console.login().await;
    let host = console.base.trim_start_matches("http://").to_owned();
    let own_origin = format!("http://{host}");
    for (case, headers, allowed) in [
        ("cross-site", vec![("sec-fetch-site", "cross-site")], false),
        ("same-site", vec![("sec-fetch-site", "same-site")], false),
        (
            "a foreign origin",
            vec![("origin", "http://evil.example")],
            false,
        ),
        ("origin null", vec![("origin", "null")], false),
        (
            "Sec-Fetch-Site first",
            vec![
                ("sec-fetch-site", "cross-site"),
                ("origin", own_origin.as_str()),
            ],
            false,
        ),
        ("same-origin", vec![("sec-fetch-site", "same-origin")], true),
        ("own origin", vec![("origin", own_origin.as_str())], true),
    ] {
        let login = console
            .post_form("/login", None, &[("password", PASSWORD)], &headers)
            .await;
        let expected = if allowed {
            StatusCode::SEE_OTHER
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(login.status(), expected, "login, {case}");
        assert_security_headers(case, login.headers());
        let form = [
            ("integration", integration.as_str()),
            ("jira_user", case),
            ("user", username.as_str()),
            ("csrf_token", session.csrf.as_str()),
        ];
        let set = console
            .post_form("/user-map", Some(&session), &form, &headers)
            .await;
        assert_eq!(set.status(), expected, "user map, {case}");
    }
    assert_eq!(
        mappings(&console).await,
        2,
        "only the same-origin posts acted"
    );
}

#[tokio::test]
async fn console_shows_markup_from_jira_and_dead_letters_escaped() {
    let console = start().await;
    let key = "<script>alert(1)</script>-1";
    console
        .db
        .execute(
            "INSERT INTO sync_events (message_id, integration_id, issue_key, event_time, kind, outcome, detail)
             VALUES ('m-1', NULL, $1, now(), 'key', 'unchanged', '{\"note\": \"<b>bold</b>\"}')",
            &[&key],
        )
        .await
        .expect("an event");
    let reason = "<img src=x onerror=alert(2)>";
    publish_dead_letter(&console.settings, "dead-<i>1</i>", reason).await;
    let session = console.login().await;
    let history_path = format!("/issues?key={}", form_urlencoded_key(key));
    for path in ["/events", history_path.as_str(), "/dead-letters"] {
        let response = console.get(path, Some(&session)).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let text = response.text().await.expect("page");
        for raw in ["<script>alert(1)", "<img src=x", "<i>1</i>", "<b>bold"] {
            assert!(!text.contains(raw), "{path}: {raw} unescaped in {text}");
        }
        let escaped = match path {
            "/dead-letters" => "&lt;img src=x onerror=alert(2)&gt;",
            _ => "&lt;script&gt;alert(1)&lt;/script&gt;-1",
        };
        assert!(text.contains(escaped), "{path}: {escaped} not in {text}");
    }
    let api: serde_json::Value = console
        .get("/api/dead-letters", Some(&session))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(api[0]["error"], reason, "JSON carries it as data: {api}");
    assert!(
        api[0].get("integration_id").is_some() && api[0].get("issue_key").is_some(),
        "{api}"
    );
}

fn form_urlencoded_key(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn console_replays_all_dead_letters_and_an_unknown_id_moves_nothing() {
    let console = start().await;
    publish_dead_letter(&console.settings, "dead-a", "boom").await;
    publish_dead_letter(&console.settings, "dead-b", "boom").await;
    let (_connection, channel) = common::amqp().await;
    let names = common::names(&console.settings);
    let session = console.login().await;
    let page = console
        .get("/dead-letters", Some(&session))
        .await
        .text()
        .await
        .expect("page");
    assert!(page.contains("dead-a") && page.contains("dead-b"), "{page}");
    assert_eq!(
        common::depth(&channel, &names.dead()).await,
        2,
        "listing takes nothing"
    );

    let unknown = console
        .post_form(
            "/dead-letters/replay",
            Some(&session),
            &[("id", "no-such-id"), ("csrf_token", &session.csrf)],
            &[],
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert!(
        unknown
            .text()
            .await
            .expect("page")
            .contains("nothing was replayed")
    );
    assert_eq!(common::depth(&channel, &names.dead()).await, 2);

    let all = console
        .post_form(
            "/dead-letters/replay",
            Some(&session),
            &[("all", "true"), ("csrf_token", &session.csrf)],
            &[],
        )
        .await;
    assert_eq!(all.status(), StatusCode::SEE_OTHER);
    let location = all.headers()["location"].to_str().expect("text").to_owned();
    assert_eq!(location, "/dead-letters?replayed=2");
    let after = console
        .get(&location, Some(&session))
        .await
        .text()
        .await
        .expect("page");
    assert!(after.contains("Replayed 2 message(s)"), "{after}");
    assert_eq!(common::depth(&channel, &names.dead()).await, 0);
    assert_eq!(
        common::depth(&channel, &names.jobs()).await,
        2,
        "back on their source queue"
    );

    let api = console
        .http
        .post(console.url("/api/dead-letters/replay"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"id": "no-such-id"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(api.status(), StatusCode::NOT_FOUND);
    let api = console
        .http
        .post(console.url("/api/dead-letters/replay"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"all": true}))
        .send()
        .await
        .expect("POST");
    assert_eq!(api.status(), StatusCode::OK);
    assert_eq!(
        api.json::<serde_json::Value>().await.expect("JSON"),
        json!({"replayed": 0})
    );
}

#[tokio::test]
async fn console_replays_one_dead_letter_by_id_and_leaves_the_others() {
    let console = start().await;
    // Two letters share the id "dead-2": a replay by id moves both.
    for id in ["dead-1", "dead-2", "dead-3", "dead-2", "dead-4"] {
        publish_dead_letter(&console.settings, id, "boom").await;
    }
    let (_connection, channel) = common::amqp().await;
    let names = common::names(&console.settings);
    let ids = || async {
        jirasync::commands::dlq::list(&console.settings.broker, 10)
            .await
            .expect("list")
            .into_iter()
            .map(|letter| letter.id)
            .collect::<Vec<_>>()
    };
    let session = console.login().await;

    let one = console
        .post_form(
            "/dead-letters/replay",
            Some(&session),
            &[("id", "dead-2"), ("csrf_token", &session.csrf)],
            &[],
        )
        .await;
    assert_eq!(one.status(), StatusCode::SEE_OTHER);
    assert_eq!(one.headers()["location"], "/dead-letters?replayed=2");
    assert_eq!(
        ids().await,
        ["dead-1", "dead-3", "dead-4"],
        "the others stay in P.dead, in order"
    );
    assert_eq!(common::depth(&channel, &names.jobs()).await, 2);

    let api = console
        .http
        .post(console.url("/api/dead-letters/replay"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"id": "dead-3"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(api.status(), StatusCode::OK);
    assert_eq!(
        api.json::<serde_json::Value>().await.expect("JSON"),
        json!({"replayed": 1})
    );
    assert_eq!(ids().await, ["dead-1", "dead-4"]);

    // Gone from P.dead: 404, saying how many were looked at; nothing moves.
    let again = console
        .post_form(
            "/dead-letters/replay",
            Some(&session),
            &[("id", "dead-2"), ("csrf_token", &session.csrf)],
            &[],
        )
        .await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let text = again.text().await.expect("page");
    assert!(
        text.contains("among the 2 looked at: nothing was replayed"),
        "{text}"
    );
    let api = console
        .http
        .post(console.url("/api/dead-letters/replay"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"id": "dead-3"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(api.status(), StatusCode::NOT_FOUND);
    assert_eq!(ids().await, ["dead-1", "dead-4"]);
    assert_eq!(common::depth(&channel, &names.jobs()).await, 3);
}

#[tokio::test]
async fn console_overview_and_api_show_integrations_queues_and_events() {
    let console = start().await;
    let (integration, _) = console
        .db
        .query_one(
            "INSERT INTO integrations (provider, external_id, name, metadata, status)
             VALUES ('jira_server', 'jira.example.org:overview', 'Overview Jira',
                     '{\"webhook_path\": \"/rest/webhooks/1.0/webhook/7\", \"webhook_id\": \"7\"}', 'disabled')
             RETURNING id",
            &[],
        )
        .await
        .map(|row| (row.get::<_, i64>(0), ()))
        .expect("an integration");
    // A Jira Cloud site beside it, its admin webhook registered.
    console
        .db
        .execute(
            "INSERT INTO integrations (provider, external_id, name, metadata)
             VALUES ('jira_cloud', '0f3a5c2e-overview', 'Acme Cloud',
                     '{\"site\": \"https://acme.atlassian.net\", \"webhook_id\": \"12\",
                       \"webhook_kind\": \"admin\"}')",
            &[],
        )
        .await
        .expect("a Cloud integration");
    console
        .db
        .execute(
            "INSERT INTO sync_events (message_id, integration_id, issue_key, event_time, kind, outcome, detail)
             VALUES ('m-1', $1, 'OVER-1', now(), 'key', 'rekeyed', '{}'),
                    ('m-2', $1, 'OVER-2', now(), 'key', 'unchanged', '{}')",
            &[&integration],
        )
        .await
        .expect("events");
    let session = console.login().await;
    let overview = console
        .get("/", Some(&session))
        .await
        .text()
        .await
        .expect("page");
    let names = common::names(&console.settings);
    for shown in [
        "Overview Jira",
        "jira.example.org:overview",
        "disabled",
        "/rest/webhooks/1.0/webhook/7",
        &names.webhooks(),
        &names.dead(),
        &names.retry(&names.jobs(), Duration::from_secs(1)),
        "action=\"/issues\"",
        "Nothing is waiting to be pushed to Jira",
    ] {
        assert!(overview.contains(shown), "{shown} not in {overview}");
    }
    let rows: serde_json::Value = console
        .http
        .get(console.url("/api/integrations"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(rows[0]["id"], integration, "{rows}");
    assert_eq!(rows[0]["state"], "disabled", "{rows}");
    assert_eq!(
        rows[0]["applied_24h"], 1,
        "rekeyed counts, unchanged does not: {rows}"
    );
    assert_eq!(rows[0]["webhook"]["id"], "7", "{rows}");
    assert_eq!(rows[0]["site"], serde_json::Value::Null, "{rows}");
    assert_eq!(rows[0]["provider"], "jira_server", "{rows}");
    assert_eq!(rows[0]["webhook"]["kind"], "jira_server", "{rows}");
    assert_eq!(rows[1]["provider"], "jira_cloud", "{rows}");
    assert_eq!(rows[1]["site"], "https://acme.atlassian.net", "{rows}");
    assert_eq!(rows[1]["webhook"]["kind"], "admin", "{rows}");
    assert!(
        overview.contains("https://acme.atlassian.net"),
        "{overview}"
    );
    let queues: serde_json::Value = console
        .get("/api/queues", Some(&session))
        .await
        .json()
        .await
        .expect("JSON");
    assert!(
        queues
            .as_array()
            .expect("a list")
            .iter()
            .any(|q| q["name"] == names.dead().as_str() && q["messages"] == 0),
        "{queues}"
    );
    let events: serde_json::Value = console
        .get("/api/events?outcome=rekeyed", Some(&session))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(events.as_array().map(Vec::len), Some(1), "{events}");
    assert_eq!(events[0]["issue_key"], "OVER-1");
    assert!(events[0]["text"].is_string(), "{events}");
    let history: serde_json::Value = console
        .get("/api/issues/OVER-2/events", Some(&session))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(history[0]["outcome"], "unchanged", "{history}");
    let page = console
        .get("/issues?key=NOPE-9", Some(&session))
        .await
        .text()
        .await
        .expect("page");
    assert!(page.contains("Nothing is recorded for NOPE-9"), "{page}");
    let events = console
        .get("/events?kind=key", Some(&session))
        .await
        .text()
        .await
        .expect("page");
    assert!(events.contains("href=\"/issues?key=OVER-1\""), "{events}");
}

#[tokio::test]
async fn console_pages_and_api_answers_hold_no_secret() {
    let console = start().await;
    let private_key = include_str!("../fixtures/jira_test_key.pem");
    let key_line = private_key.lines().nth(1).expect("a line of the key");
    let seed = seed::Seed { db: &console.db };
    let (oauth1, external_id) = seed
        .integration(json!({"webhook_hmac_secret": "hmac-secret-xyz", "webhook_path": "/w/1", "webhook_id": "1"}))
        .await;
    seed.credentials(oauth1, "consumer-key-xyz", Some("access-token-xyz"))
        .await;
    let (pat, _) = seed.integration(json!({})).await;
    console
        .db
        .execute(
            "INSERT INTO integration_credentials (integration_id, auth_method, consumer_key, private_key, access_token)
             VALUES ($1, 'pat', '', '', 'personal-access-token-xyz')",
            &[&pat],
        )
        .await
        .expect("PAT credentials");
    let (oauth2, _) = seed.integration(json!({})).await;
    seed.oauth2_credentials(
        oauth2,
        &(
            "oauth2-access-xyz".to_owned(),
            "oauth2-refresh-xyz".to_owned(),
        ),
        3600.0,
    )
    .await;
    console
        .db
        .execute(
            "INSERT INTO sync_events (message_id, integration_id, issue_key, event_time, kind, outcome, detail)
             VALUES ('m-1', $1, 'SEC-1', now(), 'key', 'rekeyed', '{}')",
            &[&oauth1],
        )
        .await
        .expect("an event");
    publish_dead_letter(&console.settings, "dead-secret", "boom").await;
    let webhook_token = seed::token(&external_id, seed::SECRET);
    let mut secrets = vec![
        seed::SECRET,
        webhook_token.as_str(),
        "hmac-secret-xyz",
        "access-token-xyz",
        "access-secret",
        "personal-access-token-xyz",
        "oauth2-access-xyz",
        "oauth2-refresh-xyz",
        crate::common::fake_oauth2::CLIENT_SECRET,
        key_line,
        "PRIVATE KEY",
        PASSWORD,
        API_TOKEN,
    ];
    let session = console.login().await;
    let mut answers = Vec::new();
    for page in PAGES.iter().chain(["/issues?key=SEC-1", "/login"].iter()) {
        let response = console.get(page, Some(&session)).await;
        assert_eq!(response.status(), StatusCode::OK, "{page}");
        answers.push((page.to_string(), response.text().await.expect("page")));
    }
    for api in APIS.iter().chain(["/api/issues/SEC-1/events"].iter()) {
        let response = console
            .http
            .get(console.url(api))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), StatusCode::OK, "{api}");
        answers.push((api.to_string(), response.text().await.expect("JSON")));
    }
    assert!(
        answers.iter().any(|(_, text)| text.contains("SEC-1")),
        "the data is there"
    );
    // The session's own CSRF token is on the pages; that is its point.
    secrets.retain(|secret| !secret.is_empty());
    for (what, text) in &answers {
        for secret in &secrets {
            assert!(
                !text.contains(secret),
                "{what} shows a secret ({secret:.6}…)"
            );
        }
    }
}

#[tokio::test]
async fn console_with_a_password_hash_and_the_database_password_in_its_url() {
    let settings = common::migrated().await;
    let hashed = common::jirasync(&["console", "--hash-password"], &settings, &[])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(format!("{PASSWORD}\n").as_bytes())?;
            child.wait_with_output()
        })
        .expect("hash a password");
    assert!(hashed.status.success(), "{hashed:?}");
    let hash = String::from_utf8(hashed.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned();
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");

    let port = common::private_pg::free_port();
    let mut database = settings.database.clone();
    database.url = database
        .url
        .replacen("postgres@", "postgres:db-pa55word-xyz@", 1);
    let mut with_password = (*settings).clone();
    with_password.database = database;
    let _process = common::process(
        "console",
        &with_password,
        &[
            ("JIRASYNC_CONSOLE_LISTEN", format!("127.0.0.1:{port}")),
            ("JIRASYNC_CONSOLE_PASSWORD_HASH", hash.clone()),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .expect("client");
    common::eventually("the console is ready", Duration::from_secs(20), || {
        let request = http.get(format!("{base}/readyz")).send();
        async move { matches!(request.await, Ok(r) if r.status() == 200) }
    })
    .await;
    let login = |password: &'static str| {
        http.post(format!("{base}/login"))
            .form(&[("password", password)])
            .send()
    };
    assert_eq!(
        login("wrong-password-123").await.expect("POST").status(),
        StatusCode::UNAUTHORIZED
    );
    let ok = login(PASSWORD).await.expect("POST");
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let cookie = ok.headers()["set-cookie"].to_str().expect("text");
    let cookie = cookie.split(';').next().expect("pair").to_owned();
    for page in PAGES {
        let text = http
            .get(format!("{base}{page}"))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("page");
        for secret in ["db-pa55word-xyz", hash.as_str(), PASSWORD] {
            assert!(!text.contains(secret), "{page} shows a secret");
        }
    }
}

/// `jirasync ARGS` with `extra` and no database behind it: its exit and stderr.
fn refused(args: &[&str], extra: &[(&str, String)]) -> (bool, String) {
    let settings = common::settings();
    let output = common::jirasync(args, &settings, extra)
        .output()
        .expect("run jirasync");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn console_refuses_to_start_naming_the_setting_never_its_value() {
    let port = common::private_pg::free_port();
    let listen = format!("127.0.0.1:{port}");
    let good_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$Gk1dXKcrD4GOJj9DWy1ybrx4Sy+UF9dJ4mEL59zVF2o";
    for (case, extra, setting, secret) in [
        (
            "short password",
            vec![("JIRASYNC_CONSOLE_PASSWORD", "short-pw-1".to_owned())],
            "JIRASYNC_CONSOLE_PASSWORD",
            "short-pw-1",
        ),
        (
            "both settings",
            vec![
                (
                    "JIRASYNC_CONSOLE_PASSWORD",
                    "long-enough-password".to_owned(),
                ),
                ("JIRASYNC_CONSOLE_PASSWORD_HASH", good_hash.to_owned()),
            ],
            "JIRASYNC_CONSOLE_PASSWORD_HASH",
            "long-enough-password",
        ),
        (
            "a hash that does not parse",
            vec![(
                "JIRASYNC_CONSOLE_PASSWORD_HASH",
                "$argon2id$garbage-hash-xyz".to_owned(),
            )],
            "JIRASYNC_CONSOLE_PASSWORD_HASH",
            "garbage-hash-xyz",
        ),
        (
            "a short API token",
            vec![
                (
                    "JIRASYNC_CONSOLE_PASSWORD",
                    "long-enough-password".to_owned(),
                ),
                ("JIRASYNC_CONSOLE_API_TOKEN", "short-token-xyz".to_owned()),
            ],
            "JIRASYNC_CONSOLE_API_TOKEN",
            "short-token-xyz",
        ),
        (
            "no password off loopback",
            vec![("JIRASYNC_CONSOLE_LISTEN", format!("0.0.0.0:{port}"))],
            "JIRASYNC_CONSOLE_PASSWORD",
            "",
        ),
    ] {
        let mut extra = extra;
        if !extra
            .iter()
            .any(|(name, _)| *name == "JIRASYNC_CONSOLE_LISTEN")
        {
            extra.push(("JIRASYNC_CONSOLE_LISTEN", listen.clone()));
        }
        let (success, stderr) = refused(&["console"], &extra);
        assert!(!success, "{case}: started");
        assert!(stderr.contains(setting), "{case}: {stderr}");
        assert!(
            secret.is_empty() || !stderr.contains(secret),
            "{case}: echoed: {stderr}"
        );
    }

    let (success, stderr) = refused(
        &["run"],
        &[
            ("JIRASYNC_LISTEN", listen.clone()),
            ("JIRASYNC_CONSOLE_LISTEN", listen.clone()),
            (
                "JIRASYNC_CONSOLE_PASSWORD",
                "long-enough-password".to_owned(),
            ),
        ],
    );
    assert!(!success, "run with one address for two listeners started");
    assert!(
        stderr.contains("JIRASYNC_CONSOLE_LISTEN") && stderr.contains("JIRASYNC_LISTEN"),
        "{stderr}"
    );
    let (success, stderr) = refused(
        &["run"],
        &[
            ("JIRASYNC_METRICS_LISTEN", listen.clone()),
            ("JIRASYNC_CONSOLE_LISTEN", listen.clone()),
        ],
    );
    assert!(!success);
    assert!(stderr.contains("JIRASYNC_METRICS_LISTEN"), "{stderr}");
}

#[tokio::test]
async fn console_runs_inside_run_with_a_made_up_password_and_the_ingress_port_answers_404() {
    let settings = common::migrated().await;
    let console_port = common::private_pg::free_port();
    let log = std::env::temp_dir().join(format!("console-run-{}.log", common::unique()));
    let ingress_port = common::private_pg::free_port();
    let _process = common::process_logged(
        "run",
        &settings,
        &[
            ("JIRASYNC_LISTEN", format!("127.0.0.1:{ingress_port}")),
            (
                "JIRASYNC_CONSOLE_LISTEN",
                format!("127.0.0.1:{console_port}"),
            ),
        ],
        &log,
    );
    let base = format!("http://127.0.0.1:{console_port}");
    let ingress = format!("http://127.0.0.1:{ingress_port}");
    let http = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .expect("client");
    for url in [format!("{base}/readyz"), format!("{ingress}/readyz")] {
        common::eventually(&format!("{url} is ready"), Duration::from_secs(30), || {
            let request = http.get(&url).send();
            async move { matches!(request.await, Ok(r) if r.status() == 200) }
        })
        .await;
    }
    let stderr = std::fs::read_to_string(&log).expect("the log");
    let _ = std::fs::remove_file(&log);
    let password = stderr
        .split("password for this run: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no password told: {stderr}"))
        .to_owned();
    assert!(password.len() >= 32, "{password}");
    assert!(stderr.contains(&base), "{stderr}");
    assert!(stderr.contains("JIRASYNC_CONSOLE_PASSWORD"), "{stderr}");
    assert_eq!(stderr.matches(&password).count(), 1, "said once: {stderr}");
    let login = http
        .post(format!("{base}/login"))
        .form(&[("password", password.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(login.status(), StatusCode::SEE_OTHER);

    for path in [
        "/",
        "/login",
        "/events",
        "/dead-letters",
        "/user-map",
        "/issues?key=A-1",
        "/api/integrations",
        "/static/console.js",
    ] {
        let response = http
            .get(format!("{ingress}{path}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "ingress {path}");
    }
    let posted = http
        .post(format!("{ingress}/login"))
        .form(&[("password", password.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(
        posted.status(),
        StatusCode::NOT_FOUND,
        "ingress POST /login"
    );
    assert_eq!(
        http.get(format!("{ingress}/healthz"))
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::OK
    );
}

#[test]
fn console_settings_show_in_config_elided() {
    let settings = common::settings();
    let output = common::jirasync(
        &["config"],
        &settings,
        &[
            ("JIRASYNC_CONSOLE_LISTEN", "off".to_owned()),
            ("JIRASYNC_CONSOLE_PASSWORD", PASSWORD.to_owned()),
            ("JIRASYNC_CONSOLE_API_TOKEN", API_TOKEN.to_owned()),
        ],
    )
    .output()
    .expect("run jirasync config");
    assert!(output.status.success(), "{output:?}");
    let shown: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(shown["console_listen"], "off");
    assert_eq!(shown["console_password"], "***");
    assert_eq!(shown["console_password_hash"], serde_json::Value::Null);
    assert_eq!(shown["console_api_token"], "***");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        !text.contains(PASSWORD) && !text.contains(API_TOKEN),
        "{text}"
    );
    let help = common::jirasync(
        &["console", "--help"],
        &settings,
        &[("JIRASYNC_CONSOLE_PASSWORD", PASSWORD.to_owned())],
    )
    .output()
    .expect("run jirasync console --help");
    assert!(
        !String::from_utf8_lossy(&help.stdout).contains(PASSWORD),
        "help echoes the password"
    );
}

#[tokio::test]
async fn console_overview_still_shows_the_integrations_with_the_broker_down() {
    let closed = common::private_pg::free_port();
    let console = start_on(
        TrustedProxies::default(),
        Some(format!("amqp://guest:guest@127.0.0.1:{closed}/%2f")),
    )
    .await;
    console
        .db
        .execute(
            "INSERT INTO integrations (provider, external_id, name, metadata)
             VALUES ('jira_server', 'jira.example.org:down', 'Down Jira', '{}')",
            &[],
        )
        .await
        .expect("an integration");
    let session = console.login().await;
    let overview = console.get("/", Some(&session)).await;
    assert_eq!(overview.status(), StatusCode::OK);
    let text = overview.text().await.expect("page");
    assert!(text.contains("jira.example.org:down"), "{text}");
    assert!(text.contains("RabbitMQ cannot be reached"), "{text}");
    assert_eq!(
        console.get("/readyz", None).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        console.get("/api/queues", Some(&session)).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(console.get("/healthz", None).await.status(), StatusCode::OK);
}
