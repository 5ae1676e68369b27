//! `jirasync dlq` and the dead-letter path against the real RabbitMQ: a malformed
//! webhook lands in `P.dead`, `list` shows it without taking it, `replay` sends it
//! back, nothing lets `P.dead` drop a message. The scenarios that differ between
//! RabbitMQ versions are `pub(crate)`: `rabbitmq4.rs` runs them on a 4.x node.

use crate::common;

use std::time::Duration;

use jirasync::commands::dlq;
use jirasync::queue::message::{header_int, header_str};
use lapin::options::{BasicGetOptions, BasicRejectOptions};

const WAIT: Duration = Duration::from_secs(20);

async fn dead_letter_malformed(
    settings: &jirasync::config::Settings,
    channel: &lapin::Channel,
    count: usize,
) -> Vec<String> {
    let worker = common::spawn_worker(settings);
    let dead = common::names(settings).dead();
    // JSON arrays: well-authenticated but malformed, so dead-lettered at once.
    let bodies: Vec<String> = (0..count).map(|n| format!("[{n}]")).collect();
    let db = common::db(settings).await;
    let (_, external_id) = common::seed::Seed { db: &db }
        .integration(serde_json::json!({}))
        .await;
    let token = common::seed::token(&external_id, common::seed::SECRET);
    for body in &bodies {
        common::publish_webhook(channel, settings, &token, body.as_bytes(), None).await;
    }
    common::eventually("the malformed webhooks are dead-lettered", WAIT, || {
        let dead = dead.clone();
        async move { common::depth(channel, &dead).await as usize == count }
    })
    .await;
    worker.stop().await;
    bodies
}

#[tokio::test]
async fn list_shows_dead_letters_without_taking_them_and_replay_sends_them_back() {
    let settings = common::migrated().await;
    let (_connection, channel) = common::amqp().await;
    let names = common::names(&settings);
    let bodies = dead_letter_malformed(&settings, &channel, 1).await;

    for _ in 0..2 {
        let letters = dlq::list(&settings.broker, 50).await.expect("list");
        assert_eq!(letters.len(), 1);
        let letter = &letters[0];
        assert_eq!(letter.r#type, "jira_server.webhook");
        assert!(letter.error.contains("not an object"), "{}", letter.error);
        assert_eq!(letter.attempts, 1);
        assert_eq!(letter.source_queue, names.webhooks());
        assert!(letter.received_at_ms.is_some() && letter.dead_lettered_at_ms.is_some());
        assert_eq!(
            common::depth(&channel, &names.dead()).await,
            1,
            "listing takes nothing"
        );
    }

    assert_eq!(
        dlq::replay(&settings.broker, None).await.expect("replay"),
        1
    );
    assert_eq!(common::depth(&channel, &names.dead()).await, 0);
    let back = common::get_one(&channel, &names.webhooks(), WAIT)
        .await
        .expect("replayed to its source queue");
    assert_eq!(back.delivery.data, bodies[0].as_bytes());
    let props = &back.delivery.properties;
    assert!(
        header_str(props, "token").is_some(),
        "original headers kept"
    );
    assert_eq!(
        header_int(props, "x-jirasync-attempts"),
        None,
        "attempt count reset"
    );
    assert_eq!(header_str(props, "x-jirasync-error"), None);
    assert_eq!(
        dlq::list(&settings.broker, 50).await.expect("list"),
        vec![],
        "empty queue lists nothing"
    );
}

#[tokio::test]
async fn limits_bound_both_list_and_replay() {
    let settings = common::migrated().await;
    let (_connection, channel) = common::amqp().await;
    let names = common::names(&settings);
    dead_letter_malformed(&settings, &channel, 3).await;
    assert_eq!(dlq::list(&settings.broker, 2).await.expect("list").len(), 2);
    assert_eq!(
        dlq::replay(&settings.broker, Some(1))
            .await
            .expect("replay"),
        1
    );
    assert_eq!(common::depth(&channel, &names.dead()).await, 2);
    assert_eq!(common::depth(&channel, &names.webhooks()).await, 1);
}

#[tokio::test]
async fn dead_letters_survive_many_listings_and_requeues() {
    let settings = common::migrated().await;
    let (_connection, channel) = common::amqp().await;
    dead_letters_are_never_dropped(&settings, &channel).await;
}

/// How often the scenarios below list or give back one message: past RabbitMQ
/// 4's default quorum delivery limit of 20.
const ROUNDS: usize = 25;

/// Three dead letters stay in `P.dead`, in full, through `ROUNDS` listings and
/// `ROUNDS` returns each with requeue (what the management UI's "Get messages" with
/// "Nack message requeue true" does), and `replay` sends all three back.
pub(crate) async fn dead_letters_are_never_dropped(
    settings: &jirasync::config::Settings,
    channel: &lapin::Channel,
) {
    let names = common::names(settings);
    let mut bodies = dead_letter_malformed(settings, channel, 3).await;
    bodies.sort();
    for round in 0..ROUNDS {
        let letters = dlq::list(&settings.broker, 50).await.expect("list");
        assert_eq!(letters.len(), 3, "listing {round} shows all three");
    }
    assert_eq!(
        common::depth(channel, &names.dead()).await,
        3,
        "listings took nothing"
    );
    // Each round takes all three (unsettled, so three different messages) and
    // gives them back.
    let mut kept = Vec::new();
    for round in 0..ROUNDS {
        let mut taken = Vec::new();
        while taken.len() < 3 {
            let Some(got) = take_unsettled(channel, &names.dead()).await else {
                panic!("round {round}: only {} dead letters left", taken.len());
            };
            taken.push(got);
        }
        kept = taken
            .iter()
            .map(|got| String::from_utf8_lossy(&got.delivery.data).into_owned())
            .collect();
        for got in taken {
            got.delivery
                .acker
                .reject(BasicRejectOptions { requeue: true })
                .await
                .expect("reject with requeue");
        }
    }
    kept.sort();
    assert_eq!(kept, bodies, "every dead letter kept, body intact");
    assert_eq!(
        dlq::replay(&settings.broker, None).await.expect("replay"),
        3
    );
    assert_eq!(common::depth(channel, &names.webhooks()).await, 3);
}

/// One message of `queue`, left unsettled, waiting up to `WAIT` for one to be
/// ready (a requeued message shows again after a moment).
async fn take_unsettled(
    channel: &lapin::Channel,
    queue: &str,
) -> Option<lapin::message::BasicGetMessage> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let got = channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .expect("basic.get");
        if got.is_some() || std::time::Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_message_that_keeps_failing_delivery_ends_in_the_dead_letter_queue() {
    let settings = common::migrated().await;
    let (_connection, channel) = common::amqp().await;
    delivery_limit_dead_letters(&settings, &channel).await;
}

/// A job given back with requeue again and again (as a worker that crashes on it
/// does) is dead-lettered by the broker, and replayed from there.
pub(crate) async fn delivery_limit_dead_letters(
    settings: &jirasync::config::Settings,
    channel: &lapin::Channel,
) {
    let names = common::names(settings);
    let props = jirasync::queue::message::job_properties("jira_server.reconcile").1;
    common::publish(channel, settings, "jira_server.reconcile", b"{}", props).await;
    // Crash-like redeliveries: take it and give it back until the broker gives up.
    for _ in 0..30 {
        if common::depth(channel, &names.dead()).await == 1 {
            break;
        }
        if let Some(got) = channel
            .basic_get(names.jobs().as_str().into(), BasicGetOptions::default())
            .await
            .expect("basic.get")
        {
            got.delivery
                .acker
                .reject(BasicRejectOptions { requeue: true })
                .await
                .expect("reject with requeue");
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    common::eventually("the broker dead-letters it", WAIT, || {
        let dead = names.dead();
        async move { common::depth(channel, &dead).await == 1 }
    })
    .await;
    let letters = dlq::list(&settings.broker, 10).await.expect("list");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].source_queue, names.jobs());
    assert!(
        letters[0].error.contains("dead-lettered by the broker"),
        "{}",
        letters[0].error
    );
    assert_eq!(
        dlq::replay(&settings.broker, None).await.expect("replay"),
        1
    );
    assert_eq!(
        common::depth(channel, &names.jobs()).await,
        1,
        "back in P.jobs"
    );
}

/// What a hostile publisher puts in a dead letter's fields: ESC sequences that
/// clear the screen, set the terminal's title, colour, and a C1 CSI.
const ESCAPES: [&str; 4] = [
    "\u{1b}[2J\u{1b}[Hid",
    "\u{1b}]0;pwned\u{7}type",
    "boom \u{1b}[31mred\u{1b}[0m\r\n",
    "\u{9b}6n\u{7f}queue",
];

#[tokio::test]
async fn dlq_list_prints_control_characters_escaped() {
    let settings = common::migrated().await;
    let (_connection, channel) = common::amqp().await;
    let names = common::names(&settings);
    let (_, props) = jirasync::queue::message::job_properties("x");
    let props = jirasync::queue::message::with_headers(
        &props,
        &[
            (
                "x-jirasync-error",
                jirasync::queue::message::long_string(ESCAPES[2]),
            ),
            (
                "x-jirasync-source-queue",
                jirasync::queue::message::long_string(ESCAPES[3]),
            ),
        ],
    )
    .with_message_id(ESCAPES[0].into())
    .with_type(ESCAPES[1].into());
    channel
        .confirm_select(Default::default())
        .await
        .expect("confirm mode");
    jirasync::queue::publisher::publish_confirmed(&channel, "", &names.dead(), b"{}", props)
        .await
        .expect("publish confirmed");

    let listed = common::output(&["dlq", "list"], &settings);
    assert!(listed.status.success(), "{listed:?}");
    let text = String::from_utf8(listed.stdout).expect("UTF-8");
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "{text:?}"
    );
    for shown in [
        r"\x1b[2J\x1b[Hid",
        r"\x1b]0;pwned\x07type",
        r"boom \x1b[31mred\x1b[0m\x0d\x0a",
    ] {
        assert!(text.contains(shown), "{shown} not in {text}");
    }

    let listed = common::output(&["dlq", "list", "--json"], &settings);
    assert!(listed.status.success(), "{listed:?}");
    let text = String::from_utf8(listed.stdout).expect("UTF-8");
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "{text:?}"
    );
    let letter: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
    assert_eq!(letter["id"], ESCAPES[0]);
    assert_eq!(letter["type"], ESCAPES[1]);
    assert_eq!(letter["error"], ESCAPES[2]);
    assert_eq!(letter["source_queue"], ESCAPES[3]);
    assert_eq!(
        common::depth(&channel, &names.dead()).await,
        1,
        "listing takes nothing"
    );
}

#[tokio::test]
async fn a_dead_letter_too_large_for_a_frame_drops_the_headers_section_4_does_not_define() {
    let app = common::TestApp::builder().no_worker().start().await;
    let log = std::env::temp_dir().join(format!("jst-frame-{}.log", common::unique()));
    let _worker = common::process_logged("worker", &app.settings, &[], &log);
    let (frame_max, props) = crate::jira_outage::near_frame_limit(&app, "x-big").await;
    // Malformed: dead-lettered at once, its copy adding the bookkeeping headers.
    common::publish(
        &app.channel,
        &app.settings,
        jirasync::integration::messages::WEBHOOK,
        b"[1]",
        props,
    )
    .await;

    let dead = common::get_one(&app.channel, &common::names(&app.settings).dead(), WAIT)
        .await
        .expect("the dead letter");
    assert_eq!(dead.delivery.data, b"[1]");
    let props = &dead.delivery.properties;
    assert!(
        !props
            .headers()
            .as_ref()
            .is_some_and(|h| h.contains_key("x-big")),
        "the big header is dropped"
    );
    assert_eq!(
        header_str(props, "x-jirasync-dropped-headers").as_deref(),
        Some("x-big")
    );
    assert!(
        header_str(props, "token").is_some(),
        "the defined headers stay"
    );
    let error = header_str(props, "x-jirasync-error").expect("its reason");
    assert!(error.contains("not an object"), "{error}");
    assert!(jirasync::queue::message::header_frame_bytes(props) < frame_max as usize);

    // The publishing connection stayed up: the next message is handled at once.
    let started = std::time::Instant::now();
    app.settle().await;
    let next = started.elapsed();
    assert!(next < Duration::from_secs(5), "{next:?}");
    assert_eq!(app.dead_letters().await, 0, "dead-lettered once");
    let written = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert!(
        !written.contains("reconnecting") && !written.contains("publishing connection"),
        "{written}"
    );
    assert!(written.contains("leaves headers out"), "{written}");
    eprintln!("frame_max {frame_max}; the next webhook was applied {next:?} after");
}

/// A dead letter to plant: id, type, source queue, token, body.
type Planted<'a> = (&'a str, &'a str, String, Option<&'a str>, &'a [u8]);

/// Publishes a dead letter straight to `P.dead`: message `id` of `kind` from
/// `source`, with `headers` and `body`, as the worker would have left it.
async fn plant(
    settings: &jirasync::config::Settings,
    channel: &lapin::Channel,
    (id, kind, source): (&str, &str, &str),
    headers: &[(&str, lapin::types::AMQPValue)],
    body: &[u8],
) {
    use jirasync::queue::message::{long_string, with_headers};
    let (_, props) = jirasync::queue::message::job_properties(kind);
    let mut set = vec![
        (
            "x-jirasync-attempts",
            lapin::types::AMQPValue::LongLongInt(6),
        ),
        ("x-jirasync-error", long_string(&format!("boom {id}"))),
        ("x-jirasync-source-queue", long_string(source)),
    ];
    set.extend(headers.iter().cloned());
    let props = with_headers(&props, &set).with_message_id(id.into());
    channel
        .confirm_select(Default::default())
        .await
        .expect("confirm mode");
    jirasync::queue::publisher::publish_confirmed(
        channel,
        "",
        &common::names(settings).dead(),
        body,
        props,
    )
    .await
    .expect("publish confirmed");
}

#[tokio::test]
async fn dead_letters_name_their_integration_and_issue_and_never_their_token() {
    use jirasync::integration::messages::{OUTBOUND, RECONCILE, WEBHOOK};
    use jirasync::queue::message::long_string;
    let settings = common::migrated().await;
    let (_connection, channel) = common::amqp().await;
    let names = common::names(&settings);
    let db = common::db(&settings).await;
    let seed = common::seed::Seed { db: &db };
    let (integration, external_id) = seed.integration(serde_json::json!({})).await;
    let (disabled, disabled_external_id) = seed.integration(serde_json::json!({})).await;
    db.execute(
        "UPDATE integrations SET status = 'disabled' WHERE id = $1",
        &[&disabled],
    )
    .await
    .expect("disable");
    let token = common::seed::token(&external_id, common::seed::SECRET);
    // The token is not checked: the claim names the integration (a forged one too).
    let forged = common::seed::token(&disabled_external_id, "another secret");
    let unknown = common::seed::token("jira.example.org:nobody", common::seed::SECRET);
    let webhook = serde_json::json!({"integration_id": 999, "issue": {"key": "WEB-1"}}).to_string();
    let push = serde_json::json!({"kind": "assignee", "integration_id": integration,
        "issue_key": "OUT-2", "group_id": 1})
    .to_string();
    let reconcile = serde_json::json!({"integration_id": integration}).to_string();
    let cases: [Planted; 6] = [
        (
            "webhook",
            WEBHOOK,
            names.webhooks(),
            Some(&token),
            webhook.as_bytes(),
        ),
        ("forged", WEBHOOK, names.webhooks(), Some(&forged), b"[1]"),
        ("unknown", WEBHOOK, names.webhooks(), Some(&unknown), b"{}"),
        ("push", OUTBOUND, names.outbound(), None, push.as_bytes()),
        (
            "reconcile",
            RECONCILE,
            names.jobs(),
            None,
            reconcile.as_bytes(),
        ),
        ("garbage", RECONCILE, names.jobs(), None, b"\xff<b>"),
    ];
    for (id, kind, source, token, body) in &cases {
        let headers: Vec<_> = token
            .iter()
            .map(|token| ("token", long_string(token)))
            .collect();
        plant(&settings, &channel, (id, kind, source), &headers, body).await;
    }

    let mut letters = dlq::list(&settings.broker, 50).await.expect("list");
    let found = |letters: &[dlq::DeadLetter]| -> Vec<(String, Option<i64>, Option<String>)> {
        letters
            .iter()
            .map(|l| (l.id.clone(), l.integration_id, l.issue_key.clone()))
            .collect()
    };
    let owned = |id: &str, integration: Option<i64>, key: Option<&str>| {
        (id.to_owned(), integration, key.map(str::to_owned))
    };
    assert_eq!(
        found(&letters),
        [
            // A webhook's body does not name its integration: its token does.
            owned("webhook", None, Some("WEB-1")),
            owned("forged", None, None),
            owned("unknown", None, None),
            owned("push", Some(integration), Some("OUT-2")),
            owned("reconcile", Some(integration), None),
            owned("garbage", None, None),
        ],
        "what the messages themselves say"
    );
    dlq::attribute(&db, &mut letters).await.expect("attribute");
    assert_eq!(
        found(&letters).into_iter().map(|f| f.1).collect::<Vec<_>>(),
        [
            Some(integration),
            Some(disabled),
            None,
            Some(integration),
            Some(integration),
            None
        ],
        "webhooks by their token's id claim"
    );

    // `dlq list --json` (no database there): the two fields, never the token.
    let listed = common::output(&["dlq", "list", "--json"], &settings);
    assert!(listed.status.success(), "{listed:?}");
    let text = String::from_utf8(listed.stdout).expect("UTF-8");
    assert!(
        !text.contains(&token) && !text.contains("jira.example.org"),
        "{text}"
    );
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), cases.len());
    for line in &lines {
        let object = line.as_object().expect("an object");
        assert!(
            object.contains_key("integration_id") && object.contains_key("issue_key"),
            "{line}"
        );
    }
    assert_eq!(lines[0]["issue_key"], "WEB-1");
    assert_eq!(lines[0]["integration_id"], serde_json::Value::Null);
    assert_eq!(lines[3]["integration_id"], integration);
    assert_eq!(lines[3]["issue_key"], "OUT-2");
    assert_eq!(
        common::depth(&channel, &names.dead()).await as usize,
        cases.len(),
        "listing takes nothing"
    );
}

#[tokio::test]
async fn replaying_one_id_moves_its_letters_and_leaves_the_others_in_order() {
    let settings = common::migrated().await;
    let (_connection, channel) = common::amqp().await;
    let names = common::names(&settings);
    let kind = jirasync::integration::messages::RECONCILE;
    let jobs = names.jobs();
    // Two letters share an id (a message dead-lettered twice, replayed between).
    let ids = ["m0", "m1", "twice", "m3", "twice", "m5"];
    for (n, id) in ids.iter().enumerate() {
        let body = format!("{{\"integration_id\": {n}}}");
        plant(&settings, &channel, (id, kind, &jobs), &[], body.as_bytes()).await;
    }

    let replayed = dlq::replay_id(&settings.broker, "twice")
        .await
        .expect("replay one id");
    assert_eq!(replayed, dlq::ReplayOne::Moved(2));
    let left: Vec<String> = dlq::list(&settings.broker, 50)
        .await
        .expect("list")
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(left, ["m0", "m1", "m3", "m5"], "the others, in their order");
    assert_eq!(common::depth(&channel, &jobs).await, 2);
    for _ in 0..2 {
        let back = common::get_one(&channel, &jobs, WAIT)
            .await
            .expect("replayed to its source queue");
        let props = &back.delivery.properties;
        assert_eq!(
            props.message_id().as_ref().map(|id| id.as_str()),
            Some("twice")
        );
        assert_eq!(
            header_int(props, "x-jirasync-attempts"),
            None,
            "attempts reset"
        );
        assert_eq!(header_str(props, "x-jirasync-error"), None);
    }

    assert_eq!(
        dlq::replay_id(&settings.broker, "twice")
            .await
            .expect("replay again"),
        dlq::ReplayOne::NotFound { looked_at: 4 },
        "gone from P.dead: nothing moves"
    );
    assert_eq!(common::depth(&channel, &names.dead()).await, 4);
    assert_eq!(dlq::REPLAY_ID_LOOKS_AT, 10_000);
}
