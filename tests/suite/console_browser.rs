//! The operator console in a real browser (docs/reference.md §12, issue #26):
//! headless Chromium driven through chromedriver (`common::browser`) against
//! the console served on port 0 over the test's own Postgres database and
//! queues, the data made by a real worker from webhooks and by a fake Jira.
//! Each test takes screenshots of the pages it visits: into the folder
//! `JIRASYNC_CONSOLE_SCREENSHOTS` names (the README's come from
//! `JIRASYNC_CONSOLE_SCREENSHOTS=docs/console`), else into a temporary folder.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use fantoccini::Locator;
use fantoccini::elements::Element;
use jirasync::commands::dlq;
use reqwest::{StatusCode, redirect};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::common::{self, TestApp};
use common::browser::Browser;
use common::console::{PASSWORD, Served};
use common::seed::{SECRET, assignee_changed, jira_user, token};

/// How long a page or the queues may take to show what is awaited.
const WAIT: Duration = Duration::from_secs(20);

/// The seeded integration's external id (its webhooks' token `id` claim).
const EXTERNAL_ID: &str = "jira.acme.example:4f1c";

/// Where the screenshot of `page` goes.
fn screenshot_path(page: &str) -> PathBuf {
    let folder = match std::env::var_os("JIRASYNC_CONSOLE_SCREENSHOTS") {
        Some(folder) if !folder.is_empty() => PathBuf::from(folder),
        // One folder, overwritten by each run: nothing piles up.
        _ => std::env::temp_dir().join("jirasync-console-screenshots"),
    };
    folder.join(format!("{page}.png"))
}

/// A console, a browser on it, and a way to the broker.
struct Scene {
    // Dropped first: Chromium and chromedriver go before what they look at.
    browser: Browser,
    console: Served,
    /// With a worker that made the data, stopped before the browser looks.
    app: TestApp,
}

impl Scene {
    /// A console on `app`'s database and queues and a browser; `app`'s worker
    /// is stopped (replayed messages stay where they were replayed to).
    async fn start(mut app: TestApp) -> Self {
        if let Some(worker) = app.worker.take() {
            worker.stop().await;
        }
        let console = common::console::serve(&app.settings, Default::default()).await;
        let browser = Browser::start().await;
        Self {
            browser,
            console,
            app,
        }
    }

    async fn goto(&self, path: &str) {
        self.browser
            .goto(&self.console.url(path))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// The current URL's path and query.
    async fn at(&self) -> String {
        let url = self.browser.current_url().await.expect("the current URL");
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Waits for an element (CSS).
    async fn wait_css(&self, css: &str) -> Element {
        self.browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
    }

    /// Waits for an element (XPath).
    async fn wait_xpath(&self, xpath: &str) -> Element {
        self.browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::XPath(xpath))
            .await
            .unwrap_or_else(|e| panic!("no {xpath} on the page: {e}"))
    }

    /// Waits until the page's `<h1>` is `title`.
    async fn wait_title(&self, title: &str) {
        self.wait_xpath(&format!("//main/h1[normalize-space()='{title}']"))
            .await;
    }

    async fn text_of(&self, css: &str) -> String {
        self.wait_css(css).await.text().await.expect("text")
    }

    /// Types the password into the login form and submits it.
    async fn submit_password(&self, password: &str) {
        let field = self.wait_css("form[action='/login'] input#password").await;
        field.clear().await.expect("clear the field");
        field.send_keys(password).await.expect("type the password");
        self.click("//form[@action='/login']//button[@type='submit']")
            .await;
    }

    /// Logs in through the form from the overview and waits for it.
    async fn log_in(&self) {
        self.goto("/").await;
        self.submit_password(PASSWORD).await;
        self.wait_title("Overview").await;
    }

    async fn click(&self, xpath: &str) {
        self.wait_xpath(xpath)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {xpath}: {e}"));
    }

    /// Accepts the confirmation `console.js` asks, returning its question.
    async fn confirm(&self) -> String {
        let start = std::time::Instant::now();
        loop {
            match self.browser.get_alert_text().await {
                Ok(question) => {
                    self.browser.accept_alert().await.expect("accept");
                    return question;
                }
                Err(error) => assert!(start.elapsed() < WAIT, "no confirmation asked: {error}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The cells' texts of each body row of the page's table under `section`
    /// (CSS, `main` for the page's only table).
    async fn rows(&self, section: &str) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        let css = format!("{section} table tbody tr");
        for row in self
            .browser
            .find_all(Locator::Css(&css))
            .await
            .expect("rows")
        {
            let mut cells = Vec::new();
            for cell in row.find_all(Locator::Css("td")).await.expect("cells") {
                cells.push(cell.text().await.expect("text"));
            }
            rows.push(cells);
        }
        rows
    }

    /// Saves a screenshot of the viewport as `<page>.png` and checks it is one.
    async fn screenshot(&self, page: &str) {
        let path = self.browser.screenshot(screenshot_path(page)).await;
        let png = std::fs::read(&path).expect("read the screenshot back");
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
            "{path:?} is a PNG of a page ({} bytes)",
            png.len()
        );
    }

    /// Messages ready in the queue `name`.
    async fn depth(&self, name: &str) -> u32 {
        common::depth(&self.app.channel, name).await
    }

    async fn finish(self) {
        let Self {
            browser,
            console,
            app,
        } = self;
        browser.close().await;
        drop(console);
        app.finish().await;
    }
}

/// A Jira timestamp `minutes_ago` minutes ago.
fn jira_time(minutes_ago: i64) -> String {
    (Utc::now() - chrono::TimeDelta::minutes(minutes_ago))
        .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
        .to_string()
}

/// Jira's assignee object with the email hidden.
fn hidden(name: &str) -> Value {
    json!({"name": name, "key": format!("JIRAUSER-{name}"), "displayName": name, "active": true})
}

/// What a real deployment's console would show: the integration "Acme Jira"
/// (OAuth 1.0a, its webhook registered, reconciled 40 minutes ago) linked to
/// two organizations; a real worker handled webhooks for DEMO-12 (assigned to
/// Ana, then to someone jirasync does not know, then unassigned) and
/// dead-lettered two: DEMO-14's, whose assignee Jira refused to look up
/// (`400`), and one whose body is not an object.
async fn acme() -> TestApp {
    let app = TestApp::builder()
        .concurrency(1)
        .credentials(Some("acme-access-token"))
        .start()
        .await;
    app.db
        .execute(
            r#"UPDATE integrations
                  SET name = 'Acme Jira', external_id = $2,
                      metadata = metadata || '{"webhook_path": "/rest/webhooks/1.0/webhook/3", "webhook_id": "3"}'
                WHERE id = $1"#,
            &[&app.integration, &EXTERNAL_ID],
        )
        .await
        .expect("name the integration");
    app.db
        .execute(
            "INSERT INTO integration_reconciliations (integration_id, reconciled_at)
             VALUES ($1, now() - interval '40 minutes')",
            &[&app.integration],
        )
        .await
        .expect("a reconciliation");
    let seed = app.seed();
    let web = seed.org(app.integration, true, "DEMO-12").await;
    let mobile = seed.org(app.integration, true, "DEMO-14").await;
    for (org, slug) in [(&web, "acme-web"), (&mobile, "acme-mobile")] {
        app.db
            .execute(
                "UPDATE organizations SET slug = $2, name = $2 WHERE id = $1",
                &[&org.id, &slug],
            )
            .await
            .expect("name the organization");
    }
    let ana = seed.teammate(&web, "ana@acme.example").await;
    let ben = seed.teammate(&mobile, "ben@acme.example").await;
    for (user, name) in [(ana, "ana"), (ben, "ben")] {
        app.db
            .execute(
                "UPDATE users SET username = $2 WHERE id = $1",
                &[&user, &name],
            )
            .await
            .expect("name the user");
    }
    Mock::given(method("GET"))
        .and(path("/rest/api/2/user"))
        .and(query_param("username", "ghost"))
        .respond_with(app.jira.verified(
            ResponseTemplate::new(400).set_body_json(
                json!({"errorMessages": ["The username query parameter was invalid"]}),
            ),
        ))
        .mount(&app.server)
        .await;

    let token = token(EXTERNAL_ID, SECRET);
    let bodies = [
        assignee_changed("DEMO-12", jira_user("ana@acme.example"), &jira_time(9)),
        assignee_changed(
            "DEMO-12",
            jira_user("contractor@elsewhere.example"),
            &jira_time(6),
        ),
        assignee_changed("DEMO-12", Value::Null, &jira_time(3)),
        assignee_changed("DEMO-14", hidden("ghost"), &jira_time(2)),
    ];
    for body in &bodies {
        app.send_with(&token, body.to_string().as_bytes(), None)
            .await;
    }
    app.send_with(&token, b"[1]", None).await;
    common::eventually("the worker handled the webhooks", WAIT, || async {
        let events: i64 = app
            .db
            .query_one(
                "SELECT count(*) FROM sync_events WHERE issue_key = 'DEMO-12'",
                &[],
            )
            .await
            .expect("count")
            .get(0);
        events == 3 && app.dead_letters().await == 2
    })
    .await;
    app
}

#[tokio::test]
async fn browser_logs_in_through_the_form_after_a_wrong_password_and_logs_out_for_good() {
    let app = TestApp::builder().no_worker().start().await;
    let scene = Scene::start(app).await;

    // A page asked for without a session: the login form, which comes back to it.
    scene.goto("/events").await;
    scene.wait_css("form[action='/login'] input#password").await;
    assert_eq!(scene.at().await, "/login?next=%2Fevents");
    scene.screenshot("login").await;

    scene.submit_password("not-the-password").await;
    assert_eq!(scene.text_of("p.error").await, "Wrong password.");
    assert_eq!(scene.at().await, "/login");
    let cookies = scene.browser.get_all_cookies().await.expect("cookies");
    assert!(
        cookies.is_empty(),
        "no session after a wrong password: {cookies:?}"
    );

    scene.submit_password(PASSWORD).await;
    scene.wait_title("Sync events").await;
    assert_eq!(scene.at().await, "/events");
    let cookies = scene.browser.get_all_cookies().await.expect("cookies");
    let [cookie] = cookies.as_slice() else {
        panic!("one session cookie: {cookies:?}");
    };
    assert_eq!(cookie.http_only(), Some(true));
    let old = format!("{}={}", cookie.name(), cookie.value());

    // Logged out, the page is closed again, and so is the old cookie anywhere.
    scene.click("//form[@action='/logout']//button").await;
    scene.wait_css("form[action='/login'] input#password").await;
    assert_eq!(scene.at().await, "/login");
    scene.goto("/").await;
    scene.wait_css("form[action='/login'] input#password").await;
    assert_eq!(scene.at().await, "/login?next=%2F");
    let http = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .expect("a client");
    for path in ["/", "/user-map", "/api/integrations"] {
        let answer = http
            .get(scene.console.url(path))
            .header("cookie", &old)
            .send()
            .await
            .expect("GET");
        let expected = match path {
            "/api/integrations" => StatusCode::UNAUTHORIZED,
            _ => StatusCode::SEE_OTHER,
        };
        assert_eq!(answer.status(), expected, "{path} with the old cookie");
    }
    scene.finish().await;
}

#[tokio::test]
async fn browser_reads_the_overview_and_finds_an_issues_history_by_the_search() {
    let app = acme().await;
    let integration = app.integration;
    let names = common::names(&app.settings);
    let scene = Scene::start(app).await;
    scene.log_in().await;

    // The integration's row, as `integration status` and the worker's records say.
    let integrations = scene.rows("section:nth-of-type(1)").await;
    assert_eq!(integrations.len(), 1, "{integrations:?}");
    let row = &integrations[0];
    assert!(
        row[0].contains(&format!("Acme Jira (id {integration})")) && row[0].contains(EXTERNAL_ID),
        "{row:?}"
    );
    assert_eq!(row[1], "jira_server", "{row:?}");
    assert_eq!(row[3], "active", "{row:?}");
    assert!(
        row[5].contains("/rest/webhooks/1.0/webhook/3 (id 3)"),
        "{row:?}"
    );
    assert!(row[6].ends_with(" ago"), "a webhook was handled: {row:?}");
    assert_eq!(row[7], "40 min ago", "{row:?}");
    assert_eq!(row[8], "2", "assigned and unassigned: {row:?}");
    assert_eq!(row[9], "2", "both dead letters: {row:?}");

    // The queues by full name, with what is ready in each.
    let queues = scene.rows("section:nth-of-type(2)").await;
    let depth = |queue: String| {
        queues
            .iter()
            .find(|row| row[0] == queue)
            .unwrap_or_else(|| panic!("{queue} in {queues:?}"))[1]
            .clone()
    };
    assert_eq!(depth(names.dead()), "2");
    assert_eq!(depth(names.webhooks()), "0");
    assert_eq!(
        depth(names.retry(&names.jobs(), Duration::from_secs(1))),
        "0"
    );
    scene.screenshot("overview").await;

    // The search: the issue's decisions, newest first, in `explain`'s words.
    let field = scene.wait_css("form[action='/issues'] input#key").await;
    field.send_keys("DEMO-12").await.expect("type the key");
    scene
        .click("//form[@action='/issues']//button[@type='submit']")
        .await;
    scene
        .wait_xpath("//h2[normalize-space()='History of DEMO-12']")
        .await;
    assert_eq!(scene.at().await, "/issues?key=DEMO-12");
    let history = scene.rows("main").await;
    let pool = jirasync::db::connect(&scene.app.settings.database, 1)
        .await
        .expect("a pool");
    let client = pool.get().await.expect("a connection");
    let explained = jirasync::sync::audit::recent(&client, "DEMO-12", None, 100)
        .await
        .expect("the history");
    assert_eq!(history.len(), 3, "{history:?}");
    let sentences: Vec<String> = explained
        .iter()
        .map(|event| event.sentence().to_string())
        .collect();
    let shown: Vec<String> = history.iter().map(|row| row[5].clone()).collect();
    assert_eq!(
        shown, sentences,
        "the sentences of `jirasync explain DEMO-12`"
    );
    let outcomes: Vec<&str> = history.iter().map(|row| row[4].as_str()).collect();
    assert_eq!(outcomes[0], "unassigned", "newest first: {history:?}");
    assert_eq!(outcomes[2], "assigned", "{history:?}");
    assert!(
        history.iter().all(|row| row[2] == "acme-web"),
        "{history:?}"
    );
    scene.screenshot("issue-history").await;

    // All issues' events, each key linking to its history.
    scene
        .click("//nav//a[normalize-space()='Sync events']")
        .await;
    scene.wait_title("Sync events").await;
    let events = scene.rows("main").await;
    assert!(events.len() >= 3, "{events:?}");
    scene.screenshot("sync-events").await;
    scene
        .click("//main//table//a[normalize-space()='DEMO-12']")
        .await;
    scene
        .wait_xpath("//h2[normalize-space()='History of DEMO-12']")
        .await;
    scene.finish().await;
}

#[tokio::test]
async fn browser_replays_one_dead_letter_by_its_button_then_all_and_they_leave_p_dead() {
    let app = acme().await;
    let integration = app.integration;
    let names = common::names(&app.settings);
    let letters = dlq::list(&app.settings.broker, 10).await.expect("list");
    let demo14 = letters
        .iter()
        .find(|letter| letter.issue_key.as_deref() == Some("DEMO-14"))
        .unwrap_or_else(|| panic!("DEMO-14's webhook is dead-lettered: {letters:?}"))
        .id
        .clone();
    let scene = Scene::start(app).await;
    scene.log_in().await;
    scene
        .click("//nav//a[normalize-space()='Dead letters']")
        .await;
    scene.wait_title("Dead letters").await;

    let rows = scene.rows("main").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let row = rows
        .iter()
        .find(|row| row[0] == demo14)
        .unwrap_or_else(|| panic!("{demo14} in {rows:?}"));
    assert_eq!(row[1], "jira_server.webhook", "{row:?}");
    assert!(row[2].contains("400"), "the reason: {row:?}");
    assert_eq!(row[4], names.webhooks(), "{row:?}");
    assert_eq!(row[6], integration.to_string(), "{row:?}");
    assert_eq!(row[7], "DEMO-14", "{row:?}");
    scene.screenshot("dead-letters").await;

    // Its own Replay button: it, and only it, goes back to P.webhooks.
    scene
        .click(&format!(
            "//tr[td/code[normalize-space()='{demo14}']]//button[normalize-space()='Replay']"
        ))
        .await;
    let notice = scene.text_of("p.notice").await;
    assert_eq!(notice, "Replayed 1 message(s) to their source queues.");
    assert_eq!(scene.at().await, "/dead-letters?replayed=1");
    let rows = scene.rows("main").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_ne!(rows[0][0], demo14);
    assert_eq!(scene.depth(&names.dead()).await, 1);
    assert_eq!(scene.depth(&names.webhooks()).await, 1);
    let left = dlq::list(&scene.app.settings.broker, 10)
        .await
        .expect("list");
    assert!(
        left.len() == 1 && left[0].id != demo14,
        "P.dead holds the other one only: {left:?}"
    );

    // Replay all, once confirmed.
    scene
        .click("//form[@action='/dead-letters/replay']//button[normalize-space()='Replay all']")
        .await;
    assert_eq!(
        scene.confirm().await,
        "Replay every dead letter to its source queue?"
    );
    scene
        .wait_xpath("//p[normalize-space()='No message is dead-lettered.']")
        .await;
    assert_eq!(
        scene.text_of("p.notice").await,
        "Replayed 1 message(s) to their source queues."
    );
    assert_eq!(scene.depth(&names.dead()).await, 0);
    assert_eq!(scene.depth(&names.webhooks()).await, 2);
    scene.finish().await;
}

/// The mappings stored, as (jira_user, username).
async fn stored(db: &tokio_postgres::Client) -> Vec<(String, String)> {
    db.query(
        "SELECT m.jira_user, u.username FROM jira_user_mappings m JOIN users u ON u.id = m.user_id
          ORDER BY m.jira_user",
        &[],
    )
    .await
    .expect("mappings")
    .iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect()
}

#[tokio::test]
async fn browser_sets_and_removes_user_map_entries_and_shows_a_refused_one() {
    let app = acme().await;
    let integration = app.integration.to_string();
    let scene = Scene::start(app).await;
    scene.log_in().await;
    scene.click("//nav//a[normalize-space()='User map']").await;
    scene.wait_title("User map").await;
    scene
        .wait_xpath("//p[normalize-space()='No Jira user is mapped.']")
        .await;

    let set = |jira_user: &'static str, user: &'static str| {
        let scene = &scene;
        let integration = integration.clone();
        async move {
            for (field, value) in [
                ("integration", integration.as_str()),
                ("jira_user", jira_user),
                ("user", user),
            ] {
                let input = scene
                    .wait_css(&format!("form[action='/user-map'] input#{field}"))
                    .await;
                input.clear().await.expect("clear");
                input.send_keys(value).await.expect("type");
            }
            scene
                .click("//form[@action='/user-map']//button[@type='submit']")
                .await;
        }
    };
    set("ana.lopez", "ana").await;
    scene
        .wait_xpath("//main//table//td[normalize-space()='ana.lopez']")
        .await;
    set("JIRAUSER10402", "ben").await;
    scene
        .wait_xpath("//main//table//td[normalize-space()='JIRAUSER10402']")
        .await;
    let rows = scene.rows("main").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter().any(|row| row[0] == integration
            && row[1] == "ana.lopez"
            && row[2].starts_with("ana (id ")),
        "{rows:?}"
    );
    let both = vec![
        ("JIRAUSER10402".to_owned(), "ben".to_owned()),
        ("ana.lopez".to_owned(), "ana".to_owned()),
    ];
    assert_eq!(stored(&scene.app.db).await, both);
    scene.screenshot("user-map").await;

    // A username nobody has: the error on the page, the form as typed, nothing stored.
    set("carla", "nobody-by-this-name").await;
    let error = scene.text_of("p.error").await;
    assert!(error.contains("no user has username"), "{error}");
    let typed = scene
        .wait_css("form[action='/user-map'] input#user")
        .await
        .prop("value")
        .await
        .expect("value");
    assert_eq!(typed.as_deref(), Some("nobody-by-this-name"));
    assert_eq!(stored(&scene.app.db).await, both);

    // Remove, once confirmed.
    scene
        .click("//tr[td[normalize-space()='ana.lopez']]//button[normalize-space()='Remove']")
        .await;
    assert_eq!(scene.confirm().await, "Remove this mapping?");
    common::eventually("the row is gone", WAIT, || async {
        scene.rows("main").await.len() == 1
    })
    .await;
    assert_eq!(
        stored(&scene.app.db).await,
        [("JIRAUSER10402".to_owned(), "ben".to_owned())]
    );
    scene.finish().await;
}
