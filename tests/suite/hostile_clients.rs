//! Hostile clients against the real ingress (in process, and as a `jirasync
//! ingress` process) and RabbitMQ (docs/reliability.md): a request cannot break the
//! broker connection the others share; clients that never finish their headers
//! or bodies are disconnected or answered; a flood of large bodies from several
//! clients is shed with `503` (beyond a client's share, `429`) within a bounded
//! memory while Jira's ordinary webhooks get through. One client against the
//! others: `fair_ingress.rs`.

use std::time::{Duration, Instant, SystemTime};

use jirasync::integration::messages::WEBHOOK;
use jirasync::integration::messages::{WebhookRequest, webhook_properties};
use jirasync::queue::message::long_string;
use jirasync::queue::publisher::{Broker, PublishError};
use jirasync::shutdown::Shutdown;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common;
use crate::fair_ingress as fair;

use common::{SHAPED_TOKEN as TOKEN, webhook_path};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn oversized_headers_get_400_publish_nothing_and_leave_the_broker_link_up() {
    let settings = common::settings();
    common::declare_topology(&settings)
        .await
        .expect("declare topology");
    let ingress = common::spawn_ingress(&settings, true).await;
    let client = reqwest::Client::new();
    let url = ingress.url(&webhook_path(TOKEN));
    let post = |signature: String, identifier: String| {
        client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-hub-signature", signature)
            .header("x-atlassian-webhook-identifier", identifier)
            .body("{}")
            .send()
    };

    // Headers past the 32 KiB read buffer are refused by hyper (431) before any
    // handler runs; the two the ingress copies into AMQP headers are capped below it.
    let huge = post("a".repeat(200_000), "1".to_owned())
        .await
        .expect("POST");
    assert_eq!(huge.status(), 431, "a 200 KB signature");
    for (case, signature, identifier) in [
        ("a 129-byte signature", "a".repeat(129), "1".to_owned()),
        ("a 257-byte identifier", "a".repeat(10), "1".repeat(257)),
        ("a 20 KB signature", "a".repeat(20_000), "1".to_owned()),
    ] {
        let response = post(signature, identifier).await.expect(case);
        assert_eq!(response.status(), 400, "{case}");
        let body: serde_json::Value = response.json().await.expect(case);
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("longer than")),
            "{case}: {body}"
        );
    }
    let at_the_limits = post("a".repeat(128), "1".repeat(256)).await.expect("POST");
    assert_eq!(at_the_limits.status(), 202, "the limits are not off by one");

    // Real webhooks sent while big headers keep coming are all accepted.
    let (accepted, refused) = tokio::join!(
        futures_util::future::join_all((0..20).map(|_| post("sha256=ab".into(), "7".into()))),
        futures_util::future::join_all((0..20).map(|_| post("a".repeat(20_000), "7".into()))),
    );
    for response in accepted {
        assert_eq!(response.expect("POST").status(), 202);
    }
    for response in refused {
        assert_eq!(response.expect("POST").status(), 400);
    }
    let (_connection, channel) = common::amqp().await;
    let queue = common::names(&settings).webhooks();
    assert_eq!(
        common::depth(&channel, &queue).await,
        21,
        "only accepted ones"
    );
    ingress.stop().await;
}

#[tokio::test]
async fn a_message_too_large_for_a_frame_is_refused_before_the_broker_sees_it() {
    let settings = common::settings();
    common::declare_topology(&settings)
        .await
        .expect("declare topology");
    let stop = Shutdown::new();
    let (broker, task) = Broker::start(
        &settings.broker,
        jirasync::integration::messages::names(&settings.broker),
        &settings.retries,
        "test",
        stop.clone(),
    );
    common::eventually("the broker link is up", WAIT, || async {
        broker.is_ready()
    })
    .await;
    let request = WebhookRequest {
        token: TOKEN,
        content_type: Some("application/json"),
        webhook_identifier: None,
        hub_signature: None,
    };
    let properties = |extra: usize| {
        let (_, mut properties) = webhook_properties(&request, SystemTime::now());
        if extra > 0 {
            let mut headers = properties.headers().clone().unwrap_or_default();
            headers.insert("x-big".into(), long_string(&"a".repeat(extra)));
            properties = properties.with_headers(headers);
        }
        properties
    };

    // The big one among small ones in flight: it is refused here, and the shared
    // connection (which the broker would close on `frame_too_large`) carries the rest.
    let small = futures_util::future::join_all(
        (0..10).map(|_| broker.publish(WEBHOOK, b"{}", properties(0))),
    );
    let big = broker.publish(WEBHOOK, b"{}", properties(200_000));
    let (small, big) = tokio::join!(small, big);
    assert!(
        matches!(big, Err(PublishError::TooLarge { frame_max, .. }) if frame_max > 0),
        "{big:?}"
    );
    for result in small {
        result.expect("the small ones are confirmed");
    }
    stop.cancel();
    let _ = task.await;
}

/// The status of the HTTP answer on `stream`, read within `deadline`; `None`
/// when the server closed the connection without one.
async fn status_of(stream: &mut (impl AsyncRead + Unpin), deadline: Duration) -> Option<u16> {
    fair::read_status(stream, deadline)
        .await
        .expect("an answer or a close in time")
}

fn head(path: &str, content_length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: jira\r\nContent-Type: application/json\r\n\
         Content-Length: {content_length}\r\n\r\n"
    )
}

async fn a_valid_webhook_is_accepted(base: &str) {
    let response = reqwest::Client::new()
        .post(format!("{base}{}", webhook_path(TOKEN)))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 202, "a real webhook gets through");
}

#[tokio::test]
async fn clients_that_never_finish_their_headers_are_disconnected() {
    const CLIENTS: u8 = 3;
    const EACH: usize = 100;
    let settings = common::settings();
    common::declare_topology(&settings).await.expect("topology");
    let (_ingress, base) = common::ingress_process(&settings).await;
    let address = base.trim_start_matches("http://").to_owned();
    let started = Instant::now();
    // From three clients, each within its connection cap: every one is left to
    // the header-read timeout (a fourth over the cap would replace its oldest).
    let mut slow = Vec::with_capacity(EACH * usize::from(CLIENTS));
    for client in 0..CLIENTS {
        let from = std::net::Ipv4Addr::new(127, 0, 0, 2 + client);
        for _ in 0..EACH {
            let mut stream = fair::connect_from(from, &address).await;
            let partial = format!(
                "POST {} HTTP/1.1\r\nHost: jira\r\nContent-Ty",
                webhook_path(TOKEN)
            );
            stream.write_all(partial.as_bytes()).await.expect("write");
            slow.push(stream);
        }
    }
    a_valid_webhook_is_accepted(&base).await;

    let (mut earliest, mut latest) = (Duration::MAX, Duration::ZERO);
    for stream in &mut slow {
        assert!(
            fair::closed_within(stream, Duration::from_secs(25)).await,
            "a client stuck in its headers is disconnected"
        );
        earliest = earliest.min(started.elapsed());
        latest = latest.max(started.elapsed());
    }
    eprintln!(
        "{} half-sent headers: closed after {earliest:?} to {latest:?}",
        slow.len()
    );
    assert!(
        earliest >= Duration::from_secs(8),
        "closed by the header-read timeout, not at once (nor after 3 s: they sent bytes): \
         {earliest:?}"
    );
    a_valid_webhook_is_accepted(&base).await;
}

#[tokio::test]
async fn stalled_bodies_are_shed_or_timed_out_and_memory_stays_bounded() {
    const CLIENTS: usize = 60;
    const BODY: usize = 2 * 1024 * 1024 - 1;
    let settings = common::settings();
    common::declare_topology(&settings).await.expect("topology");
    let (ingress, base) = common::ingress_process(&settings).await;
    let address = base.trim_start_matches("http://").to_owned();
    let (rss_before, _) = ingress.memory_kb();

    // Each connection announces a body one byte short of the limit, sends all but
    // its last byte, and stalls. From six clients, ten each: a client may read a
    // quarter of the budget (two such bodies), so the budget itself is reached.
    let mut clients = Vec::with_capacity(CLIENTS);
    for at in 0..CLIENTS {
        let from = std::net::Ipv4Addr::new(127, 0, 0, 2 + u8::try_from(at / 10).expect("six"));
        let stream = fair::connect_from(from, &address).await;
        let (mut reader, mut writer) = stream.into_split();
        let request = head(&webhook_path(TOKEN), BODY);
        let writing = tokio::spawn(async move {
            let _ = writer.write_all(request.as_bytes()).await;
            let _ = writer.write_all(&vec![b'x'; BODY - 1]).await;
            // Hold the connection open, never sending the last byte.
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(writer);
        });
        let answer =
            tokio::spawn(async move { status_of(&mut reader, Duration::from_secs(20)).await });
        clients.push((writing, answer));
    }
    // Meanwhile Jira's ordinary webhooks go through.
    tokio::time::sleep(Duration::from_millis(500)).await;
    a_valid_webhook_is_accepted(&base).await;

    let mut statuses = std::collections::BTreeMap::new();
    for (writing, answer) in clients {
        let status = answer.await.expect("reader task");
        *statuses.entry(status).or_insert(0) += 1;
        writing.abort();
    }
    let (_, peak) = ingress.memory_kb();
    eprintln!(
        "{CLIENTS} stalled 2 MiB bodies: answers {statuses:?}; RSS {} → peak {} MiB",
        rss_before / 1024,
        peak / 1024
    );
    let shed = statuses.get(&Some(503)).copied().unwrap_or(0);
    let over_share = statuses.get(&Some(429)).copied().unwrap_or(0);
    let timed_out = statuses.get(&Some(408)).copied().unwrap_or(0);
    assert_eq!(timed_out, 8, "the budget holds 8 of them ({statuses:?})");
    assert!(
        shed >= 1,
        "beyond the body budget: 503 at once ({statuses:?})"
    );
    assert!(
        over_share >= 1,
        "beyond a client's share: 429 at once ({statuses:?})"
    );
    assert_eq!(
        shed + over_share + timed_out,
        CLIENTS,
        "every one answered ({statuses:?})"
    );
    assert!(
        peak < rss_before + 48 * 1024,
        "memory bounded by the body budget: {rss_before} → {peak} kB"
    );
    a_valid_webhook_is_accepted(&base).await;
}

#[tokio::test]
async fn a_request_refused_for_its_token_is_answered_before_its_body_arrives() {
    let settings = common::settings();
    common::declare_topology(&settings).await.expect("topology");
    let (_ingress, base) = common::ingress_process(&settings).await;
    let mut stream = TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .expect("connect");
    let request = head(&webhook_path("not-a-token"), 2_000_000);
    stream.write_all(request.as_bytes()).await.expect("write");
    assert_eq!(
        status_of(&mut stream, Duration::from_secs(5)).await,
        Some(400),
        "no body was waited for"
    );
}

#[tokio::test]
async fn requests_beyond_the_in_flight_cap_are_shed_with_503_and_the_probes_still_answer() {
    const CLIENTS: u8 = 5;
    const EACH: usize = 60;
    let settings = common::settings();
    common::declare_topology(&settings).await.expect("topology");
    let (_ingress, base) = common::ingress_process(&settings).await;
    let address = fair::address_of(&base);
    // Small bodies announced and never sent: each holds a request slot. From five
    // clients, each within its own limit of 64, so the ingress's cap is reached.
    let cap = jirasync::ingress::server::MAX_IN_FLIGHT;
    let total = EACH * usize::from(CLIENTS);
    let mut clients = Vec::with_capacity(total);
    let answered = std::sync::Arc::default();
    for client in 0..CLIENTS {
        let from = std::net::Ipv4Addr::new(127, 0, 0, 2 + client);
        let request = fair::head(100);
        clients.extend(fair::stalled(from, &address, EACH, request.as_bytes(), &answered).await);
    }
    fair::settle(&answered, total - cap).await;
    // The cap is full; the probes bypass it.
    let healthz = fair::timed_get(std::net::Ipv4Addr::LOCALHOST, &format!("{base}/healthz")).await;
    let readyz = fair::timed_get(std::net::Ipv4Addr::LOCALHOST, &format!("{base}/readyz")).await;
    let statuses = fair::tally(clients).await;
    eprintln!(
        "{total} stalled small bodies of {CLIENTS} clients: answers {statuses:?}; meanwhile \
         /healthz {healthz:?}, /readyz {readyz:?}"
    );
    assert_eq!(
        statuses.get(&Some(503)).copied(),
        Some(total - cap),
        "{statuses:?}"
    );
    assert_eq!(statuses.get(&Some(408)).copied(), Some(cap), "{statuses:?}");
    for (probe, (status, took)) in [("/healthz", healthz), ("/readyz", readyz)] {
        assert_eq!(status, 200, "{probe} with the in-flight cap full");
        assert!(took < Duration::from_secs(1), "{probe} took {took:?}");
    }
    a_valid_webhook_is_accepted(&base).await;
}

#[tokio::test]
async fn tokens_jirasync_cannot_have_minted_cost_no_durable_write() {
    use base64::Engine as _;
    let settings = common::settings();
    common::declare_topology(&settings).await.expect("topology");
    let ingress = common::spawn_ingress(&settings, true).await;
    let b64 = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    let client = reqwest::Client::new();
    for (case, token) in [
        (
            "alg none",
            format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(r#"{"id":"x"}"#)),
        ),
        (
            "HS512",
            format!(
                "{}.{}.c2ln",
                b64(r#"{"alg":"HS512"}"#),
                b64(r#"{"id":"x"}"#)
            ),
        ),
        (
            "no id",
            format!(
                "{}.{}.c2ln",
                b64(r#"{"alg":"HS256"}"#),
                b64(r#"{"sub":"x"}"#)
            ),
        ),
        (
            "claims not JSON",
            format!("{}.{}.c2ln", b64(r#"{"alg":"HS256"}"#), b64("{{{")),
        ),
    ] {
        let response = client
            .post(ingress.url(&webhook_path(&token)))
            .body("{}")
            .send()
            .await
            .expect(case);
        assert_eq!(response.status(), 400, "{case}");
    }
    let response = client
        .post(ingress.url(&webhook_path(TOKEN)))
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 202, "an HS256 token with an id passes");
    let (_connection, channel) = common::amqp().await;
    let queue = common::names(&settings).webhooks();
    assert_eq!(common::depth(&channel, &queue).await, 1, "only that one");
    ingress.stop().await;
}

#[tokio::test]
async fn a_full_queue_answers_503_and_keeps_what_it_holds() {
    let mut settings = common::settings();
    settings.broker.queue_max_length = 3;
    common::declare_topology(&settings).await.expect("topology");
    let ingress = common::spawn_ingress(&settings, true).await;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = client
            .post(ingress.url(&webhook_path(TOKEN)))
            .body("{}")
            .send()
            .await
            .expect("POST");
        statuses.push(response.status().as_u16());
    }
    // A quorum queue checks its length as it applies a publish, so it may take
    // one past the cap before it refuses.
    assert_eq!(statuses[..3], [202, 202, 202], "{statuses:?}");
    assert_eq!(statuses[4], 503, "{statuses:?}");
    let accepted = statuses.iter().filter(|status| **status == 202).count();
    let (_connection, channel) = common::amqp().await;
    let queue = common::names(&settings).webhooks();
    assert_eq!(
        usize::try_from(common::depth(&channel, &queue).await).expect("fits"),
        accepted,
        "every 202 is kept"
    );
    ingress.stop().await;
}

#[tokio::test]
async fn a_queue_an_older_version_declared_without_a_cap_keeps_working() {
    let mut settings = common::settings();
    settings.broker.queue_max_length = 0;
    common::declare_topology(&settings)
        .await
        .expect("the old topology");
    settings.broker.queue_max_length = 3;
    common::declare_topology(&settings)
        .await
        .expect("declaring over a queue without a cap does not fail");
    let ingress = common::spawn_ingress(&settings, true).await;
    let response = reqwest::Client::new()
        .post(ingress.url(&webhook_path(TOKEN)))
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 202);
    ingress.stop().await;
}

/// From one client (its bucket; another client's is `fair_ingress.rs`'s).
#[tokio::test]
async fn a_flood_of_oauth_callbacks_enqueues_a_bounded_number_of_jobs() {
    let settings = common::settings();
    common::declare_topology(&settings).await.expect("topology");
    let ingress = common::spawn_ingress(&settings, true).await;
    let client = reqwest::Client::new();
    let (mut taken, mut refused) = (0_u32, 0_u32);
    for _ in 0..80 {
        let state = jirasync::jira::oauth2_flow::fresh_secret();
        let url = ingress.url(&format!(
            "/extensions/jira-server/oauth2/callback?code=c&state={state}"
        ));
        match client.get(url).send().await.expect("GET").status().as_u16() {
            200 => taken += 1,
            429 => refused += 1,
            other => panic!("status {other}"),
        }
    }
    let burst = jirasync::ingress::server::CALLBACK_BURST as u32;
    assert!((burst..burst + 10).contains(&taken), "{taken} taken");
    assert_eq!(taken + refused, 80);
    let (_connection, channel) = common::amqp().await;
    let jobs = common::names(&settings).jobs();
    assert_eq!(
        common::depth(&channel, &jobs).await,
        taken,
        "one job per 200"
    );
    ingress.stop().await;
}

/// How many channels the connection named `name` has open on the shared broker.
fn channels_of(name: &str) -> usize {
    let rabbitmqctl = |args: &[&str]| {
        let output = std::process::Command::new("rabbitmqctl")
            .args(args)
            .output()
            .expect("rabbitmqctl runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let connections = rabbitmqctl(&[
        "list_connections",
        "-q",
        "--no-table-headers",
        "pid",
        "client_properties",
    ]);
    let Some(pid) = connections
        .lines()
        .find(|line| line.contains(&format!("\"{name}\"")))
        .and_then(|line| line.split_whitespace().next())
    else {
        return 0;
    };
    rabbitmqctl(&["list_channels", "-q", "--no-table-headers", "connection"])
        .lines()
        .filter(|line| line.trim() == pid)
        .count()
}

#[tokio::test]
async fn a_queue_that_keeps_refusing_does_not_pile_up_channels() {
    let mut settings = common::settings();
    settings.broker.queue_max_length = 1;
    common::declare_topology(&settings).await.expect("topology");
    let cap = ("JIRASYNC_QUEUE_MAX_LENGTH", "1".to_owned());
    let (process, base) = common::serving_process("ingress", &settings, &[cap]).await;
    let name = format!("jirasync-ingress-{}", process.id());
    let client = reqwest::Client::new();
    // Refused publishes over several of the ingress's 500 ms ticks: each tick
    // after a nack opens a new channel.
    let started = std::time::Instant::now();
    let mut refused = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let response = client
            .post(format!("{base}{}", webhook_path(TOKEN)))
            .body("{}")
            .send()
            .await
            .expect("POST");
        refused += usize::from(response.status() == 503);
    }
    assert!(refused > 10, "the full queue refused: {refused}");
    assert!(channels_of(&name) > 0, "the ingress's connection is found");
    common::eventually(
        "the replaced channels are closed",
        Duration::from_secs(15),
        || async { channels_of(&name) <= 2 },
    )
    .await;
    drop(process);
}
