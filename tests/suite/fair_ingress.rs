//! Fair service (docs/reference.md §3 "Limits", docs/reliability.md): the probes
//! of the security review, each from one client (a loopback source address of its
//! own, 127.0.0.2) against a real `jirasync ingress` process, while another client
//! (127.0.0.1 or 127.0.0.3) is still served; the probes answer; silent
//! connections and stalled bodies are cut after 3 s; `X-Forwarded-For` counts only
//! from a trusted proxy.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::{self, SHAPED_TOKEN as TOKEN, webhook_path};

/// The flooding client.
const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Another client.
const OTHER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// The default `JIRASYNC_CLIENT_MAX_IN_FLIGHT`.
const CLIENT_MAX_IN_FLIGHT: usize = 64;
/// The default `JIRASYNC_CLIENT_MAX_CONNECTIONS`.
const CLIENT_MAX_CONNECTIONS: usize = 128;

/// A TCP connection to `to` from the address `from`.
pub async fn connect_from(from: Ipv4Addr, to: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::new(IpAddr::V4(from), 0))
        .expect("bind a loopback address");
    socket
        .connect(to.parse().expect("an address"))
        .await
        .expect("connect")
}

/// An HTTP client whose connections come from `from`.
pub fn http_from(from: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(from))
        .timeout(Duration::from_secs(15))
        .build()
        .expect("a client")
}

/// The status of the answer on `stream` (`None`: closed without one, or none
/// within `deadline`).
pub async fn status_within(stream: &mut TcpStream, deadline: Duration) -> Option<u16> {
    read_status(stream, deadline).await.ok().flatten()
}

/// The status of the HTTP answer on `stream`: `Err` when neither it nor a close
/// came within `deadline`, `Ok(None)` when the server closed without one.
pub async fn read_status(
    stream: &mut (impl AsyncRead + Unpin),
    deadline: Duration,
) -> Result<Option<u16>, tokio::time::error::Elapsed> {
    let mut answer = Vec::new();
    let mut buffer = [0_u8; 1024];
    let read = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    };
    tokio::time::timeout(deadline, read).await?;
    Ok(String::from_utf8_lossy(&answer)
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok()))
}

/// Whether the server closed `stream` (EOF or reset) within `deadline`.
pub async fn closed_within(stream: &mut (impl AsyncRead + Unpin), deadline: Duration) -> bool {
    let mut buffer = [0_u8; 256];
    let wait = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(deadline, wait).await.is_ok()
}

/// A webhook's request line and headers announcing `length` bytes of body.
pub fn head(length: usize) -> String {
    format!(
        "POST {} HTTP/1.1\r\nHost: jira\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n\r\n",
        webhook_path(TOKEN)
    )
}

/// `host:port` of a base URL.
pub fn address_of(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

/// The tasks of [`stalled`] requests, each with the status it got.
pub type Stalled = Vec<tokio::task::JoinHandle<Option<u16>>>;

/// Requests from `from` that send `request` and then stall, each answered (or
/// not) on a task of its own, counted in `answered` when it is.
pub async fn stalled(
    from: Ipv4Addr,
    address: &str,
    count: usize,
    request: &[u8],
    answered: &Arc<AtomicUsize>,
) -> Stalled {
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = connect_from(from, address).await;
        // A connection refused at once may be closed under the write.
        let _ = stream.write_all(request).await;
        let answered = Arc::clone(answered);
        tasks.push(tokio::spawn(async move {
            let status = status_within(&mut stream, Duration::from_secs(15)).await;
            answered.fetch_add(1, Ordering::Relaxed);
            // Held open until the test collects it.
            let _ = closed_within(&mut stream, Duration::from_secs(1)).await;
            status
        }));
    }
    tasks
}

/// Lets the ingress take in what was sent: until `answered` reaches `expected`
/// or half a second passed (no assertion: the test asserts what follows).
pub async fn settle(answered: &AtomicUsize, expected: usize) {
    let started = Instant::now();
    while answered.load(Ordering::Relaxed) < expected
        && started.elapsed() < Duration::from_millis(500)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The answers of `tasks`, counted by status.
pub async fn tally(tasks: Stalled) -> std::collections::BTreeMap<Option<u16>, usize> {
    let mut statuses = std::collections::BTreeMap::new();
    for task in tasks {
        *statuses
            .entry(task.await.expect("a client task"))
            .or_insert(0) += 1;
    }
    statuses
}

/// `GET path` from `from`: its status and how long the answer took.
pub async fn timed_get(from: Ipv4Addr, url: &str) -> (u16, Duration) {
    let started = Instant::now();
    let status = match http_from(from).get(url).send().await {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    };
    (status, started.elapsed())
}

/// A real webhook (`{}`, or `bytes` of body) from `from`: its status and time.
async fn timed_webhook(from: Ipv4Addr, base: &str, bytes: usize) -> (u16, Duration) {
    let body = if bytes == 0 {
        b"{}".to_vec()
    } else {
        vec![b' '; bytes]
    };
    let started = Instant::now();
    let status = match http_from(from)
        .post(format!("{base}{}", webhook_path(TOKEN)))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    };
    (status, started.elapsed())
}

async fn webhooks_queued(settings: &jirasync::config::Settings) -> u32 {
    let (_connection, channel) = common::amqp().await;
    common::depth(&channel, &common::names(settings).webhooks()).await
}

#[tokio::test]
async fn stalled_requests_of_one_client_leave_the_probes_and_other_clients_served() {
    const STALLED: usize = 260;
    let settings = common::settings();
    common::declare_topology(&settings).await.expect("topology");
    let (_ingress, base) = common::ingress_process(&settings).await;
    let address = address_of(&base);
    // Webhooks announcing a small body that never comes: each one in flight
    // holds a request slot.
    let answered = Arc::default();
    let tasks = stalled(ATTACKER, &address, STALLED, head(100).as_bytes(), &answered).await;
    settle(&answered, STALLED - CLIENT_MAX_IN_FLIGHT).await;

    let healthz = timed_get(Ipv4Addr::LOCALHOST, &format!("{base}/healthz")).await;
    let readyz = timed_get(Ipv4Addr::LOCALHOST, &format!("{base}/readyz")).await;
    let webhook = timed_webhook(OTHER, &base, 0).await;
    let statuses = tally(tasks).await;
    eprintln!(
        "{STALLED} stalled requests of one client: its answers {statuses:?}; meanwhile /healthz \
         {healthz:?}, /readyz {readyz:?}, another client's webhook {webhook:?}"
    );
    for (probe, (status, took)) in [("/healthz", healthz), ("/readyz", readyz)] {
        assert_eq!(status, 200, "{probe}");
        assert!(took < Duration::from_secs(1), "{probe} took {took:?}");
    }
    assert_eq!(webhook.0, 202, "another client's webhook");
    let timed_out = statuses.get(&Some(408)).copied().unwrap_or(0);
    assert!(
        (1..=CLIENT_MAX_IN_FLIGHT).contains(&timed_out),
        "at most its in-flight limit waited for a body: {statuses:?}"
    );
    assert!(
        statuses
            .keys()
            .all(|status| matches!(status, Some(408 | 429) | None)),
        "the rest refused with 429 or closed, never the ingress's 503: {statuses:?}"
    );
    assert_eq!(
        webhooks_queued(&settings).await,
        1,
        "only the other client's"
    );
}

#[tokio::test]
async fn stalled_small_bodies_of_one_client_leave_other_clients_their_budget() {
    const STALLED: usize = 130;
    const BODY: usize = 64 * 1024;
    let settings = common::settings();
    common::declare_topology(&settings).await.expect("topology");
    let (_ingress, base) = common::ingress_process(&settings).await;
    let address = address_of(&base);
    let mut request = head(BODY).into_bytes();
    request.extend(vec![b' '; 1024]);
    let answered = Arc::default();
    let tasks = stalled(ATTACKER, &address, STALLED, &request, &answered).await;
    // A quarter of the 8 MiB budget: 32 bodies of 64 KiB.
    settle(&answered, STALLED - 32).await;

    let others =
        futures_util::future::join_all((0..10).map(|_| timed_webhook(OTHER, &base, 0))).await;
    let statuses = tally(tasks).await;
    eprintln!(
        "{STALLED} stalled 64 KiB bodies of one client: its answers {statuses:?}; another \
         client's small webhooks meanwhile {others:?}"
    );
    for (status, _) in &others {
        assert_eq!(*status, 202, "another client's small webhook: {others:?}");
    }
    let timed_out = statuses.get(&Some(408)).copied().unwrap_or(0);
    assert!(
        (1..=32).contains(&timed_out),
        "at most a quarter of the small-body budget was read: {statuses:?}"
    );
    assert!(
        statuses.get(&Some(429)).copied().unwrap_or(0) >= STALLED - CLIENT_MAX_CONNECTIONS,
        "the rest refused with 429: {statuses:?}"
    );
    assert_eq!(statuses.get(&Some(503)), None, "{statuses:?}");
}

#[tokio::test]
async fn stalled_chunked_bodies_of_one_client_leave_other_clients_large_webhooks() {
    const STALLED: usize = 8;
    let settings = common::settings();
    common::declare_topology(&settings).await.expect("topology");
    let (_ingress, base) = common::ingress_process(&settings).await;
    let address = address_of(&base);
    // No length: each counts as the largest body (2 MiB) in the large-body budget.
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: jira\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n400\r\n{}\r\n",
        webhook_path(TOKEN),
        " ".repeat(1024)
    );
    let answered = Arc::default();
    let tasks = stalled(ATTACKER, &address, STALLED, request.as_bytes(), &answered).await;
    settle(&answered, STALLED - 2).await;

    let others =
        futures_util::future::join_all((0..3).map(|_| timed_webhook(OTHER, &base, 100 * 1024)))
            .await;
    let statuses = tally(tasks).await;
    eprintln!(
        "{STALLED} stalled chunked bodies of one client: its answers {statuses:?}; another \
         client's 100 KiB webhooks meanwhile {others:?}"
    );
    for (status, _) in &others {
        assert_eq!(*status, 202, "another client's large webhook: {others:?}");
    }
    // A quarter of the 16 MiB budget: two of the largest bodies.
    assert_eq!(statuses.get(&Some(408)).copied(), Some(2), "{statuses:?}");
    assert_eq!(statuses.get(&Some(429)).copied(), Some(6), "{statuses:?}");
}

#[tokio::test]
async fn idle_sockets_of_one_client_do_not_hold_up_another() {
    const IDLE: usize = 540;
    let settings = common::settings();
    common::declare_topology(&settings).await.expect("topology");
    let (_ingress, base) = common::ingress_process(&settings).await;
    let address = address_of(&base);
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(connect_from(ATTACKER, &address).await);
    }
    let (status, took) = timed_webhook(OTHER, &base, 0).await;
    // Those over the client's cap were closed at once.
    let closed = futures_util::future::join_all(
        idle.iter_mut()
            .map(|stream| closed_within(stream, Duration::from_millis(1500))),
    )
    .await
    .into_iter()
    .filter(|closed| *closed)
    .count();
    eprintln!(
        "{IDLE} idle sockets of one client: another client's webhook answered {status} in \
         {took:?}; {closed} of the idle ones closed within 1.5 s"
    );
    assert_eq!(status, 202);
    assert!(took < Duration::from_secs(2), "answered promptly: {took:?}");
    assert!(
        closed >= IDLE - CLIENT_MAX_CONNECTIONS,
        "a client keeps at most {CLIENT_MAX_CONNECTIONS} connections: {closed} closed"
    );
}

/// How long until the server closes `stream`, within 12 s.
async fn time_to_close(stream: &mut TcpStream) -> Option<Duration> {
    let started = Instant::now();
    closed_within(stream, Duration::from_secs(12))
        .await
        .then(|| started.elapsed())
}

#[tokio::test]
async fn silent_connections_are_closed_after_3_s_and_a_stalled_body_gets_408() {
    let settings = common::settings();
    common::declare_topology(&settings).await.expect("topology");
    let (_ingress, base) = common::ingress_process(&settings).await;
    let address = address_of(&base);
    let new = async {
        let mut stream = connect_from(ATTACKER, &address).await;
        time_to_close(&mut stream).await
    };
    let kept_alive = async {
        let mut stream = connect_from(ATTACKER, &address).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: jira\r\n\r\n")
            .await
            .expect("write");
        let status = status_within(&mut stream, Duration::from_secs(2)).await;
        (status, time_to_close(&mut stream).await)
    };
    let stalled_body = async {
        let mut stream = connect_from(OTHER, &address).await;
        let mut request = head(100).into_bytes();
        request.extend_from_slice(b"{\"a\":");
        stream.write_all(&request).await.expect("write");
        let started = Instant::now();
        let status = status_within(&mut stream, Duration::from_secs(12)).await;
        let answered = started.elapsed();
        let closed = closed_within(&mut stream, Duration::from_secs(1)).await;
        (status, answered, closed)
    };
    let (new, (kept_status, kept_alive), (body_status, body_answered, body_closed)) =
        tokio::join!(new, kept_alive, stalled_body);
    eprintln!(
        "a silent new connection closed after {new:?}; a kept-alive one after its answer \
         ({kept_status:?}) after {kept_alive:?}; a stalled body answered {body_status:?} after \
         {body_answered:?}, closed after: {body_closed}"
    );
    let about_3_s = |took: Option<Duration>| {
        took.is_some_and(|took| {
            (Duration::from_millis(2500)..Duration::from_millis(4500)).contains(&took)
        })
    };
    assert!(about_3_s(new), "a new connection without a byte: {new:?}");
    assert_eq!(kept_status, Some(200));
    assert!(
        about_3_s(kept_alive),
        "idle between requests: {kept_alive:?}"
    );
    assert_eq!(body_status, Some(408), "a stalled body");
    assert!(
        about_3_s(Some(body_answered)),
        "after 3 s: {body_answered:?}"
    );
    assert!(body_closed, "and its connection is closed");
    assert_eq!(webhooks_queued(&settings).await, 0);
}

#[tokio::test]
async fn a_request_beyond_a_clients_in_flight_limit_gets_429_and_publishes_nothing() {
    let settings = common::settings();
    common::declare_topology(&settings).await.expect("topology");
    let (_ingress, base) = common::ingress_process(&settings).await;
    let address = address_of(&base);
    let tasks = stalled(
        ATTACKER,
        &address,
        CLIENT_MAX_IN_FLIGHT,
        head(100).as_bytes(),
        &Arc::default(),
    )
    .await;
    let attacker = http_from(ATTACKER);
    // A request refused for its token once admitted (400) tells when the 64 are in.
    let probe = format!("{base}{}", webhook_path("not-a-token"));
    common::eventually(
        "the client's 64 requests are in flight",
        Duration::from_secs(2),
        || {
            let request = attacker.post(&probe).body("{}").send();
            async move { matches!(request.await, Ok(r) if r.status() == 429) }
        },
    )
    .await;
    let response = attacker
        .post(format!("{base}{}", webhook_path(TOKEN)))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 429, "the 65th request");
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    assert_eq!(
        timed_webhook(OTHER, &base, 0).await.0,
        202,
        "another client"
    );
    assert_eq!(webhooks_queued(&settings).await, 1, "nothing of the 429");
    // Once its stalled ones are answered (408 after 3 s) the client is served again.
    let statuses = tally(tasks).await;
    assert_eq!(
        statuses.get(&Some(408)).copied(),
        Some(CLIENT_MAX_IN_FLIGHT),
        "{statuses:?}"
    );
    assert_eq!(timed_webhook(ATTACKER, &base, 0).await.0, 202);
}

#[tokio::test]
async fn x_forwarded_for_names_the_client_only_when_a_trusted_proxy_sends_it() {
    let settings = common::settings();
    common::declare_topology(&settings).await.expect("topology");
    let (_ingress, base) = common::serving_process(
        "ingress",
        &settings,
        &[
            ("JIRASYNC_TRUSTED_PROXIES", "127.0.0.2/32".to_owned()),
            ("JIRASYNC_CLIENT_MAX_IN_FLIGHT", "1".to_owned()),
        ],
    )
    .await;
    let address = address_of(&base);
    let proxy = ATTACKER;
    let untrusted = OTHER;
    // One request in flight for client 10.0.0.1 (through the proxy) and one for
    // 127.0.0.3 (no proxy): each client's limit of 1 is taken.
    let forwarded = |xff: &str| {
        let mut request = head(100);
        request.insert_str(request.len() - 2, &format!("X-Forwarded-For: {xff}\r\n"));
        request.into_bytes()
    };
    let held_forwarded = stalled(proxy, &address, 1, &forwarded("10.0.0.1"), &Arc::default()).await;
    let held_direct = stalled(
        untrusted,
        &address,
        1,
        head(100).as_bytes(),
        &Arc::default(),
    )
    .await;
    let send = |from: Ipv4Addr, xff: Option<&str>, token: &str| {
        let mut request = http_from(from)
            .post(format!("{base}{}", webhook_path(token)))
            .body("{}");
        if let Some(xff) = xff {
            request = request.header("x-forwarded-for", xff);
        }
        async move { request.send().await.map_or(0, |r| r.status().as_u16()) }
    };
    common::eventually(
        "both holds are in flight",
        Duration::from_secs(2),
        || async {
            send(proxy, Some("10.0.0.1"), "not-a-token").await == 429
                && send(untrusted, None, "not-a-token").await == 429
        },
    )
    .await;
    let mut failures = Vec::new();
    for (case, from, xff, expected) in [
        (
            "the same client through the proxy",
            proxy,
            Some("10.0.0.1"),
            429,
        ),
        ("a forged left part", proxy, Some("6.6.6.6, 10.0.0.1"), 429),
        (
            "a trusted hop right of it",
            proxy,
            Some("10.0.0.1, 127.0.0.2"),
            429,
        ),
        (
            "the right-most untrusted is another client",
            proxy,
            Some("10.0.0.1, 10.0.0.2"),
            202,
        ),
        ("the proxy itself without the header", proxy, None, 202),
        (
            "an untrusted peer's header is ignored",
            Ipv4Addr::new(127, 0, 0, 4),
            Some("10.0.0.1"),
            202,
        ),
        (
            "an untrusted peer cannot pose as another",
            untrusted,
            Some("10.0.0.9"),
            429,
        ),
    ] {
        let status = send(from, xff, TOKEN).await;
        if status != expected {
            failures.push(format!("{case}: {status}, expected {expected}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(webhooks_queued(&settings).await, 3, "one per 202");
    drop((held_forwarded, held_direct));
}

#[tokio::test]
async fn a_callback_flood_from_one_client_leaves_the_admins_callback_working() {
    let settings = common::settings();
    common::declare_topology(&settings).await.expect("topology");
    let (_ingress, base) = common::ingress_process(&settings).await;
    let callback = || {
        let state = jirasync::jira::oauth2_flow::fresh_secret();
        format!("{base}/extensions/jira-server/oauth2/callback?code=c&state={state}")
    };
    let flood = http_from(ATTACKER);
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..80 {
        let status = flood.get(callback()).send().await.expect("GET").status();
        *statuses.entry(status.as_u16()).or_insert(0) += 1;
    }
    let admin = http_from(Ipv4Addr::LOCALHOST)
        .get(callback())
        .send()
        .await
        .expect("GET")
        .status();
    eprintln!("80 callbacks of one client: {statuses:?}; the admin's then: {admin}");
    assert!(
        statuses.get(&429).copied().unwrap_or(0) >= 20,
        "{statuses:?}"
    );
    assert_eq!(admin, 200, "the admin's own callback");
}

#[tokio::test]
async fn the_metrics_listener_has_the_same_connection_limits_and_its_probes_answer() {
    const IDLE: usize = 200;
    let settings = common::settings();
    common::declare_topology(&settings).await.expect("topology");
    let port = common::private_pg::free_port();
    let metrics = format!("127.0.0.1:{port}");
    let (_ingress, _) = common::serving_process(
        "ingress",
        &settings,
        &[("JIRASYNC_METRICS_LISTEN", metrics.clone())],
    )
    .await;
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(connect_from(ATTACKER, &metrics).await);
    }
    let healthz = timed_get(OTHER, &format!("http://{metrics}/healthz")).await;
    let readyz = timed_get(OTHER, &format!("http://{metrics}/readyz")).await;
    let started = Instant::now();
    let early = futures_util::future::join_all(
        idle.iter_mut()
            .map(|stream| closed_within(stream, Duration::from_millis(500))),
    )
    .await
    .into_iter()
    .filter(|closed| *closed)
    .count();
    let all = futures_util::future::join_all(
        idle.iter_mut()
            .map(|stream| closed_within(stream, Duration::from_millis(4500))),
    )
    .await
    .into_iter()
    .filter(|closed| *closed)
    .count();
    eprintln!(
        "{IDLE} idle sockets of one client on the metrics listener: /healthz {healthz:?}, \
         /readyz {readyz:?}; {early} closed at once, {all} within {:?}",
        started.elapsed()
    );
    for (probe, (status, took)) in [("/healthz", healthz), ("/readyz", readyz)] {
        assert_eq!(status, 200, "{probe}");
        assert!(took < Duration::from_secs(1), "{probe} took {took:?}");
    }
    assert!(
        early >= IDLE - CLIENT_MAX_CONNECTIONS,
        "over the client's cap: {early}"
    );
    assert_eq!(all, IDLE, "the rest after 3 s of silence");
}

/// `bench/run.sh` posts 64 at a time from one client over kept-alive
/// connections: the per-client limits must refuse none of them.
#[tokio::test]
async fn a_client_with_64_requests_in_flight_is_never_refused() {
    const EACH: usize = 10;
    let settings = common::settings();
    common::declare_topology(&settings).await.expect("topology");
    let (_ingress, base) = common::ingress_process(&settings).await;
    let client = http_from(Ipv4Addr::LOCALHOST);
    let url = format!("{base}{}", webhook_path(TOKEN));
    let senders = (0..CLIENT_MAX_IN_FLIGHT).map(|_| {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::with_capacity(EACH);
            for _ in 0..EACH {
                let answer = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body("{}")
                    .send()
                    .await;
                statuses.push(answer.map_or(0, |a| a.status().as_u16()));
            }
            statuses
        })
    });
    let mut statuses = std::collections::BTreeMap::new();
    for sender in futures_util::future::join_all(senders).await {
        for status in sender.expect("a sender") {
            *statuses.entry(status).or_insert(0) += 1;
        }
    }
    let sent = CLIENT_MAX_IN_FLIGHT * EACH;
    assert_eq!(statuses.get(&202).copied(), Some(sent), "{statuses:?}");
    assert_eq!(
        usize::try_from(webhooks_queued(&settings).await).expect("fits"),
        sent
    );
}
