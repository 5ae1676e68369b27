//! What follows a handled delivery, decided here and nowhere else: an ack, a
//! retry tier, or a dead letter (docs/reference.md §4, §5.11). The consumer loop
//! (`consumer.rs`) builds one [`Settler`] per connection and hands it each
//! handled delivery.
//!
//! A passing failure goes through the retry tiers, then to `P.dead`; a failing
//! dependency ([`Failure::DependencyDown`]) keeps going to the last tier until
//! `outage_max` has passed since the message first failed
//! (`x-jirasync-first-failed-at-ms`). Every copy is made to fit one frame
//! (`frame.rs`) and confirmed before the original is acked.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lapin::Channel;
use lapin::types::AMQPValue;

use super::Names;
use super::acks::Ticket;
use super::frame;
use super::handler::{Failure, Handler, Incoming, Outcome};
use super::message::{
    self, ATTEMPTS, DEAD_LETTERED_AT_MS, DROPPED_HEADERS, ERROR, FIRST_FAILED_AT_MS, SOURCE_QUEUE,
};
use super::publisher::{PublishError, publish_confirmed_while_blocked};

/// What settling needs, one per consuming connection and shared by its
/// delivery tasks: where copies go and how long a message may wait.
pub(super) struct Settler<H> {
    /// Told of each parsed message's dead letter.
    pub(super) handler: Arc<H>,
    /// The confirm channel of the publishing connection: retry and dead-letter
    /// copies go out on it.
    pub(super) publisher: Channel,
    /// Whether RabbitMQ blocks the connection: copies wait for their confirm then.
    pub(super) connection: lapin::ConnectionStatus,
    /// The publishing connection's negotiated frame size: every copy fits one frame.
    pub(super) frame_max: u32,
    pub(super) names: Names,
    /// The retry tiers.
    pub(super) delays: Vec<Duration>,
    /// How long a message waits out its dependency's outage
    /// ([`ConsumerConfig`](super::consumer::ConsumerConfig)).
    pub(super) outage_max: Duration,
}

/// Where a failed message goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// To the retry tier of this delay.
    Retry(Duration),
    /// To `P.dead`, with this reason in front of the failure's.
    GiveUp(String),
}

/// The rule of §5.11 for a message failing for a passing reason for the
/// `attempts`th time, `waited` after its first failure: the tiers in order; then,
/// when `dependency` is failing, the last tier again until `outage_max` has
/// passed; then `P.dead`. Without tiers there is nowhere to wait.
pub fn next(
    delays: &[Duration],
    attempts: i64,
    dependency: Option<&str>,
    waited: Duration,
    outage_max: Duration,
) -> Next {
    let tier = usize::try_from(attempts - 1).unwrap_or(usize::MAX);
    if let Some(delay) = delays.get(tier) {
        return Next::Retry(*delay);
    }
    match (dependency, delays.last()) {
        (Some(_), Some(last)) if waited < outage_max => Next::Retry(*last),
        (Some(dependency), None) => Next::GiveUp(format!(
            "gave up after {attempts} attempts: {dependency} is failing, and no retry tier is \
             set to wait on"
        )),
        (Some(dependency), Some(_)) => Next::GiveUp(format!(
            "gave up after {attempts} attempts: {dependency} was failing for {} (a message waits \
             out its outage for {})",
            human(waited),
            human(outage_max)
        )),
        (None, _) => Next::GiveUp(format!("gave up after {attempts} attempts")),
    }
}

/// `45s`, `12m 5s`, `24h 0m`: whole seconds, two units at most.
fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m {s}s"),
        (h, m) => format!("{h}h {m}m"),
    }
}

/// Acks, retries through a tier or dead-letters; returns the outcome. The copies'
/// futures (a confirmed publish, the handler's dead-letter hook) are boxed: an ack
/// is what nearly every delivery comes to, and its task stays small
/// (`consumer::guarded`).
pub(super) async fn settle<H: Handler>(
    settler: &Settler<H>,
    incoming: &Incoming,
    message: Option<&H::Message>,
    ticket: &Ticket,
    result: Result<Outcome, Failure>,
) -> Outcome {
    let attempts = message::header_int(&incoming.properties, ATTEMPTS).unwrap_or(0) + 1;
    let now = message::millis(SystemTime::now());
    // A time ahead of ours (a clock apart, or made up) starts the clock now.
    let first_failed = message::header_int(&incoming.properties, FIRST_FAILED_AT_MS)
        .filter(|at| *at <= now)
        .unwrap_or(now);
    let waited = Duration::from_millis(u64::try_from(now - first_failed).unwrap_or(0));
    let (error, dependency) = match result {
        Ok(outcome) => return acked(ticket, outcome, Ok(())).await,
        // Held through an outage until shutdown: back to its queue, to wait there.
        Err(Failure::Outage(error)) => {
            tracing::info!(reason = %format!("{error:#}"), "shutting down during an outage; requeueing");
            give_back(ticket).await;
            return Outcome::REQUEUED;
        }
        Err(Failure::Permanent { outcome, error }) => {
            let reason = format!("{error:#}");
            let dead = Dead {
                attempts,
                reason: &reason,
                error: &error,
                first_failed: None,
            };
            let published = Box::pin(dead_letter(settler, incoming, message, dead)).await;
            return finish(settler, incoming, ticket, outcome, published).await;
        }
        Err(Failure::Passing(error)) => (error, None),
        Err(Failure::DependencyDown { dependency, error }) => (error, Some(dependency)),
    };
    let reason = format!("{error:#}");
    let why = match next(
        &settler.delays,
        attempts,
        dependency,
        waited,
        settler.outage_max,
    ) {
        Next::Retry(delay) => {
            let queue = settler.names.retry(&incoming.queue, delay);
            let props = message::with_headers(
                &incoming.properties,
                &[
                    (ATTEMPTS, AMQPValue::LongLongInt(attempts)),
                    (FIRST_FAILED_AT_MS, AMQPValue::LongLongInt(first_failed)),
                ],
            );
            match frame::fit(
                props,
                settler.frame_max,
                settler.names.catalog(),
                &[ATTEMPTS, FIRST_FAILED_AT_MS],
            ) {
                Ok(fitted) if !fitted.dropped_defined => {
                    tracing::warn!(%reason, attempts, retry.queue = %queue, "transient failure; retrying later");
                    left_out(&fitted.dropped);
                    let props = fitted.properties;
                    let published = Box::pin(publish(settler, &queue, &incoming.body, props)).await;
                    let published = published.map_err(Unsent::Publish);
                    return finish(settler, incoming, ticket, Outcome::RETRIED, published).await;
                }
                // Retried without a header it needs, it could only fail otherwise
                // (a token dropped is a token rejected): kept whole in P.dead instead.
                Ok(fitted) => format!(
                    "not retried: its headers do not fit one AMQP frame with the retry's \
                     ({} left out)",
                    fitted.dropped.join(", ")
                ),
                Err(len) => return rejected(settler, incoming, ticket, len).await,
            }
        }
        Next::GiveUp(why) => why,
    };
    let reason = format!("{why}: {reason}");
    let dead = Dead {
        attempts,
        reason: &reason,
        error: &error,
        first_failed: Some(first_failed),
    };
    let published = Box::pin(dead_letter(settler, incoming, message, dead)).await;
    finish(settler, incoming, ticket, Outcome::DEAD_LETTERED, published).await
}

/// Settles the delivery by what became of its copy.
async fn finish<H: Handler>(
    settler: &Settler<H>,
    incoming: &Incoming,
    ticket: &Ticket,
    outcome: Outcome,
    copied: Result<(), Unsent>,
) -> Outcome {
    match copied {
        Err(Unsent::TooLarge(len)) => rejected(settler, incoming, ticket, len).await,
        Err(Unsent::Publish(error)) => acked(ticket, outcome, Err(error)).await,
        Ok(()) => acked(ticket, outcome, Ok(())).await,
    }
}

/// Acks the delivery once its copy (if any) is confirmed; gives it back to its
/// queue when the copy failed.
async fn acked(ticket: &Ticket, outcome: Outcome, copied: Result<(), PublishError>) -> Outcome {
    match copied {
        Ok(()) => {
            ticket.ack().await;
            outcome
        }
        Err(error) => {
            tracing::error!(%error, "could not publish to the retry or dead-letter queue; requeueing");
            give_back(ticket).await;
            Outcome::REQUEUED
        }
    }
}

/// No copy fits one frame, not even with every header but the copy's own left
/// out (a `frame_max` smaller than the bookkeeping): the original is rejected
/// without requeue, which the broker dead-letters to `P.dead` as it is (with its
/// `x-death`), never publishing a frame that would close the connection.
async fn rejected<H: Handler>(
    settler: &Settler<H>,
    incoming: &Incoming,
    ticket: &Ticket,
    len: usize,
) -> Outcome {
    tracing::error!(
        frame.bytes = len,
        frame.max = settler.frame_max,
        "no copy of the message fits one AMQP frame; rejecting it to the dead-letter queue"
    );
    metrics::counter!("jirasync_dead_lettered_total", "type" => settler.names.catalog().type_label(&incoming.kind))
        .increment(1);
    let rejected = ticket.reject(false).await;
    if let Err(error) = rejected {
        tracing::warn!(%error, "reject failed; the message will be redelivered");
    }
    Outcome::DEAD_LETTERED
}

/// Gives the delivery back to its queue (`message::give_back`'s reject).
async fn give_back(ticket: &Ticket) {
    let _ = ticket.reject(true).await;
}

/// Why a copy was not stored.
enum Unsent {
    /// The broker did not confirm it.
    Publish(PublishError),
    /// It would not fit one frame (its size): never published.
    TooLarge(usize),
}

/// What a dead letter says.
struct Dead<'a> {
    attempts: i64,
    reason: &'a str,
    error: &'a anyhow::Error,
    /// The outage clock of a message that failed for a passing reason.
    first_failed: Option<i64>,
}

/// Lets the handler record the final failure of a parsed message, then publishes
/// the copy to `P.dead` with the bookkeeping headers.
async fn dead_letter<H: Handler>(
    settler: &Settler<H>,
    incoming: &Incoming,
    message: Option<&H::Message>,
    dead: Dead<'_>,
) -> Result<(), Unsent> {
    if let Some(message) = message {
        settler
            .handler
            .dead_lettering(message, dead.reason, dead.error)
            .await;
    }
    tracing::warn!(reason = %dead.reason, attempts = dead.attempts, "dead-lettering");
    metrics::counter!("jirasync_dead_lettered_total", "type" => settler.names.catalog().type_label(&incoming.kind))
        .increment(1);
    let mut set = vec![
        (ATTEMPTS, AMQPValue::LongLongInt(dead.attempts)),
        (ERROR, message::long_string(&one_line(dead.reason))),
        (SOURCE_QUEUE, message::long_string(&incoming.queue)),
        (
            DEAD_LETTERED_AT_MS,
            AMQPValue::LongLongInt(message::millis(SystemTime::now())),
        ),
    ];
    if let Some(at) = dead.first_failed {
        set.push((FIRST_FAILED_AT_MS, AMQPValue::LongLongInt(at)));
    }
    let keep: Vec<&str> = set.iter().map(|(name, _)| *name).collect();
    let props = message::with_headers(&incoming.properties, &set);
    let fitted = frame::fit(props, settler.frame_max, settler.names.catalog(), &keep)
        .map_err(Unsent::TooLarge)?;
    left_out(&fitted.dropped);
    publish(
        settler,
        &settler.names.dead(),
        &incoming.body,
        fitted.properties,
    )
    .await
    .map_err(Unsent::Publish)
}

async fn publish<H: Handler>(
    settler: &Settler<H>,
    queue: &str,
    body: &[u8],
    props: lapin::BasicProperties,
) -> Result<(), PublishError> {
    publish_confirmed_while_blocked(
        Some(&settler.connection),
        &settler.publisher,
        "",
        queue,
        body,
        props,
    )
    .await
}

/// Logs the headers a copy left out to fit one frame (named in the copy's
/// `x-jirasync-dropped-headers`).
fn left_out(dropped: &[String]) {
    if !dropped.is_empty() {
        // Not the names: whoever published the message chose them.
        tracing::warn!(
            headers = dropped.len(),
            "the copy leaves headers out to fit one AMQP frame ({DROPPED_HEADERS} names them)"
        );
    }
}

/// One line of at most 500 characters.
fn one_line(reason: &str) -> String {
    reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(500)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIERS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];
    const MAX: Duration = Duration::from_secs(30);

    #[test]
    fn passing_failures_take_the_tiers_then_give_up() {
        let zero = Duration::ZERO;
        assert_eq!(next(&TIERS, 1, None, zero, MAX), Next::Retry(TIERS[0]));
        assert_eq!(next(&TIERS, 2, None, zero, MAX), Next::Retry(TIERS[1]));
        assert_eq!(
            next(&TIERS, 3, None, zero, MAX),
            Next::GiveUp("gave up after 3 attempts".into())
        );
        assert!(matches!(next(&[], 1, None, zero, MAX), Next::GiveUp(_)));
    }

    #[test]
    fn a_failing_dependency_waits_on_the_last_tier_until_outage_max() {
        for waited in [0, 5, 29] {
            let waited = Duration::from_secs(waited);
            assert_eq!(
                next(&TIERS, 1, Some("Jira"), waited, MAX),
                Next::Retry(TIERS[0])
            );
            assert_eq!(
                next(&TIERS, 3, Some("Jira"), waited, MAX),
                Next::Retry(TIERS[1])
            );
            assert_eq!(
                next(&TIERS, 40, Some("Jira"), waited, MAX),
                Next::Retry(TIERS[1])
            );
        }
        let waited = Duration::from_secs(31);
        assert_eq!(
            next(&TIERS, 9, Some("Jira"), waited, MAX),
            Next::GiveUp(
                "gave up after 9 attempts: Jira was failing for 31s (a message waits out its \
                 outage for 30s)"
                    .into()
            )
        );
        // Its tiers first, even past the limit.
        assert_eq!(
            next(&TIERS, 2, Some("Jira"), waited, MAX),
            Next::Retry(TIERS[1])
        );
        // No tier to wait on.
        assert!(matches!(
            next(&[], 1, Some("Jira"), Duration::ZERO, MAX),
            Next::GiveUp(_)
        ));
    }

    #[test]
    fn durations_read_in_two_units_at_most() {
        assert_eq!(human(Duration::from_millis(3_900)), "3s");
        assert_eq!(human(Duration::from_secs(725)), "12m 5s");
        assert_eq!(human(Duration::from_secs(86_400)), "24h 0m");
        assert_eq!(human(Duration::from_secs(90_061)), "25h 1m");
    }
}
