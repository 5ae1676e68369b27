//! The ingress against the real RabbitMQ: what a POST puts on `P.webhooks`, what
//! is refused, and what happens while the broker is unreachable.

use crate::common;

use std::time::Duration;

use common::proxy::Proxy;
use jirasync::queue::message::{self, header_int, header_str};

use common::{SHAPED_TOKEN as TOKEN, webhook_path};

#[tokio::test]
async fn a_posted_body_arrives_byte_for_byte_with_the_contract_properties() {
    let settings = common::settings();
    common::declare_topology(&settings)
        .await
        .expect("declare topology");
    let ingress = common::spawn_ingress(&settings, true).await;
    let (_connection, channel) = common::amqp().await;
    // Bytes a JSON parser would normalise: spacing, key order, escapes, a BOM-less UTF-8 tail.
    let body =
        b"{ \"webhookEvent\" : \"jira:issue_updated\",\n\t\"b\":1, \"a\":\"\\u00e9\xc3\xa9\" }  "
            .to_vec();
    let before = std::time::SystemTime::now();

    let response = reqwest::Client::new()
        .post(ingress.url(&webhook_path(TOKEN)))
        .header("content-type", "application/json; charset=UTF-8")
        .header("x-atlassian-webhook-identifier", "4711")
        .header("x-hub-signature", "sha256=abc")
        .body(body.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 202);
    let answer: serde_json::Value = response.json().await.expect("JSON answer");
    let id = answer["id"].as_str().expect("id in the answer").to_owned();

    let got = common::get_one(
        &channel,
        &common::names(&settings).webhooks(),
        Duration::from_secs(5),
    )
    .await
    .expect("the webhook is on P.webhooks");
    let props = &got.delivery.properties;
    assert_eq!(got.delivery.data, body, "body byte for byte");
    assert_eq!(got.delivery.routing_key.as_str(), "jira_server.webhook");
    assert_eq!(message::message_id(props), id, "202's id is the message id");
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "message id is a UUID");
    assert_eq!(message::message_type(props), "jira_server.webhook");
    assert_eq!(props.delivery_mode(), &Some(2), "persistent");
    assert_eq!(
        props.content_type().as_ref().map(|c| c.as_str()),
        Some("application/json; charset=UTF-8")
    );
    assert_eq!(header_str(props, "token").as_deref(), Some(TOKEN));
    assert_eq!(
        header_str(props, "x-atlassian-webhook-identifier").as_deref(),
        Some("4711")
    );
    assert_eq!(
        header_str(props, "x-hub-signature").as_deref(),
        Some("sha256=abc")
    );
    let received = header_int(props, "received_at_ms").expect("received_at_ms");
    assert!(
        received >= message::millis(before)
            && received <= message::millis(std::time::SystemTime::now())
    );
    assert!(props.timestamp().is_some(), "timestamp set");

    ingress.stop().await;
}

#[tokio::test]
async fn the_trailing_slash_is_optional() {
    let settings = common::settings();
    common::declare_topology(&settings)
        .await
        .expect("declare topology");
    let ingress = common::spawn_ingress(&settings, true).await;
    let path = format!("/extensions/jira-server/issue-updated/{TOKEN}");
    let response = reqwest::Client::new()
        .post(ingress.url(&path))
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 202);
    ingress.stop().await;
}

#[tokio::test]
async fn refused_requests_publish_nothing() {
    let mut settings = common::settings();
    settings.http.max_body_bytes = 1024;
    common::declare_topology(&settings)
        .await
        .expect("declare topology");
    let ingress = common::spawn_ingress(&settings, true).await;
    let client = reqwest::Client::new();
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        (
            "token with two parts",
            client
                .post(ingress.url(&webhook_path("abc.def")))
                .body("{}"),
            400,
        ),
        (
            "token with a bad character",
            client
                .post(ingress.url(&webhook_path("a.b.c%2B")))
                .body("{}"),
            400,
        ),
        (
            "empty body",
            client.post(ingress.url(&webhook_path(TOKEN))),
            400,
        ),
        (
            "body over the limit",
            client
                .post(ingress.url(&webhook_path(TOKEN)))
                .body(vec![b'x'; 1025]),
            413,
        ),
        (
            "GET on the webhook route",
            client.get(ingress.url(&webhook_path(TOKEN))),
            405,
        ),
        (
            "PUT on the webhook route",
            client.put(ingress.url(&webhook_path(TOKEN))).body("{}"),
            405,
        ),
    ];
    for (case, request, status) in cases {
        let response = request.send().await.expect(case);
        assert_eq!(response.status().as_u16(), status, "{case}");
        if status == 400 {
            let body: serde_json::Value = response.json().await.expect(case);
            assert!(body["error"].is_string(), "{case}: JSON error");
        }
    }
    // A body exactly at the limit is accepted: the limit is not off by one.
    let response = client
        .post(ingress.url(&webhook_path(TOKEN)))
        .body(vec![b'x'; 1024])
        .send()
        .await
        .expect("POST at the limit");
    assert_eq!(response.status(), 202);

    let (_connection, channel) = common::amqp().await;
    let queue = common::names(&settings).webhooks();
    assert_eq!(
        common::depth(&channel, &queue).await,
        1,
        "only the accepted request was published"
    );
    ingress.stop().await;
}

#[tokio::test]
async fn with_the_broker_unreachable_the_ingress_answers_503_then_recovers() {
    let mut settings = common::settings();
    common::declare_topology(&settings)
        .await
        .expect("declare topology");
    let proxy = Proxy::start("127.0.0.1:5672".parse().expect("address")).await;
    settings.broker.url = proxy.amqp_url();
    let ingress = common::spawn_ingress(&settings, true).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let post = || {
        client
            .post(ingress.url(&webhook_path(TOKEN)))
            .body("{\"n\":1}")
            .send()
    };
    assert_eq!(post().await.expect("POST").status(), 202);

    proxy.cut();
    common::eventually("readyz says 503", Duration::from_secs(10), || {
        let request = client.get(ingress.url("/readyz")).send();
        async move { matches!(request.await, Ok(r) if r.status() == 503) }
    })
    .await;
    let started = std::time::Instant::now();
    let response = post().await.expect("POST while cut");
    assert_eq!(response.status(), 503);
    assert!(
        response.headers().contains_key("retry-after"),
        "503 carries Retry-After"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "answered within the confirm timeout"
    );

    proxy.restore();
    common::eventually("the ingress accepts again", Duration::from_secs(20), || {
        let request = post();
        async move { matches!(request.await, Ok(r) if r.status() == 202) }
    })
    .await;

    let (_connection, channel) = common::amqp().await;
    let queue = common::names(&settings).webhooks();
    let accepted = common::depth(&channel, &queue).await;
    assert!(accepted >= 2, "both 202s are on the queue, got {accepted}");
    ingress.stop().await;
}

#[tokio::test]
async fn unroutable_webhooks_get_503_not_202() {
    // No topology declared for this prefix at the broker the ingress reaches…
    let settings = common::settings();
    let ingress = common::spawn_ingress(&settings, true).await;
    // …the ingress declares it on connect; delete the queue behind its back.
    let (_connection, channel) = common::amqp().await;
    channel
        .queue_delete(
            common::names(&settings).webhooks().as_str().into(),
            Default::default(),
        )
        .await
        .expect("delete P.webhooks");
    let response = reqwest::Client::new()
        .post(ingress.url(&webhook_path(TOKEN)))
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(
        response.status(),
        503,
        "a message no queue takes is not accepted"
    );
    ingress.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let settings = common::settings();
    let ingress = common::spawn_ingress(&settings, true).await;
    let client = reqwest::Client::new();
    let response = client
        .post(ingress.url(&webhook_path("x.y")))
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 400);
    let text = client
        .get(ingress.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text");
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("jirasync_http_requests_total")
                && l.contains("route=\"/extensions/jira-server/issue-updated/{token}/\"")
                && l.contains("status=\"400\"")
        })
        .unwrap_or_else(|| panic!("no request counter in:\n{text}"));
    assert!(!line.contains("x.y"), "the token never appears in metrics");
    assert!(
        text.contains("jirasync_broker_connected"),
        "broker state exported"
    );
    ingress.stop().await;
}

/// The body of `GET url`, once it answers 200.
async fn text_of(client: &reqwest::Client, url: &str) -> String {
    let response = client.get(url).send().await.expect("GET");
    assert_eq!(response.status(), 200, "{url}");
    response.text().await.expect("text")
}

/// `jirasync <command>` with a metrics listener of its own, once its ingress is
/// ready and answers `404` to `/metrics` on the port Jira posts to: the process,
/// the ingress's base URL and the listener's address.
async fn with_metrics_listener(
    command: &str,
    settings: &jirasync::config::Settings,
) -> (common::Process, String, String) {
    let metrics = format!("127.0.0.1:{}", common::private_pg::free_port());
    let (process, base) = common::serving_process(
        command,
        settings,
        &[("JIRASYNC_METRICS_LISTEN", metrics.clone())],
    )
    .await;
    let public = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("GET /metrics on the public port");
    assert_eq!(public.status(), 404, "no metrics where Jira posts");
    (process, base, metrics)
}

#[tokio::test]
async fn with_a_metrics_listener_metrics_are_served_there_and_not_where_jira_posts() {
    let settings = common::settings();
    let (_process, base, metrics) = with_metrics_listener("ingress", &settings).await;
    let client = reqwest::Client::new();
    let refused = client
        .post(format!("{base}{}", webhook_path("x.y")))
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(refused.status(), 400);
    let text = text_of(&client, &format!("http://{metrics}/metrics")).await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("jirasync_http_requests_total") && l.contains("status=\"400\"")),
        "the ingress's request counter on the metrics listener:\n{text}"
    );
    assert_eq!(
        text_of(&client, &format!("http://{metrics}/readyz")).await,
        "ready\n"
    );
    assert_eq!(
        text_of(&client, &format!("http://{metrics}/healthz")).await,
        "ok\n"
    );
    assert_eq!(
        text_of(&client, &format!("{base}/readyz")).await,
        "ready\n",
        "probes stay"
    );
}

#[tokio::test]
async fn jirasync_run_serves_one_metrics_listener_for_the_ingress_and_the_worker() {
    let settings = common::settings();
    let (_process, _base, metrics) = with_metrics_listener("run", &settings).await;
    let client = reqwest::Client::new();
    common::eventually("the worker consumes", Duration::from_secs(20), || {
        let url = format!("http://{metrics}/readyz");
        let request = client.get(url).send();
        async move { matches!(request.await, Ok(r) if r.status() == 200) }
    })
    .await;
    let text = text_of(&client, &format!("http://{metrics}/metrics")).await;
    for role in ["ingress", "worker"] {
        assert!(
            text.contains(&format!("jirasync_broker_connected{{role=\"{role}\"}} 1")),
            "the {role}'s metrics on the one listener:\n{text}"
        );
    }
}

#[tokio::test]
async fn a_node_list_with_a_dead_node_still_connects_and_all_dead_names_each() {
    let mut settings = common::settings();
    let dead = format!(
        "amqp://guest:secret@127.0.0.1:{}/%2f",
        common::private_pg::free_port()
    );
    settings.broker.url = format!("{dead},{}", common::amqp_url());
    common::declare_topology(&settings)
        .await
        .expect("declared through the node that answers");
    let ingress = common::spawn_ingress(&settings, true).await;
    let answer = reqwest::Client::new()
        .post(ingress.url(&webhook_path(TOKEN)))
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(answer.status(), 202);
    ingress.stop().await;

    let mut all_dead = settings.clone();
    let other = format!(
        "amqp://guest:secret@127.0.0.1:{}/%2f",
        common::private_pg::free_port()
    );
    all_dead.broker.url = format!("{dead},{other}");
    let listed = common::output(&["dlq", "list"], &all_dead);
    let stderr = String::from_utf8_lossy(&listed.stderr);
    assert!(!listed.status.success());
    for node in [&dead, &other] {
        let port = node.rsplit(':').next().unwrap_or_default();
        assert!(
            stderr.matches(port).count() >= 2,
            "{port} named with its error: {stderr}"
        );
    }
    assert!(!stderr.contains("secret"), "no password printed: {stderr}");
}
