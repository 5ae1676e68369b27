//! Registers the issue webhook in Jira: `POST /rest/webhooks/1.0/webhook`
//! (Jira ≤ 9, Sentry's call) or Jira 10's `POST /rest/jira-webhook/1.0/webhooks`,
//! each in its own JSON, the other tried once on 404; and updates a registered one
//! (`PUT <resource>/<id>` with the same body, as Jira documents it) when its URL and
//! secret rotate. Called by `integration::webhook_registration`, which picks the API by the
//! Jira's version (or the resource recorded at registration).

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
    /// The resource of a Jira whose major version is `major` (0: unknown, the legacy one).
    pub fn for_version(major: u32) -> Self {
        if major >= 10 {
            Self::Jira10
        } else {
            Self::Legacy
        }
    }

    /// Whether this resource takes a secret to sign deliveries with
    /// (`X-Hub-Signature`): Jira 10's does, in `configuration.SECRET`.
    pub fn takes_secret(self) -> bool {
        self == Self::Jira10
    }

    /// The other resource.
    fn other(self) -> Self {
        match self {
            Self::Legacy => Self::Jira10,
            Self::Jira10 => Self::Legacy,
        }
    }

    /// The resource a registration recorded (`metadata.webhook_path`), if it is one.
    pub fn from_path(path: &str) -> Option<Self> {
        [Self::Legacy, Self::Jira10]
            .into_iter()
            .find(|api| api.path() == path)
    }

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
    /// `configuration` with upper-case keys and silently ignores them in the old
    /// format (JRASERVER-78733); its `SECRET` signs every delivery.
    pub fn body(self, url: &str, events: &[&str], secret: Option<&str>) -> Value {
        match self {
            Self::Legacy => json!({
                "name": WEBHOOK_NAME,
                "url": url,
                "events": events,
                "excludeBody": false,
            }),
            Self::Jira10 => {
                let mut configuration = json!({ "EXCLUDE_BODY": "false" });
                if let Some(secret) = secret {
                    configuration["SECRET"] = json!(secret);
                }
                json!({
                    "name": WEBHOOK_NAME,
                    "url": url,
                    "events": events,
                    "active": true,
                    "configuration": configuration,
                })
            }
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
    /// Whether deliveries are signed with the secret given.
    pub signed: bool,
}

impl JiraClient {
    /// Registers a webhook delivering `events` to `url` on `api`, signed with
    /// `secret` where the resource takes one; on 404 once more on the other
    /// resource (a version Jira misreported), each try authorized afresh. The
    /// result names the resource that worked.
    pub async fn register_webhook(
        &self,
        api: WebhookApi,
        url: &str,
        events: &[&str],
        secret: Option<&str>,
    ) -> Result<WebhookRegistration, JiraError> {
        let mut api = api;
        let mut answer = self.post_webhook(api, url, events, secret).await?;
        if answer.status == StatusCode::NOT_FOUND {
            tracing::info!(webhook.api = ?api, "webhook resource not found; trying the other one");
            api = api.other();
            answer = self.post_webhook(api, url, events, secret).await?;
        }
        let answer = answer.success()?;
        Ok(WebhookRegistration {
            api,
            id: webhook_id(&answer.body),
            signed: secret.is_some() && api.takes_secret(),
        })
    }

    /// Changes the webhook `id` registered on `api` to deliver `events` to `url`,
    /// signed with `secret` where the resource takes one: `PUT <resource>/<id>` with
    /// the registration's body. An error when Jira refuses (e.g. 403 for want of
    /// admin rights, 404 when the webhook was deleted in Jira).
    pub async fn update_webhook(
        &self,
        api: WebhookApi,
        id: &str,
        url: &str,
        events: &[&str],
        secret: Option<&str>,
    ) -> Result<(), JiraError> {
        let mut endpoint = self.endpoint(api.path())?;
        // One path segment, encoded: a stored id cannot point elsewhere in Jira.
        endpoint
            .path_segments_mut()
            .map_err(|()| JiraError::Config("the Jira base URL cannot take a path".to_owned()))?
            .push(id);
        let body = api.body(url, events, secret);
        self.call(Method::PUT, endpoint, Some(&body))
            .await?
            .success()?;
        Ok(())
    }

    async fn post_webhook(
        &self,
        api: WebhookApi,
        url: &str,
        events: &[&str],
        secret: Option<&str>,
    ) -> Result<super::client::Answer, JiraError> {
        let endpoint = self.endpoint(api.path())?;
        let body = api.body(url, events, secret);
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
        let body = WebhookApi::Legacy.body("https://x/hook/", &ISSUE_EVENTS, Some("s"));
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

    #[test]
    fn jira_10_gets_its_own_shape_with_the_secret_in_configuration() {
        let body = WebhookApi::Jira10.body("https://x/hook/", &ISSUE_EVENTS, Some("s3cret"));
        assert_eq!(
            body["configuration"],
            json!({"EXCLUDE_BODY": "false", "SECRET": "s3cret"})
        );
        assert_eq!(body["active"], json!(true));
        assert_eq!(WebhookApi::for_version(9), WebhookApi::Legacy);
        assert_eq!(WebhookApi::for_version(10), WebhookApi::Jira10);
        assert_eq!(WebhookApi::for_version(11), WebhookApi::Jira10);
    }

    #[test]
    fn a_recorded_path_names_its_resource() {
        for api in [WebhookApi::Legacy, WebhookApi::Jira10] {
            assert_eq!(WebhookApi::from_path(api.path()), Some(api));
        }
        assert_eq!(WebhookApi::from_path("/rest/other"), None);
    }
}
