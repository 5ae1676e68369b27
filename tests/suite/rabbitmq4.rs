//! The topology and the dead-letter path on RabbitMQ 4, which the compose stack
//! and production run (this machine's own broker is 3.10): from 4.0 a quorum queue
//! has a delivery limit of 20 unless told otherwise and drops what exceeds it when
//! there is nowhere to dead-letter, so `P.dead` declares its own. The node is a
//! private one from a Debian trixie tree under chroot (`.ci/rabbitmq4`); ignored by
//! default and run serially by .ci/run.

use crate::common;

use std::time::Duration;

use common::private_broker::PrivateBroker;
use common::seed::{self, SECRET, Seed, assignee_changed, jira_user};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "disruptive: boots a private RabbitMQ 4 node; run serially by .ci/run"]
async fn on_rabbitmq_4_webhooks_flow_and_dead_letters_are_never_dropped() {
    let broker = PrivateBroker::start_rabbitmq4().await;
    let version = broker.version().await;
    assert!(
        version.starts_with("4."),
        "a RabbitMQ 4 node, not {version}"
    );
    let mut settings = common::settings();
    settings.broker.url = broker.amqp_url();
    common::migrate(&settings, true)
        .await
        .expect("migrate a fresh database and declare the topology on the 4.x node");
    let connection = lapin::Connection::connect(&settings.broker.url, Default::default())
        .await
        .expect("connect to the 4.x node");
    let channel = connection.create_channel().await.expect("channel");
    let names = common::names(&settings);
    for queue in names.all_queues(&settings.retries.delays.0) {
        assert_eq!(common::depth(&channel, &queue).await, 0, "{queue} declared");
    }

    // A webhook through the ingress and a worker, applied.
    let db = common::db(&settings).await;
    let seeded = Seed { db: &db };
    let (integration, external_id) = seeded.integration(json!({})).await;
    let org = seeded.org(integration, true, "FOUR-1").await;
    let user = seeded.teammate(&org, "four@example.org").await;
    let token = seed::token(&external_id, SECRET);
    let ingress = common::spawn_ingress(&settings, true).await;
    let worker = common::spawn_worker(&settings);
    let body = assignee_changed(
        "FOUR-1",
        jira_user("four@example.org"),
        "2024-01-01T10:00:00.000+0000",
    );
    let answer = reqwest::Client::new()
        .post(ingress.url(&common::webhook_path(&token)))
        .json(&body)
        .send()
        .await
        .expect("POST the webhook");
    assert_eq!(answer.status(), 202);
    common::eventually("the webhook is applied", WAIT, || async {
        common::assignee(&db, org.group_id).await == Some(user)
    })
    .await;
    worker.stop().await;
    ingress.stop().await;

    crate::dlq::dead_letters_are_never_dropped(&settings, &channel).await;
    crate::dlq::delivery_limit_dead_letters(&settings, &channel).await;
    eprintln!("RabbitMQ {version}: webhook applied, dead letters kept, delivery limit applied");
    let _ = connection.close(200, "done".into()).await;
}
