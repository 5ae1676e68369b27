//! The contract between the consumer loop and the worker's handlers: a delivery
//! ([`Incoming`]), how its handling ended ([`Outcome`]) and why it failed
//! ([`Failure`]).
//!
//! Which error type is used where: a handler returns an [`Outcome`] or a
//! [`Failure`] — [`Failure::Passing`] (tried again: in process, then through the
//! retry tiers, then dead-lettered), [`Failure::DependencyDown`] (the same, but
//! waiting out the dependency's outage on the last tier before it is dead-lettered),
//! [`Failure::Outage`] (held in hand) or [`Failure::Permanent`] (dead-lettered at
//! once) — each carrying its cause chain, which becomes the dead letter's
//! `x-jirasync-error`; only the consumer loop decides ack, retry or dead letter.
//! Below the handlers each module has a `thiserror` enum saying what happened
//! (`JiraError`, `PublishError`, `Rejected`, `MalformedWebhook`, `SaveError`), and
//! the worker turns those into a `Failure` at the `?` (`worker::failure`). The
//! commands and start-up use `anyhow`; the ingress answers with its `ApiError`.

use std::any::Any;
use std::fmt;
use std::future::Future;

use lapin::BasicProperties;

/// A delivery as handlers see it.
#[derive(Debug)]
pub struct Incoming {
    /// The queue it was consumed from (its source queue).
    pub queue: String,
    /// The message `type`.
    pub kind: String,
    /// The message id.
    pub id: String,
    /// Properties and headers.
    pub properties: BasicProperties,
    /// The body, byte for byte.
    pub body: Vec<u8>,
}

/// How a message ended, as its label in `jirasync_messages_total{outcome}` and
/// in the log line. The handlers name their own outcomes (the worker's list is
/// `worker::Outcome`); the consumer loop's are the constants here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Outcome(&'static str);

impl Outcome {
    /// A passing failure: sent to a retry tier (for a failing dependency, the
    /// last tier again until its outage outlasts `outage_max`).
    pub const RETRIED: Self = Self("retried");
    /// Retries ran out (or a dependency's outage outlasted `outage_max`):
    /// dead-lettered.
    pub const DEAD_LETTERED: Self = Self("dead_lettered");
    /// The retry or dead-letter publish failed: given back to the queue.
    pub const REQUEUED: Self = Self("requeued");
    /// The handler panicked: dead-lettered.
    pub const PANICKED: Self = Self("panicked");
    /// The body is not what its type requires: dead-lettered.
    pub const MALFORMED: Self = Self("malformed");
    /// No handler knows the message type: dead-lettered.
    pub const UNKNOWN_TYPE: Self = Self("unknown_type");

    /// Every outcome the consumer loop itself gives.
    pub const ALL: [Self; 6] = [
        Self::RETRIED,
        Self::DEAD_LETTERED,
        Self::REQUEUED,
        Self::PANICKED,
        Self::MALFORMED,
        Self::UNKNOWN_TYPE,
    ];

    /// An outcome labelled `label` (a snake_case word).
    pub const fn new(label: &'static str) -> Self {
        Self(label)
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Why a message was not handled, with its cause chain.
#[derive(Debug)]
pub enum Failure {
    /// A passing failure (a deadlock, a serialization failure): try again later,
    /// through the retry tiers, then dead-letter.
    Passing(anyhow::Error),
    /// What this message needs (and only some messages need) is failing for a
    /// while, e.g. an integration's Jira: tried again like a passing failure,
    /// through the retry tiers and then the last tier again and again, until the
    /// consumer's `outage_max` has passed since the message first failed
    /// (`x-jirasync-first-failed-at-ms`); then dead-lettered with a reason saying
    /// for how long `dependency` failed.
    DependencyDown {
        /// What is failing, as the dead letter's reason names it (e.g. `Jira`).
        dependency: &'static str,
        /// The last failure.
        error: anyhow::Error,
    },
    /// What every message needs is unreachable (Postgres): the message is held,
    /// no attempt used, and tried again once [`Handler::recovered`] says it is
    /// back. Meanwhile the worker takes no more messages than it holds.
    Outage(anyhow::Error),
    /// Cannot succeed: dead-letter at once; `outcome` labels it in metrics.
    Permanent {
        /// The metric label, e.g. [`Outcome::MALFORMED`].
        outcome: Outcome,
        /// What failed.
        error: anyhow::Error,
    },
}

impl Failure {
    /// A passing failure.
    pub fn passing(error: impl Into<anyhow::Error>) -> Self {
        Self::Passing(error.into())
    }

    /// A failure of `dependency`, waited out up to the consumer's `outage_max`.
    pub fn dependency_down(dependency: &'static str, error: impl Into<anyhow::Error>) -> Self {
        Self::DependencyDown {
            dependency,
            error: error.into(),
        }
    }

    /// A permanent failure labelled `outcome`.
    pub fn permanent(outcome: impl Into<Outcome>, error: impl Into<anyhow::Error>) -> Self {
        Self::Permanent {
            outcome: outcome.into(),
            error: error.into(),
        }
    }

    /// A handler's panic, from its payload: dead-lettered at once with the panic's
    /// message (retrying a bug only repeats it).
    pub fn panicked(panic: &(dyn Any + Send)) -> Self {
        let message = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("a non-string payload");
        Self::permanent(
            Outcome::PANICKED,
            anyhow::anyhow!("handler panicked: {message}"),
        )
    }

    /// The failure with `context` in front of its cause chain.
    pub fn context(self, context: impl fmt::Display + Send + Sync + 'static) -> Self {
        match self {
            Self::Passing(error) => Self::Passing(error.context(context)),
            Self::Outage(error) => Self::Outage(error.context(context)),
            Self::DependencyDown { dependency, error } => Self::DependencyDown {
                dependency,
                error: error.context(context),
            },
            Self::Permanent { outcome, error } => Self::Permanent {
                outcome,
                error: error.context(context),
            },
        }
    }
}

impl fmt::Display for Failure {
    /// The whole cause chain on one line: `what failed: because: because`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Passing(error)
            | Self::Outage(error)
            | Self::DependencyDown { error, .. }
            | Self::Permanent { error, .. } => write!(f, "{error:#}"),
        }
    }
}

/// Handles messages. Called by the consumer loop, which alone decides what
/// follows a result.
pub trait Handler: Send + Sync + 'static {
    /// A delivery parsed by its type and body, once per delivery: in-process
    /// retries and the dead-letter path use it without parsing again.
    type Message: Send + Sync;

    /// Parses a delivery; an `Err` is dead-lettered (unknown type, malformed job).
    fn parse(&self, incoming: &Incoming) -> Result<Self::Message, Failure>;

    /// Handles one message. Must be idempotent: a message can arrive twice.
    fn handle(
        &self,
        message: &Self::Message,
        incoming: &Incoming,
    ) -> impl Future<Output = Result<Outcome, Failure>> + Send;

    /// Waits until what an [`Failure::Outage`] found unreachable answers again;
    /// `false` when it answered at once (the failure was not an outage after all,
    /// and takes the retry tiers like any passing one).
    fn recovered(&self) -> impl Future<Output = bool> + Send {
        async { false }
    }

    /// Called once the loop has decided to dead-letter a parsed message (a
    /// permanent failure, or retries exhausted), before it publishes to `P.dead`,
    /// so the handler can record the final failure where people look for it (e.g.
    /// an OAuth session). `reason` is what `x-jirasync-error` will say, `error`
    /// the failure it tells of. Best effort: it must not fail and should not block long.
    fn dead_lettering(
        &self,
        message: &Self::Message,
        reason: &str,
        error: &anyhow::Error,
    ) -> impl Future<Output = ()> + Send {
        let _ = (message, reason, error);
        async {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_reads_as_its_whole_cause_chain() {
        let failure = Failure::passing(anyhow::anyhow!("HTTP 503").context("Jira is unavailable"))
            .context("failed to look up the assignee");
        assert_eq!(
            failure.to_string(),
            "failed to look up the assignee: Jira is unavailable: HTTP 503"
        );
    }
}
