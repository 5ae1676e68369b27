//! Message properties and the transport's headers of docs/reference.md §4:
//! building them for jobs (and, through [`properties`], for the provider's
//! webhooks: `integration::messages`), and reading them back in the worker and
//! the `dlq` commands.

use std::time::{SystemTime, UNIX_EPOCH};

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use uuid::Uuid;

/// Failed attempts so far.
pub const ATTEMPTS: &str = "x-jirasync-attempts";
/// Why a message was dead-lettered (one line).
pub const ERROR: &str = "x-jirasync-error";
/// The queue a dead-lettered message came from.
pub const SOURCE_QUEUE: &str = "x-jirasync-source-queue";
/// When it was dead-lettered, in ms since the epoch.
pub const DEAD_LETTERED_AT_MS: &str = "x-jirasync-dead-lettered-at-ms";
/// When it first failed for a passing reason, in ms since the epoch: the clock of
/// a dependency's outage, kept on its retries, removed by `dlq replay`.
pub const FIRST_FAILED_AT_MS: &str = "x-jirasync-first-failed-at-ms";
/// The headers a retry or dead-letter copy left out so that it fits one frame.
pub const DROPPED_HEADERS: &str = "x-jirasync-dropped-headers";

/// The headers of docs/reference.md §4 the transport itself sets; with the
/// provider's ([`Catalog::headers`](super::Catalog)) they are the defined ones a
/// copy that does not fit one frame keeps longest (`queue::frame`).
pub const TRANSPORT_HEADERS: [&str; 6] = [
    ATTEMPTS,
    ERROR,
    SOURCE_QUEUE,
    DEAD_LETTERED_AT_MS,
    FIRST_FAILED_AT_MS,
    DROPPED_HEADERS,
];

/// Persistent delivery mode.
const PERSISTENT: u8 = 2;

/// An upper bound of the bytes `props` take in an AMQP content header frame:
/// every short-string property at its longest (255 bytes), the fixed-size ones,
/// and the headers table as it is encoded. The header frame cannot be split, so
/// a message whose properties exceed the negotiated `frame_max` makes the broker
/// close the whole connection (`frame_too_large`).
pub fn header_frame_len(props: &BasicProperties) -> usize {
    // class, weight, body size, flags; 14 properties at most 256 bytes each.
    const FIXED: usize = 2 + 2 + 8 + 2 + 14 * 256;
    FIXED + props.headers().as_ref().map_or(0, table_len)
}

/// The exact size of the content header frame that carries `props`: the frame's
/// own 8 bytes, class, weight, body size, property flags and each property as
/// AMQP 0-9-1 encodes it. RabbitMQ closes the connection (`frame_too_large`) on a
/// frame larger than the negotiated `frame_max`.
pub fn header_frame_bytes(props: &BasicProperties) -> usize {
    fn short(value: &Option<ShortString>) -> usize {
        value.as_ref().map_or(0, |s| 1 + s.as_str().len())
    }
    fn octet<T>(value: &Option<T>, len: usize) -> usize {
        value.as_ref().map_or(0, |_| len)
    }
    let strings = [
        props.content_type(),
        props.content_encoding(),
        props.correlation_id(),
        props.reply_to(),
        props.expiration(),
        props.message_id(),
        props.kind(),
        props.user_id(),
        props.app_id(),
        props.cluster_id(),
    ];
    8 + 2
        + 2
        + 8
        + 2
        + strings.into_iter().map(short).sum::<usize>()
        + props.headers().as_ref().map_or(0, table_len)
        + octet(props.delivery_mode(), 1)
        + octet(props.priority(), 1)
        + octet(props.timestamp(), 8)
}

fn table_len(table: &FieldTable) -> usize {
    4 + table
        .inner()
        .iter()
        .map(|(key, value)| 1 + key.as_str().len() + value_len(value))
        .sum::<usize>()
}

fn value_len(value: &AMQPValue) -> usize {
    1 + match value {
        AMQPValue::Void => 0,
        AMQPValue::Boolean(_) | AMQPValue::ShortShortInt(_) | AMQPValue::ShortShortUInt(_) => 1,
        AMQPValue::ShortInt(_) | AMQPValue::ShortUInt(_) => 2,
        AMQPValue::LongInt(_) | AMQPValue::LongUInt(_) | AMQPValue::Float(_) => 4,
        AMQPValue::DecimalValue(_) => 5,
        AMQPValue::LongLongInt(_) | AMQPValue::Double(_) | AMQPValue::Timestamp(_) => 8,
        AMQPValue::ShortString(s) => 1 + s.as_str().len(),
        AMQPValue::LongString(s) => 4 + s.len(),
        AMQPValue::ByteArray(bytes) => 4 + bytes.len(),
        AMQPValue::FieldArray(array) => 4 + array.as_slice().iter().map(value_len).sum::<usize>(),
        AMQPValue::FieldTable(table) => table_len(table),
    }
}

/// Properties of a job message of type `job_type` (JSON body).
pub fn job_properties(job_type: &str) -> (Uuid, BasicProperties) {
    let id = Uuid::new_v4();
    let props = properties(job_type, id, SystemTime::now())
        .with_content_type("application/json".into())
        .with_headers(FieldTable::default());
    (id, props)
}

/// The properties every message starts from: persistent, of type `kind`, with
/// message id `id` and timestamp `at` (seconds).
pub fn properties(kind: &str, id: Uuid, at: SystemTime) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_type(kind.into())
        .with_message_id(id.to_string().into())
        .with_timestamp(u64::try_from(millis(at) / 1000).unwrap_or_default())
}

/// Milliseconds since the epoch.
pub fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// A string header value.
pub fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// Reads a string header (long or short string).
pub fn header_str(props: &BasicProperties, name: &str) -> Option<String> {
    match props.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// Reads an integer header of any integer width.
pub fn header_int(props: &BasicProperties, name: &str) -> Option<i64> {
    match props.headers().as_ref()?.inner().get(name)? {
        AMQPValue::ShortShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::Timestamp(n) => i64::try_from(*n).ok(),
        _ => None,
    }
}

/// The message's properties with `headers` set (replacing those named), the rest kept.
pub fn with_headers(props: &BasicProperties, set: &[(&str, AMQPValue)]) -> BasicProperties {
    let mut headers = props.headers().clone().unwrap_or_default();
    for (name, value) in set {
        headers.insert((*name).into(), value.clone());
    }
    props.clone().with_headers(headers)
}

/// Gives a delivery back to its queue, to be delivered again. Best effort: a
/// channel that is gone gives it back by itself.
pub async fn give_back(acker: &lapin::Acker) {
    // A reject, not a nack: RabbitMQ 4.3 counts only rejects (and returns by a
    // closed channel) toward a quorum queue's delivery limit, which must keep
    // catching messages that crash workers again and again.
    let _ = acker
        .reject(lapin::options::BasicRejectOptions { requeue: true })
        .await;
}

/// The message id, or `-` when it has none.
pub fn message_id(props: &BasicProperties) -> String {
    props
        .message_id()
        .as_ref()
        .map_or_else(|| "-".to_owned(), |id| id.as_str().to_owned())
}

/// The message type, or an empty string when it has none.
pub fn message_type(props: &BasicProperties) -> String {
    props
        .kind()
        .as_ref()
        .map_or_else(String::new, |kind| kind.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exact_header_frame_size_is_what_the_encoder_writes() {
        let mut nested = FieldTable::default();
        nested.insert("count".into(), AMQPValue::LongLongInt(3));
        nested.insert("queue".into(), long_string("P.webhooks.retry.1s"));
        let mut headers = FieldTable::default();
        headers.insert("token".into(), long_string("a.b.c"));
        headers.insert("received_at_ms".into(), AMQPValue::LongLongInt(1));
        headers.insert("flag".into(), AMQPValue::Boolean(true));
        headers.insert("small".into(), AMQPValue::ShortInt(7));
        headers.insert(
            "x-death".into(),
            AMQPValue::FieldArray(vec![AMQPValue::FieldTable(nested)].into()),
        );
        let (_, props) = job_properties("p.job");
        let props = props
            .with_headers(headers)
            .with_priority(1)
            .with_correlation_id("c".into())
            .with_app_id("jirasync".into());
        let encoded = lapin::protocol::basic::gen_properties(&props)(Vec::<u8>::new().into())
            .expect("encode the properties")
            .write;
        // The frame's 8 bytes and class, weight and body size (12) around the
        // properties with their flags.
        assert_eq!(header_frame_bytes(&props), 8 + 12 + encoded.len());
        assert!(header_frame_bytes(&props) <= header_frame_len(&props) + 8);
    }
}
