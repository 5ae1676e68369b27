//! Sealed values are bound to their row (docs/reference.md §2, "Secrets at rest"):
//! a sealed webhook secret a database writer copies from one integration's row to
//! another's does not open there (the webhook is dead-lettered `secret_unreadable`
//! naming that row, commands fail), while the row it came from keeps working; a
//! value an earlier version sealed for its column only (`jsenc1:`) is still read,
//! and `secrets reencrypt` rebinds it; once `secrets reencrypt` has recorded that
//! everything is sealed, planted plaintext is refused, logged at error and never
//! used — before that record, plaintext is read as it always was.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use jirasync::config::Settings;
use jirasync::queue::message::{ERROR, header_str};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::app::{T1, WAIT};
use crate::common::seed::{self, SECRET, assignee_changed, jira_user};
use crate::common::{self, TestApp};

const KEY: &str = common::SECRET_KEY_A;
const REQUIRED: &str = "plaintext where a sealed value is required";

/// `jirasync secrets reencrypt`: its JSON summary, and whether it succeeded.
fn reencrypt(settings: &Settings) -> (Value, bool) {
    let output = common::output(&["secrets", "reencrypt"], settings);
    let summary = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "a JSON summary: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (summary, output.status.success())
}

/// `metadata->>key` of integration `id` as stored.
async fn stored(app: &TestApp, id: i64, key: &str) -> String {
    app.db
        .query_one(
            "SELECT metadata->>$2 FROM integrations WHERE id = $1",
            &[&id, &key],
        )
        .await
        .expect("metadata")
        .get(0)
}

/// Sets `metadata->>'webhook_secret'` of integration `id` by hand, as a database
/// writer would.
async fn write_secret(app: &TestApp, id: i64, value: &str) {
    app.db
        .execute(
            "UPDATE integrations SET metadata = jsonb_set(metadata, '{webhook_secret}', to_jsonb($2::text))
              WHERE id = $1",
            &[&id, &value],
        )
        .await
        .expect("write the secret");
}

/// The reason of the next dead letter.
async fn dead_letter_reason(app: &TestApp) -> String {
    let dead = common::get_one(&app.channel, &common::names(&app.settings).dead(), WAIT)
        .await
        .expect("dead-lettered, not lost");
    header_str(&dead.delivery.properties, ERROR).expect("the reason")
}

/// An organization of `integration` syncing issue `key`, with a teammate whose
/// email is `<key>@example.org`: (group, user).
async fn org_with_teammate(app: &TestApp, integration: i64, key: &str) -> (i64, i64) {
    let org = app.seed().org(integration, true, key).await;
    let user = app
        .seed()
        .teammate(&org, &format!("{}@example.org", key.to_lowercase()))
        .await;
    (org.group_id, user)
}

/// Sends the assignment of issue `key` to its teammate with `token`.
async fn assign(app: &TestApp, token: &str, key: &str) {
    let body = assignee_changed(
        key,
        jira_user(&format!("{}@example.org", key.to_lowercase())),
        T1,
    );
    app.send_with(token, body.to_string().as_bytes(), None)
        .await;
}

/// Sends an assignment through integration A and waits until it is applied.
async fn a_applies(app: &TestApp, key: &str) {
    let (group, user) = org_with_teammate(app, app.integration, key).await;
    assign(app, &app.token, key).await;
    app.wait_assignee(group, Some(user)).await;
}

/// A second integration, B, with its own webhook secret: (id, external id).
async fn integration_b(app: &TestApp) -> (i64, String) {
    app.seed()
        .integration(json!({ "webhook_secret": "b-webhook-secret" }))
        .await
}

/// `jirasync integration ARGS… ID`: (succeeded, stdout, stderr).
fn integration_command(settings: &Settings, args: &[&str], id: i64) -> (bool, String, String) {
    let id = id.to_string();
    let mut all = vec!["integration"];
    all.extend_from_slice(args);
    all.push(&id);
    let output = common::output(&all, settings);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// What an earlier version stored for `plaintext` under `key`: sealed for its
/// column only, `jsenc1:<key id>:<base64url(nonce ‖ ciphertext)>`, written here
/// apart from the crate's code.
fn column_bound(key: &str, column: &str, plaintext: &str) -> String {
    let bytes = STANDARD.decode(key).expect("base64 key");
    let key_id: String = Sha256::digest(&bytes)[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let cipher = XChaCha20Poly1305::new_from_slice(&bytes).expect("a 32-byte key");
    let nonce = [9u8; 24];
    let sealed = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext.as_bytes(),
                aad: column.as_bytes(),
            },
        )
        .expect("seals");
    let mut data = nonce.to_vec();
    data.extend_from_slice(&sealed);
    format!("jsenc1:{key_id}:{}", URL_SAFE_NO_PAD.encode(data))
}

#[tokio::test]
async fn a_sealed_secret_copied_to_another_row_does_not_open_there_and_its_own_row_keeps_working() {
    let app = TestApp::builder()
        .concurrency(1)
        .secret_key(KEY)
        .no_worker()
        .start()
        .await;
    let (b, b_external) = integration_b(&app).await;
    // Before any reencrypt, with the key set, plaintext is read (§9's compatibility).
    let worker = common::spawn_worker(&app.settings);
    a_applies(&app, "ROW-1").await;
    worker.stop().await;

    let (summary, ok) = reencrypt(&app.settings);
    assert!(ok, "{summary}");
    assert_eq!(summary["recorded_sealed"], true, "{summary}");
    let sealed_a = stored(&app, app.integration, "webhook_secret").await;
    assert!(sealed_a.starts_with("jsenc2:"), "{sealed_a}");

    // A database writer who knows A's secret copies A's sealed value into B's row,
    // to post to B with tokens signed by A's secret.
    write_secret(&app, b, &sealed_a).await;
    let worker = common::spawn_worker(&app.settings);
    let (group_b, _) = org_with_teammate(&app, b, "ROW-B").await;
    assign(&app, &seed::token(&b_external, SECRET), "ROW-B").await;
    let reason = dead_letter_reason(&app).await;
    let row_b = format!("integration {b}");
    for expected in [row_b.as_str(), "sealed for another column or row"] {
        assert!(reason.contains(expected), "{expected:?} in {reason}");
    }
    assert_eq!(app.assignee(group_b).await, None, "nothing applied for B");
    a_applies(&app, "ROW-2").await;
    worker.stop().await;

    for args in [&["status"][..], &["webhook-url"][..]] {
        let (ok, _, stderr) = integration_command(&app.settings, args, b);
        assert!(!ok, "integration {args:?} B fails: {stderr}");
        assert!(stderr.contains(&row_b), "{args:?} names B's row: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let (ok, url, stderr) = integration_command(&app.settings, &["webhook-url"], app.integration);
    assert!(ok && url.contains(&app.token), "A's URL: {stderr}");
    app.finish().await;
}

#[tokio::test]
async fn a_value_sealed_for_its_column_only_is_read_and_reencrypt_rebinds_it_to_its_row() {
    let app = TestApp::builder()
        .concurrency(1)
        .secret_key(KEY)
        .no_worker()
        .start()
        .await;
    let (b, b_external) = integration_b(&app).await;
    let old = column_bound(KEY, "integrations.metadata.webhook_secret", SECRET);
    write_secret(&app, app.integration, &old).await;
    let worker = common::spawn_worker(&app.settings);
    a_applies(&app, "OLD-1").await;
    worker.stop().await;

    let (summary, ok) = reencrypt(&app.settings);
    assert!(ok, "{summary}");
    let rebound = stored(&app, app.integration, "webhook_secret").await;
    assert!(
        rebound.starts_with("jsenc2:"),
        "reencrypt rebinds the column-bound value: {rebound}"
    );
    let again = reencrypt(&app.settings).0;
    assert_eq!(again["sealed"], 0, "idempotent: {again}");

    // Rebound, it no longer opens in another row.
    write_secret(&app, b, &rebound).await;
    let worker = common::spawn_worker(&app.settings);
    let (group_b, _) = org_with_teammate(&app, b, "OLD-B").await;
    assign(&app, &seed::token(&b_external, SECRET), "OLD-B").await;
    let reason = dead_letter_reason(&app).await;
    assert!(reason.contains(&format!("integration {b}")), "{reason}");
    assert_eq!(app.assignee(group_b).await, None);
    a_applies(&app, "OLD-2").await;
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn planted_plaintext_after_reencrypt_is_refused_logged_at_error_and_never_used() {
    let app = TestApp::builder()
        .concurrency(1)
        .secret_key(KEY)
        .no_worker()
        .start()
        .await;
    let (b, b_external) = integration_b(&app).await;
    let (summary, ok) = reencrypt(&app.settings);
    assert!(ok && summary["recorded_sealed"] == true, "{summary}");

    // A database writer plants a webhook secret of their own, in plaintext.
    let planted = "planted-webhook-secret";
    write_secret(&app, b, planted).await;
    let log = std::env::temp_dir().join(format!("jst_worker_{}.log", common::unique()));
    let mut worker = common::process_logged("worker", &app.settings, &[], &log);
    let (group_b, _) = org_with_teammate(&app, b, "PLANT-B").await;
    assign(&app, &seed::token(&b_external, planted), "PLANT-B").await;
    let reason = dead_letter_reason(&app).await;
    for expected in [format!("integration {b}"), REQUIRED.to_owned()] {
        assert!(reason.contains(&expected), "{expected:?} in {reason}");
    }
    a_applies(&app, "PLANT-A").await;
    assert_eq!(
        app.assignee(group_b).await,
        None,
        "the planted secret is not used"
    );
    worker.kill().expect("stop the worker");
    let _ = worker.wait();
    let logged = std::fs::read_to_string(&log).expect("the worker's log");
    let _ = std::fs::remove_file(&log);
    assert!(
        logged
            .lines()
            .any(|line| line.contains("ERROR") && line.contains(REQUIRED)),
        "logged at error:\n{logged}"
    );
    assert!(!logged.contains(planted), "{logged}");

    let (ok, url, stderr) = integration_command(&app.settings, &["webhook-url"], b);
    assert!(!ok, "webhook-url exits non-zero: {url}");
    assert!(stderr.contains(REQUIRED), "{stderr}");
    // Not laundered: a later reencrypt leaves it as it is and says so.
    let (summary, ok) = reencrypt(&app.settings);
    assert!(!ok && summary["unreadable"] == 1, "{summary}");
    assert_eq!(stored(&app, b, "webhook_secret").await, planted);

    // The way out: a rotation replaces it (without an overlap).
    let (ok, printed, stderr) = integration_command(
        &app.settings,
        &["rotate-webhook-secret", "--overlap", "1h"],
        b,
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains(REQUIRED), "says what it replaced: {stderr}");
    let printed: Value = serde_json::from_str(&printed).expect("JSON");
    assert_eq!(printed["previous_valid_until"], Value::Null, "{printed}");
    let (ok, url, stderr) = integration_command(&app.settings, &["webhook-url"], b);
    assert!(ok && url.trim() == printed["webhook_url"], "{stderr}");
    app.finish().await;
}
