//! A load of 2,000 shuffled webhooks across 200 issues for real `jirasync worker`
//! processes, and the checks that nothing was lost, written twice or dead-lettered
//! (`crash.rs`, `db_outage.rs`).

use std::time::Duration;

use rand::seq::SliceRandom;
use serde_json::{Value, json};

use super::Isolated;
use super::seed::{self, Org, SECRET, Seed, assignee_changed, jira_user};

pub const ISSUES: usize = 200;
pub const EVENTS_PER_ISSUE: usize = 10;
pub const SENT: usize = ISSUES * EVENTS_PER_ISSUE;
const USERS: usize = 5;

/// Seeded issues and their expected final assignees; the webhooks are on `P.webhooks`.
pub struct Load {
    pub db: tokio_postgres::Client,
    pub orgs: Vec<Org>,
    pub expected: Vec<Option<i64>>,
    /// The token of the seeded integration.
    pub token: String,
    _connection: lapin::Connection,
    pub channel: lapin::Channel,
    /// Last: dropping it removes the database and the queues.
    pub settings: Isolated,
}

/// Seeds 200 issues in the (migrated) database of `settings` and publishes 2,000
/// shuffled webhooks to its `P.webhooks`.
pub async fn load(settings: Isolated) -> Load {
    let db = super::db(&settings).await;
    let seed = Seed { db: &db };
    let (integration, external_id) = seed.integration(json!({})).await;
    let token = seed::token(&external_id, SECRET);
    let (orgs, users) = seed
        .issues_with_members(integration, "load", ISSUES, USERS)
        .await;
    let mut messages = Vec::new();
    let mut expected = Vec::new();
    for i in 0..ISSUES {
        let mut last = None;
        for n in 0..EVENTS_PER_ISSUE {
            let pick = (i * 7 + n * 3) % (USERS + 1); // USERS = unassign
            let assignee = if pick == USERS {
                Value::Null
            } else {
                jira_user(&format!("load{pick}@example.org"))
            };
            let at = format!("2024-01-01T10:{n:02}:00.000+0000");
            messages.push(assignee_changed(&format!("LOAD-{i}"), assignee, &at).to_string());
            last = (pick != USERS).then(|| users[pick]);
        }
        expected.push(last);
    }
    messages.shuffle(&mut rand::rng());
    let (connection, channel) = super::amqp().await;
    for body in &messages {
        super::publish_webhook(&channel, &settings, &token, body.as_bytes(), None).await;
    }
    Load {
        settings,
        db,
        orgs,
        expected,
        token,
        _connection: connection,
        channel,
    }
}

impl Load {
    /// Messages ready on `P.webhooks`.
    pub async fn remaining(&self) -> u32 {
        super::depth(&self.channel, &super::names(&self.settings).webhooks()).await
    }

    /// Waits until at most `left` of the 2,000 are still ready on `P.webhooks`.
    pub async fn wait_until_remaining_at_most(&self, left: u32) {
        super::eventually(
            &format!("at most {left} webhooks are left on the queue"),
            Duration::from_secs(120),
            || async { self.remaining().await <= left },
        )
        .await;
    }

    /// Waits until the workers have taken at least 100 messages.
    pub async fn wait_until_some_are_handled(&self) {
        let total = u32::try_from(SENT).expect("fits");
        self.wait_until_remaining_at_most(total - 100).await;
    }

    /// Every issue ends in the state of its last event, no change is written twice
    /// and `P.dead` is empty.
    pub async fn assert_every_issue_ends_in_its_last_event(&self) {
        super::eventually(
            "every issue is in the state of its last event",
            Duration::from_secs(180),
            || async {
                for (org, want) in self.orgs.iter().zip(&self.expected) {
                    let got: Option<i64> = super::assignee(&self.db, org.group_id).await;
                    if got != *want {
                        return false;
                    }
                }
                self.remaining().await == 0
            },
        )
        .await;
        assert_eq!(self.doubled().await, 0, "no change is written twice");
        assert_eq!(self.dead().await, 0, "nothing dead-lettered");
    }

    /// Activities that repeat the one before them for the same group: a change written twice.
    pub async fn doubled(&self) -> i64 {
        super::doubled_activities(&self.db).await
    }

    /// Messages in `P.dead`.
    pub async fn dead(&self) -> u32 {
        super::depth(&self.channel, &super::names(&self.settings).dead()).await
    }
}
