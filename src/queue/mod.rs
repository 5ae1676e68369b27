//! RabbitMQ: names and topology (docs/reference.md §4), connections, the
//! confirming publisher, message properties, typed jobs, the worker's
//! consumer loop with its handler contract, and best-effort fanout (verdicts).

pub mod connection;
pub mod consumer;
pub mod fanout;
pub mod frame;
pub mod handler;
pub mod job;
pub mod message;
pub mod publisher;
mod settle;
pub mod topology;
pub mod verdict;

use std::time::Duration;

use crate::config::{BrokerSettings, format_duration};

pub use job::JOB_TYPES;

/// Routing key and message type of a Jira webhook.
pub const WEBHOOK: &str = "jira_server.webhook";

/// The exchange and queue names under one prefix, and the length cap of the
/// two source queues (`JIRASYNC_QUEUE_MAX_LENGTH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
    max_length: Option<u64>,
}

impl From<&BrokerSettings> for Names {
    fn from(broker: &BrokerSettings) -> Self {
        Self {
            prefix: broker.queue_prefix.clone(),
            max_length: (broker.queue_max_length > 0).then_some(broker.queue_max_length),
        }
    }
}

impl Names {
    /// Names under prefix P, the source queues without a cap.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            max_length: None,
        }
    }

    /// Messages `P.webhooks` and `P.jobs` hold at most.
    pub fn max_length(&self) -> Option<u64> {
        self.max_length
    }

    /// The prefix itself.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `P`: the direct exchange everyone publishes to.
    pub fn exchange(&self) -> &str {
        &self.prefix
    }

    /// `P.webhooks`.
    pub fn webhooks(&self) -> String {
        format!("{}.webhooks", self.prefix)
    }

    /// `P.jobs`.
    pub fn jobs(&self) -> String {
        format!("{}.jobs", self.prefix)
    }

    /// `P.dead`.
    pub fn dead(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// `P.verdicts`: the fanout exchange workers tell every ingress their
    /// verdicts on webhook tokens through.
    pub fn verdicts(&self) -> String {
        format!("{}.verdicts", self.prefix)
    }

    /// Every exchange of the topology, for tests and clean-up.
    pub fn all_exchanges(&self) -> Vec<String> {
        vec![self.exchange().to_owned(), self.verdicts()]
    }

    /// `<source>.retry.<delay>`, e.g. `P.webhooks.retry.30s`.
    pub fn retry(&self, source: &str, delay: Duration) -> String {
        format!("{source}.retry.{}", format_duration(delay))
    }

    /// The source queue a routing key is bound to.
    pub fn source_for(&self, routing_key: &str) -> String {
        if routing_key == WEBHOOK {
            self.webhooks()
        } else {
            self.jobs()
        }
    }

    /// Every queue name of the topology, for tests and clean-up.
    pub fn all_queues(&self, delays: &[Duration]) -> Vec<String> {
        let mut names = vec![self.webhooks(), self.jobs(), self.dead()];
        for source in [self.webhooks(), self.jobs()] {
            for delay in delays {
                names.push(self.retry(&source, *delay));
            }
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_queues_are_named_after_their_source_and_delay() {
        let names = Names::new("P");
        assert_eq!(
            names.retry(&names.webhooks(), Duration::from_secs(30)),
            "P.webhooks.retry.30s"
        );
        assert_eq!(
            names.retry(&names.jobs(), Duration::from_secs(120)),
            "P.jobs.retry.2m"
        );
    }

    #[test]
    fn only_webhooks_route_to_the_webhook_queue() {
        let names = Names::new("P");
        assert_eq!(names.source_for(WEBHOOK), "P.webhooks");
        for job in JOB_TYPES {
            assert_eq!(names.source_for(job), "P.jobs", "{job}");
        }
    }
}
