//! What the workers record for the operator console (CONTRACT §12.10), through a
//! real worker: when each integration last sent a webhook whose token verified,
//! each dead-lettering attributable to an integration, and both pruned after 30
//! days (`jirasync::db::activity`).

use crate::common;

use chrono::Utc;
use jirasync::db::activity::{self, Activity};
use serde_json::json;

use common::app::{TestApp, WAIT};
use common::seed::{SECRET, token};

/// The activity of `integration`, as the console reads it.
async fn activity_of(db: &tokio_postgres::Client, integration: i64) -> Activity {
    activity::activity(db)
        .await
        .expect("read the activity")
        .into_iter()
        .find(|a| a.integration_id == integration)
        .unwrap_or_else(|| panic!("integration {integration} is listed"))
}

#[tokio::test]
async fn a_worker_records_when_each_integration_last_sent_a_webhook_whose_token_verified() {
    let app = TestApp::builder().start().await;
    let (forged, forged_external_id) = app.seed().integration(json!({})).await;
    let (disabled, disabled_external_id) = app.seed().integration(json!({})).await;
    app.db
        .execute(
            "UPDATE integrations SET status = 'disabled' WHERE id = $1",
            &[&disabled],
        )
        .await
        .expect("disable");
    let every = activity::activity(&app.db).await.expect("activity");
    assert_eq!(
        every,
        [app.integration, forged, disabled].map(|integration_id| Activity {
            integration_id,
            last_webhook_at: None,
            dead_lettered_24h: 0,
        }),
        "every integration, none heard from yet"
    );

    let before = Utc::now() - chrono::TimeDelta::seconds(1);
    // A token signed with another secret does not verify: nothing recorded.
    let body = common::seed::assignee_changed("ABC-1", json!(null), common::app::T1);
    let body = body.to_string();
    app.send_with(
        &token(&forged_external_id, "not-the-secret"),
        body.as_bytes(),
        None,
    )
    .await;
    // A disabled integration's webhook is dropped, but its token verified.
    app.send_with(&token(&disabled_external_id, SECRET), body.as_bytes(), None)
        .await;
    // Handled in order (concurrency aside, `settle` waits for its own webhook).
    app.settle().await;
    common::eventually(
        "the disabled integration's webhook is recorded",
        WAIT,
        || async {
            activity_of(&app.db, disabled)
                .await
                .last_webhook_at
                .is_some()
        },
    )
    .await;

    let heard = activity_of(&app.db, app.integration).await;
    let at = heard
        .last_webhook_at
        .expect("the active integration's webhook");
    assert!(at >= before && at <= Utc::now(), "{at}");
    assert_eq!(activity_of(&app.db, forged).await.last_webhook_at, None);
    assert_eq!(heard.dead_lettered_24h, 0);
    app.finish().await;
}

#[tokio::test]
async fn each_dead_lettering_a_worker_can_attribute_is_recorded_for_its_integration() {
    let app = TestApp::builder().start().await;
    let (other, _) = app.seed().integration(json!({})).await;
    // Verified, then malformed: dead-lettered at once, attributed.
    for _ in 0..2 {
        app.send_with(&app.token, b"[1]", None).await;
    }
    // A job whose body does not parse: dead-lettered, but it names no integration.
    let (_, props) = jirasync::queue::message::job_properties("jira_server.reconcile");
    common::publish(
        &app.channel,
        &app.settings,
        "jira_server.reconcile",
        b"[]",
        props,
    )
    .await;
    // A token that verifies for no integration: dropped, not dead-lettered.
    app.send_with(&token("jira.example.org:nobody", SECRET), b"[1]", None)
        .await;
    common::eventually("three dead letters", WAIT, || async {
        app.dead_letters().await == 3
    })
    .await;

    let recorded = app
        .db
        .query(
            "SELECT integration_id, message_id, reason, dead_lettered_at
               FROM integration_dead_letters ORDER BY id",
            &[],
        )
        .await
        .expect("the records");
    assert_eq!(recorded.len(), 2, "the two webhooks, not the job");
    let letters = jirasync::commands::dlq::list(&app.settings.broker, 10)
        .await
        .expect("list");
    for row in &recorded {
        let integration: i64 = row.get(0);
        let message_id: String = row.get(1);
        let reason: String = row.get(2);
        let at: chrono::DateTime<Utc> = row.get(3);
        assert_eq!(integration, app.integration);
        let letter = letters
            .iter()
            .find(|letter| letter.id == message_id)
            .unwrap_or_else(|| panic!("{message_id} is a dead letter in {letters:?}"));
        assert_eq!(reason, letter.error, "the reason the dead letter gives");
        assert!(reason.contains("not an object"), "{reason}");
        assert!(!reason.contains(&app.token), "no token in {reason}");
        assert!(Utc::now() - at < chrono::TimeDelta::minutes(1), "{at}");
    }
    assert_eq!(
        activity_of(&app.db, app.integration)
            .await
            .dead_lettered_24h,
        2
    );
    assert_eq!(activity_of(&app.db, other).await.dead_lettered_24h, 0);

    // A replay takes none back.
    let replayed = jirasync::commands::dlq::replay(&app.settings.broker, None)
        .await
        .expect("replay");
    assert_eq!(replayed, 3);
    common::eventually(
        "the second dead-lettering is recorded too",
        WAIT,
        || async {
            activity_of(&app.db, app.integration)
                .await
                .dead_lettered_24h
                == 4
        },
    )
    .await;
    app.finish().await;
}

#[tokio::test]
async fn the_worker_prunes_the_records_after_thirty_days_like_the_sync_history() {
    let app = TestApp::builder().no_worker().start().await;
    let (quiet, _) = app.seed().integration(json!({})).await;
    app.db
        .batch_execute(&format!(
            "INSERT INTO integration_webhooks_seen (integration_id, last_webhook_at) VALUES
               ({busy}, now() - interval '29 days'), ({quiet}, now() - interval '31 days');
             INSERT INTO integration_dead_letters (integration_id, message_id, reason, dead_lettered_at) VALUES
               ({busy}, 'old', 'boom', now() - interval '31 days'),
               ({busy}, 'kept', 'boom', now() - interval '29 days'),
               ({busy}, 'today', 'boom', now() - interval '1 hour');",
            busy = app.integration
        ))
        .await
        .expect("old records");
    assert_eq!(
        activity_of(&app.db, app.integration)
            .await
            .dead_lettered_24h,
        1
    );

    // The worker prunes when it starts (and every hour).
    let worker = common::spawn_worker(&app.settings);
    common::eventually("the old records are pruned", WAIT, || async {
        let left: i64 = app
            .db
            .query_one(
                "SELECT (SELECT count(*) FROM integration_dead_letters)
                      + (SELECT count(*) FROM integration_webhooks_seen)",
                &[],
            )
            .await
            .expect("count")
            .get(0);
        left == 3
    })
    .await;
    let kept: Vec<String> = app
        .db
        .query(
            "SELECT message_id FROM integration_dead_letters ORDER BY id",
            &[],
        )
        .await
        .expect("kept")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(kept, ["kept", "today"]);
    assert_eq!(activity_of(&app.db, quiet).await.last_webhook_at, None);
    assert!(
        activity_of(&app.db, app.integration)
            .await
            .last_webhook_at
            .is_some()
    );
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_dead_lettered_job_is_recorded_for_the_integration_it_names() {
    use jirasync::queue::job::Job;
    use jirasync::worker::jobs::Reconcile;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};
    let app = TestApp::builder()
        .credentials(Some("acc-tok"))
        .configure(|settings| settings.worker.reconcile_interval = std::time::Duration::ZERO)
        .start()
        .await;
    // A linked issue to search for; Jira refuses the search: a permanent
    // failure, dead-lettered at once.
    app.seed().org(app.integration, true, "REC-1").await;
    Mock::given(method("POST"))
        .and(path("/rest/api/2/search"))
        .respond_with(ResponseTemplate::new(400).set_body_string("{\"errorMessages\":[\"no\"]}"))
        .mount(&app.server)
        .await;
    let job = Reconcile {
        integration_id: app.integration,
        since_ms: None,
    };
    let (id, body, props) = job.to_message();
    common::publish(&app.channel, &app.settings, Reconcile::TYPE, &body, props).await;
    common::eventually("the reconcile job is dead-lettered", WAIT, || async {
        app.dead_letters().await == 1
    })
    .await;
    common::eventually("its dead-lettering is recorded", WAIT, || async {
        activity_of(&app.db, app.integration)
            .await
            .dead_lettered_24h
            == 1
    })
    .await;
    let message_id: String = app
        .db
        .query_one("SELECT message_id FROM integration_dead_letters", &[])
        .await
        .expect("the record")
        .get(0);
    assert_eq!(message_id, id.to_string());
    app.finish().await;
}
