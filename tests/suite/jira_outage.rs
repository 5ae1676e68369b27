//! A Jira outage (docs/reference.md §5.11) against the real RabbitMQ and Postgres,
//! a real `jirasync worker` and the signature-verifying fake Jira answering `503`:
//! status changes that need Jira's statuses wait out an outage longer than every
//! retry tier and are applied once Jira answers, with
//! `jirasync_jira_available{integration_id}` 0 meanwhile and 1 after; an outage
//! longer than `JIRASYNC_JIRA_OUTAGE_MAX` dead-letters each message once, naming
//! the outage, and `dlq replay` starts its clock over.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jirasync::commands::dlq;
use jirasync::queue::message::{
    self, ATTEMPTS, DEAD_LETTERED_AT_MS, DROPPED_HEADERS, ERROR, FIRST_FAILED_AT_MS, header_int,
    header_str,
};
use lapin::options::{BasicGetOptions, BasicRejectOptions};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use crate::common::app::{T1, WAIT};
use crate::common::fake_jira::Verified;
use crate::common::private_pg::free_port;
use crate::common::seed::Org;
use crate::common::{self, Process, TestApp};

const STATUS_PATH: &str = "/rest/api/2/status";
const OPEN: &str = "1";
const DONE: &str = "10001";

/// `GET /rest/api/2/status`: `503` while Jira is down, else the statuses (the
/// OAuth signature checked).
struct Switchable {
    down: Arc<AtomicBool>,
    up: Verified,
}

impl Respond for Switchable {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if self.down.load(Ordering::SeqCst) {
            ResponseTemplate::new(503).set_body_string("Jira is restarting")
        } else {
            self.up.respond(request)
        }
    }
}

/// An app (no worker of its own) whose integration has an access token, and
/// Jira's statuses endpoint down until the flag returned is cleared.
async fn jira_down(
    configure: impl FnOnce(&mut jirasync::config::Settings) + Send + 'static,
) -> (TestApp, Arc<AtomicBool>) {
    let app = TestApp::builder()
        .credentials(Some("acc-tok"))
        .no_worker()
        .configure(configure)
        .start()
        .await;
    let down = Arc::new(AtomicBool::new(true));
    let statuses = json!([
        {"id": OPEN, "name": "Open", "statusCategory": {"id": 2, "key": "new"}},
        {"id": DONE, "name": "Done", "statusCategory": {"id": 3, "key": "done"}}
    ]);
    Mock::given(method("GET"))
        .and(path(STATUS_PATH))
        .respond_with(Switchable {
            down: Arc::clone(&down),
            up: app
                .jira
                .verified(ResponseTemplate::new(200).set_body_json(statuses)),
        })
        .mount(&app.server)
        .await;
    (app, down)
}

/// An organization with status sync on and its group unresolved, linked to `key`.
async fn status_org(app: &TestApp, key: &str) -> Org {
    app.seed().status_org(app.integration, key).await
}

/// A `jira:issue_updated` body moving `key` into `done`.
fn moved_to_done(key: &str) -> Value {
    json!({
        "timestamp": 1_700_000_000_000_i64,
        "webhookEvent": "jira:issue_updated",
        "issue": {"id": "10001", "key": key, "fields": {"summary": "x", "updated": T1}},
        "changelog": {"id": "2", "items": [
            {"field": "status", "fieldtype": "jira", "from": OPEN, "fromString": "Open", "to": DONE, "toString": "Done"}
        ]}
    })
}

async fn group_status(app: &TestApp, group: i64) -> String {
    app.db
        .query_one("SELECT status FROM groups WHERE id = $1", &[&group])
        .await
        .expect("group")
        .get(0)
}

/// Waits until the sample reads `expected` (or more, with `at_least`).
async fn wait_sample(port: u16, name_and_labels: &str, expected: f64, at_least: bool) {
    common::eventually(
        &format!("{name_and_labels} reads {expected}"),
        WAIT,
        || async move {
            match common::metric_sample(port, name_and_labels).await {
                Some(value) if at_least => value >= expected,
                Some(value) => value == expected,
                None => false,
            }
        },
    )
    .await;
}

/// Webhooks waiting out the outage.
const WEBHOOKS: usize = 3;

#[tokio::test]
async fn status_changes_wait_out_a_jira_outage_longer_than_the_retry_tiers_and_apply_after() {
    let (app, down) = jira_down(|_| {}).await;
    let (_worker, port) = worker(&app, &[("JIRASYNC_JIRA_OUTAGE_MAX", "30s".into())]);
    let mut orgs = Vec::new();
    for n in 0..WEBHOOKS {
        let key = format!("OUT-{n}");
        orgs.push(status_org(&app, &key).await);
        if n == 0 {
            // One carries a header that leaves its retry copies no room in the
            // frame: they drop it, and it still waits and applies.
            let (_, props) = near_frame_limit(&app, "x-padding").await;
            let body = moved_to_done(&key).to_string();
            common::publish(
                &app.channel,
                &app.settings,
                jirasync::integration::messages::WEBHOOK,
                body.as_bytes(),
                props,
            )
            .await;
        } else {
            app.send(&moved_to_done(&key)).await;
        }
    }
    let started = Instant::now();
    let available = format!(
        "jirasync_jira_available{{integration_id=\"{}\"}}",
        app.integration
    );
    wait_sample(port, &available, 0.0, false).await;
    // Tiers of 1 s and 2 s: a message can be retried twice before its tiers run
    // out; each went back to the last tier at least once more.
    let retried = r#"jirasync_messages_total{type="jira_server.webhook",outcome="retried"}"#;
    wait_sample(port, retried, (WEBHOOKS * 3) as f64, true).await;
    assert_eq!(app.dead_letters().await, 0, "nothing dead-lettered");
    assert_eq!(
        common::metric_sample(port, &available).await,
        Some(0.0),
        "unavailable during"
    );
    for org in &orgs {
        assert_eq!(group_status(&app, org.group_id).await, "unresolved");
    }
    let outage = started.elapsed();

    down.store(false, Ordering::SeqCst);
    for org in &orgs {
        common::eventually("the status change is applied", WAIT, || async {
            group_status(&app, org.group_id).await == "resolved"
        })
        .await;
        assert_eq!(app.activities(org.group_id).await.len(), 1);
    }
    let applied_after = started.elapsed() - outage;
    wait_sample(port, &available, 1.0, false).await;
    assert_eq!(app.dead_letters().await, 0);
    let retries = common::metric_sample(port, retried)
        .await
        .unwrap_or_default();
    eprintln!(
        "outage held {outage:?} ({retries} retries for {WEBHOOKS} webhooks), all applied \
         {applied_after:?} after Jira answered"
    );
}

/// Webhook properties with a header `name` whose size brings the header frame
/// within 100 bytes of the broker's `frame_max`; and that `frame_max`.
pub(crate) async fn near_frame_limit(app: &TestApp, name: &str) -> (u32, lapin::BasicProperties) {
    let (connection, _channel) = common::amqp().await;
    let frame_max = connection.configuration().frame_max();
    let _ = connection.close(200, "done".into()).await;
    let request = jirasync::integration::messages::WebhookRequest {
        token: &app.token,
        content_type: Some("application/json"),
        webhook_identifier: None,
        hub_signature: None,
    };
    let (_, props) =
        jirasync::integration::messages::webhook_properties(&request, std::time::SystemTime::now());
    let probe = message::with_headers(&props, &[(name, message::long_string(""))]);
    let room = frame_max as usize - message::header_frame_bytes(&probe) - 100;
    let props = message::with_headers(&props, &[(name, message::long_string(&"p".repeat(room)))]);
    assert_eq!(
        message::header_frame_bytes(&props),
        frame_max as usize - 100
    );
    (frame_max, props)
}

#[tokio::test]
async fn an_outage_longer_than_jira_outage_max_dead_letters_once_naming_it_and_replay_resets_the_clock()
 {
    // Longer than the tiers (1 s + 2 s, and the tries in process): the message
    // goes back to the last tier at least once before it is dead-lettered.
    let max = Duration::from_secs(8);
    let (app, _down) = jira_down(move |settings| settings.worker.jira_outage_max = max).await;
    let worker = common::spawn_worker(&app.settings);
    let org = status_org(&app, "OUT-MAX").await;
    let sent = Instant::now();
    app.send(&moved_to_done("OUT-MAX")).await;
    common::eventually("the message is dead-lettered", WAIT, || async {
        app.dead_letters().await == 1
    })
    .await;
    let after = sent.elapsed();
    worker.stop().await;
    assert!(
        after >= max,
        "dead-lettered after {after:?}, before JIRASYNC_JIRA_OUTAGE_MAX"
    );
    // The last tier's 2 s past the limit at most, and a busy broker's slack.
    assert!(after < max + Duration::from_secs(8), "{after:?}");
    assert_eq!(app.dead_letters().await, 1, "dead-lettered once");
    assert_eq!(group_status(&app, org.group_id).await, "unresolved");

    let letters = dlq::list(&app.settings.broker, 10).await.expect("list");
    assert_eq!(letters.len(), 1);
    let error = &letters[0].error;
    assert!(
        error.contains("Jira was failing for") && error.contains("waits out its outage for 8s"),
        "{error}"
    );
    assert!(error.contains("HTTP 503"), "{error}");
    assert!(
        letters[0].attempts >= 4,
        "past its two tiers: {}",
        letters[0].attempts
    );

    let dead = common::names(&app.settings).dead();
    let got = app
        .channel
        .basic_get(dead.as_str().into(), BasicGetOptions::default())
        .await
        .expect("basic.get")
        .expect("the dead letter");
    let props = got.delivery.properties.clone();
    got.delivery
        .acker
        .reject(BasicRejectOptions { requeue: true })
        .await
        .expect("give it back");
    let first = header_int(&props, FIRST_FAILED_AT_MS).expect("the outage clock is kept");
    let dead_at = header_int(&props, DEAD_LETTERED_AT_MS).expect("dead-lettered at");
    assert!(dead_at - first >= 8_000, "{} ms", dead_at - first);
    assert!(header_str(&props, ERROR).is_some());
    assert_eq!(header_str(&props, DROPPED_HEADERS), None, "nothing dropped");
    eprintln!(
        "dead-lettered {after:?} after it was sent, {} ms after its first failure, attempts {}",
        dead_at - first,
        letters[0].attempts
    );

    assert_eq!(
        dlq::replay(&app.settings.broker, None)
            .await
            .expect("replay"),
        1
    );
    let back = common::get_one(&app.channel, &common::names(&app.settings).webhooks(), WAIT)
        .await
        .expect("replayed");
    let props = &back.delivery.properties;
    assert_eq!(
        header_int(props, FIRST_FAILED_AT_MS),
        None,
        "the clock starts over"
    );
    assert_eq!(header_int(props, ATTEMPTS), None);
}

/// A worker process on the app's settings, its metrics on a port of its own.
pub(crate) fn worker(app: &TestApp, extra: &[(&str, String)]) -> (Process, u16) {
    let port = free_port();
    let mut variables = vec![("JIRASYNC_METRICS_LISTEN", format!("127.0.0.1:{port}"))];
    variables.extend(extra.iter().cloned());
    (common::process("worker", &app.settings, &variables), port)
}
