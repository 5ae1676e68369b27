//! The provider's messages (docs/reference.md §4): the message types, the
//! webhook message's headers and properties, and the [`CATALOG`] that tells the
//! transport (`queue`) what is routed where. With [`PROVIDER`](super::PROVIDER),
//! the one place that spells the provider's name.

use std::time::SystemTime;

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use uuid::Uuid;

use super::provider::Kind;
use crate::config::BrokerSettings;
use crate::queue::message::{long_string, millis, properties};
use crate::queue::{Catalog, Names};

/// Routing key and message type of a Jira webhook.
pub const WEBHOOK: &str = "jira_server.webhook";
/// Routing key and message type of a Jira Cloud webhook (docs/reference.md §11.4).
pub const CLOUD_WEBHOOK: &str = "jira_cloud.webhook";
/// Fetch a request token for an OAuth 1.0a session.
pub const OAUTH_REQUEST_TOKEN: &str = "jira_server.oauth_request_token";
/// Exchange an authorized OAuth 1.0a request token.
pub const OAUTH_ACCESS_TOKEN: &str = "jira_server.oauth_access_token";
/// Exchange an OAuth 2.0 authorization code.
pub const OAUTH2_TOKEN: &str = "jira_server.oauth2_token";
/// Exchange a Jira Cloud OAuth 2.0 (3LO) authorization code (docs/reference.md §11).
pub const CLOUD_OAUTH2_TOKEN: &str = "jira_cloud.oauth2_token";
/// Refresh, or register again, a 3LO integration's dynamic webhook (§11).
pub const CLOUD_WEBHOOK_REFRESH: &str = "jira_cloud.webhook_refresh";
/// Re-read an integration's recently updated linked issues.
pub const RECONCILE: &str = "jira_server.reconcile";
/// Push a group's assignee or status to one linked Jira issue (`outbound`),
/// routed to `P.outbound`.
pub const OUTBOUND: &str = "jira_server.outbound";

/// Every job type, routed to `P.jobs`; the worker's dispatcher handles each.
pub const JOB_TYPES: [&str; 6] = [
    OAUTH_REQUEST_TOKEN,
    OAUTH_ACCESS_TOKEN,
    OAUTH2_TOKEN,
    CLOUD_OAUTH2_TOKEN,
    RECONCILE,
    CLOUD_WEBHOOK_REFRESH,
];

/// The webhook URL's token.
pub const TOKEN: &str = "token";
/// When the ingress received the webhook, in ms since the epoch.
pub const RECEIVED_AT_MS: &str = "received_at_ms";
/// Jira's delivery id, passed through when present.
pub const WEBHOOK_IDENTIFIER: &str = "x-atlassian-webhook-identifier";
/// `sha256=<hex>` HMAC of the body, passed through when present.
pub const HUB_SIGNATURE: &str = "x-hub-signature";
/// A Cloud delivery's `Authorization: Bearer` token (dynamic webhooks of a 3LO
/// app), passed through when present.
pub const DELIVERY_JWT: &str = "delivery-jwt";

/// Longest `X-Hub-Signature` the ingress takes (`sha256=` and 64 hex digits fit
/// twice over).
pub const MAX_HUB_SIGNATURE: usize = 128;
/// Longest `X-Atlassian-Webhook-Identifier` the ingress takes.
pub const MAX_WEBHOOK_IDENTIFIER: usize = 256;
/// Longest bearer token of a Cloud delivery's `Authorization` header the ingress
/// takes (docs/reference.md §11.4), as long as a URL token may be.
pub const MAX_DELIVERY_JWT: usize = super::token::MAX_TOKEN_LEN;

/// The routing key and message type of a webhook of `provider`:
/// [`WEBHOOK`] or [`CLOUD_WEBHOOK`].
pub fn webhook_type(provider: Kind) -> &'static str {
    match provider {
        Kind::Server => WEBHOOK,
        Kind::Cloud => CLOUD_WEBHOOK,
    }
}

/// What is routed where, for the transport.
pub static CATALOG: Catalog = Catalog {
    webhooks: &[WEBHOOK, CLOUD_WEBHOOK],
    jobs: &JOB_TYPES,
    outbound: &[OUTBOUND],
    // Every message type of docs/reference.md §4's table (some are not handled
    // by this version yet).
    known_types: &[
        WEBHOOK,
        CLOUD_WEBHOOK,
        OAUTH_REQUEST_TOKEN,
        OAUTH_ACCESS_TOKEN,
        OAUTH2_TOKEN,
        CLOUD_OAUTH2_TOKEN,
        CLOUD_WEBHOOK_REFRESH,
        RECONCILE,
        OUTBOUND,
    ],
    headers: &[
        TOKEN,
        RECEIVED_AT_MS,
        WEBHOOK_IDENTIFIER,
        HUB_SIGNATURE,
        DELIVERY_JWT,
    ],
};

/// The queue names of `broker` for this provider's messages.
pub fn names(broker: &BrokerSettings) -> Names {
    Names::of(broker, &CATALOG)
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

/// What a Cloud delivery adds to a [`WebhookRequest`] (docs/reference.md §11.4).
#[derive(Debug, Clone, Copy, Default)]
pub struct CloudDelivery<'a> {
    /// The token of an `Authorization: Bearer` header (a 3LO app's dynamic
    /// webhook signs its deliveries so), if any.
    pub delivery_jwt: Option<&'a str>,
}

/// Properties of a Data Center webhook message; returns them with the new
/// message id.
pub fn webhook_properties(
    request: &WebhookRequest<'_>,
    received: SystemTime,
) -> (Uuid, BasicProperties) {
    provider_webhook_properties(Kind::Server, request, CloudDelivery::default(), received)
}

/// Properties of a webhook message of `provider` (type and routing key
/// [`webhook_type`]); a Cloud one carries `cloud`'s headers too. Returns them
/// with the new message id.
pub fn provider_webhook_properties(
    provider: Kind,
    request: &WebhookRequest<'_>,
    cloud: CloudDelivery<'_>,
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
    if let Some(value) = cloud.delivery_jwt.filter(|_| provider == Kind::Cloud) {
        headers.insert(DELIVERY_JWT.into(), long_string(value));
    }
    let mut props = properties(webhook_type(provider), id, received).with_headers(headers);
    if let Some(content_type) = request
        .content_type
        .and_then(|value| ShortString::try_new(value).ok())
    {
        props = props.with_content_type(content_type);
    }
    (id, props)
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::queue::message::{header_int, header_str, message_id, message_type};

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
        assert_eq!(
            props.content_type().as_ref().map(|t| t.as_str()),
            Some("application/json")
        );
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

    #[test]
    fn a_cloud_webhook_is_its_own_type_and_carries_the_delivery_jwt() {
        let request = WebhookRequest {
            token: "a.b.c",
            content_type: Some("application/json"),
            webhook_identifier: Some("id-1"),
            hub_signature: None,
        };
        let cloud = CloudDelivery {
            delivery_jwt: Some("x.y.z"),
        };
        let (id, props) =
            provider_webhook_properties(Kind::Cloud, &request, cloud, SystemTime::now());
        assert_eq!(message_id(&props), id.to_string());
        assert_eq!(message_type(&props), "jira_cloud.webhook");
        assert_eq!(header_str(&props, DELIVERY_JWT).as_deref(), Some("x.y.z"));
        assert_eq!(header_str(&props, TOKEN).as_deref(), Some("a.b.c"));
        assert_eq!(
            header_str(&props, WEBHOOK_IDENTIFIER).as_deref(),
            Some("id-1")
        );
        assert_eq!(header_str(&props, HUB_SIGNATURE), None);
        // Data Center's messages never carry one.
        let (_, props) =
            provider_webhook_properties(Kind::Server, &request, cloud, SystemTime::now());
        assert_eq!(message_type(&props), "jira_server.webhook");
        assert_eq!(header_str(&props, DELIVERY_JWT), None);
    }

    #[test]
    fn unknown_types_are_one_label() {
        assert_eq!(
            CATALOG.type_label("jira_server.webhook"),
            "jira_server.webhook"
        );
        assert_eq!(
            CATALOG.type_label("jira_cloud.webhook_refresh"),
            "jira_cloud.webhook_refresh"
        );
        for other in [
            "",
            "jira_server.webhook ",
            "x\u{1b}[31m",
            "JIRA_SERVER.WEBHOOK",
        ] {
            assert_eq!(CATALOG.type_label(other), "unknown", "{other:?}");
        }
    }

    #[test]
    fn every_type_routed_is_known_and_webhooks_and_pushes_have_queues_of_their_own() {
        let names = Names::new("P", &CATALOG);
        assert_eq!(names.source_for(WEBHOOK), "P.webhooks");
        assert_eq!(names.source_for(OUTBOUND), "P.outbound");
        for job in JOB_TYPES {
            assert_eq!(names.source_for(job), "P.jobs", "{job}");
        }
        let routed = CATALOG.webhooks.iter().chain(CATALOG.jobs);
        for kind in routed.chain(CATALOG.outbound) {
            assert_eq!(CATALOG.type_label(kind), *kind);
            assert!(
                kind.starts_with(crate::integration::provider::PROVIDER)
                    || kind.starts_with(crate::integration::provider::CLOUD_PROVIDER),
                "{kind}"
            );
        }
    }
}
