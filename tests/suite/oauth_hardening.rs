//! OAuth 2.0 and the admin commands hardened (docs/reference.md §1, §6.2, §8),
//! against the real Postgres, RabbitMQ, worker and binary and the fake Jira
//! Data Center authorization server (`common/fake_oauth2.rs`), which rotates
//! refresh tokens and refuses one used twice: a refresh answered with an
//! unusable `expires_in` keeps the rotated refresh token and the integration
//! working; `oauth finish --code` installs without the callback and refuses
//! clearly what it cannot finish; workers scrub and delete old sessions; the
//! commands warn about cleartext and unverified transport. The log rules are in
//! `oauth_hardening/logs.rs`.

mod logs;

use std::time::Duration;

use jirasync::commands::oauth;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::app::{T1, WAIT};
use crate::common::fake_oauth2::{
    CLIENT_SECRET, FakeOAuth2, SecretFile, mount_jira, mount_token_endpoint, mount_user,
    oauth2_start_args,
};
use crate::common::seed::assignee_changed;
use crate::common::{self, TestApp};

/// Jira's assignee object with the email hidden: the worker asks Jira for it.
fn hidden(name: &str) -> Value {
    json!({"name": name, "key": format!("JIRAUSER-{name}"), "displayName": name, "active": true})
}

/// The stored (access token, refresh token, seconds from refresh to expiry,
/// needs re-authorization).
async fn stored(app: &TestApp, integration: i64) -> (String, String, f64, bool) {
    let row = app
        .db
        .query_one(
            "SELECT access_token, refresh_token,
                    EXTRACT(EPOCH FROM access_token_expires_at - refreshed_at)::float8,
                    needs_reauth_at IS NOT NULL
               FROM integration_credentials WHERE integration_id = $1",
            &[&integration],
        )
        .await
        .expect("credentials");
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

/// A year, the longest lifetime believed; an hour, the default.
const YEAR: f64 = 31_536_000.0;
const HOUR: f64 = 3_600.0;

#[tokio::test]
async fn refreshes_answered_with_unusable_expires_in_keep_the_rotated_refresh_token_and_work() {
    let app = TestApp::builder().concurrency(1).start().await;
    let fake = FakeOAuth2::new(Duration::from_secs(300));
    mount_token_endpoint(&app, &fake).await;
    let seeded = fake.grant();
    fake.expire_access_tokens();
    app.seed()
        .oauth2_credentials(app.integration, &seeded, -1.0)
        .await;
    // Each answer below made the old code lose the rotated refresh token (an
    // unreadable answer, or a panic adding the lifetime to now) or keep a
    // useless expiry; each is followed by a lookup that needs a fresh token.
    let cases: [(Option<&str>, f64); 7] = [
        (Some("1e30"), YEAR),
        (Some("100000000000000000"), YEAR),
        (Some("1e400"), HOUR),
        (Some("-5"), HOUR),
        (Some(r#""7200""#), HOUR),
        (None, HOUR),
        (Some("5"), 60.0),
    ];
    for (n, (expires_in, lifetime)) in cases.into_iter().enumerate() {
        fake.answer_expires_in(expires_in);
        // Refused at Jira whatever the stored expiry says: the lookup refreshes.
        fake.expire_access_tokens();
        let (key, name) = (format!("CLAMP-{n}"), format!("clamp{n}"));
        let org = app.seed().org(app.integration, true, &key).await;
        let email = format!("{name}@example.org");
        let user = app.seed().teammate(&org, &email).await;
        mount_user(&app, &fake, &name, &email).await;
        app.send(&assignee_changed(&key, hidden(&name), T1)).await;
        app.wait_assignee(org.group_id, Some(user)).await;

        let (access, refresh, stored_lifetime, needs_reauth) = stored(&app, app.integration).await;
        let latest = fake.latest();
        assert_eq!(access, latest.0, "{expires_in:?}: the new access token");
        assert_eq!(
            refresh, latest.1,
            "{expires_in:?}: the rotated refresh token"
        );
        assert!(fake.takes_refresh_token(&refresh), "{expires_in:?}");
        assert!(
            (stored_lifetime - lifetime).abs() < 5.0,
            "{expires_in:?}: stored for {stored_lifetime} s, not {lifetime} s"
        );
        assert!(!needs_reauth, "{expires_in:?}");
    }
    let (exchanges, refreshes, invalid_grants, _) = fake.counts();
    assert_eq!(
        (exchanges, refreshes, invalid_grants),
        (0, cases.len(), 0),
        "one refresh per lookup, no refresh token used twice"
    );
    assert_eq!(app.dead_letters().await, 0);
    app.finish().await;
}

/// The session's (state, error, integration).
async fn session(app: &TestApp, id: Uuid) -> (String, Option<String>, Option<i64>) {
    let row = app
        .db
        .query_one(
            "SELECT state, error, integration_id FROM oauth_sessions WHERE id = $1",
            &[&id],
        )
        .await
        .expect("session row");
    (row.get(0), row.get(1), row.get(2))
}

/// `jirasync oauth finish ID ARGS…` as a process: (succeeded, stdout, stderr).
fn finish(app: &TestApp, id: Uuid, args: &[&str]) -> (bool, String, String) {
    let id = id.to_string();
    let mut all = vec!["oauth", "finish", id.as_str()];
    all.extend_from_slice(args);
    let output = common::output(&all, &app.settings);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Starts an OAuth 2.0 session (`oauth start --client-id`) and authorizes it:
/// the session and the code Jira would redirect the browser with.
async fn authorized(
    app: &TestApp,
    fake: &FakeOAuth2,
    secret: &SecretFile,
) -> (Uuid, common::fake_oauth2::Authorized) {
    let started = oauth::start(&oauth2_start_args(app, secret))
        .await
        .expect("oauth start");
    let authorized = fake.authorize(started.authorize_url.as_deref().expect("an authorize URL"));
    (started.session_id, authorized)
}

#[tokio::test]
async fn oauth_finish_with_the_code_installs_without_the_callback() {
    // No ingress: the callback cannot be reached.
    let app = TestApp::builder().concurrency(1).start().await;
    let fake = FakeOAuth2::new(Duration::from_secs(300));
    mount_jira(&app, &fake, 10).await;
    // The exchange's answer is clamped too.
    fake.answer_expires_in(Some("1e30"));
    let secret = SecretFile::new(CLIENT_SECRET);

    // The code alone, as read off the address bar.
    let (id, code) = authorized(&app, &fake, &secret).await;
    let (ok, stdout, stderr) = finish(&app, id, &["--code", &code.code]);
    assert!(ok, "{stderr}");
    let printed: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(printed["session_id"], id.to_string());
    assert!(printed["message_id"].is_string(), "{printed}");
    wait_state(&app, id, "installed").await;
    let integration = session(&app, id).await.2.expect("the integration");
    let (access, refresh, lifetime, _) = stored(&app, integration).await;
    assert_eq!((access, refresh), fake.latest());
    assert!((lifetime - YEAR).abs() < 5.0, "{lifetime}");

    // The whole address the browser was sent to.
    let (again, code) = authorized(&app, &fake, &secret).await;
    let address = format!(
        "{}?code={}&state={}",
        code.redirect_uri, code.code, code.state
    );
    let (ok, _, stderr) = finish(&app, again, &["--code", &address]);
    assert!(ok, "{stderr}");
    wait_state(&app, again, "installed").await;

    // The fake checked each code, its PKCE verifier and redirect_uri.
    let (exchanges, _, invalid_grants, _) = fake.counts();
    assert_eq!((exchanges, invalid_grants), (2, 0));
    assert_eq!(app.dead_letters().await, 0);
    app.finish().await;
}

async fn wait_state(app: &TestApp, id: Uuid, expected: &str) {
    common::eventually(
        &format!("session {id} is {expected}"),
        WAIT,
        || async move { session(app, id).await.0 == expected },
    )
    .await;
}

#[tokio::test]
async fn oauth_finish_refuses_clearly_what_it_cannot_finish() {
    let app = TestApp::builder().concurrency(1).start().await;
    let fake = FakeOAuth2::new(Duration::from_secs(300));
    mount_jira(&app, &fake, 10).await;
    let secret = SecretFile::new(CLIENT_SECRET);

    // An OAuth 1.0a session given a code.
    let oauth1 = Uuid::new_v4();
    app.db
        .execute(
            "INSERT INTO oauth_sessions (id, base_url, consumer_key, private_key, state, request_token)
             VALUES ($1, 'https://jira.example.org', 'ck', '', 'awaiting_authorization', $2)",
            &[&oauth1, &format!("rt-{oauth1}")],
        )
        .await
        .expect("an OAuth 1.0a session");
    let (ok, _, stderr) = finish(&app, oauth1, &["--code", "abc"]);
    assert!(!ok);
    assert!(
        stderr.contains("OAuth 1.0a") && stderr.contains("--verifier"),
        "{stderr}"
    );

    // An OAuth 2.0 session given a verifier.
    let (id, code) = authorized(&app, &fake, &secret).await;
    let (ok, _, stderr) = finish(&app, id, &["--verifier", "abc"]);
    assert!(!ok);
    assert!(
        stderr.contains("OAuth 2.0") && stderr.contains("--code"),
        "{stderr}"
    );

    // The same session 11 minutes after it started.
    app.db
        .execute(
            "UPDATE oauth_sessions SET created_at = now() - interval '11 minutes' WHERE id = $1",
            &[&id],
        )
        .await
        .expect("age the session");
    let (ok, _, stderr) = finish(&app, id, &["--code", &code.code]);
    assert!(!ok);
    assert!(
        stderr.contains("expired") && stderr.contains("oauth start"),
        "{stderr}"
    );

    // A session that does not exist.
    let unknown = Uuid::new_v4();
    let (ok, _, stderr) = finish(&app, unknown, &["--code", "abc"]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("no OAuth session has id {unknown}")),
        "{stderr}"
    );

    // Nothing was exchanged, no session changed.
    app.settle().await;
    assert_eq!(fake.counts().0, 0);
    assert_eq!(session(&app, id).await.0, "awaiting_authorization");
    assert_eq!(session(&app, oauth1).await.0, "awaiting_authorization");
    app.finish().await;
}

/// A session row with every secret set, last updated `age` ago.
async fn old_session(db: &tokio_postgres::Client, state: &str, age: &str) -> Uuid {
    let id = Uuid::new_v4();
    db.execute(
        &format!(
            "INSERT INTO oauth_sessions
                    (id, base_url, consumer_key, private_key, state, flow, client_secret,
                     code_verifier, request_token, request_token_secret, oauth2_state, error,
                     created_at, updated_at)
             VALUES ($1, 'https://jira.example.org', 'ck', 'private-key', $2, 'oauth2',
                     'client-secret', 'verifier', $3, 'token-secret', $4, 'what failed',
                     now() - interval '{age}', now() - interval '{age}')"
        ),
        &[&id, &state, &format!("rt-{id}"), &format!("state-{id}")],
    )
    .await
    .expect("a session");
    id
}

/// The session's (state, error, OAuth 2.0 state, how many secrets it holds);
/// `None` once deleted.
async fn after_cleanup(
    db: &tokio_postgres::Client,
    id: Uuid,
) -> Option<(String, String, String, i64)> {
    let row = db
        .query_opt(
            "SELECT state, error, oauth2_state,
                    (private_key <> '')::int + (client_secret IS NOT NULL)::int
                    + (code_verifier IS NOT NULL)::int + (request_token_secret IS NOT NULL)::int
                    AS secrets
               FROM oauth_sessions WHERE id = $1",
            &[&id],
        )
        .await
        .expect("session");
    row.map(|row| {
        (
            row.get(0),
            row.get(1),
            row.get(2),
            i64::from(row.get::<_, i32>(3)),
        )
    })
}

#[tokio::test]
async fn a_worker_at_start_scrubs_idle_sessions_and_deletes_month_old_ones() {
    let app = TestApp::builder().no_worker().start().await;
    let db = &app.db;
    let failed = old_session(db, "failed", "25 hours").await;
    let abandoned = old_session(db, "awaiting_authorization", "25 hours").await;
    let month_old = old_session(db, "failed", "31 days").await;
    let installed_month_old = old_session(db, "installed", "31 days").await;
    let installed = old_session(db, "installed", "25 hours").await;
    let recent = old_session(db, "failed", "23 hours").await;
    let updated_at = |id: Uuid| async move {
        db.query_one(
            "SELECT updated_at FROM oauth_sessions WHERE id = $1",
            &[&id],
        )
        .await
        .expect("session")
        .get::<_, chrono::DateTime<chrono::Utc>>(0)
    };
    let failed_updated_at = updated_at(failed).await;

    // Two workers, as a deployment runs them: each cleans at start.
    let workers = [
        common::spawn_worker(&app.settings),
        common::spawn_worker(&app.settings),
    ];
    common::eventually("the idle sessions are scrubbed", WAIT, || async {
        after_cleanup(db, failed).await.is_some_and(|s| s.3 == 0)
            && after_cleanup(db, abandoned).await.is_some_and(|s| s.3 == 0)
            && after_cleanup(db, month_old).await.is_none()
            && after_cleanup(db, installed_month_old).await.is_none()
    })
    .await;

    let kept = |state: &str, id: Uuid| {
        (
            state.to_owned(),
            "what failed".to_owned(),
            format!("state-{id}"),
        )
    };
    let (state, error, oauth2_state, _) = after_cleanup(db, failed).await.expect("kept");
    assert_eq!((state, error, oauth2_state), kept("failed", failed));
    assert_eq!(updated_at(failed).await, failed_updated_at, "its age stays");
    let (state, ..) = after_cleanup(db, abandoned).await.expect("kept");
    assert_eq!(state, "awaiting_authorization");
    for untouched in [installed, recent] {
        let (_, _, _, secrets) = after_cleanup(db, untouched).await.expect("kept");
        assert_eq!(secrets, 4, "{untouched} is untouched");
    }
    for worker in workers {
        worker.stop().await;
    }
}

/// `jirasync ARGS…` on `settings` with `extra` variables, which must succeed:
/// (stdout, the lines of stderr that say `warning`).
fn warnings(
    settings: &jirasync::config::Settings,
    args: &[&str],
    extra: &[(&str, String)],
) -> (String, Vec<String>) {
    let output = common::jirasync(args, settings, extra)
        .output()
        .expect("run jirasync");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?}: {stderr}");
    let warnings = stderr
        .lines()
        .filter(|line| line.contains("warning"))
        .map(str::to_owned)
        .collect();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        warnings,
    )
}

const KEY_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/jira_test_key.pem"
);

#[tokio::test]
async fn cleartext_and_unverified_transport_are_warned_about_and_nothing_else() {
    let settings = common::migrated().await;
    let secret = SecretFile::new(CLIENT_SECRET);
    let secret_file = secret.0.to_string_lossy().into_owned();
    let public = |url: &str| vec![("JIRASYNC_PUBLIC_URL", url.to_owned())];
    let add = |base_url: &str, verify: bool, extra: Vec<(&'static str, String)>| {
        let mut args = vec![
            "integration",
            "add",
            "--base-url",
            base_url,
            "--consumer-key",
            "ck",
            "--private-key-file",
            KEY_FILE,
        ];
        if !verify {
            args.push("--no-verify-ssl");
        }
        let (stdout, warned) = warnings(&settings, &args, &extra);
        let id = serde_json::from_str::<Value>(&stdout).expect("JSON")["id"]
            .as_i64()
            .expect("an id");
        (id, warned)
    };
    let webhook_url = |id: i64, extra: Vec<(&'static str, String)>| {
        warnings(
            &settings,
            &["integration", "webhook-url", &id.to_string()],
            &extra,
        )
        .1
    };
    let start = |base_url: &str, verify: bool, extra: Vec<(&'static str, String)>| {
        let mut args = vec![
            "oauth",
            "start",
            "--base-url",
            base_url,
            "--client-id",
            "client",
            "--client-secret-file",
            &secret_file,
        ];
        if !verify {
            args.push("--no-verify-ssl");
        }
        warnings(&settings, &args, &extra).1
    };
    let one = |warned: &[String], says: &str| {
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(warned[0].contains(says), "{warned:?}");
        assert!(warned[0].starts_with("warning: "), "{warned:?}");
    };

    // http:// to another host.
    let (remote, warned) = add("http://jira.example.com", true, vec![]);
    one(&warned, "http://jira.example.com");
    one(&warned, "use Jira's https:// URL");
    one(&webhook_url(remote, vec![]), "http://jira.example.com");
    one(
        &start("http://jira.example.com/jira", true, vec![]),
        "is http://",
    );
    // Jira's certificate not verified.
    let (unverified, warned) = add("https://jira-b.example.com", false, vec![]);
    one(&warned, "--no-verify-ssl");
    one(&webhook_url(unverified, vec![]), "--no-verify-ssl");
    one(
        &start("https://jira.example.com", false, vec![]),
        "--no-verify-ssl",
    );
    // A public URL in the clear.
    let cleartext = || public("http://sync.example.com");
    let (verified, warned) = add("https://jira-c.example.com", true, cleartext());
    one(&warned, "JIRASYNC_PUBLIC_URL http://sync.example.com");
    one(&webhook_url(verified, cleartext()), "JIRASYNC_PUBLIC_URL");
    one(
        &start("https://jira.example.com", true, cleartext()),
        "JIRASYNC_PUBLIC_URL",
    );
    assert_eq!(webhook_url(remote, cleartext()).len(), 2);

    // Loopback and https://: not a word.
    for base_url in [
        "http://127.0.0.1:9",
        "http://localhost:9",
        "http://[::1]:9",
        "https://jira-d.example.com",
    ] {
        for extra in [
            public("http://localhost:8080"),
            public("https://sync.example.com"),
        ] {
            let (id, warned) = add(base_url, true, extra.clone());
            assert!(warned.is_empty(), "{base_url}: {warned:?}");
            assert!(webhook_url(id, extra.clone()).is_empty(), "{base_url}");
            assert!(start(base_url, true, extra).is_empty(), "{base_url}");
        }
    }
    drop(secret);
}
