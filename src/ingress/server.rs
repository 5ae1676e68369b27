//! The HTTP/1.1 server of the ingress's port and of the metrics listener
//! (`crate::health`), under limits that keep hostile or broken clients from
//! taking it down (docs/reference.md §3): connection caps, overall and per client
//! ([`Connections`]), idle and header-read timeouts, bounded read buffers and a
//! whole-request timeout. The per-request limits are [`Admission`]'s.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tower::Service as _;

use super::client::Client;
use super::connections::{Busy, Conn, Connections, Watched};
use crate::config::{HttpSettings, TrustedProxies};
use crate::shutdown::Shutdown;

pub use super::admission::{Admission, MAX_IN_FLIGHT};
pub use super::connections::IDLE_TIMEOUT;
pub use super::rate::{CALLBACK_BURST, CALLBACK_PER_SECOND, RateLimit, rate_limited};

/// A client that has not sent its request line and headers by then is disconnected.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Every request is answered within this, its body read included (`408` when the
/// client sends too slowly).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections at most; a further one is accepted and closed at once, so
/// none waits in the listen backlog.
pub const MAX_CONNECTIONS: usize = 512;
/// `JIRASYNC_CLIENT_MAX_CONNECTIONS`'s default, for a listener without the
/// ingress's settings (a worker's metrics listener); a test keeps them equal.
pub const DEFAULT_CLIENT_MAX_CONNECTIONS: usize = 128;
/// The read buffer of a connection (hyper's default is about 400 KB): a request
/// line and headers larger than this get `431`.
const READ_BUFFER_BYTES: usize = 32 * 1024;

/// The connection limits of a listener and how it tells a request's client.
#[derive(Clone)]
pub struct Limits {
    /// Open connections per TCP peer (`JIRASYNC_CLIENT_MAX_CONNECTIONS`).
    pub client_max_connections: usize,
    /// Whose `X-Forwarded-For` names the client (`JIRASYNC_TRUSTED_PROXIES`).
    pub trusted_proxies: Arc<TrustedProxies>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            client_max_connections: DEFAULT_CLIENT_MAX_CONNECTIONS,
            trusted_proxies: Arc::default(),
        }
    }
}

impl Limits {
    /// The ingress's port's limits.
    pub fn of(http: &HttpSettings) -> Self {
        Self {
            client_max_connections: usize::try_from(http.client_max_connections)
                .unwrap_or(DEFAULT_CLIENT_MAX_CONNECTIONS),
            trusted_proxies: Arc::new(http.trusted_proxies.clone()),
        }
    }
}

/// Every admitted route's admission (run by the edge layer): a slot of the
/// client and of the ingress, else `429` or `503`; an answer within
/// [`REQUEST_TIMEOUT`], else `408`.
pub async fn admitted(admission: &Admission, request: Request, next: Next) -> Response {
    let _slot = match admission.request(Client::of(&request)) {
        Ok(slot) => slot,
        Err(shed) => return shed.into_response(),
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!("jirasync_http_timeouts_total").increment(1);
            timed_out()
        }
    }
}

/// Serves `app` on `listener` under `limits` until `shutdown`, then lets open
/// requests finish for up to `drain`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: Limits,
    shutdown: Shutdown,
    drain: Duration,
) {
    let connections = Connections::new(MAX_CONNECTIONS, limits.client_max_connections);
    let graceful = GracefulShutdown::new();
    let open = metrics::gauge!("jirasync_http_connections");
    let refused = metrics::counter!("jirasync_http_shed_total", "reason" => "client_connections");
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(READ_BUFFER_BYTES);
    loop {
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
        let peer = peer.ip().to_canonical();
        // Accepted and closed rather than left in the backlog, where it would
        // hold up the clients queued behind it.
        let Some(held) = connections.open(peer) else {
            refused.increment(1);
            drop(stream);
            continue;
        };
        let conn = Arc::clone(held.conn());
        let service = Tagging {
            app: app.clone(),
            conn: Arc::clone(&conn),
            peer,
            trusted: Arc::clone(&limits.trusted_proxies),
        };
        let io = TokioIo::new(Watched::new(stream, Arc::clone(&conn)));
        let connection = graceful.watch(http.serve_connection(io, service));
        let (open, refused) = (open.clone(), refused.clone());
        open.increment(1.0);
        tokio::spawn(async move {
            tokio::select! {
                ended = connection => if let Err(error) = ended {
                    tracing::debug!(%error, "connection ended with an error");
                },
                // Dropping the connection closes its socket.
                () = conn.evicted() => {
                    refused.increment(1);
                    tracing::debug!("connection closed: its client opened a newer one");
                }
            }
            open.decrement(1.0);
            drop(held);
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

/// The service of one connection: tags each request with its [`Client`] and
/// marks the connection busy while the request is handled.
struct Tagging {
    app: Router,
    conn: Arc<Conn>,
    peer: IpAddr,
    trusted: Arc<TrustedProxies>,
}

impl hyper::service::Service<Request<Incoming>> for Tagging {
    type Response = Response;
    type Error = Infallible;
    type Future = Handling;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let client = Client::resolve(self.peer, request.headers(), &self.trusted);
        request.extensions_mut().insert(client);
        Handling {
            _busy: self.conn.busy(),
            future: self.app.clone().call(request),
        }
    }
}

/// A request being handled, its connection busy until it is answered.
struct Handling {
    _busy: Busy,
    future: axum::routing::future::RouteFuture<Infallible>,
}

impl Future for Handling {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.get_mut().future).poll(cx)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_without_settings_has_the_settings_default_limits() {
        let settings = crate::config::Settings::defaults();
        let limits = Limits::of(&settings.http);
        assert_eq!(
            limits.client_max_connections,
            Limits::default().client_max_connections
        );
        assert_eq!(*limits.trusted_proxies, TrustedProxies::default());
    }
}
