//! The one place the RabbitMQ topology of docs/reference.md §4 is declared. `migrate`
//! calls it; the ingress and the worker call it again on every (re)connect so a
//! broker that lost its definitions is repaired before anything is published.

use std::time::Duration;

use anyhow::Context;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ExchangeKind};

use super::Names;

/// How often the broker may deliver one message before it dead-letters it.
pub const DELIVERY_LIMIT: i64 = 10;
/// `P.dead`'s delivery limit: never reached.
pub const DEAD_DELIVERY_LIMIT: i64 = 1_000_000_000;

/// Declares the exchange, the queues and the bindings, on a channel of its own
/// on `connection`. Idempotent.
pub async fn declare(
    connection: &Connection,
    names: &Names,
    delays: &[Duration],
) -> anyhow::Result<()> {
    let mut channel = open(connection).await?;
    let durable = || ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            names.exchange().into(),
            ExchangeKind::Direct,
            durable(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("failed to declare exchange {}", names.exchange()))?;
    declare_fanout(&channel, &names.verdicts()).await?;

    // RabbitMQ 4 gives every quorum queue a delivery limit of 20 and drops what
    // exceeds it when, as here, there is nowhere to dead-letter: a dead letter given
    // back 20 times (the management UI's "Nack message requeue true") would vanish.
    // A limit no one reaches keeps them on every version (-1, 4's "no limit", makes
    // 3.x drop a message at its first return).
    let mut unlimited = quorum();
    unlimited.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(DEAD_DELIVERY_LIMIT),
    );
    channel = declare_preferring(
        connection,
        channel,
        &names.dead(),
        unlimited,
        quorum(),
        "declared without jirasync's delivery limit: on RabbitMQ 4 a dead letter requeued 20 \
         times is dropped; move its messages elsewhere (a shovel) and delete it so jirasync \
         declares it anew",
    )
    .await?;

    // `P.webhooks`, `P.jobs` and `P.outbound` alike.
    for (source, keys) in names.sources() {
        let mut args = quorum();
        dead_letter_to(&mut args, &names.dead());
        // A message that crashes workers again and again ends in P.dead, not in a loop.
        // https://www.rabbitmq.com/docs/quorum-queues#poison-message-handling
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(DELIVERY_LIMIT),
        );
        channel = declare_source(connection, channel, &source, args, names.max_length()).await?;
        for key in keys {
            channel
                .queue_bind(
                    source.as_str().into(),
                    names.exchange().into(),
                    (*key).into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .with_context(|| format!("failed to bind {source} to {key}"))?;
        }
        for delay in delays {
            let mut args = quorum();
            // Each message waits out the tier's delay, then expires…
            // https://www.rabbitmq.com/docs/ttl#per-queue-message-ttl
            let ttl = i64::try_from(delay.as_millis()).context("retry delay too long")?;
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
            // …and is dead-lettered straight back to its source queue.
            dead_letter_to(&mut args, &source);
            declare_queue(&channel, &names.retry(&source, *delay), args).await?;
        }
    }
    let _ = channel.close(200, "declared".into()).await;
    Ok(())
}

/// Declares `name` as a durable fanout exchange: every queue bound to it gets a
/// copy of each message (`P.verdicts`, one queue per ingress). Idempotent; also
/// called by the fanout publisher and listener on each connect
/// (`queue::fanout`), so neither depends on who declared first.
pub async fn declare_fanout(channel: &Channel, name: &str) -> anyhow::Result<()> {
    channel
        .exchange_declare(
            name.into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("failed to declare exchange {name}"))
}

/// How many messages wait in `queue` (ready, not delivered), by a passive
/// declare: it declares nothing, and fails, closing `channel`, when the queue
/// does not exist.
pub async fn waiting(channel: &Channel, queue: &str) -> lapin::Result<u32> {
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(declared.message_count())
}

/// Messages a listener's queue holds at most: one that falls behind drops the
/// oldest (the default overflow, `drop-head`) rather than filling the broker.
pub const LISTENER_QUEUE_MAX_LENGTH: i64 = 10_000;

/// Declares a queue of this channel's connection alone, named by the broker, and
/// binds it to the fanout `exchange`; returns its name. The one exception to
/// "everything durable" (docs/reference.md §4): it lives and dies with the
/// connection, and whoever reconnects declares a fresh one.
pub async fn declare_listener_queue(channel: &Channel, exchange: &str) -> anyhow::Result<String> {
    let mut args = FieldTable::default();
    // Exclusive queues cannot be quorum queues: say classic, so a virtual host
    // whose default queue type is quorum does not refuse the declare.
    // https://www.rabbitmq.com/docs/vhosts#default-queue-type
    args.insert("x-queue-type".into(), string("classic"));
    // https://www.rabbitmq.com/docs/maxlength
    args.insert(
        "x-max-length".into(),
        AMQPValue::LongLongInt(LISTENER_QUEUE_MAX_LENGTH),
    );
    let queue = channel
        .queue_declare(
            // An empty name: the broker names it (`amq.gen-…`).
            ShortString::from(""),
            QueueDeclareOptions {
                // Deleted when its connection closes, for whatever reason.
                // https://www.rabbitmq.com/docs/queues#exclusive-queues
                exclusive: true,
                auto_delete: true,
                durable: false,
                ..Default::default()
            },
            args,
        )
        .await
        .with_context(|| format!("failed to declare a queue to listen to {exchange}"))?;
    let name = queue.name().as_str().to_owned();
    channel
        .queue_bind(
            name.as_str().into(),
            exchange.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("failed to bind a queue to {exchange}"))?;
    Ok(name)
}

async fn open(connection: &Connection) -> anyhow::Result<Channel> {
    connection
        .create_channel()
        .await
        .context("failed to open a RabbitMQ channel to declare the topology")
}

/// Declares a source queue with `args` and a length cap of `max_length`
/// (reject-publish: a full queue nacks, and the ingress answers 503). A queue an
/// older jirasync declared without a cap keeps working without one.
async fn declare_source(
    connection: &Connection,
    channel: Channel,
    source: &str,
    args: FieldTable,
    max_length: Option<u64>,
) -> anyhow::Result<Channel> {
    let Some(max_length) = max_length else {
        declare_queue(&channel, source, args).await?;
        return Ok(channel);
    };
    let mut capped = args.clone();
    capped.insert(
        "x-max-length".into(),
        AMQPValue::LongLongInt(i64::try_from(max_length).unwrap_or(i64::MAX)),
    );
    declare_preferring(
        connection,
        channel,
        source,
        capped,
        args,
        "declared without a length cap (by an older jirasync): it keeps none; to get \
         JIRASYNC_QUEUE_MAX_LENGTH, delete it in the management UI once it is empty",
    )
    .await
}

/// Declares `name` with `preferred` arguments, else (the broker refuses them: it
/// cannot change an existing queue's arguments, or does not know one) with
/// `fallback`, warning with `why` when the queue exists with other arguments. The
/// channel a refusal closed is replaced; the one to go on with is returned.
async fn declare_preferring(
    connection: &Connection,
    channel: Channel,
    name: &str,
    preferred: FieldTable,
    fallback: FieldTable,
    why: &str,
) -> anyhow::Result<Channel> {
    let Err(error) = declare_queue(&channel, name, preferred).await else {
        return Ok(channel);
    };
    let channel = open(connection).await?;
    if declare_queue(&channel, name, fallback).await.is_err() {
        return Err(error);
    }
    if format!("{error:#}").contains("inequivalent") {
        tracing::warn!(queue = name, "{why}");
    }
    Ok(channel)
}

/// Arguments of a quorum queue: replicated, and its dead-lettering can be at-least-once.
/// https://www.rabbitmq.com/docs/quorum-queues
fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), string("quorum"));
    args
}

/// Dead-letters through the default exchange to the queue `target`.
fn dead_letter_to(args: &mut FieldTable, target: &str) {
    // The default exchange routes by queue name, so no extra exchange or binding is needed.
    args.insert("x-dead-letter-exchange".into(), string(""));
    args.insert("x-dead-letter-routing-key".into(), string(target));
    // The broker's own dead-lettering loses nothing: it waits for the target's confirm.
    // https://www.rabbitmq.com/docs/quorum-queues#dead-lettering
    args.insert("x-dead-letter-strategy".into(), string("at-least-once"));
    // at-least-once requires reject-publish overflow.
    args.insert("x-overflow".into(), string("reject-publish"));
}

fn string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

async fn declare_queue(channel: &Channel, name: &str, args: FieldTable) -> anyhow::Result<()> {
    channel
        .queue_declare(
            ShortString::from(name),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .with_context(|| {
            format!(
                "failed to declare queue {name} (if it exists with other arguments, \
                 e.g. after JIRASYNC_RETRY_DELAYS changed, delete it in the management UI once it is empty)"
            )
        })?;
    Ok(())
}
