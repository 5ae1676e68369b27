//! The calls to Atlassian that connecting a Jira Cloud site makes
//! (docs/reference.md §11.3, §11.4): the site's cloudId (`/_edge/tenant_info`),
//! what a site without one is (`serverInfo`), `myself` to check credentials, a
//! service account's client-credentials token and a 3LO app's code and refresh
//! grants at `<AUTH>/oauth/token`, the sites a 3LO token reaches, and the admin
//! webhook. Each is sent once, without redirects; answers are judged as
//! the Jira client judges them (401 → `Unauthorized`, 5xx/429 → `Unavailable`).
//! Used by `connect`, the `jira_cloud.oauth2_token` job and by
//! `Integration::with_jira` (token renewal and refresh).

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::header::{AUTHORIZATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cloud::oauth::Resource;
use crate::jira::auth::bearer;
use crate::jira::client::{MAX_ANSWER_BYTES, read_limited, transport_failure};
use crate::jira::oauth2_flow::{ClientCredentials, Tokens};
use crate::jira::{ISSUE_EVENTS, JiraError};

/// The admin webhook resource under a base URL.
pub const ADMIN_WEBHOOK_PATH: &str = "/rest/webhooks/1.0/webhook";

/// What answers at a `--site`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Site {
    /// Jira Cloud, with its cloudId.
    Cloud(String),
    /// A Jira Server / Data Center (its `deploymentType`).
    DataCenter(String),
    /// No Jira at all.
    NotJira,
}

/// A client-credentials access token.
#[derive(Clone)]
pub struct AccessToken {
    /// The token. Secret.
    pub token: String,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// One answer: its status and (bounded) body.
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: String,
}

impl Answer {
    /// The answer if it is a success, else the matching error.
    fn success(self) -> Result<Self, JiraError> {
        let status = self.status;
        if status.is_success() {
            Ok(self)
        } else if status == StatusCode::TOO_MANY_REQUESTS {
            Err(JiraError::throttled(
                self.retry_after.as_deref(),
                Utc::now(),
            ))
        } else if status.is_server_error() {
            Err(JiraError::unavailable(format!("HTTP {status}"), None))
        } else if status == StatusCode::UNAUTHORIZED {
            Err(JiraError::Unauthorized)
        } else {
            Err(JiraError::unexpected(status.as_u16(), &self.body))
        }
    }

    fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// Sends one request; transport failures become `Unavailable` naming the
/// target (never its query or a header).
async fn send(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    authorization: Option<&str>,
    body: Option<&Value>,
) -> Result<Answer, JiraError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|error| JiraError::Config(format!("URL {url:?}: {error}")))?;
    let target = format!(
        "{method} {}{}",
        parsed.origin().ascii_serialization(),
        parsed.path()
    );
    let mut request = http.request(method, parsed);
    if let Some(authorization) = authorization {
        request = request.header(AUTHORIZATION, authorization);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let failed = |error| transport_failure(error, &target);
    let response = request.send().await.map_err(failed)?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = read_limited(response, MAX_ANSWER_BYTES, &target, failed).await?;
    tracing::debug!(atlassian.request = %target, http.status = status.as_u16(), "Atlassian answered");
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// What `site` is: `GET <site>/_edge/tenant_info` (no auth) gives a Cloud
/// site's cloudId; without one, `GET <site>/rest/api/2/serverInfo` tells a Data
/// Center from no Jira at all. Only an unreachable site is an error.
pub async fn probe(http: &reqwest::Client, site: &str) -> Result<Site, JiraError> {
    let tenant = send(
        http,
        Method::GET,
        &format!("{site}/_edge/tenant_info"),
        None,
        None,
    )
    .await?;
    if tenant.status.is_success()
        && let Some(cloud_id) = tenant
            .json()
            .and_then(|json| json.get("cloudId")?.as_str().map(str::to_owned))
            .filter(|id| is_cloud_id(id))
    {
        return Ok(Site::Cloud(cloud_id));
    }
    let info = send(
        http,
        Method::GET,
        &format!("{site}/rest/api/2/serverInfo"),
        None,
        None,
    )
    .await?;
    let deployment = info
        .status
        .is_success()
        .then(|| info.json())
        .flatten()
        .and_then(|json| json.get("deploymentType")?.as_str().map(str::to_owned));
    Ok(match deployment.as_deref() {
        Some(kind @ ("Server" | "DataCenter")) => Site::DataCenter(kind.to_owned()),
        _ => Site::NotJira,
    })
}

/// A cloudId as it may go into a URL path and the external id: a UUID's
/// characters, at most 64.
pub fn is_cloud_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// `GET <base>/rest/api/3/myself` with `authorization`: `Ok` when Jira answers
/// 2xx; a 401 or 403 is `Unauthorized` / `Unexpected { status: 403 }`.
pub async fn myself(
    http: &reqwest::Client,
    base: &str,
    authorization: &str,
) -> Result<(), JiraError> {
    send(
        http,
        Method::GET,
        &format!("{base}/rest/api/3/myself"),
        Some(authorization),
        None,
    )
    .await?
    .success()?;
    Ok(())
}

/// Whether `error` is a refusal of the credentials (401 or 403).
pub fn is_refused(error: &JiraError) -> bool {
    matches!(error.status(), Some(401 | 403))
}

/// A service account's 60-minute token: `POST <token_url>` JSON
/// `{"grant_type":"client_credentials","client_id","client_secret"}`
/// (§11.3c). A 400, 401 or 403 is an `OAuth2Refused` (the credential is wrong
/// or revoked); 5xx, 429 and transport failures are `Unavailable`.
pub async fn client_credentials(
    http: &reqwest::Client,
    token_url: &str,
    client_id: &str,
    client_secret: &str,
) -> Result<AccessToken, JiraError> {
    let body = json!({
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": client_secret,
    });
    let answer = token_call(http, token_url, &body, |_| SERVICE_ACCOUNT_HINT).await?;
    let json = answer.json().unwrap_or(Value::Null);
    let Some(token) = json
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty())
    else {
        return Err(JiraError::InvalidResponse {
            reason: "Atlassian's token answer carries no access_token".to_owned(),
        });
    };
    // Atlassian documents 60 minutes; an answer without a usable `expires_in`
    // is taken as that, and anything is kept between a minute and a day.
    let expires_in = json
        .get("expires_in")
        .and_then(Value::as_f64)
        .filter(|seconds| seconds.is_finite())
        .map_or(3600, |seconds| seconds.clamp(60.0, 86_400.0) as i64);
    Ok(AccessToken {
        token: token.to_owned(),
        expires_at: Utc::now() + TimeDelta::seconds(expires_in),
    })
}

/// What to check when Atlassian refuses a service account's credential.
const SERVICE_ACCOUNT_HINT: &str = "check the service account's client id and secret \
     (admin.atlassian.com → Directory → Service accounts → its OAuth 2.0 credential), then \
     connect it again";

/// What to check when Atlassian's token endpoint refuses a grant of a 3LO app
/// (`error` as it answered).
pub fn app_hint(error: &str) -> &'static str {
    match error {
        "invalid_grant" => {
            "the authorization code or refresh token is expired, used or revoked: connect \
             again with `jirasync oauth start --cloud …`"
        }
        "invalid_client" | "unauthorized_client" | "access_denied" => {
            "check the app's client id and secret (developer.atlassian.com → Developer console \
             → the app → Settings)"
        }
        "invalid_request" => {
            "check that the app's callback URL (Developer console → the app → Authorization → \
             OAuth 2.0 (3LO)) is JIRASYNC_PUBLIC_URL + /extensions/jira-cloud/oauth2/callback"
        }
        _ => "see the app in Atlassian's developer console (developer.atlassian.com)",
    }
}

/// What a 3LO app's authorization code was exchanged for: the tokens, and
/// the scopes Atlassian granted (space-separated, as it answered them).
#[derive(Debug, Clone)]
pub struct Grant {
    /// The access and (rotating) refresh token. `Debug` redacts them.
    pub tokens: Tokens,
    /// The granted `scope`; empty when the answer has none.
    pub scope: String,
}

/// Exchanges a 3LO app's authorization code: `POST <token_url>` JSON
/// `{"grant_type":"authorization_code","client_id","client_secret","code",
/// "redirect_uri"}` (§11.3b). A refusal is an `OAuth2Refused` with
/// [`app_hint`]; an answer without an access token is `InvalidResponse`.
pub async fn authorization_code(
    http: &reqwest::Client,
    token_url: &str,
    client: ClientCredentials<'_>,
    code: &str,
    redirect_uri: &str,
) -> Result<Grant, JiraError> {
    let body = json!({
        "grant_type": "authorization_code",
        "client_id": client.id,
        "client_secret": client.secret,
        "code": code,
        "redirect_uri": redirect_uri,
    });
    let answer = token_call(http, token_url, &body, app_hint).await?;
    let tokens = tokens(&answer)?;
    if tokens.access_token.is_none() {
        return Err(JiraError::InvalidResponse {
            reason: "Atlassian's token answer carries no access_token".to_owned(),
        });
    }
    let scope = answer
        .json()
        .and_then(|json| json.get("scope")?.as_str().map(str::to_owned))
        .unwrap_or_default();
    Ok(Grant { tokens, scope })
}

/// Refreshes a 3LO integration's token: `POST <token_url>` JSON
/// `{"grant_type":"refresh_token","client_id","client_secret","refresh_token"}`.
/// Atlassian rotates the refresh token: the answer's replaces the one sent,
/// which is dead from now on. Atlassian's `invalid_grant` (a `403`, or a 400 or
/// 401) is an `OAuth2Refused` whose `is_invalid_grant` holds.
pub async fn refresh_token(
    http: &reqwest::Client,
    token_url: &str,
    client: ClientCredentials<'_>,
    refresh_token: &str,
) -> Result<Tokens, JiraError> {
    let body = json!({
        "grant_type": "refresh_token",
        "client_id": client.id,
        "client_secret": client.secret,
        "refresh_token": refresh_token,
    });
    let answer = token_call(http, token_url, &body, app_hint).await?;
    tokens(&answer)
}

/// The tokens of a token endpoint's answer, read leniently ([`Tokens::parse`]).
fn tokens(answer: &Answer) -> Result<Tokens, JiraError> {
    Tokens::parse(&answer.body).ok_or_else(|| JiraError::InvalidResponse {
        reason: "Atlassian's token answer is not a JSON object".to_owned(),
    })
}

/// One call of the token endpoint with a JSON `body`: a 400, 401 or 403 is an
/// `OAuth2Refused` naming Atlassian's `error` (`HTTP <status>` when it names
/// none) with `hint(error)`; any other failure as [`Answer::success`] judges it.
async fn token_call(
    http: &reqwest::Client,
    token_url: &str,
    body: &Value,
    hint: fn(&str) -> &'static str,
) -> Result<Answer, JiraError> {
    let answer = send(http, Method::POST, token_url, None, Some(body)).await?;
    if matches!(answer.status.as_u16(), 400 | 401 | 403) {
        let error = answer
            .json()
            .and_then(|json| json.get("error")?.as_str().map(str::to_owned))
            .filter(|error| {
                error.len() <= 64 && error.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
            .unwrap_or_else(|| format!("HTTP {}", answer.status.as_u16()));
        let hint = hint(&error);
        return Err(JiraError::OAuth2Refused { error, hint });
    }
    answer.success()
}

/// The sites a 3LO access token reaches: `GET <api_url>/oauth/token/accessible-resources`
/// with `Authorization: Bearer <token>`.
pub async fn accessible_resources(
    http: &reqwest::Client,
    api_url: &str,
    access_token: &str,
) -> Result<Vec<Resource>, JiraError> {
    let url = format!(
        "{}/oauth/token/accessible-resources",
        api_url.trim_end_matches('/')
    );
    let answer = send(http, Method::GET, &url, Some(&bearer(access_token)), None)
        .await?
        .success()?;
    serde_json::from_str(&answer.body).map_err(|_| JiraError::InvalidResponse {
        reason: "Atlassian's accessible-resources answer is not a list of sites".to_owned(),
    })
}

/// The admin webhook's registration body (§11.4), exactly.
pub fn admin_webhook_body(url: &str, secret: &str) -> Value {
    json!({
        "name": "jirasync",
        "url": url,
        "events": ISSUE_EVENTS,
        "filters": {"issue-related-events-section": ""},
        "excludeBody": false,
        "secret": secret,
    })
}

/// Registers the admin webhook: `POST <base>/rest/webhooks/1.0/webhook`; its id
/// is the last segment of the answer's `self` (`None` when it has none).
pub async fn register_admin_webhook(
    http: &reqwest::Client,
    base: &str,
    authorization: &str,
    url: &str,
    secret: &str,
) -> Result<Option<String>, JiraError> {
    let body = admin_webhook_body(url, secret);
    let answer = send(
        http,
        Method::POST,
        &format!("{base}{ADMIN_WEBHOOK_PATH}"),
        Some(authorization),
        Some(&body),
    )
    .await?
    .success()?;
    Ok(answer.json().and_then(|json| {
        let self_url = json.get("self")?.as_str()?.trim_end_matches('/').to_owned();
        let last = self_url.rsplit('/').next()?;
        (!last.is_empty()).then(|| last.to_owned())
    }))
}

/// Points the admin webhook `id` at `url` and `secret` again: `PUT
/// <base>/rest/webhooks/1.0/webhook/<id>` with the registration's body. `false`
/// when Jira no longer has it (404: deleted by an admin).
pub async fn update_admin_webhook(
    http: &reqwest::Client,
    base: &str,
    authorization: &str,
    id: &str,
    url: &str,
    secret: &str,
) -> Result<bool, JiraError> {
    let mut endpoint = reqwest::Url::parse(&format!("{base}{ADMIN_WEBHOOK_PATH}"))
        .map_err(|error| JiraError::Config(format!("base URL {base:?}: {error}")))?;
    // One path segment, encoded: a stored id cannot point elsewhere.
    endpoint
        .path_segments_mut()
        .map_err(|()| JiraError::Config("the base URL cannot take a path".to_owned()))?
        .push(id);
    let body = admin_webhook_body(url, secret);
    let answer = send(
        http,
        Method::PUT,
        endpoint.as_str(),
        Some(authorization),
        Some(&body),
    )
    .await?;
    if answer.status == StatusCode::NOT_FOUND {
        return Ok(false);
    }
    answer.success()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_webhook_body_is_atlassians_documented_shape() {
        assert_eq!(
            admin_webhook_body("https://sync.example.org/hook/", "s3cret"),
            json!({
                "name": "jirasync",
                "url": "https://sync.example.org/hook/",
                "events": ["jira:issue_created", "jira:issue_updated"],
                "filters": {"issue-related-events-section": ""},
                "excludeBody": false,
                "secret": "s3cret"
            })
        );
    }

    #[test]
    fn a_cloud_id_is_what_may_go_into_a_path() {
        for (id, ok) in [
            ("0f3a5c2e-1d4b-4c7a-9e8f-0123456789ab", true),
            ("", false),
            ("../x", false),
            ("a/b", false),
            (&"a".repeat(65), false),
        ] {
            assert_eq!(is_cloud_id(id), ok, "case {id:?}");
        }
    }

    #[test]
    fn debug_of_a_token_hides_it() {
        let token = AccessToken {
            token: "tok-123".into(),
            expires_at: Utc::now(),
        };
        assert!(!format!("{token:?}").contains("tok-123"));
    }
}
