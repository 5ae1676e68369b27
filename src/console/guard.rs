//! The console's layers (docs/reference.md §12.4–§12.6): security headers on
//! every answer, the refusal of cross-site POSTs, and access — a session for the
//! pages (else `303` to the login), a session or the bearer token for `/api/`
//! (else `401`), the CSRF token on every POST made with a session.

use std::collections::HashMap;

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use serde_json::json;

use super::Console;
use super::auth::same_secret;
use crate::ingress::client::Client;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "jirasync_console";
/// The header a script sends the CSRF token in.
const CSRF_HEADER: HeaderName = HeaderName::from_static("x-csrf-token");
/// A form body larger than this is refused (the console's forms are small).
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Scripts only from the console's own files; no frames, no foreign forms.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Who a request behind the login comes from.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A browser's session, with its CSRF token.
    Session {
        /// The session id.
        id: String,
        /// Its CSRF token.
        csrf: String,
    },
    /// A script with the API's bearer token.
    Bearer,
}

impl Caller {
    /// The CSRF token to put in forms (none for a bearer).
    pub fn csrf(&self) -> &str {
        match self {
            Self::Session { csrf, .. } => csrf,
            Self::Bearer => "",
        }
    }
}

/// Adds the security headers to every answer; `no-store` to all but static files.
pub async fn headers(request: Request, next: Next) -> Response {
    let is_static = request.uri().path().starts_with("/static/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !is_static {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Refuses a POST (any method but GET and HEAD) that a browser says comes from
/// another site: `Sec-Fetch-Site` neither `same-origin` nor `none`, or without it
/// an `Origin` that is not the console's own host.
pub async fn cross_site(request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) || same_site(request.headers()) {
        return next.run(request).await;
    }
    tracing::info!(
        client.address = %Client::of(&request).0,
        path = request.uri().path(),
        "console refused a cross-site request"
    );
    (
        StatusCode::FORBIDDEN,
        "403 Forbidden: cross-site requests are refused\n",
    )
        .into_response()
}

fn same_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = origin.to_str().ok();
    match (origin, host) {
        // Behind a TLS-terminating proxy the browser's origin is https.
        (Some(origin), Some(host)) => ["http://", "https://"]
            .iter()
            .any(|scheme| origin.strip_prefix(scheme) == Some(host)),
        _ => false,
    }
}

/// The session of the request's cookie, while it lasts.
fn session(console: &Console, headers: &HeaderMap) -> Option<Caller> {
    let jar = CookieJar::from_headers(headers);
    let id = jar.get(SESSION_COOKIE)?.value();
    let session = console.gate.session(id)?;
    Some(Caller::Session {
        id: id.to_owned(),
        csrf: session.csrf,
    })
}

/// The pages: a session, else `303` to `/login?next=…`; a POST also its CSRF token.
pub async fn page_access(State(console): State<Console>, request: Request, next: Next) -> Response {
    let Some(caller) = session(&console, request.headers()) else {
        let wanted = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let next: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("next", &wanted)
            .finish();
        return Redirect::to(&format!("/login?{next}")).into_response();
    };
    admit(caller, request, next, false).await
}

/// `/api/`: a blocked client `429`; the bearer token or a session, else `401`;
/// a POST with a session also its CSRF token.
pub async fn api_access(State(console): State<Console>, request: Request, next: Next) -> Response {
    let client = Client::of(&request).0;
    if let Some(left) = console.gate.blocked(client) {
        return too_many(left);
    }
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .strip_prefix("Bearer ")
                .unwrap_or("")
                .trim()
                .to_owned()
        });
    let caller = match bearer {
        Some(token) if console.gate.token_matches(&token) => Some(Caller::Bearer),
        Some(_) => {
            console.gate.failed(client);
            tracing::info!(client.address = %client, "console refused a bearer token");
            None
        }
        None => session(&console, request.headers()),
    };
    match caller {
        Some(caller) => admit(caller, request, next, true).await,
        None => unauthorized(),
    }
}

/// `429` with `Retry-After` (whole seconds, rounded up).
pub fn too_many(left: std::time::Duration) -> Response {
    let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, seconds.to_string())],
        Json(json!({"error": "too many failed logins from this address: try again later"})),
    )
        .into_response()
}

/// `401` for `/api/` without credentials.
fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(
            json!({"error": "log in, or send Authorization: Bearer <JIRASYNC_CONSOLE_API_TOKEN>"}),
        ),
    )
        .into_response()
}

/// Lets `caller` through: a GET at once, a session's POST with its CSRF token.
async fn admit(caller: Caller, request: Request, next: Next, api: bool) -> Response {
    let mut request = match (&caller, request.method()) {
        (Caller::Session { csrf, .. }, method)
            if !matches!(*method, Method::GET | Method::HEAD) =>
        {
            match with_csrf(request, csrf).await {
                Ok(request) => request,
                Err(status) => return forbidden(status, api),
            }
        }
        _ => request,
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

fn forbidden(status: StatusCode, api: bool) -> Response {
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "the form is too large",
        _ => "the CSRF token is missing or not this session's: reload the page and try again",
    };
    if api {
        (status, Json(json!({"error": message}))).into_response()
    } else {
        (status, format!("{} {message}\n", status.as_u16())).into_response()
    }
}

/// The request again when it carries `expected` as header `X-CSRF-Token` or as
/// form field `csrf_token`.
async fn with_csrf(request: Request, expected: &str) -> Result<Request, StatusCode> {
    if let Some(given) = request.headers().get(&CSRF_HEADER) {
        return match given.to_str() {
            Ok(given) if same_secret(given, expected) => Ok(request),
            _ => Err(StatusCode::FORBIDDEN),
        };
    }
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE)?;
    let fields: HashMap<String, String> = form_urlencoded::parse(&bytes).into_owned().collect();
    match fields.get("csrf_token") {
        Some(given) if same_secret(given, expected) => {
            Ok(Request::from_parts(parts, Body::from(bytes)))
        }
        _ => Err(StatusCode::FORBIDDEN),
    }
}

/// Any other path.
pub async fn not_found(request: Request) -> Response {
    if request.uri().path().starts_with("/api/") {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such route"})),
        )
            .into_response();
    }
    (StatusCode::NOT_FOUND, "404 Not Found\n").into_response()
}
