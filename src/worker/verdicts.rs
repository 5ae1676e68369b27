//! The worker's side of verdicts (docs/reference.md §3, §4): the webhook handler
//! says whether a URL token was accepted (§5.1 verification passed) or rejected,
//! and this tells every ingress through `P.verdicts`, without ever waiting on the
//! broker. Confirm-less: a lost verdict only delays a refusal (the token's next
//! post is judged again), while a confirm would hold a task per verdict.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::config::BrokerSettings;
use crate::queue::fanout::Publisher;
use crate::queue::verdict::{Judgement, TokenDigest, Verdict};
use crate::shutdown::Shutdown;

/// An accepted token is announced again at most this often by one worker: every
/// webhook of a genuine integration carries the same token, and an ingress that
/// started since learns it from the next one.
const ANNOUNCE_ACCEPTED_EVERY: Duration = Duration::from_secs(1);
/// Accepted tokens remembered for that, at most (then forgotten all at once).
const MAX_ANNOUNCED: usize = 10_000;

/// Publishes verdicts.
pub struct Verdicts {
    publisher: Publisher,
    /// When each accepted token was last announced. A std lock: held for one
    /// map operation, never across an await.
    announced: Mutex<HashMap<TokenDigest, Instant>>,
}

impl Verdicts {
    /// Starts the publisher (a connection of its own) until `shutdown`; the task
    /// is the caller's to await.
    pub fn start(broker: &BrokerSettings, shutdown: Shutdown) -> (Self, JoinHandle<()>) {
        let (publisher, task) = Publisher::start(
            broker.url.clone(),
            crate::integration::messages::names(broker).verdicts(),
            Verdict::properties(),
            "verdict-publisher",
            shutdown,
        );
        let verdicts = Self {
            publisher,
            announced: Mutex::default(),
        };
        (verdicts, task)
    }

    /// The token of digest `digest` verified.
    pub fn accepted(&self, digest: TokenDigest) {
        let now = Instant::now();
        {
            let mut announced = self
                .announced
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if announced
                .get(&digest)
                .is_some_and(|at| now.saturating_duration_since(*at) < ANNOUNCE_ACCEPTED_EVERY)
            {
                return;
            }
            if announced.len() >= MAX_ANNOUNCED {
                announced.clear();
            }
            announced.insert(digest, now);
        }
        self.publish(digest, Judgement::Accepted);
    }

    /// `token` did not verify. Every rejection is published: each counts against
    /// the clients that posted the token.
    pub fn rejected(&self, token: &str) {
        let digest = TokenDigest::of(token);
        // Should it verify again later (an integration added since), say so at once.
        self.announced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&digest);
        self.publish(digest, Judgement::Rejected);
    }

    fn publish(&self, token: TokenDigest, judgement: Judgement) {
        let verdict = Verdict { token, judgement };
        if !self.publisher.send(verdict.to_body()) {
            tracing::debug!("a verdict was dropped: the publisher's backlog is full");
        }
    }
}
