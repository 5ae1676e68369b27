//! Jira Cloud's dynamic webhooks (docs/reference.md §11; Atlassian's REST v3
//! `webhook` group): what an OAuth 2.0 (3LO) app registers for itself, through
//! the API gateway, and must refresh before its 30 days run out — register,
//! list (to see whether jirasync's is still there) and refresh.

use chrono::{DateTime, TimeZone, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::JiraClient;
use super::error::JiraError;
use super::webhooks_api::ISSUE_EVENTS;

/// A dynamic webhook as `GET /rest/api/3/webhook` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicWebhook {
    /// Its id.
    pub id: String,
    /// When it expires, when Jira said.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Most pages of the webhook list read: an app has a handful of webhooks.
const MAX_PAGES: usize = 20;

impl JiraClient {
    /// `POST /rest/api/3/webhook`: registers one webhook to `url` for issue
    /// created and updated events matching `jql`; its id
    /// (`webhookRegistrationResult[0].createdWebhookId`). An `errors` entry is
    /// Jira's refusal, quoted.
    pub async fn register_dynamic_webhook(
        &self,
        url: &str,
        jql: &str,
    ) -> Result<String, JiraError> {
        let endpoint = self.rest_endpoint("/webhook")?;
        let body = json!({
            "url": url,
            "webhooks": [{"events": ISSUE_EVENTS, "jqlFilter": jql}],
        });
        let answer = self
            .call(Method::POST, endpoint, Some(&body))
            .await?
            .success()?;
        let answer: Value = parse(&answer.body, "webhook registration")?;
        registered_id(&answer)
    }

    /// `GET /rest/api/3/webhook`, page after page: the webhooks this app
    /// registered on the site.
    pub async fn dynamic_webhooks(&self) -> Result<Vec<DynamicWebhook>, JiraError> {
        let mut found = Vec::new();
        for _ in 0..MAX_PAGES {
            let mut endpoint = self.rest_endpoint("/webhook")?;
            endpoint
                .query_pairs_mut()
                .append_pair("startAt", &found.len().to_string());
            let answer = self.call(Method::GET, endpoint, None).await?.success()?;
            let page: Page = parse(&answer.body, "webhook list")?;
            let read = page.values.len();
            found.extend(page.values.iter().filter_map(listed));
            if read == 0 || page.is_last.unwrap_or(true) {
                return Ok(found);
            }
        }
        Err(JiraError::InvalidResponse {
            reason: format!("the webhook list ran past {MAX_PAGES} pages"),
        })
    }

    /// `PUT /rest/api/3/webhook/refresh` for `id`: its new expiry.
    pub async fn refresh_dynamic_webhook(
        &self,
        id: &str,
    ) -> Result<Option<DateTime<Utc>>, JiraError> {
        let endpoint = self.rest_endpoint("/webhook/refresh")?;
        let id: Value = id
            .parse::<i64>()
            .map_or_else(|_| Value::String(id.to_owned()), Value::from);
        let body = json!({ "webhookIds": [id] });
        let answer = self
            .call(Method::PUT, endpoint, Some(&body))
            .await?
            .success()?;
        let answer: Value = parse(&answer.body, "webhook refresh")?;
        Ok(answer.get("expirationDate").and_then(expiry))
    }
}

/// One page of `GET /rest/api/3/webhook`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    #[serde(default)]
    values: Vec<Value>,
    #[serde(default)]
    is_last: Option<bool>,
}

fn parse<T: serde::de::DeserializeOwned>(body: &str, what: &str) -> Result<T, JiraError> {
    serde_json::from_str(body).map_err(|error| JiraError::InvalidResponse {
        reason: format!("{what} is not the expected JSON: {error}"),
    })
}

/// The id of the webhook a registration created, or Jira's errors quoted.
fn registered_id(answer: &Value) -> Result<String, JiraError> {
    let first = answer
        .get("webhookRegistrationResult")
        .and_then(|results| results.get(0));
    if let Some(errors) = first
        .and_then(|result| result.get("errors"))
        .and_then(Value::as_array)
        .filter(|errors| !errors.is_empty())
    {
        let quoted: Vec<String> = errors
            .iter()
            .map(|error| format!("{:?}", error.as_str().unwrap_or_default()))
            .collect();
        return Err(JiraError::unexpected(
            400,
            &json!({ "errorMessages": quoted }).to_string(),
        ));
    }
    first
        .and_then(|result| result.get("createdWebhookId"))
        .and_then(id_text)
        .ok_or_else(|| JiraError::InvalidResponse {
            reason: "the webhook registration answered no createdWebhookId".to_owned(),
        })
}

/// A listed webhook, when it has an id.
fn listed(value: &Value) -> Option<DynamicWebhook> {
    Some(DynamicWebhook {
        id: value.get("id").and_then(id_text)?,
        expires_at: value.get("expirationDate").and_then(expiry),
    })
}

/// An id written as a number or a string.
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(number) => Some(number.to_string()),
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        _ => None,
    }
}

/// An expiry as Atlassian writes it: epoch milliseconds (its schema) or a date
/// string (its example).
fn expiry(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(ms) => ms
            .as_i64()
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
        Value::String(text) => text
            .parse::<i64>()
            .ok()
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
            .or_else(|| {
                DateTime::parse_from_rfc3339(text)
                    .ok()
                    .map(|at| at.to_utc())
            })
            .or_else(|| super::payload::parse_jira_time(text)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expiry_reads_as_epoch_milliseconds_or_a_date() {
        let at = Utc.timestamp_millis_opt(1_767_225_600_000).single();
        assert_eq!(expiry(&json!(1_767_225_600_000_i64)), at);
        assert_eq!(expiry(&json!("1767225600000")), at);
        assert_eq!(expiry(&json!("2026-01-01T00:00:00Z")), at);
        assert_eq!(expiry(&json!("2026-01-01T00:00:00.000+0000")), at);
        assert_eq!(expiry(&json!("soon")), None);
        assert_eq!(expiry(&json!(null)), None);
    }

    #[test]
    fn a_registration_gives_its_id_or_jiras_errors() {
        let created = json!({"webhookRegistrationResult": [{"createdWebhookId": 1000}]});
        assert_eq!(registered_id(&created).expect("id"), "1000");
        let refused = json!({"webhookRegistrationResult": [{"errors": ["Invalid JQL: x"]}]});
        let error = registered_id(&refused).expect_err("refused");
        assert!(error.to_string().contains("Invalid JQL: x"), "{error}");
        assert!(registered_id(&json!({})).is_err());
    }

    #[test]
    fn listed_webhooks_keep_their_id_and_expiry() {
        let listed: Vec<DynamicWebhook> = [
            json!({"id": 7, "expirationDate": 1_767_225_600_000_i64}),
            json!({"jqlFilter": "project != NULL"}),
        ]
        .iter()
        .filter_map(listed)
        .collect();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, "7");
        assert!(listed[0].expires_at.is_some());
    }
}
