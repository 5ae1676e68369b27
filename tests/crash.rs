//! Worker processes dying under load (issue 7): `kill -9` mid-stream and SIGTERM
//! mid-stream, with real `jirasync worker` processes. Every issue must end in the
//! state of its last event, no change may be written twice, and `P.dead` stays empty.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::seed::{self, Org, SECRET, Seed, assignee_changed, jira_user};
use rand::seq::SliceRandom;
use serde_json::{Value, json};

const ISSUES: usize = 200;
const EVENTS_PER_ISSUE: usize = 10;
const USERS: usize = 5;

fn worker_process(settings: &jirasync::config::Settings) -> Child {
    Command::new(env!("CARGO_BIN_EXE_jirasync"))
        .arg("worker")
        .env_clear()
        .env("DATABASE_URL", &settings.database_url)
        .env("AMQP_URL", &settings.amqp_url)
        .env("JIRASYNC_QUEUE_PREFIX", &settings.queue_prefix)
        .env("JIRASYNC_RETRY_DELAYS", "1s,2s")
        .env("JIRASYNC_RECONCILE_INTERVAL", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a jirasync worker process")
}

struct Load {
    settings: jirasync::config::Settings,
    db: tokio_postgres::Client,
    orgs: Vec<Org>,
    expected: Vec<Option<i64>>,
    _connection: lapin::Connection,
    channel: lapin::Channel,
}

/// 2,000 webhooks across 200 issues, shuffled, already on `P.webhooks`.
async fn load() -> Load {
    let settings = common::migrated().await;
    let db = common::db(&settings).await;
    let seed = Seed { db: &db };
    let (integration, external_id) = seed.integration(json!({})).await;
    let token = seed::token(&external_id, SECRET);
    let mut orgs = Vec::new();
    for i in 0..ISSUES {
        orgs.push(seed.org(integration, true, &format!("CRASH-{i}")).await);
    }
    let mut users = Vec::new();
    for u in 0..USERS {
        let user = seed
            .user(&format!("crash{u}@example.org"), true, true)
            .await;
        for org in &orgs {
            seed.member(org, user, true).await;
        }
        users.push(user);
    }
    let mut messages = Vec::new();
    let mut expected = Vec::new();
    for i in 0..ISSUES {
        let mut last = None;
        for n in 0..EVENTS_PER_ISSUE {
            let pick = (i * 7 + n * 3) % (USERS + 1); // USERS = unassign
            let assignee = if pick == USERS {
                Value::Null
            } else {
                jira_user(&format!("crash{pick}@example.org"))
            };
            let at = format!("2024-01-01T10:{n:02}:00.000+0000");
            messages.push(assignee_changed(&format!("CRASH-{i}"), assignee, &at).to_string());
            last = (pick != USERS).then(|| users[pick]);
        }
        expected.push(last);
    }
    messages.shuffle(&mut rand::rng());
    let (connection, channel) = common::amqp().await;
    for body in &messages {
        common::publish_webhook(&channel, &settings, &token, body.as_bytes(), None).await;
    }
    Load {
        settings,
        db,
        orgs,
        expected,
        _connection: connection,
        channel,
    }
}

impl Load {
    async fn remaining(&self) -> u32 {
        common::depth(&self.channel, &common::names(&self.settings).webhooks()).await
    }

    async fn wait_until_some_are_handled(&self) {
        let total = u32::try_from(ISSUES * EVENTS_PER_ISSUE).expect("fits");
        common::eventually(
            "the worker is part way through",
            Duration::from_secs(60),
            || async { self.remaining().await < total - 100 },
        )
        .await;
    }

    async fn assert_every_issue_ends_in_its_last_event(&self) {
        common::eventually(
            "every issue is in the state of its last event",
            Duration::from_secs(180),
            || async {
                for (org, want) in self.orgs.iter().zip(&self.expected) {
                    let got: Option<i64> = common::assignee(&self.db, org.group_id).await;
                    if got != *want {
                        return false;
                    }
                }
                self.remaining().await == 0
            },
        )
        .await;
        // A change written twice shows as two equal activities in a row for one group.
        let doubled: i64 = self
            .db
            .query_one(
                "SELECT count(*) FROM (
                   SELECT type, data, lag(type) OVER w AS prev_type, lag(data) OVER w AS prev_data
                     FROM activities WINDOW w AS (PARTITION BY group_id ORDER BY id)
                 ) a WHERE type = prev_type AND data = prev_data",
                &[],
            )
            .await
            .expect("activities")
            .get(0);
        assert_eq!(doubled, 0, "no change is written twice");
        assert_eq!(
            common::depth(&self.channel, &common::names(&self.settings).dead()).await,
            0,
            "nothing dead-lettered"
        );
    }
}

#[tokio::test]
async fn a_worker_killed_mid_stream_loses_nothing_and_writes_nothing_twice() {
    let load = load().await;
    let mut first = worker_process(&load.settings);
    load.wait_until_some_are_handled().await;
    first.kill().expect("kill -9 the worker");
    let _ = first.wait();
    let mut second = worker_process(&load.settings);
    load.assert_every_issue_ends_in_its_last_event().await;
    let _ = second.kill();
    let _ = second.wait();
    common::cleanup(&load.settings).await;
}

#[tokio::test]
async fn sigterm_mid_stream_loses_nothing() {
    let load = load().await;
    let mut first = worker_process(&load.settings);
    load.wait_until_some_are_handled().await;
    let status = Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(status.success());
    let exited = tokio::task::spawn_blocking(move || first.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(
        exited.success(),
        "a worker stops cleanly on SIGTERM: {exited:?}"
    );
    let mut second = worker_process(&load.settings);
    load.assert_every_issue_ends_in_its_last_event().await;
    let _ = second.kill();
    let _ = second.wait();
    common::cleanup(&load.settings).await;
}
