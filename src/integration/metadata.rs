//! `integrations.metadata` of a `jira_server` integration, typed: read leniently
//! (a missing or mistyped key takes its default, an empty secret counts as none),
//! so nothing else in the crate looks keys up in JSON.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// What an integration's metadata says. `Debug` shows whether each secret is
/// set, never its value.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Metadata {
    /// Jira's base URL, without a trailing slash.
    pub base_url: String,
    /// `host[:port]` of the base URL (Sentry's `domain_name`).
    pub domain_name: String,
    /// Verify Jira's TLS certificate (default true).
    pub verify_ssl: bool,
    /// Signs and verifies the webhook URL's token (HS256). Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// When set, every webhook must carry `X-Hub-Signature` over its body. Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_hmac_secret: Option<String>,
    /// The Jira version seen when the webhook was registered, e.g. `10.3.1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jira_version: Option<String>,
    /// The resource the webhook was registered at, e.g. `/rest/jira-webhook/1.0/webhooks`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_path: Option<String>,
    /// Jira's id of the registered webhook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<String>,
    /// The `webhook_secret` a rotation replaced, still accepted until
    /// `previous_valid_until`. Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_webhook_secret: Option<String>,
    /// The `webhook_hmac_secret` a rotation replaced, likewise. Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_webhook_hmac_secret: Option<String>,
    /// Until when the previous secrets are accepted (the rotation's overlap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_valid_until: Option<DateTime<Utc>>,
    /// Jira Cloud: the site, `https://acme.atlassian.net` (`base_url` is where
    /// REST calls go: the site or the API gateway).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Jira Cloud: the site's cloudId (also the external id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_id: Option<String>,
    /// Jira Cloud: `admin` or `dynamic`, once a webhook is registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_kind: Option<String>,
    /// Jira Cloud: when a dynamic webhook expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_expires_at: Option<DateTime<Utc>>,
    /// Jira Cloud: when the webhook was registered or last refreshed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_refreshed_at: Option<DateTime<Utc>>,
    /// Jira Cloud, OAuth 2.0 methods: Atlassian's authorization server `<AUTH>`
    /// as it was when the site was connected, where tokens are obtained again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_url: Option<String>,
}

impl Default for Metadata {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            domain_name: String::new(),
            verify_ssl: true,
            webhook_secret: None,
            webhook_hmac_secret: None,
            jira_version: None,
            webhook_path: None,
            webhook_id: None,
            previous_webhook_secret: None,
            previous_webhook_hmac_secret: None,
            previous_valid_until: None,
            site: None,
            cloud_id: None,
            webhook_kind: None,
            webhook_expires_at: None,
            webhook_refreshed_at: None,
            auth_url: None,
        }
    }
}

impl Metadata {
    /// The previous secrets (webhook, HMAC) while they are still accepted at `now`.
    pub fn previous_at(&self, now: DateTime<Utc>) -> Option<(Option<&str>, Option<&str>)> {
        self.previous_valid_until
            .filter(|until| now < *until)
            .map(|_| {
                (
                    self.previous_webhook_secret.as_deref(),
                    self.previous_webhook_hmac_secret.as_deref(),
                )
            })
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metadata")
            .field("base_url", &self.base_url)
            .field("domain_name", &self.domain_name)
            .field("verify_ssl", &self.verify_ssl)
            .field("webhook_secret", &self.webhook_secret.is_some())
            .field("webhook_hmac_secret", &self.webhook_hmac_secret.is_some())
            .field("jira_version", &self.jira_version)
            .field("webhook_path", &self.webhook_path)
            .field("webhook_id", &self.webhook_id)
            .field(
                "previous_webhook_secret",
                &self.previous_webhook_secret.is_some(),
            )
            .field(
                "previous_webhook_hmac_secret",
                &self.previous_webhook_hmac_secret.is_some(),
            )
            .field("previous_valid_until", &self.previous_valid_until)
            .field("site", &self.site)
            .field("cloud_id", &self.cloud_id)
            .field("webhook_kind", &self.webhook_kind)
            .field("webhook_expires_at", &self.webhook_expires_at)
            .field("webhook_refreshed_at", &self.webhook_refreshed_at)
            .field("auth_url", &self.auth_url)
            .finish()
    }
}

impl<'de> Deserialize<'de> for Metadata {
    /// Never fails on valid JSON: rows written by hand, by Sentry or by an older
    /// jirasync read as far as they make sense, and the rest is the default.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        let non_empty = |key: &str| text(key).filter(|value| !value.is_empty());
        let time = |key: &str| {
            text(key)
                .and_then(|at| DateTime::parse_from_rfc3339(&at).ok())
                .map(|at| at.with_timezone(&Utc))
        };
        Ok(Self {
            base_url: text("base_url").unwrap_or_default(),
            domain_name: text("domain_name").unwrap_or_default(),
            verify_ssl: value
                .get("verify_ssl")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            webhook_secret: non_empty("webhook_secret"),
            webhook_hmac_secret: non_empty("webhook_hmac_secret"),
            jira_version: non_empty("jira_version"),
            webhook_path: non_empty("webhook_path"),
            webhook_id: non_empty("webhook_id"),
            previous_webhook_secret: non_empty("previous_webhook_secret"),
            previous_webhook_hmac_secret: non_empty("previous_webhook_hmac_secret"),
            previous_valid_until: time("previous_valid_until"),
            site: non_empty("site"),
            cloud_id: non_empty("cloud_id"),
            webhook_kind: non_empty("webhook_kind"),
            webhook_expires_at: time("webhook_expires_at"),
            webhook_refreshed_at: time("webhook_refreshed_at"),
            auth_url: non_empty("auth_url"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(value: Value) -> Metadata {
        serde_json::from_value(value).expect("any JSON reads")
    }

    #[test]
    fn empty_secrets_count_as_none_and_mistyped_keys_take_their_default() {
        let metadata = read(json!({
            "base_url": 7, "verify_ssl": "no", "webhook_secret": "", "webhook_hmac_secret": "k"
        }));
        assert_eq!(metadata.base_url, "");
        assert!(metadata.verify_ssl);
        assert_eq!(metadata.webhook_secret, None);
        assert_eq!(metadata.webhook_hmac_secret.as_deref(), Some("k"));
        assert_eq!(read(json!([1, 2])), Metadata::default());
        assert_eq!(read(json!("text")), Metadata::default());
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let metadata = read(
            json!({"webhook_secret": "s3cret", "webhook_hmac_secret": "hm4c",
            "previous_webhook_secret": "pr3v", "previous_webhook_hmac_secret": "ph4c"}),
        );
        let debug = format!("{metadata:?}");
        assert!(
            ["s3cret", "hm4c", "pr3v", "ph4c"]
                .iter()
                .all(|secret| !debug.contains(secret)),
            "{debug}"
        );
    }

    #[test]
    fn what_is_written_reads_back_and_absent_secrets_are_left_out() {
        let metadata = Metadata {
            base_url: "https://jira.example.org".into(),
            domain_name: "jira.example.org".into(),
            verify_ssl: false,
            webhook_secret: Some("s".into()),
            webhook_hmac_secret: None,
            jira_version: Some("10.3.1".into()),
            webhook_path: None,
            webhook_id: None,
            previous_webhook_secret: Some("p".into()),
            previous_webhook_hmac_secret: None,
            previous_valid_until: Some(Utc::now()),
            site: Some("https://acme.atlassian.net".into()),
            cloud_id: Some("0f3a".into()),
            webhook_kind: Some("admin".into()),
            webhook_expires_at: None,
            webhook_refreshed_at: Some(Utc::now()),
            auth_url: Some("https://auth.atlassian.com".into()),
        };
        let json = serde_json::to_value(&metadata).expect("serializes");
        assert_eq!(json.get("webhook_hmac_secret"), None);
        assert_eq!(read(json), metadata);
    }

    #[test]
    fn previous_secrets_count_only_until_their_time() {
        let now = Utc::now();
        let metadata = read(json!({
            "previous_webhook_secret": "p", "previous_valid_until": (now + chrono::TimeDelta::seconds(5)).to_rfc3339()
        }));
        assert_eq!(metadata.previous_at(now), Some((Some("p"), None)));
        assert_eq!(
            metadata.previous_at(now + chrono::TimeDelta::seconds(6)),
            None
        );
        assert_eq!(
            read(json!({"previous_webhook_secret": "p"})).previous_at(now),
            None
        );
    }
}
