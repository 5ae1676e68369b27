//! Verdicts (docs/reference.md §3, §4): workers tell every ingress, through
//! `P.verdicts`, whether a webhook token was accepted or rejected; a rejected
//! token is refused (`429`) from every client, a client whose posts draw
//! `JIRASYNC_CLIENT_MAX_REJECTS` rejections a minute is suspect, and a genuine
//! integration's verified token is never refused. Each "client" posts from an
//! address of its own on the loopback network (127.0.0.2, 127.0.0.3 …); a tap
//! queue bound beside `P.webhooks` counts every webhook published.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use jirasync::integration::messages::WEBHOOK;
use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::{Channel, Connection};
use serde_json::{Value, json};

use crate::common::app::{T1, WAIT};
use crate::common::proxy::Proxy;
use crate::common::seed::{self, Seed, assignee_changed, jira_user};
use crate::common::{self, Ingress, TestApp, webhook_path};

/// `JIRASYNC_CLIENT_MAX_REJECTS` in these tests.
const MAX_REJECTS: u32 = 5;

/// A client posting from an address of its own.
struct Poster {
    http: reqwest::Client,
}

impl Poster {
    /// The client at 127.0.0.`last`.
    fn at(last: u8) -> Self {
        let address = IpAddr::V4(Ipv4Addr::new(127, 0, 0, last));
        let http = reqwest::Client::builder()
            .local_address(address)
            .build()
            .expect("a client bound to a loopback address");
        Self { http }
    }

    /// POSTs `body` to the webhook route with `token`.
    async fn post(&self, ingress: &Ingress, token: &str, body: &str) -> reqwest::Response {
        self.http
            .post(ingress.url(&webhook_path(token)))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("the ingress answers")
    }

    /// The status of that POST.
    async fn status(&self, ingress: &Ingress, token: &str, body: &str) -> u16 {
        self.post(ingress, token, body).await.status().as_u16()
    }
}

/// A queue of the test's own connection bound to `P` with the webhooks' key:
/// it gets a copy of every webhook the ingress publishes (and goes away with
/// the connection).
struct Tap {
    _connection: Connection,
    channel: Channel,
    queue: String,
}

impl Tap {
    async fn bind(settings: &jirasync::config::Settings) -> Self {
        let (connection, channel) = common::amqp().await;
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .expect("declare the tap")
            .name()
            .as_str()
            .to_owned();
        channel
            .queue_bind(
                queue.as_str().into(),
                common::names(settings).exchange().into(),
                WEBHOOK.into(),
                QueueBindOptions::default(),
                Default::default(),
            )
            .await
            .expect("bind the tap");
        Self {
            _connection: connection,
            channel,
            queue,
        }
    }

    /// Webhooks published since it was bound.
    async fn count(&self) -> u32 {
        common::depth(&self.channel, &self.queue).await
    }
}

/// A forged token: this external id, signed with the wrong secret.
fn forged(external_id: &str, guess: &str) -> String {
    seed::token(external_id, &format!("not-the-secret-{guess}"))
}

/// A token naming no integration at all.
fn unknown(name: &str) -> String {
    seed::token(&format!("jira.example.org:unknown-{name}"), "whatever")
}

/// Posts `token` from `poster` every 20 ms until it is refused with `429`;
/// panics after `deadline`. Returns how long that took and how many of those
/// posts got `202` (each one published).
async fn until_refused(
    poster: &Poster,
    ingress: &Ingress,
    token: &str,
    deadline: Duration,
) -> (Duration, usize) {
    let started = Instant::now();
    let mut accepted = 0;
    loop {
        let status = poster.status(ingress, token, "{}").await;
        if status == 429 {
            return (started.elapsed(), accepted);
        }
        assert_eq!(status, 202, "a token not refused yet is accepted");
        accepted += 1;
        assert!(
            started.elapsed() < deadline,
            "the token was not refused within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An organization of `integration` with an issue `key` and a teammate to
/// assign: (the group, the user, the webhook body that assigns them).
async fn assignable(seed: &Seed<'_>, integration: i64, key: &str) -> (i64, i64, String) {
    let org = seed.org(integration, true, key).await;
    let email = format!("{}@example.org", key.to_lowercase());
    let user = seed.teammate(&org, &email).await;
    let body = assignee_changed(key, jira_user(&email), T1).to_string();
    (org.group_id, user, body)
}

#[tokio::test]
async fn forged_tokens_are_refused_once_rejected_and_their_client_turns_suspect_while_genuine_webhooks_flow()
 {
    let app = TestApp::builder()
        .ingress()
        .configure(|settings| settings.http.client_max_rejects = MAX_REJECTS)
        .start()
        .await;
    let ingress = app.ingress();
    let tap = Tap::bind(&app.settings).await;
    let mut accepted = 0;
    // Jira and the attacker behind one address (a NAT), another Jira, a prober.
    let (attacker, other, prober) = (Poster::at(2), Poster::at(3), Poster::at(4));

    // The genuine integration's first webhook verifies its token.
    let (group, user, body) = assignable(&app.seed(), app.integration, "GEN-0").await;
    assert_eq!(other.status(ingress, &app.token, &body).await, 202);
    accepted += 1;
    app.wait_assignee(group, Some(user)).await;

    // A forged token is taken until a worker rejects it, then refused from every client.
    let token = forged(&app.external_id, "first");
    assert_eq!(attacker.status(ingress, &token, "{}").await, 202);
    accepted += 1;
    let (took, probes) = until_refused(&prober, ingress, &token, Duration::from_secs(2)).await;
    accepted += probes;
    eprintln!(
        "a rejected token was refused {} ms after its 202 ({probes} probes let through before)",
        took.as_millis()
    );
    for (who, poster) in [("the attacker", &attacker), ("another client", &other)] {
        let response = poster.post(ingress, &token, "{}").await;
        assert_eq!(response.status(), 429, "{who}");
        assert_eq!(response.headers()["retry-after"], "600", "{who}");
        let error: Value = response.json().await.expect("a JSON error");
        assert!(
            error["error"]
                .as_str()
                .unwrap_or_default()
                .contains("rejected"),
            "{who}: {error}"
        );
    }

    // Distinct forged tokens, 100 ms apart: past MAX_REJECTS rejections in the
    // minute the attacker is suspect, and only one of its unjudged tokens gets
    // through every 10 s.
    let mut statuses = Vec::new();
    for i in 0..20 {
        let token = match i % 2 {
            0 => forged(&app.external_id, &i.to_string()),
            _ => unknown(&i.to_string()),
        };
        statuses.push(attacker.status(ingress, &token, "{}").await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let through = statuses.iter().filter(|status| **status == 202).count();
    accepted += through;
    eprintln!(
        "20 forged posts from one client, 100 ms apart: {through} × 202, then 429: {statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|status| *status == 202 || *status == 429),
        "{statuses:?}"
    );
    // One rejection counted already; four more make it suspect, one more is let through.
    let max = usize::try_from(MAX_REJECTS).expect("small");
    assert!((max - 1..=max + 3).contains(&through), "{statuses:?}");
    assert!(
        statuses[10..].iter().all(|status| *status == 429),
        "{statuses:?}"
    );
    let response = attacker.post(ingress, &unknown("late"), "{}").await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "10");

    // The verified token keeps flowing from the suspect address and another one.
    let mut assignments = Vec::new();
    for i in 1..=6 {
        let poster = if i % 2 == 0 { &attacker } else { &other };
        let (group, user, body) =
            assignable(&app.seed(), app.integration, &format!("GEN-{i}")).await;
        assert_eq!(
            poster.status(ingress, &app.token, &body).await,
            202,
            "GEN-{i}"
        );
        accepted += 1;
        assignments.push((group, user));
    }
    for (group, user) in assignments {
        app.wait_assignee(group, Some(user)).await;
    }
    // Another client's unjudged tokens are not refused.
    assert_eq!(other.status(ingress, &unknown("other"), "{}").await, 202);
    assert_eq!(other.status(ingress, &unknown("other-2"), "{}").await, 202);
    accepted += 2;

    // Nothing refused was published: one webhook on the queue per 202.
    let published = usize::try_from(tap.count().await).expect("fits");
    assert_eq!(published, accepted, "webhooks published, 202s answered");
    let metrics = reqwest::get(ingress.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    for reason in ["rejected_token", "suspect_client"] {
        assert!(
            metrics.contains(&format!("jirasync_http_shed_total{{reason=\"{reason}\"}}")),
            "{reason}"
        );
    }
    app.finish().await;
}

#[tokio::test]
async fn an_ingress_that_has_heard_from_no_worker_refuses_nothing_until_one_judges() {
    let app = TestApp::builder()
        .ingress()
        .no_worker()
        .configure(|settings| settings.http.client_max_rejects = MAX_REJECTS)
        .start()
        .await;
    let ingress = app.ingress();
    let tap = Tap::bind(&app.settings).await;
    let attacker = Poster::at(5);
    let tokens: Vec<String> = (0..10)
        .map(|i| forged(&app.external_id, &format!("early-{i}")))
        .collect();
    // No worker: 20 forged posts (each token twice), all taken.
    for token in tokens.iter().chain(&tokens) {
        assert_eq!(attacker.status(ingress, token, "{}").await, 202);
    }
    assert_eq!(tap.count().await, 20);

    // A worker judges what waited: its verdicts count against who posted.
    let worker = common::spawn_worker(&app.settings);
    // Every verdict has reached the ingress (the worker's batches may send them in
    // any order): each token probed by a client of its own, which one refusal does
    // not make suspect.
    for (i, token) in tokens.iter().enumerate() {
        let prober = Poster::at(100 + u8::try_from(i).expect("ten tokens"));
        until_refused(&prober, ingress, token, WAIT).await;
    }
    for token in &tokens {
        assert_eq!(attacker.status(ingress, token, "{}").await, 429);
    }
    let statuses = [
        attacker.status(ingress, &unknown("a"), "{}").await,
        attacker.status(ingress, &unknown("b"), "{}").await,
    ];
    assert_eq!(
        statuses,
        [202, 429],
        "suspect: one unjudged token let through"
    );
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_disabled_integration_makes_no_verdict_and_enable_takes_its_webhooks_again() {
    // One message at a time: a sentinel applied means those before it were handled.
    let app = TestApp::builder()
        .ingress()
        .concurrency(1)
        .configure(|settings| settings.http.client_max_rejects = 2)
        .start()
        .await;
    let ingress = app.ingress();
    let (jira, other) = (Poster::at(7), Poster::at(8));
    let id = app.integration.to_string();
    let json_of = |output: std::process::Output| -> Value {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("JSON on stdout")
    };

    let disabled = json_of(common::output(
        &["integration", "disable", &id],
        &app.settings,
    ));
    let shown = json_of(common::output(
        &["integration", "status", &id, "--json"],
        &app.settings,
    ));
    assert_eq!(
        disabled, shown,
        "printed as `integration status --json` does"
    );
    assert_eq!(disabled["state"], "disabled");
    assert_eq!(disabled["id"], app.integration);

    // Jira keeps posting to the disabled integration: taken, dropped, no verdict.
    let (group, user, body) = assignable(&app.seed(), app.integration, "DIS-1").await;
    for _ in 0..5 {
        assert_eq!(jira.status(ingress, &app.token, &body).await, 202);
    }
    let (sentinel, sentinel_external_id) = app.seed().integration(json!({})).await;
    let sentinel_token = seed::token(&sentinel_external_id, seed::SECRET);
    let (sentinel_group, sentinel_user, sentinel_body) =
        assignable(&app.seed(), sentinel, "SENT-1").await;
    assert_eq!(
        other.status(ingress, &sentinel_token, &sentinel_body).await,
        202
    );
    app.wait_assignee(sentinel_group, Some(sentinel_user)).await;
    assert_eq!(app.assignee(group).await, None, "dropped while disabled");
    // No rejection: the token is still taken, and its client is not suspect.
    assert_eq!(jira.status(ingress, &app.token, &body).await, 202);
    assert_eq!(jira.status(ingress, &unknown("a"), "{}").await, 202);
    assert_eq!(jira.status(ingress, &unknown("b"), "{}").await, 202);

    let enabled = json_of(common::output(
        &["integration", "enable", &id],
        &app.settings,
    ));
    assert_eq!(enabled["state"], "active");
    assert_eq!(enabled["id"], app.integration);
    assert_eq!(other.status(ingress, &app.token, &body).await, 202);
    app.wait_assignee(group, Some(user)).await;

    // `integration add` keeps a disabled integration disabled and says so.
    json_of(common::output(
        &["integration", "disable", &id],
        &app.settings,
    ));
    let consumer_key = app
        .external_id
        .strip_prefix("jira.example.org:")
        .expect("seeded as jira.example.org:<key>");
    let key_file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/jira_test_key.pem"
    );
    let output = common::output(
        &[
            "integration",
            "add",
            "--base-url",
            "https://jira.example.org",
            "--consumer-key",
            consumer_key,
            "--private-key-file",
            key_file,
        ],
        &app.settings,
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let added = json_of(output);
    assert_eq!(added["id"], app.integration);
    assert!(
        stderr.contains(&format!("integration {id} is disabled"))
            && stderr.contains("integration enable"),
        "{stderr}"
    );
    let status: String = app
        .db
        .query_one(
            "SELECT status FROM integrations WHERE id = $1",
            &[&app.integration],
        )
        .await
        .expect("the integration")
        .get(0);
    assert_eq!(status, "disabled");
    let credentials: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM integration_credentials WHERE integration_id = $1",
            &[&app.integration],
        )
        .await
        .expect("credentials")
        .get(0);
    assert_eq!(credentials, 1, "its credentials were updated");
    app.finish().await;
}

#[tokio::test]
async fn the_ingress_listens_again_after_losing_the_broker() {
    let settings = common::migrated().await;
    let proxy = Proxy::start("127.0.0.1:5672".parse().expect("address")).await;
    let mut through_proxy = (*settings).clone();
    through_proxy.broker.url = proxy.amqp_url();
    let ingress = common::spawn_ingress(&through_proxy, true).await;
    let worker = common::spawn_worker(&settings);
    let (attacker, prober) = (Poster::at(9), Poster::at(10));
    let token = unknown("before");
    assert_eq!(attacker.status(&ingress, &token, "{}").await, 202);
    until_refused(&prober, &ingress, &token, WAIT).await;

    proxy.cut();
    let ready = |want: u16| {
        let url = ingress.url("/readyz");
        move || {
            let url = url.clone();
            async move { matches!(reqwest::get(&url).await, Ok(r) if r.status() == want) }
        }
    };
    common::eventually("the ingress lost the broker", WAIT, ready(503)).await;
    proxy.restore();
    common::eventually("the ingress is connected again", WAIT, ready(200)).await;

    // A fresh queue is bound: rejections are heard again.
    let token = unknown("after");
    assert_eq!(attacker.status(&ingress, &token, "{}").await, 202);
    let (took, _) = until_refused(&prober, &ingress, &token, WAIT).await;
    eprintln!(
        "after the broker came back, a rejection was refused {} ms after its 202",
        took.as_millis()
    );
    worker.stop().await;
    ingress.stop().await;
}

#[tokio::test]
async fn migrate_declares_the_verdicts_exchange_and_a_finished_test_removes_it() {
    use lapin::ExchangeKind;
    use lapin::options::ExchangeDeclareOptions;
    let (_connection, channel) = common::amqp().await;
    let declared = |passive: bool| {
        let channel = &channel;
        move |name: String| async move {
            channel
                .exchange_declare(
                    name.as_str().into(),
                    ExchangeKind::Fanout,
                    ExchangeDeclareOptions {
                        passive,
                        durable: true,
                        ..Default::default()
                    },
                    Default::default(),
                )
                .await
        }
    };
    let names = {
        let settings = common::migrated().await;
        let names = common::names(&settings);
        declared(true)(names.verdicts())
            .await
            .expect("migrate declared P.verdicts");
        // The same declaration again is accepted only if it is a durable fanout.
        declared(false)(names.verdicts())
            .await
            .expect("P.verdicts is a durable fanout exchange");
        names
    };
    let (_connection, channel) = common::amqp().await;
    let gone = channel
        .exchange_declare(
            names.verdicts().as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await;
    assert!(gone.is_err(), "the test's teardown deleted P.verdicts");
}
