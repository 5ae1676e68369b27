//! The log rules (docs/reference.md §2, §4) on the real binary: text logs
//! escape the control characters of message fields, and whatever `RUST_LOG`
//! says, the libraries' debug lines — SQL parameters, AMQP frames — stay out
//! of a worker's and an ingress's logs unless `JIRASYNC_UNSAFE_DEPENDENCY_LOGS=1`.

use std::time::Duration;

use lapin::BasicProperties;

use crate::common::app::{T1, WAIT};
use crate::common::fake_oauth2::SecretFile;
use crate::common::private_pg::free_port;
use crate::common::seed::{SECRET, assignee_changed, jira_user};
use crate::common::{self, Process, TestApp};

/// What the log file at `path` holds so far.
fn read(path: &std::path::Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

#[tokio::test]
async fn text_logs_escape_the_control_characters_of_message_fields() {
    let settings = common::migrated().await;
    let log = SecretFile::new("");
    let text = [
        ("JIRASYNC_LOG_FORMAT", "text".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ];
    let _worker = common::process_logged("worker", &settings, &text, &log.0);
    // A clear screen, a window title, a bell, and a forged line, in the message
    // id and type a publisher chose.
    let evil = "evil\x1b[2J\x1b]0;owned\x07\r\n2024-01-01T00:00:00Z  INFO forged=1";
    let properties = BasicProperties::default()
        .with_message_id(evil.into())
        .with_type(format!("{evil}-type").into())
        .with_delivery_mode(2);
    let (_connection, channel) = common::amqp().await;
    common::publish(
        &channel,
        &settings,
        jirasync::integration::messages::WEBHOOK,
        b"{}",
        properties,
    )
    .await;

    common::eventually("the worker logs the message", WAIT, || async {
        read(&log.0).contains("message handled")
    })
    .await;
    let logged = read(&log.0);
    let escaped = r"evil\x1b[2J\x1b]0;owned\x07\x0d\x0a2024-01-01T00:00:00Z  INFO forged=1";
    assert!(logged.contains(escaped), "{logged}");
    assert!(
        !logged.chars().any(|c| c.is_control() && c != '\n'),
        "a raw control character: {logged:?}"
    );
    assert!(
        !logged.lines().any(|line| line.starts_with("2024-01-01")),
        "a forged line: {logged}"
    );
}

/// The worker's and the ingress's logs while they apply, with `extra`
/// variables, a webhook through the ingress's HTTP route whose assignee has a
/// fresh email (round `round`): the logs and the email.
async fn apply_logged(app: &TestApp, round: usize, extra: &[(&str, String)]) -> (String, String) {
    let (worker_log, ingress_log) = (SecretFile::new(""), SecretFile::new(""));
    let port = free_port();
    let mut ingress_extra = vec![("JIRASYNC_LISTEN", format!("127.0.0.1:{port}"))];
    ingress_extra.extend(extra.iter().cloned());
    let worker: Process = common::process_logged("worker", &app.settings, extra, &worker_log.0);
    let ingress: Process =
        common::process_logged("ingress", &app.settings, &ingress_extra, &ingress_log.0);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    common::eventually("the ingress is ready", Duration::from_secs(20), || {
        let request = client.get(format!("{base}/readyz")).send();
        async move { matches!(request.await, Ok(r) if r.status() == 200) }
    })
    .await;

    let key = format!("LOGGED-{round}");
    let org = app.seed().org(app.integration, true, &key).await;
    let email = format!("private.person.{round}@example.org");
    let user = app.seed().teammate(&org, &email).await;
    let body = assignee_changed(&key, jira_user(&email), T1).to_string();
    let response = client
        .post(format!("{base}{}", common::webhook_path(&app.token)))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST the webhook");
    assert_eq!(response.status(), 202);
    app.wait_assignee(org.group_id, Some(user)).await;
    drop((worker, ingress));
    let logs = format!("{}{}", read(&worker_log.0), read(&ingress_log.0));
    (logs, email)
}

/// The lines of text `logs` at `debug` or `trace`.
fn below_info(logs: &str) -> Vec<&str> {
    logs.lines()
        .filter(|line| line.contains(" DEBUG ") || line.contains(" TRACE "))
        .collect()
}

#[tokio::test]
async fn debug_logs_carry_no_email_token_or_secret_unless_libraries_are_unlocked() {
    let app = TestApp::builder().no_worker().start().await;
    let text = ("JIRASYNC_LOG_FORMAT", "text".to_owned());
    let filters = [
        "debug",
        "debug,lapin=trace,tokio_postgres=trace",
        "trace,tokio_postgres::query=trace,amq_protocol=trace,h2=trace,hyper=trace,\
         hyper_util=trace,reqwest=trace,rustls=trace,tower_http=trace,deadpool=trace",
    ];
    for (round, filter) in filters.into_iter().enumerate() {
        let extra = [text.clone(), ("RUST_LOG", filter.to_owned())];
        let (logs, email) = apply_logged(&app, round, &extra).await;
        let below_info = below_info(&logs);
        assert!(
            below_info.iter().any(|line| line.contains(" jirasync::")),
            "{filter}: jirasync's own debug lines are there: {logs}"
        );
        let libraries: Vec<&&str> = below_info
            .iter()
            .filter(|line| !line.contains(" jirasync::"))
            .collect();
        assert!(
            libraries.is_empty(),
            "{filter}: libraries log below info: {libraries:#?}"
        );
        for (what, secret) in [
            ("the email", email.as_str()),
            ("the webhook token", &app.token),
            ("the webhook secret", SECRET),
        ] {
            assert!(!logs.contains(secret), "{filter}: {what} is logged: {logs}");
        }
    }

    // Unlocked, the same filter lets the libraries' debug lines through, SQL
    // parameters (the email) included: the cap is what keeps them out.
    let unlock = ("JIRASYNC_UNSAFE_DEPENDENCY_LOGS", "1".to_owned());
    let extra = [text, ("RUST_LOG", "debug".to_owned()), unlock];
    let (logs, email) = apply_logged(&app, filters.len(), &extra).await;
    assert!(
        below_info(&logs)
            .iter()
            .any(|line| line.contains(" tokio_postgres::")),
        "{logs}"
    );
    assert!(logs.contains(&email), "the parameters are logged: {logs}");
    assert!(
        logs.contains("JIRASYNC_UNSAFE_DEPENDENCY_LOGS=1"),
        "each process warns that it is unlocked: {logs}"
    );
}
