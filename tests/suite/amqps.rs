//! RabbitMQ over TLS: `amqps://` with the `cacertfile` query parameter
//! (docs/reference.md §2), against a private node's TLS listener presenting a
//! certificate of the test's own CA. Ignored by default (it boots a node) and run
//! serially by .ci/run.

use crate::common;

use common::private_broker::{PrivateBroker, TlsFiles};
use common::test_ca::TestCa;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "disruptive: boots a private RabbitMQ node; run serially by .ci/run"]
async fn amqps_with_the_right_cacertfile_carries_webhooks_and_a_wrong_one_is_refused() {
    let ca = TestCa::new("jst test CA");
    let other = TestCa::new("jst other CA");
    let server = ca.issue("rabbit", &["localhost"]);
    let broker = PrivateBroker::start_tls(TlsFiles {
        certificate: server.certificate,
        key: server.key,
        ca: ca.certificate(),
    })
    .await;
    let mut settings = common::settings();
    settings.broker.url = format!(
        "{}?cacertfile={}",
        broker.amqps_url("localhost"),
        ca.certificate().display()
    );
    common::migrate(&settings, true)
        .await
        .expect("migrate declares the topology over TLS");
    let ingress = common::spawn_ingress(&settings, true).await;
    let answer = reqwest::Client::new()
        .post(ingress.url(&common::webhook_path(common::SHAPED_TOKEN)))
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(answer.status(), 202, "published and confirmed over TLS");
    ingress.stop().await;
    let listed = common::output(&["dlq", "list"], &settings);
    assert!(
        listed.status.success(),
        "the CLI over TLS: {}",
        String::from_utf8_lossy(&listed.stderr)
    );

    let mut wrong = settings.clone();
    wrong.broker.url = format!(
        "{}?cacertfile={}",
        broker.amqps_url("localhost"),
        other.certificate().display()
    );
    let refused = common::output(&["dlq", "list"], &wrong);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "a CA that did not sign it is refused"
    );
    assert!(stderr.contains("check that cacertfile"), "{stderr}");
    assert!(
        !stderr.contains("guest:guest"),
        "no password printed: {stderr}"
    );
}
