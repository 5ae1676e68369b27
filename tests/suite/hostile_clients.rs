//! Hostile clients against the real ingress and RabbitMQ (docs/reliability.md): a
//! request cannot break the broker connection the other requests share.

use std::time::{Duration, SystemTime};

use jirasync::queue::WEBHOOK;
use jirasync::queue::message::{WebhookRequest, long_string, webhook_properties};
use jirasync::queue::publisher::{Broker, PublishError};
use jirasync::shutdown::Shutdown;

use crate::common;

const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJpZCI6ImppcmE6a2V5In0.c2lnbmF0dXJl";
const WAIT: Duration = Duration::from_secs(20);

fn webhook_path(token: &str) -> String {
    format!("/extensions/jira-server/issue-updated/{token}/")
}

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

    for (case, signature, identifier) in [
        ("a 200 KB signature", "a".repeat(200_000), "1".to_owned()),
        ("a 129-byte signature", "a".repeat(129), "1".to_owned()),
        ("a 257-byte identifier", "a".repeat(10), "1".repeat(257)),
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
        futures_util::future::join_all((0..20).map(|_| post("a".repeat(200_000), "7".into()))),
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
    let (broker, task) = Broker::start(&settings.broker, &settings.retries, "test", stop.clone());
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
