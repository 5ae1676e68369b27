//! The ingress's HTTP/1.1 server, under limits that keep hostile or broken clients
//! from taking it down (docs/reference.md §3): a connection cap, a header-read
//! timeout, bounded read buffers, a whole-request timeout, a cap on requests in
//! flight and a budget of body bytes being read, both of which shed load with
//! `503` + `Retry-After` rather than queueing it.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiError;
use super::client::Client;
use crate::shutdown::Shutdown;

/// A client that has not sent its request line and headers by then is disconnected.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Every request is answered within this, its body read included (`408` when the
/// client sends too slowly).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections at most; further clients wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 512;
/// Requests being handled at most; more get `503`.
pub const MAX_IN_FLIGHT: usize = 256;
/// The read buffer of a connection (hyper's default is about 400 KB): a request
/// line and headers larger than this get `431`.
const READ_BUFFER_BYTES: usize = 32 * 1024;
/// Bodies up to this size draw on their own budget, so a flood of large bodies
/// cannot starve Jira's ordinary webhooks (a few KB each).
const SMALL_BODY_BYTES: usize = 64 * 1024;
/// Bytes of small bodies being read at once (128 of the largest).
const SMALL_BODY_BUDGET_BYTES: usize = 128 * SMALL_BODY_BYTES;
/// Bytes of larger bodies being read at once: 8 of the largest, at least 16 MiB.
const LARGE_BODY_BUDGET_MIN_BYTES: usize = 16 * 1024 * 1024;
const LARGE_BODY_BUDGET_BODIES: usize = 8;

/// The limits every request is admitted under.
#[derive(Clone)]
pub struct Admission {
    in_flight: Arc<Semaphore>,
    /// Budgets of body bytes being read, in KiB: small bodies, larger ones.
    small_bodies: Arc<Semaphore>,
    large_bodies: Arc<Semaphore>,
    max_body_bytes: usize,
}

impl Admission {
    /// Limits for bodies of at most `max_body_bytes`.
    pub fn new(max_body_bytes: usize) -> Self {
        let large = LARGE_BODY_BUDGET_MIN_BYTES.max(LARGE_BODY_BUDGET_BODIES * max_body_bytes);
        let kib = |bytes: usize| Arc::new(Semaphore::new(bytes.div_ceil(1024)));
        Self {
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            small_bodies: kib(SMALL_BODY_BUDGET_BYTES),
            large_bodies: kib(large),
            max_body_bytes,
        }
    }

    /// A slot for one request, or `None` when `MAX_IN_FLIGHT` are being handled.
    fn request(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.in_flight).try_acquire_owned().ok()
    }

    /// Room for the body a request with `headers` announces (its
    /// `content-length`, else the largest body), or `None` when its budget is spent.
    pub fn body(&self, headers: &HeaderMap) -> Option<OwnedSemaphorePermit> {
        let announced = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<usize>().ok())
            .unwrap_or(self.max_body_bytes)
            .min(self.max_body_bytes);
        let budget = if announced <= SMALL_BODY_BYTES {
            &self.small_bodies
        } else {
            &self.large_bodies
        };
        let kib = u32::try_from(announced.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        Arc::clone(budget).try_acquire_many_owned(kib).ok()
    }
}

/// A token bucket: `burst` requests at once, then `per_second`. The OAuth
/// callbacks are public and each one they take enqueues a job; this bounds how
/// many an anonymous client can enqueue (the jobs themselves are cheap for a
/// state or token no session holds).
#[derive(Clone)]
pub struct RateLimit(Arc<std::sync::Mutex<(f64, std::time::Instant)>>, f64, f64);

/// Callback requests at once, and per second after that.
pub const CALLBACK_BURST: f64 = 50.0;
pub const CALLBACK_PER_SECOND: f64 = 5.0;

impl RateLimit {
    /// The callbacks' limit.
    pub fn callbacks() -> Self {
        Self(
            Arc::new(std::sync::Mutex::new((
                CALLBACK_BURST,
                std::time::Instant::now(),
            ))),
            CALLBACK_BURST,
            CALLBACK_PER_SECOND,
        )
    }

    /// Takes a token, if there is one.
    fn take(&self) -> bool {
        let Ok(mut bucket) = self.0.lock() else {
            return false;
        };
        let (tokens, last) = &mut *bucket;
        let now = std::time::Instant::now();
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.2).min(self.1);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Middleware of the OAuth callbacks: a token of `limit`, else `429`.
pub async fn rate_limited(limit: RateLimit, request: Request, next: Next) -> Response {
    if !limit.take() {
        metrics::counter!("jirasync_http_shed_total", "reason" => "rate").increment(1);
        return ApiError::TooMany.into_response();
    }
    next.run(request).await
}

/// Every route's admission (run by the edge layer): one of `MAX_IN_FLIGHT`
/// slots, else `503`; an answer within [`REQUEST_TIMEOUT`], else `408`.
pub async fn admitted(admission: &Admission, request: Request, next: Next) -> Response {
    let Some(_slot) = admission.request() else {
        return shed("in_flight");
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!("jirasync_http_timeouts_total").increment(1);
            timed_out()
        }
    }
}

/// A `503` for load shed for `reason`, counted.
pub fn shed(reason: &'static str) -> Response {
    metrics::counter!("jirasync_http_shed_total", "reason" => reason).increment(1);
    ApiError::Overloaded.into_response()
}

/// Serves `app` on `listener` until `shutdown`, then lets open requests finish
/// for up to `drain`.
pub async fn serve(listener: TcpListener, app: Router, shutdown: Shutdown, drain: Duration) {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let open = metrics::gauge!("jirasync_http_connections");
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or the peer gave up: not fatal.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(READ_BUFFER_BYTES);
        let client = Client(peer.ip());
        let tagged = tower::ServiceExt::map_request(app.clone(), move |mut request: Request<_>| {
            request.extensions_mut().insert(client);
            request
        });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(tagged));
        let connection = graceful.watch(connection);
        let open = open.clone();
        open.increment(1.0);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            open.decrement(1.0);
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within the drain deadline");
    }
}

/// The answer of a request that took longer than [`REQUEST_TIMEOUT`].
fn timed_out() -> Response {
    (
        StatusCode::REQUEST_TIMEOUT,
        axum::Json(serde_json::json!({
            "error": "the request took longer than 10 s (a body sent too slowly?)"
        })),
    )
        .into_response()
}
