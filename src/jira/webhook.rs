//! Registers the issue webhook in Jira: `POST /rest/webhooks/1.0/webhook`
//! (Jira ≤ 9, Sentry's call), and on 404 once more on Jira 10's
//! `POST /rest/jira-webhook/1.0/webhooks`. Called by the access-token job.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::client::JiraClient;
use super::error::JiraError;

/// The events jirasync needs, as in Sentry's registration.
pub const ISSUE_EVENTS: [&str; 2] = ["jira:issue_created", "jira:issue_updated"];

/// The name the webhook gets in Jira's administration.
pub const WEBHOOK_NAME: &str = "jirasync";

/// Which webhook REST resource accepted the registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookApi {
    /// `/rest/webhooks/1.0/webhook` (Jira Server / Data Center up to 9.x).
    Legacy,
    /// `/rest/jira-webhook/1.0/webhooks` (Jira Data Center 10 and later).
    Jira10,
}

impl WebhookApi {
    /// The resource path under the base URL.
    pub fn path(self) -> &'static str {
        match self {
            Self::Legacy => "/rest/webhooks/1.0/webhook",
            Self::Jira10 => "/rest/jira-webhook/1.0/webhooks",
        }
    }

    /// The registration body for this resource.
    ///
    /// Legacy: `name`, `url`, `events`, `excludeBody` (Jira's documented shape;
    /// Sentry sends the first three). Jira 10 moved the options into
    /// `configuration` with upper-case keys (JRASERVER-78733); it ignores the
    /// fields it does not know, so this shape is safe on either version.
    pub fn body(self, url: &str, events: &[&str]) -> Value {
        match self {
            Self::Legacy => json!({
                "name": WEBHOOK_NAME,
                "url": url,
                "events": events,
                "excludeBody": false,
            }),
            Self::Jira10 => json!({
                "name": WEBHOOK_NAME,
                "url": url,
                "events": events,
                "active": true,
                "configuration": { "EXCLUDE_BODY": "false" },
            }),
        }
    }
}

/// A registered webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRegistration {
    /// The resource that accepted it.
    pub api: WebhookApi,
    /// Jira's id of the webhook, when the answer carried one (`id`, or the
    /// last segment of `self`).
    pub id: Option<String>,
}

impl JiraClient {
    /// Registers a webhook delivering `events` to `url`. Tries the legacy
    /// resource, and on 404 the Jira 10 one, each try authorized afresh. The
    /// result names the resource that worked.
    pub async fn register_webhook(
        &self,
        url: &str,
        events: &[&str],
    ) -> Result<WebhookRegistration, JiraError> {
        let mut api = WebhookApi::Legacy;
        let mut answer = self.post_webhook(api, url, events).await?;
        if answer.status == StatusCode::NOT_FOUND {
            tracing::info!("legacy webhook resource not found; trying the Jira 10 resource");
            api = WebhookApi::Jira10;
            answer = self.post_webhook(api, url, events).await?;
        }
        let answer = answer.success()?;
        Ok(WebhookRegistration {
            api,
            id: webhook_id(&answer.body),
        })
    }

    async fn post_webhook(
        &self,
        api: WebhookApi,
        url: &str,
        events: &[&str],
    ) -> Result<super::client::Answer, JiraError> {
        let endpoint = self.endpoint(api.path())?;
        let body = api.body(url, events);
        self.call(Method::POST, endpoint, Some(&body)).await
    }
}

/// The webhook id in a registration answer; `None` for an empty or unknown body
/// (the webhook exists either way: Jira answered 2xx).
fn webhook_id(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    match value.get("id") {
        Some(Value::Number(id)) => return Some(id.to_string()),
        Some(Value::String(id)) if !id.is_empty() => return Some(id.clone()),
        _ => {}
    }
    let self_url = value.get("self")?.as_str()?;
    let last = self_url.trim_end_matches('/').rsplit('/').next()?;
    (!last.is_empty()).then(|| last.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_ids_are_read_from_either_api_shape() {
        let cases = [
            (r#"{"id":12,"name":"jirasync"}"#, Some("12")),
            (r#"{"id":"12"}"#, Some("12")),
            (
                r#"{"self":"https://jira/rest/webhooks/1.0/webhook/7"}"#,
                Some("7"),
            ),
            ("", None),
            ("not json", None),
            ("{}", None),
        ];
        for (body, expected) in cases {
            assert_eq!(webhook_id(body).as_deref(), expected, "case {body:?}");
        }
    }

    #[test]
    fn legacy_body_matches_jira_documented_shape() {
        let body = WebhookApi::Legacy.body("https://x/hook/", &ISSUE_EVENTS);
        assert_eq!(
            body,
            json!({
                "name": "jirasync",
                "url": "https://x/hook/",
                "events": ["jira:issue_created", "jira:issue_updated"],
                "excludeBody": false
            })
        );
    }
}
