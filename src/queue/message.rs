//! Message properties and headers of docs/reference.md §4: building them for webhooks and
//! jobs, and reading them back in the worker and the `dlq` commands.

use std::time::{SystemTime, UNIX_EPOCH};

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use uuid::Uuid;

/// The webhook URL's token.
pub const TOKEN: &str = "token";
/// When the ingress received the webhook, in ms since the epoch.
pub const RECEIVED_AT_MS: &str = "received_at_ms";
/// Jira's delivery id, passed through when present.
pub const WEBHOOK_IDENTIFIER: &str = "x-atlassian-webhook-identifier";
/// `sha256=<hex>` HMAC of the body, passed through when present.
pub const HUB_SIGNATURE: &str = "x-hub-signature";
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

/// Every header docs/reference.md §4 defines: a copy that does not fit one frame
/// drops the others first (`queue::frame`).
pub const DEFINED_HEADERS: [&str; 10] = [
    TOKEN,
    RECEIVED_AT_MS,
    WEBHOOK_IDENTIFIER,
    HUB_SIGNATURE,
    ATTEMPTS,
    ERROR,
    SOURCE_QUEUE,
    DEAD_LETTERED_AT_MS,
    FIRST_FAILED_AT_MS,
    DROPPED_HEADERS,
];

/// Every message type of docs/reference.md §4's table (some are not handled by
/// this version yet): the only values the metric label `type` takes.
pub const KNOWN_TYPES: [&str; 9] = [
    "jira_server.webhook",
    "jira_cloud.webhook",
    "jira_server.oauth_request_token",
    "jira_server.oauth_access_token",
    "jira_server.oauth2_token",
    "jira_cloud.oauth2_token",
    "jira_cloud.webhook_refresh",
    "jira_server.reconcile",
    "jira_server.outbound",
];

/// The metric label of a message type: the type itself when §4 lists it, else
/// `unknown` (whoever can publish must not grow the metrics without bound).
pub fn type_label(kind: &str) -> &'static str {
    KNOWN_TYPES
        .into_iter()
        .find(|known| *known == kind)
        .unwrap_or("unknown")
}

/// Persistent delivery mode.
const PERSISTENT: u8 = 2;

/// Longest `X-Hub-Signature` the ingress takes (`sha256=` and 64 hex digits fit
/// twice over).
pub const MAX_HUB_SIGNATURE: usize = 128;
/// Longest `X-Atlassian-Webhook-Identifier` the ingress takes.
pub const MAX_WEBHOOK_IDENTIFIER: usize = 256;

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

/// What the ingress knows of one webhook request.
#[derive(Debug, Clone)]
pub struct WebhookRequest<'a> {
    /// The token from the URL.
    pub token: &'a str,
    /// The request's content type, if any.
    pub content_type: Option<&'a str>,
    /// `X-Atlassian-Webhook-Identifier`, if any.
    pub webhook_identifier: Option<&'a str>,
    /// `X-Hub-Signature`, if any.
    pub hub_signature: Option<&'a str>,
}

/// Properties of a webhook message; returns them with the new message id.
pub fn webhook_properties(
    request: &WebhookRequest<'_>,
    received: SystemTime,
) -> (Uuid, BasicProperties) {
    let id = Uuid::new_v4();
    let received_ms = millis(received);
    let mut headers = FieldTable::default();
    headers.insert(TOKEN.into(), long_string(request.token));
    headers.insert(RECEIVED_AT_MS.into(), AMQPValue::LongLongInt(received_ms));
    if let Some(value) = request.webhook_identifier {
        headers.insert(WEBHOOK_IDENTIFIER.into(), long_string(value));
    }
    if let Some(value) = request.hub_signature {
        headers.insert(HUB_SIGNATURE.into(), long_string(value));
    }
    let mut props = base(crate::queue::WEBHOOK, id, received).with_headers(headers);
    if let Some(content_type) = request.content_type.and_then(short_string) {
        props = props.with_content_type(content_type);
    }
    (id, props)
}

/// Properties of a job message of type `job_type` (JSON body).
pub fn job_properties(job_type: &str) -> (Uuid, BasicProperties) {
    let id = Uuid::new_v4();
    let props = base(job_type, id, SystemTime::now())
        .with_content_type("application/json".into())
        .with_headers(FieldTable::default());
    (id, props)
}

fn base(kind: &str, id: Uuid, at: SystemTime) -> BasicProperties {
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

fn short_string(value: &str) -> Option<ShortString> {
    ShortString::try_new(value).ok()
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
    fn webhook_properties_carry_every_contract_header() {
        let request = WebhookRequest {
            token: "a.b.c",
            content_type: Some("application/json"),
            webhook_identifier: Some("42"),
            hub_signature: Some("sha256=00"),
        };
        let at = UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        let (id, props) = webhook_properties(&request, at);
        assert_eq!(message_id(&props), id.to_string());
        assert_eq!(message_type(&props), "jira_server.webhook");
        assert_eq!(props.delivery_mode(), &Some(2));
        assert_eq!(props.timestamp(), &Some(1_700_000_000));
        assert_eq!(header_str(&props, TOKEN).as_deref(), Some("a.b.c"));
        assert_eq!(header_int(&props, RECEIVED_AT_MS), Some(1_700_000_000_123));
        assert_eq!(
            header_str(&props, WEBHOOK_IDENTIFIER).as_deref(),
            Some("42")
        );
        assert_eq!(
            header_str(&props, HUB_SIGNATURE).as_deref(),
            Some("sha256=00")
        );
    }

    #[test]
    fn unknown_types_are_one_label() {
        assert_eq!(type_label("jira_server.webhook"), "jira_server.webhook");
        assert_eq!(
            type_label("jira_cloud.webhook_refresh"),
            "jira_cloud.webhook_refresh"
        );
        for other in [
            "",
            "jira_server.webhook ",
            "x\u{1b}[31m",
            "JIRA_SERVER.WEBHOOK",
        ] {
            assert_eq!(type_label(other), "unknown", "{other:?}");
        }
    }

    #[test]
    fn the_exact_header_frame_size_is_what_the_encoder_writes() {
        let mut nested = FieldTable::default();
        nested.insert("count".into(), AMQPValue::LongLongInt(3));
        nested.insert("queue".into(), long_string("P.webhooks.retry.1s"));
        let mut headers = FieldTable::default();
        headers.insert(TOKEN.into(), long_string("a.b.c"));
        headers.insert(RECEIVED_AT_MS.into(), AMQPValue::LongLongInt(1));
        headers.insert("flag".into(), AMQPValue::Boolean(true));
        headers.insert("small".into(), AMQPValue::ShortInt(7));
        headers.insert(
            "x-death".into(),
            AMQPValue::FieldArray(vec![AMQPValue::FieldTable(nested)].into()),
        );
        let (_, props) = job_properties("jira_server.reconcile");
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

    #[test]
    fn absent_optional_headers_are_left_out() {
        let request = WebhookRequest {
            token: "a.b.c",
            content_type: None,
            webhook_identifier: None,
            hub_signature: None,
        };
        let (_, props) = webhook_properties(&request, SystemTime::now());
        assert_eq!(header_str(&props, WEBHOOK_IDENTIFIER), None);
        assert_eq!(header_str(&props, HUB_SIGNATURE), None);
        assert_eq!(props.content_type(), &None);
    }
}
