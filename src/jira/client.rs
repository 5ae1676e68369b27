//! A small Jira Server client on reqwest: configuration and the transport every
//! call goes through — REST calls with the client's [`Auth`] (OAuth 1.0a, or a
//! bearer OAuth 2.0 access token or personal access token), the OAuth 1.0a install
//! steps signed with the consumer key, and the OAuth 2.0 token endpoint's form
//! posts. The calls themselves live in `oauth1_flow.rs`, `oauth2_flow.rs`,
//! `webhooks_api.rs`, `server.rs`, `user.rs`, `status.rs`, `search.rs` and
//! `issue.rs`. Every request is authorized afresh (an OAuth 1.0a signature gets
//! a new nonce and timestamp) and sent once: no automatic retries, no redirects.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};

use super::auth::Auth;
use super::error::{JiraError, problem_from_www_authenticate};
use super::form;
use super::oauth1_signing::OAuthParams;

/// How the client talks to Jira.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Verify Jira's TLS certificate; `false` accepts any (self-signed test instances).
    pub verify_ssl: bool,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
    /// Limit for a whole request, from sending to the last byte of the answer.
    pub request_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            verify_ssl: true,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
        }
    }
}

/// A Jira Server instance and how to authenticate to it.
#[derive(Debug, Clone)]
pub struct JiraClient {
    /// The base URL without a trailing slash, e.g. `https://jira.example.com/jira`.
    base_url: String,
    http: reqwest::Client,
    auth: Auth,
    /// Whether a `429` is waited out here ([`JiraClient::waiting_out_429`]).
    waits_out_429: bool,
    /// Whether this is Jira Cloud: REST API v3, users by `accountId`
    /// ([`JiraClient::for_cloud`]).
    cloud: bool,
}

/// How often one call waits out a `429` before its answer is the caller's
/// (docs/reference.md §11).
const MAX_429_WAITS: u32 = 3;
/// The longest `Retry-After` waited out in the call; a longer one goes to the
/// caller (a job: the retry tiers, which do not hold a worker's slot meanwhile).
const MAX_429_WAIT: Duration = Duration::from_secs(60);

/// What a request carries.
enum Body<'a> {
    None,
    Json(&'a serde_json::Value),
    Form(&'a [(&'a str, &'a str)]),
}

/// A raw answer, before it is judged.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) status: StatusCode,
    www_authenticate: Option<String>,
    retry_after: Option<String>,
    pub(super) body: String,
}

impl Answer {
    /// The answer if it is a success, else the matching error.
    pub(super) fn success(self) -> Result<Self, JiraError> {
        let status = self.status;
        if status.is_success() {
            return Ok(self);
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(JiraError::throttled(
                self.retry_after.as_deref(),
                chrono::Utc::now(),
            ));
        }
        if status.is_server_error() {
            return Err(JiraError::unavailable(format!("HTTP {status}"), None));
        }
        let problem = form::get(&form::parse(&self.body), "oauth_problem")
            .map(str::to_owned)
            .or_else(|| {
                self.www_authenticate
                    .as_deref()
                    .and_then(problem_from_www_authenticate)
            });
        match problem {
            Some(problem) if status.is_client_error() => Err(JiraError::refused(&problem)),
            None if status == StatusCode::UNAUTHORIZED => Err(JiraError::Unauthorized),
            _ => Err(JiraError::unexpected(status.as_u16(), &self.body)),
        }
    }
}

impl JiraClient {
    /// A client for the Jira at `base_url` (`http` or `https`, optionally with a
    /// context path), authenticating with `auth`, on an HTTP client of its own.
    pub fn new(base_url: &str, auth: Auth, options: &ClientOptions) -> Result<Self, JiraError> {
        let base_url = checked_base_url(base_url)?;
        Ok(Self {
            base_url,
            http: http_client(options)?,
            auth,
            waits_out_429: false,
            cloud: false,
        })
    }

    /// As [`JiraClient::new`], on the HTTP client `shared` holds for `options`:
    /// its connections are kept between calls, and its TLS roots loaded once.
    pub fn shared(
        shared: &HttpClients,
        base_url: &str,
        auth: Auth,
        options: &ClientOptions,
    ) -> Result<Self, JiraError> {
        let base_url = checked_base_url(base_url)?;
        Ok(Self {
            base_url,
            http: shared.get(options)?,
            auth,
            waits_out_429: false,
            cloud: false,
        })
    }

    /// The same client for a Jira Cloud site (docs/reference.md §11): the calls
    /// outbound sync and reconciliation make go to REST API v3 and name users by
    /// `accountId`, and a `429` is waited out ([`JiraClient::waiting_out_429`]).
    pub fn for_cloud(self) -> Self {
        Self {
            cloud: true,
            ..self
        }
        .waiting_out_429(true)
    }

    /// Whether this client speaks to Jira Cloud.
    pub fn is_cloud(&self) -> bool {
        self.cloud
    }

    /// The same client, waiting out a `429` in each REST call (`true`) — Jira
    /// Cloud's rate limits: `Retry-After` seconds (5 when absent), at most
    /// [`MAX_429_WAITS`] times; a longer wait, or a fourth `429`, is the
    /// caller's to handle — or handing every `429` to the caller at once
    /// (`false`, the default; what a push wants: it stores the wait for every
    /// worker, docs/reference.md §10.8).
    pub fn waiting_out_429(self, wait: bool) -> Self {
        Self {
            waits_out_429: wait,
            ..self
        }
    }

    /// `/rest/api/2` (Data Center) or `/rest/api/3` (Cloud) + `tail`.
    pub(super) fn rest_endpoint(&self, tail: &str) -> Result<Url, JiraError> {
        let version = if self.cloud { 3 } else { 2 };
        self.endpoint(&format!("/rest/api/{version}{tail}"))
    }

    /// The same Jira, now authenticating with `auth` (e.g. the access token the
    /// install flow just obtained).
    pub fn with_auth(&self, auth: Auth) -> Self {
        Self {
            auth,
            ..self.clone()
        }
    }

    /// How this client authenticates.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `base_url` + `path` (which starts with `/`).
    pub(super) fn endpoint(&self, path: &str) -> Result<Url, JiraError> {
        let url = format!("{}{path}", self.base_url);
        Url::parse(&url).map_err(|error| JiraError::Config(format!("URL {url:?}: {error}")))
    }

    /// One REST call authorized with the client's [`Auth`] (afresh for each
    /// try when a `429` is waited out).
    pub(super) async fn call(
        &self,
        method: Method,
        url: Url,
        json: Option<&serde_json::Value>,
    ) -> Result<Answer, JiraError> {
        let mut waits = 0;
        loop {
            let authorization = self.auth.authorization(&method, &url)?;
            let answer = self
                .send(method.clone(), url.clone(), json, Some(authorization))
                .await?;
            if !self.waits_out_429
                || answer.status != StatusCode::TOO_MANY_REQUESTS
                || waits == MAX_429_WAITS
            {
                return Ok(answer);
            }
            let wait = super::error::retry_after(answer.retry_after.as_deref(), chrono::Utc::now());
            if wait > MAX_429_WAIT {
                return Ok(answer);
            }
            waits += 1;
            tracing::info!(
                wait_s = wait.as_secs_f64(),
                jira.path = url.path(),
                "Jira asked for no calls for a while (HTTP 429); waiting, then trying again"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One step of the OAuth 1.0a install flow, signed with the consumer key and
    /// `params` (callback, request token, verifier).
    pub(super) async fn send_signed(
        &self,
        method: Method,
        url: Url,
        params: &OAuthParams<'_>,
    ) -> Result<Answer, JiraError> {
        let authorization = self
            .auth
            .signer()?
            .authorization_header(&method, &url, &[], params)?;
        self.send(method, url, None, Some(authorization)).await
    }

    /// A form POST without an `Authorization` header (the OAuth 2.0 token
    /// endpoint, which takes the client's credentials in the form).
    pub(super) async fn post_form(
        &self,
        url: Url,
        form: &[(&str, &str)],
    ) -> Result<Answer, JiraError> {
        self.send_request(Method::POST, url, Body::Form(form), None)
            .await
    }

    /// Sends one request with `authorization` and a JSON body, if any.
    async fn send(
        &self,
        method: Method,
        url: Url,
        json: Option<&serde_json::Value>,
        authorization: Option<String>,
    ) -> Result<Answer, JiraError> {
        let body = json.map_or(Body::None, Body::Json);
        self.send_request(method, url, body, authorization).await
    }

    /// Sends one request; transport failures become `Unavailable`, any answer
    /// is returned as it is.
    async fn send_request(
        &self,
        method: Method,
        url: Url,
        body: Body<'_>,
        authorization: Option<String>,
    ) -> Result<Answer, JiraError> {
        let target = format!(
            "{method} {}{}",
            url.origin().ascii_serialization(),
            url.path()
        );
        let mut request = self.http.request(method, url);
        if let Some(authorization) = authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        request = match body {
            Body::None => request,
            Body::Json(json) => request.json(json),
            Body::Form(form) => request.form(form),
        };
        let started = Instant::now();
        let failed = |error| transport_failure(error, &target);
        let response = request.send().await.map_err(failed)?;
        let status = response.status();
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let (www_authenticate, retry_after) = (header(WWW_AUTHENTICATE), header(RETRY_AFTER));
        let body = read_limited(response, MAX_ANSWER_BYTES, &target, failed).await?;
        tracing::debug!(
            jira.request = %target,
            http.status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis(),
            "jira answered"
        );
        Ok(Answer {
            status,
            www_authenticate,
            retry_after,
            body,
        })
    }
}

/// `base_url` without a trailing slash, once it is known to be an `http(s)` URL
/// without credentials, query or fragment. Messages show the URL only once it
/// is known to carry no credentials.
fn checked_base_url(base_url: &str) -> Result<String, JiraError> {
    let base_url = base_url.trim().trim_end_matches('/').to_owned();
    let parsed = Url::parse(&base_url)
        .map_err(|error| JiraError::Config(format!("base URL is not a URL: {error}")))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(JiraError::Config(
            "base URL must not contain credentials".to_owned(),
        ));
    }
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
    {
        return Err(JiraError::Config(format!(
            "base URL {base_url:?} must be http(s)://host[:port][/path] without query"
        )));
    }
    Ok(base_url)
}

/// An HTTP client with `options`. Building one loads the TLS roots (milliseconds
/// of CPU) and starts an empty connection pool: what calls often keeps one
/// ([`HttpClients`]).
fn http_client(options: &ClientOptions) -> Result<reqwest::Client, JiraError> {
    reqwest::Client::builder()
        .user_agent(concat!("jirasync/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(options.connect_timeout)
        .timeout(options.request_timeout)
        .tls_danger_accept_invalid_certs(!options.verify_ssl)
        // A replayed OAuth request is refused by Jira (nonce_used), and a
        // redirect would invalidate the signed URL: the caller decides.
        .retry(reqwest::retry::never())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| JiraError::Config(format!("HTTP client: {error}")))
}

/// The HTTP clients a process's Jira calls share, one per [`ClientOptions`]
/// (in practice two: certificates verified or not), built on first use. Each
/// keeps its connections to every Jira between calls. A pooled connection runs
/// on the Tokio runtime that opened it: keep one `HttpClients` per runtime (the
/// database pool holds it), never in a static.
#[derive(Debug, Default)]
pub struct HttpClients {
    clients: Mutex<Vec<(ClientOptions, reqwest::Client)>>,
}

impl HttpClients {
    /// The client for `options`, built now if it is the first.
    pub fn get(&self, options: &ClientOptions) -> Result<reqwest::Client, JiraError> {
        // A std lock: held to look up or insert, never across an await.
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, client)) = clients.iter().find(|(held, _)| held == options) {
            return Ok(client.clone());
        }
        let client = http_client(options)?;
        clients.push((options.clone(), client.clone()));
        Ok(client)
    }
}

/// A request to `target` (`METHOD origin/path`, never its query or a header)
/// that got no answer: `Unavailable`, saying whether it timed out, could not
/// connect or failed otherwise.
pub(crate) fn transport_failure(error: reqwest::Error, target: &str) -> JiraError {
    let what = if error.is_timeout() {
        "no answer in time"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    JiraError::unavailable(format!("{what} ({target})"), Some(error))
}

/// The largest answer read from Jira; a larger one is refused, not buffered.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// The body of `response`, at most `limit` bytes (lossy UTF-8); a larger one is
/// an `InvalidResponse`, read no further; a transport failure goes through `failed`.
pub(crate) async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
    target: &str,
    failed: impl Fn(reqwest::Error) -> JiraError,
) -> Result<String, JiraError> {
    let too_large = || JiraError::InvalidResponse {
        reason: format!("the answer of {target} is larger than {limit} bytes"),
    };
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(&failed)? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = include_str!("../../tests/fixtures/jira_test_key.pem");

    fn client(base: &str) -> Result<JiraClient, JiraError> {
        let signer = crate::jira::Signer::from_pem("jirasync", KEY).expect("test key loads");
        JiraClient::new(base, Auth::oauth1(signer), &ClientOptions::default())
    }

    #[test]
    fn authorize_url_keeps_the_context_path_and_encodes_the_token() {
        let client = client("https://jira.example.com/jira/").expect("valid base URL");
        assert_eq!(
            client.authorize_url("a+b/c"),
            "https://jira.example.com/jira/plugins/servlet/oauth/authorize?oauth_token=a%2Bb%2Fc"
        );
    }

    #[test]
    fn unusable_base_urls_are_refused_without_echoing_credentials() {
        for base in [
            "jira.example.com",
            "ftp://jira",
            "https://jira/?x=1",
            "https://jira/#f",
            "https://user:pw@jira",
            "",
        ] {
            assert!(
                matches!(client(base), Err(JiraError::Config(_))),
                "case {base:?}"
            );
        }
    }
}
