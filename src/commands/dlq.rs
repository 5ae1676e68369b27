//! `jirasync dlq list` and `jirasync dlq replay`: inspect `P.dead` without
//! consuming it, and move dead letters back to their source queue with confirms.
//! `list` prints through `print` (control characters escaped); `attribution`
//! says which integration and issue a letter belongs to. The console lists and
//! replays through the same functions ([`list`], [`attribute`], [`replay`],
//! [`replay_id`]).

mod attribution;
mod print;

use anyhow::Context;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use serde::Serialize;

use crate::config::BrokerSettings;
use crate::integration::messages::RECEIVED_AT_MS;
use crate::queue::message::{
    self, ATTEMPTS, DEAD_LETTERED_AT_MS, ERROR, FIRST_FAILED_AT_MS, SOURCE_QUEUE,
};
use crate::queue::publisher::{confirm_channel, publish_confirmed};
use crate::queue::{Names, connection};

use attribution::About;
pub use attribution::{MAX_ISSUE_KEY, attribute};
pub use print::print;

/// `jirasync dlq …`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Show dead-lettered messages without removing them.
    List(ListArgs),
    /// Move dead-lettered messages back to their source queue.
    Replay(ReplayArgs),
}

/// The arguments of `dlq list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// At most this many messages.
    #[arg(long, default_value = "50")]
    pub limit: usize,
    /// One JSON object per message.
    #[arg(long)]
    pub json: bool,
    /// RabbitMQ.
    #[command(flatten)]
    pub broker: BrokerSettings,
}

/// The arguments of `dlq replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// At most this many messages.
    #[arg(long)]
    pub limit: Option<usize>,
    /// RabbitMQ.
    #[command(flatten)]
    pub broker: BrokerSettings,
}

/// `jirasync dlq list|replay`.
pub async fn run(command: &Command) -> anyhow::Result<()> {
    match command {
        Command::List(args) => {
            let letters = list(&args.broker, args.limit).await?;
            print(
                &letters,
                args.json,
                &crate::integration::messages::names(&args.broker).dead(),
            )
        }
        Command::Replay(args) => {
            let moved = replay(&args.broker, args.limit).await?;
            println!("replayed {moved} message(s) to their source queues");
            Ok(())
        }
    }
}

/// One dead letter as `dlq list` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeadLetter {
    /// Message id.
    pub id: String,
    /// Message type.
    pub r#type: String,
    /// Why it was dead-lettered.
    pub error: String,
    /// Failed attempts.
    pub attempts: i64,
    /// The queue it came from.
    pub source_queue: String,
    /// When it was first received (ms since the epoch), when known.
    pub received_at_ms: Option<i64>,
    /// When it was dead-lettered (ms since the epoch), when known.
    pub dead_lettered_at_ms: Option<i64>,
    /// The integration it belongs to, when known: a job's or an outbound
    /// message's `integration_id`; a webhook's once [`attribute`] has mapped its
    /// token's `id` claim.
    pub integration_id: Option<i64>,
    /// The Jira issue key, when known: a JSON body's `issue.key`, an outbound
    /// message's `issue_key`.
    pub issue_key: Option<String>,
    /// A webhook's token's `id` claim (an integration's external id, read
    /// without verification), for [`attribute`]; never printed. The token itself
    /// is not kept.
    #[serde(skip)]
    pub token_external_id: Option<String>,
}

/// Reads up to `limit` dead letters and leaves them all in `P.dead`: each is
/// published again to the queue's tail (confirmed) before the one read is acked,
/// so a listing never counts as a delivery (RabbitMQ 4 drops a quorum queue's
/// message that is given back too often) and never loses one; a listing cut short
/// between the two steps leaves a duplicate, not a gap. Listing every message
/// keeps their order; listing some moves those to the end.
pub async fn list(broker: &BrokerSettings, limit: usize) -> anyhow::Result<Vec<DeadLetter>> {
    let dead = DeadLetters::open(broker).await?;
    let names = &dead.names;
    let available = depth(&dead.channel, &names.dead()).await?;
    let mut letters = Vec::new();
    while letters.len() < limit.min(available) {
        let Some(delivery) = dead.next().await? else {
            break;
        };
        letters.push(describe(names, &delivery.properties, &delivery.data));
        let props = delivery.properties.clone();
        let unsent =
            || "failed to put a listed message back at the end of the dead-letter queue".to_owned();
        let unacked = "failed to remove a listed message once its copy was stored";
        dead.move_to(&names.dead(), &delivery, props, unsent, unacked)
            .await?;
    }
    let _ = dead.channel.close(200, "done".into()).await;
    let _ = dead.connection.close(200, "done".into()).await;
    Ok(letters)
}

/// Moves up to `limit` (default: every message there now) dead letters back to
/// their source queue, resetting the attempt count and the outage clock; returns
/// how many moved.
pub async fn replay(broker: &BrokerSettings, limit: Option<usize>) -> anyhow::Result<usize> {
    let dead = DeadLetters::open(broker).await?;
    // Bounded by the depth at the start, so letters that die again are not replayed twice.
    let budget = depth(&dead.channel, &dead.names.dead())
        .await?
        .min(limit.unwrap_or(usize::MAX));
    let mut moved = 0;
    while moved < budget {
        let Some(delivery) = dead.next().await? else {
            break;
        };
        dead.replay(&delivery, moved).await?;
        moved += 1;
    }
    let _ = dead.connection.close(200, "done".into()).await;
    Ok(moved)
}

/// Dead letters [`replay_id`] looks at, at most (CONTRACT §12.7).
pub const REPLAY_ID_LOOKS_AT: usize = 10_000;

/// What [`replay_id`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayOne {
    /// This many dead letters had the id and moved back to their source queues.
    Moved(usize),
    /// None of the first `looked_at` dead letters had the id: nothing moved.
    NotFound {
        /// How many dead letters were looked at.
        looked_at: usize,
    },
}

/// Moves every dead letter among the first [`REPLAY_ID_LOOKS_AT`] whose message
/// id (as `dlq list` shows it) is `id` back to its source queue, as [`replay`]
/// does (confirmed, then acked; attempts and outage clock reset). Each other one
/// looked at is moved to the tail of `P.dead` as [`list`] does, so with no more
/// than [`REPLAY_ID_LOOKS_AT`] there every other letter stays, in its order; with
/// more, those looked at end up behind the rest (nothing is lost either way).
pub async fn replay_id(broker: &BrokerSettings, id: &str) -> anyhow::Result<ReplayOne> {
    let dead = DeadLetters::open(broker).await?;
    let names = &dead.names;
    // Bounded by the depth at the start: each letter is looked at once.
    let budget = depth(&dead.channel, &names.dead())
        .await?
        .min(REPLAY_ID_LOOKS_AT);
    let (mut looked_at, mut moved) = (0, 0);
    while looked_at < budget {
        let Some(delivery) = dead.next().await? else {
            break;
        };
        looked_at += 1;
        if message::message_id(&delivery.properties) != id {
            let props = delivery.properties.clone();
            let unsent = || {
                "failed to put a dead letter looked at back at the end of the dead-letter queue"
                    .to_owned()
            };
            let unacked = "failed to remove a dead letter looked at once its copy was stored";
            dead.move_to(&names.dead(), &delivery, props, unsent, unacked)
                .await?;
            continue;
        }
        dead.replay(&delivery, moved).await?;
        moved += 1;
    }
    let _ = dead.channel.close(200, "done".into()).await;
    let _ = dead.connection.close(200, "done".into()).await;
    Ok(if moved == 0 {
        ReplayOne::NotFound { looked_at }
    } else {
        ReplayOne::Moved(moved)
    })
}

/// What `list` and `replay` read and copy dead letters with: a channel to read
/// `P.dead` on and a confirm channel to publish the copies on.
struct DeadLetters {
    names: Names,
    connection: Connection,
    publisher: Channel,
    channel: Channel,
}

impl DeadLetters {
    async fn open(broker: &BrokerSettings) -> anyhow::Result<Self> {
        let names = crate::integration::messages::names(broker);
        let connection = connection::connect(&broker.url, "dlq").await?;
        let publisher = confirm_channel(&connection).await?;
        let channel = connection
            .create_channel()
            .await
            .context("failed to open a channel")?;
        Ok(Self {
            names,
            connection,
            publisher,
            channel,
        })
    }

    /// The next message of `P.dead`, left unacked on the reading channel.
    async fn next(&self) -> anyhow::Result<Option<Delivery>> {
        let got = self
            .channel
            .basic_get(
                self.names.dead().as_str().into(),
                BasicGetOptions::default(),
            )
            .await
            .context("failed to read from the dead-letter queue")?;
        Ok(got.map(|got| got.delivery))
    }

    /// Publishes `delivery`'s body with `props` to `queue` and acks the delivery
    /// once the copy is confirmed. When it is not, gives the delivery back and
    /// returns the publish error in the context `unsent` makes; a failed ack
    /// comes back in the context `unacked`.
    /// Moves `delivery` back to its source queue, its attempts reset (`moved`:
    /// how many were replayed before it, for the error).
    async fn replay(&self, delivery: &Delivery, moved: usize) -> anyhow::Result<()> {
        let letter = describe(&self.names, &delivery.properties, &[]);
        let props = reset(&delivery.properties);
        let unsent = || {
            format!(
                "failed to replay message {} to {} ({moved} replayed before it)",
                letter.id, letter.source_queue
            )
        };
        let unacked = "failed to remove a replayed message from the dead-letter queue";
        self.move_to(&letter.source_queue, delivery, props, unsent, unacked)
            .await
    }

    async fn move_to(
        &self,
        queue: &str,
        delivery: &Delivery,
        props: BasicProperties,
        unsent: impl FnOnce() -> String,
        unacked: &'static str,
    ) -> anyhow::Result<()> {
        let copied = publish_confirmed(&self.publisher, "", queue, &delivery.data, props).await;
        if let Err(error) = copied {
            message::give_back(&delivery.acker).await;
            return Err(anyhow::Error::new(error).context(unsent()));
        }
        delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .context(unacked)?;
        Ok(())
    }
}

async fn depth(channel: &Channel, queue: &str) -> anyhow::Result<usize> {
    let waiting = crate::queue::topology::waiting(channel, queue)
        .await
        .with_context(|| format!("queue {queue} does not exist; run `jirasync migrate` first"))?;
    Ok(usize::try_from(waiting).unwrap_or(usize::MAX))
}

/// The entry of a dead letter, whether the worker or the broker dead-lettered it;
/// its integration and issue key as far as `body` and the token say them.
fn describe(names: &Names, props: &BasicProperties, body: &[u8]) -> DeadLetter {
    let death = first_death(props);
    let kind = message::message_type(props);
    let source_queue = message::header_str(props, SOURCE_QUEUE)
        .or_else(|| death.as_ref().and_then(|d| table_str(d, "queue")))
        .unwrap_or_else(|| names.source_for(&kind));
    let error = message::header_str(props, ERROR).unwrap_or_else(|| match &death {
        Some(d) => format!(
            "dead-lettered by the broker ({})",
            table_str(d, "reason").unwrap_or_else(|| "unknown reason".into())
        ),
        None => "no reason recorded".into(),
    });
    let received_at_ms = message::header_int(props, RECEIVED_AT_MS).or_else(|| {
        props
            .timestamp()
            .and_then(|t| i64::try_from(t).ok())
            .map(|s| s * 1000)
    });
    let dead_lettered_at_ms = message::header_int(props, DEAD_LETTERED_AT_MS).or_else(|| {
        death.as_ref().and_then(|d| match d.inner().get("time") {
            Some(AMQPValue::Timestamp(t)) => i64::try_from(*t).ok().map(|s| s * 1000),
            _ => None,
        })
    });
    let about = About::read(&kind, props, body);
    DeadLetter {
        id: message::message_id(props),
        attempts: message::header_int(props, ATTEMPTS).unwrap_or_else(|| {
            death
                .as_ref()
                .and_then(|d| match d.inner().get("count") {
                    Some(AMQPValue::LongLongInt(n)) => Some(*n),
                    _ => None,
                })
                .unwrap_or(0)
        }),
        r#type: kind,
        error,
        source_queue,
        received_at_ms,
        dead_lettered_at_ms,
        integration_id: about.integration_id,
        issue_key: about.issue_key,
        token_external_id: about.token_external_id,
    }
}

/// The newest entry of the broker's `x-death` header, if any.
fn first_death(props: &BasicProperties) -> Option<FieldTable> {
    match props.headers().as_ref()?.inner().get("x-death")? {
        AMQPValue::FieldArray(deaths) => match deaths.as_slice().first()? {
            AMQPValue::FieldTable(table) => Some(table.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn table_str(table: &FieldTable, key: &str) -> Option<String> {
    match table.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// The properties without the dead-letter bookkeeping: the attempt count and the
/// outage clock (`x-jirasync-first-failed-at-ms`) start over.
fn reset(props: &BasicProperties) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(old) = props.headers() {
        for (name, value) in old.inner() {
            let dropped = [
                ATTEMPTS,
                ERROR,
                SOURCE_QUEUE,
                DEAD_LETTERED_AT_MS,
                FIRST_FAILED_AT_MS,
                "x-death",
                "x-delivery-count",
            ]
            .contains(&name.as_str())
                || name.as_str().starts_with("x-first-death")
                || name.as_str().starts_with("x-last-death");
            if !dropped {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
    props.clone().with_headers(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_goes_back_to_p_outbound_however_its_source_was_recorded() {
        let names =
            crate::integration::messages::names(&crate::config::Settings::defaults().broker);
        let outbound = names.outbound();
        let push =
            || BasicProperties::default().with_type(crate::integration::messages::OUTBOUND.into());
        // Dead-lettered by the worker: the queue it consumed, in a header.
        let mut headers = FieldTable::default();
        headers.insert(SOURCE_QUEUE.into(), message::long_string(&outbound));
        let by_worker = push().with_headers(headers);
        // By the broker (delivery limit): the queue, in `x-death`.
        let mut death = FieldTable::default();
        death.insert("queue".into(), message::long_string(&outbound));
        let mut headers = FieldTable::default();
        headers.insert(
            "x-death".into(),
            AMQPValue::FieldArray(vec![AMQPValue::FieldTable(death)].into()),
        );
        let by_broker = push().with_headers(headers);
        // Neither: the queue the catalog routes its type to.
        for props in [by_worker, by_broker, push()] {
            assert_eq!(
                describe(&names, &props, &[]).source_queue,
                outbound,
                "{props:?}"
            );
        }
    }

    #[test]
    fn replaying_drops_the_dead_letter_bookkeeping_and_keeps_the_rest() {
        let mut headers = FieldTable::default();
        headers.insert("token".into(), message::long_string("t"));
        headers.insert(ATTEMPTS.into(), AMQPValue::LongLongInt(6));
        headers.insert(ERROR.into(), message::long_string("boom"));
        headers.insert(SOURCE_QUEUE.into(), message::long_string("P.webhooks"));
        headers.insert(FIRST_FAILED_AT_MS.into(), AMQPValue::LongLongInt(1));
        headers.insert("x-death".into(), AMQPValue::FieldArray(vec![].into()));
        let props = BasicProperties::default()
            .with_headers(headers)
            .with_type("jira_server.webhook".into());
        let reset = reset(&props);
        assert_eq!(message::header_str(&reset, "token").as_deref(), Some("t"));
        for gone in [ATTEMPTS, ERROR, SOURCE_QUEUE, FIRST_FAILED_AT_MS, "x-death"] {
            assert!(
                !reset
                    .headers()
                    .as_ref()
                    .is_some_and(|h| h.contains_key(gone)),
                "{gone}"
            );
        }
        assert_eq!(message::message_type(&reset), "jira_server.webhook");
    }
}
