//! Secrets at rest over an installation's life (docs/reference.md §8): plaintext
//! from before a key (or seeded by hand) is still read; `jirasync secrets
//! reencrypt` seals it, then moves it to a new key with the old one beside it; a
//! process whose key opens nothing dead-letters the webhook naming the integration
//! and fails its commands clearly, without a crash.

use crate::common::app::{T1, WAIT};
use crate::common::seed::{SECRET, assignee_changed, jira_user};
use crate::common::{self, TestApp};

use jirasync::config::Settings;
use jirasync::queue::message::{ERROR, header_str};
use jirasync::secrets::SecretKey;
use serde_json::Value;

const ACCESS_TOKEN: &str = "rotation-access-token";

/// `settings` with these keys.
fn keyed(settings: &Settings, current: &str, old: Option<&str>) -> Settings {
    let mut keyed = settings.clone();
    keyed.database.secret_key = Some(current.to_owned());
    keyed.database.secret_key_old = old.map(str::to_owned);
    keyed
}

/// `jirasync secrets reencrypt` on `settings`: its JSON summary.
fn reencrypt(settings: &Settings) -> Value {
    let output = common::output(&["secrets", "reencrypt"], settings);
    assert!(
        output.status.success(),
        "secrets reencrypt failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON summary")
}

fn key_id(key: &str) -> String {
    SecretKey::parse(key).expect("a key").id().to_owned()
}

/// Sends an assignment of `key` to a new teammate with the worker of `settings`
/// and waits until it is applied.
async fn applies(app: &TestApp, settings: &Settings, issue: &str) {
    let worker = common::spawn_worker(settings);
    let org = app.seed().org(app.integration, true, issue).await;
    let email = format!("{}@example.org", issue.to_lowercase());
    let user = app.seed().teammate(&org, &email).await;
    app.send(&assignee_changed(issue, jira_user(&email), T1))
        .await;
    app.wait_assignee(org.group_id, Some(user)).await;
    worker.stop().await;
}

#[tokio::test]
async fn plaintext_is_read_reencrypt_seals_it_and_a_rotation_moves_it_to_the_new_key() {
    let app = TestApp::builder()
        .credentials(Some(ACCESS_TOKEN))
        .no_worker()
        .start()
        .await;
    // Seeded by hand, as an older version stored them: in the clear.
    let plaintext = [SECRET, "PRIVATE KEY", ACCESS_TOKEN, "access-secret"];
    let dump = common::pg_dump(&app.settings);
    for value in plaintext {
        assert!(dump.contains(value), "seeded in the clear: {value}");
    }
    let (a, b) = (common::SECRET_KEY_A, common::SECRET_KEY_B);
    let with_a = keyed(&app.settings, a, None);
    applies(&app, &with_a, "ROT-1").await;

    let sealed = reencrypt(&with_a);
    assert_eq!(sealed["key_id"], key_id(a).as_str());
    assert_eq!(
        sealed["sealed"], 4,
        "webhook secret, private key, token, token secret: {sealed}"
    );
    assert_eq!(sealed["unreadable"], 0);
    let dump = common::pg_dump(&app.settings);
    common::assert_none_in(&dump, &plaintext);
    assert!(dump.contains(&format!("jsenc2:{}:", key_id(a))));
    let again = reencrypt(&with_a);
    assert_eq!(
        (&again["sealed"], &again["already_current"]),
        (&Value::from(0), &Value::from(4)),
        "idempotent: {again}"
    );
    applies(&app, &with_a, "ROT-2").await;

    // Rotation: the new key, the old one beside it while re-encrypting.
    let rotated = reencrypt(&keyed(&app.settings, b, Some(a)));
    assert_eq!(rotated["sealed"], 4, "{rotated}");
    let dump = common::pg_dump(&app.settings);
    assert!(dump.contains(&format!("jsenc2:{}:", key_id(b))));
    assert!(
        !dump.contains(&format!("jsenc2:{}:", key_id(a))),
        "nothing is left under the old key"
    );
    common::assert_none_in(&dump, &plaintext);

    // A process still on the old key alone: the webhook is dead-lettered naming
    // the integration and what to set, and commands fail saying so.
    let worker = common::spawn_worker(&with_a);
    app.send(&assignee_changed(
        "ROT-3",
        jira_user("rot-3@example.org"),
        T1,
    ))
    .await;
    let dead = common::get_one(&app.channel, &common::names(&app.settings).dead(), WAIT)
        .await
        .expect("dead-lettered, not lost");
    let reason = header_str(&dead.delivery.properties, ERROR).expect("the reason");
    let integration = format!("integration {}", app.integration);
    for expected in [
        integration.as_str(),
        key_id(b).as_str(),
        "JIRASYNC_SECRET_KEY",
    ] {
        assert!(reason.contains(expected), "{expected:?} in {reason}");
    }
    assert!(!worker.is_finished(), "the worker keeps running");
    worker.stop().await;
    let id = app.integration.to_string();
    let status = common::output(&["integration", "status", &id], &with_a);
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(!status.status.success(), "{stderr}");
    assert!(
        stderr.contains(&integration) && stderr.contains("JIRASYNC_SECRET_KEY"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let refused = common::output(&["secrets", "reencrypt"], &with_a);
    assert!(
        !refused.status.success(),
        "values it cannot open are an error"
    );
    let summary: Value = serde_json::from_slice(&refused.stdout).expect("a summary");
    assert_eq!(summary["unreadable"], 4, "{summary}");

    // The new key alone opens everything.
    applies(&app, &keyed(&app.settings, b, None), "ROT-4").await;
    app.finish().await;
}

#[tokio::test]
async fn a_bad_key_setting_is_refused_at_start_without_echoing_it() {
    let app = TestApp::builder().no_worker().start().await;
    let short = "c2hvcnQta2V5";
    for (settings, expected) in [
        (
            keyed(&app.settings, short, None),
            "JIRASYNC_SECRET_KEY is 9 bytes, not 32",
        ),
        (
            keyed(&app.settings, common::SECRET_KEY_A, Some("not base64!")),
            "JIRASYNC_SECRET_KEY_OLD is not base64",
        ),
    ] {
        let output = common::output(&["integration", "list"], &settings);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(
            !stderr.contains(short) && !stderr.contains("not base64!"),
            "{stderr}"
        );
    }
    let mut old_only = app.settings.clone();
    old_only.database.secret_key_old = Some(common::SECRET_KEY_A.into());
    let output = common::output(&["integration", "list"], &old_only);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("without JIRASYNC_SECRET_KEY"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let unkeyed = common::output(&["integration", "list"], &app.settings);
    assert!(unkeyed.status.success());
    assert!(
        String::from_utf8_lossy(&unkeyed.stderr).contains("JIRASYNC_SECRET_KEY is not set"),
        "every process warns without a key"
    );
    let refused = common::output(&["secrets", "reencrypt"], &app.settings);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no key to encrypt with"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    app.finish().await;
}
