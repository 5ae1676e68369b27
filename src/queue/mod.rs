//! RabbitMQ transport: names and topology (docs/reference.md §4), connections,
//! the confirming publisher, message properties, the [`Job`](job::Job) trait, the
//! worker's consumer loop with its handler contract, and best-effort fanout
//! (verdicts). It names no provider: which message types go to which source
//! queue, and which headers they define, is the provider's [`Catalog`]
//! (`integration::messages`).

mod acks;
pub mod connection;
pub mod consumer;
pub mod fanout;
pub mod frame;
pub mod handler;
pub mod job;
pub mod lending;
pub mod message;
pub mod publisher;
mod settle;
pub mod topology;
pub mod verdict;

use std::time::Duration;

use crate::config::{BrokerSettings, format_duration};

/// What a provider's messages are, as the transport needs to know them: the
/// routing keys (= message types) bound to `P.webhooks`, `P.jobs` and
/// `P.outbound`, every
/// type the metric label `type` may take, and the headers its messages define
/// (a copy that must shrink to fit a frame drops the others first).
#[derive(Debug, PartialEq, Eq)]
pub struct Catalog {
    /// Types routed to `P.webhooks`.
    pub webhooks: &'static [&'static str],
    /// Types routed to `P.jobs`.
    pub jobs: &'static [&'static str],
    /// Types routed to `P.outbound`: the pushes to Jira (docs/reference.md §10).
    pub outbound: &'static [&'static str],
    /// Every type docs/reference.md §4 lists (some not handled yet): the only
    /// values of the metric label `type`.
    pub known_types: &'static [&'static str],
    /// The headers the provider's messages carry (besides the transport's own,
    /// [`message::TRANSPORT_HEADERS`]).
    pub headers: &'static [&'static str],
}

impl Catalog {
    /// The metric label of a message type: the type itself when the catalog
    /// knows it, else `unknown` (whoever can publish must not grow the metrics
    /// without bound).
    pub fn type_label(&self, kind: &str) -> &'static str {
        self.known_types
            .iter()
            .copied()
            .find(|known| *known == kind)
            .unwrap_or("unknown")
    }

    /// Whether docs/reference.md §4 defines the header `name`: the transport's
    /// own or the catalog's.
    pub fn defines_header(&self, name: &str) -> bool {
        message::TRANSPORT_HEADERS.contains(&name) || self.headers.contains(&name)
    }
}

/// The exchange and queue names under one prefix, the length cap of the
/// source queues (`JIRASYNC_QUEUE_MAX_LENGTH`), and the provider's
/// [`Catalog`] of what is routed where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
    max_length: Option<u64>,
    catalog: &'static Catalog,
}

impl Names {
    /// Names under prefix P for `catalog`'s messages, the source queues without a cap.
    pub fn new(prefix: impl Into<String>, catalog: &'static Catalog) -> Self {
        Self {
            prefix: prefix.into(),
            max_length: None,
            catalog,
        }
    }

    /// Names of `broker`'s prefix and length cap for `catalog`'s messages.
    pub fn of(broker: &BrokerSettings, catalog: &'static Catalog) -> Self {
        Self {
            prefix: broker.queue_prefix.clone(),
            max_length: (broker.queue_max_length > 0).then_some(broker.queue_max_length),
            catalog,
        }
    }

    /// What is routed where.
    pub fn catalog(&self) -> &'static Catalog {
        self.catalog
    }

    /// Messages each source queue (`P.webhooks`, `P.jobs`, `P.outbound`) holds
    /// at most.
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

    /// `P.outbound`: the pushes to Jira the workers' relay publishes.
    pub fn outbound(&self) -> String {
        format!("{}.outbound", self.prefix)
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

    /// The source queues with the routing keys bound to each: `P.webhooks`,
    /// `P.jobs`, `P.outbound`.
    pub fn sources(&self) -> [(String, &'static [&'static str]); 3] {
        [
            (self.webhooks(), self.catalog.webhooks),
            (self.jobs(), self.catalog.jobs),
            (self.outbound(), self.catalog.outbound),
        ]
    }

    /// The source queue a routing key is bound to (`P.jobs` unless the catalog
    /// routes it to `P.webhooks` or `P.outbound`).
    pub fn source_for(&self, routing_key: &str) -> String {
        if self.catalog.webhooks.contains(&routing_key) {
            self.webhooks()
        } else if self.catalog.outbound.contains(&routing_key) {
            self.outbound()
        } else {
            self.jobs()
        }
    }

    /// Every queue name of the topology, for tests and clean-up.
    pub fn all_queues(&self, delays: &[Duration]) -> Vec<String> {
        let mut names = vec![self.webhooks(), self.jobs(), self.outbound(), self.dead()];
        for (source, _) in self.sources() {
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

    static CATALOG: Catalog = Catalog {
        webhooks: &["p.webhook"],
        jobs: &["p.one", "p.two"],
        outbound: &["p.push"],
        known_types: &["p.webhook", "p.one", "p.two", "p.push", "p.later"],
        headers: &["token"],
    };

    #[test]
    fn retry_queues_are_named_after_their_source_and_delay() {
        let names = Names::new("P", &CATALOG);
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
    fn every_source_queue_and_its_tiers_are_among_all_queues() {
        let names = Names::new("P", &CATALOG);
        let delays = [Duration::from_secs(1), Duration::from_secs(30)];
        let all = names.all_queues(&delays);
        assert_eq!(all.len(), 4 + 3 * delays.len(), "{all:?}");
        for queue in [
            "P.webhooks",
            "P.jobs",
            "P.outbound",
            "P.dead",
            "P.outbound.retry.1s",
            "P.outbound.retry.30s",
            "P.webhooks.retry.30s",
            "P.jobs.retry.1s",
        ] {
            assert!(all.iter().any(|name| name == queue), "{queue} in {all:?}");
        }
    }

    #[test]
    fn the_catalogs_webhook_and_outbound_types_route_to_their_queues_the_rest_to_jobs() {
        let names = Names::new("P", &CATALOG);
        assert_eq!(names.source_for("p.webhook"), "P.webhooks");
        assert_eq!(names.source_for("p.push"), "P.outbound");
        for job in CATALOG.jobs.iter().chain(&["p.unheard_of"]) {
            assert_eq!(names.source_for(job), "P.jobs", "{job}");
        }
    }

    #[test]
    fn type_labels_are_the_known_types_or_unknown() {
        assert_eq!(CATALOG.type_label("p.later"), "p.later");
        assert_eq!(CATALOG.type_label("p.webhook "), "unknown");
        assert_eq!(CATALOG.type_label(""), "unknown");
    }

    #[test]
    fn defined_headers_are_the_transports_and_the_catalogs() {
        assert!(CATALOG.defines_header("token"));
        assert!(CATALOG.defines_header(message::ATTEMPTS));
        assert!(!CATALOG.defines_header("x-custom"));
    }
}
