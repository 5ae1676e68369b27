//! The one layer every ingress request passes first (`router` installs it): the
//! request's span, its `jirasync_http_*` metrics and its admission
//! ([`server::admitted`]; `/healthz` and `/readyz` bypass it, so a flood never
//! fails a probe). One layer with its metric handles registered once, rather than
//! a tracing layer and two middlewares looking them up per request.

use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Histogram};
use tracing::Instrument;

use super::server::{self, Admission};

/// The route label of a request no route matched.
const UNMATCHED: &str = "unmatched";
/// The routes answered without admission: the probes.
const UNLIMITED: [&str; 2] = ["/healthz", "/readyz"];

/// What the layer shares between requests.
pub struct Edge {
    admission: Admission,
    /// The metrics of each route template, and of unmatched requests.
    routes: Vec<RouteMetrics>,
}

/// The request metrics of one route.
struct RouteMetrics {
    route: String,
    /// Answered without admission (one of [`UNLIMITED`]).
    unlimited: bool,
    /// `jirasync_http_request_duration_seconds`, registered at first use (a
    /// series appears on `/metrics` once a request took that route, as before).
    duration: OnceLock<Histogram>,
    /// `jirasync_http_requests_total` by status, registered at a status's first use.
    requests: RwLock<Vec<(StatusCode, Counter)>>,
}

impl RouteMetrics {
    fn new(route: &str) -> Self {
        Self {
            route: route.to_owned(),
            unlimited: UNLIMITED.contains(&route),
            duration: OnceLock::new(),
            requests: RwLock::new(Vec::new()),
        }
    }

    fn record(&self, status: StatusCode, latency: Duration) {
        self.count(status);
        self.duration
            .get_or_init(|| {
                metrics::histogram!(
                    "jirasync_http_request_duration_seconds",
                    "route" => self.route.clone()
                )
            })
            .record(latency.as_secs_f64());
    }

    fn count(&self, status: StatusCode) {
        let known = |counters: &[(StatusCode, Counter)]| {
            counters
                .iter()
                .find(|(known, _)| *known == status)
                .map(|(_, counter)| counter.clone())
        };
        let counter = self
            .requests
            .read()
            .ok()
            .and_then(|counters| known(&counters));
        let counter = counter.unwrap_or_else(|| {
            let counter = metrics::counter!(
                "jirasync_http_requests_total",
                "route" => self.route.clone(),
                "status" => status.as_u16().to_string()
            );
            if let Ok(mut counters) = self.requests.write()
                && known(&counters).is_none()
            {
                counters.push((status, counter.clone()));
            }
            counter
        });
        counter.increment(1);
    }
}

impl Edge {
    /// The layer's state for `routes` (the route templates) under `admission`.
    /// The Prometheus recorder must be installed before the first request: the
    /// handles taken then are kept.
    pub fn new<'a>(admission: Admission, routes: impl IntoIterator<Item = &'a str>) -> Self {
        let routes = routes
            .into_iter()
            .chain([UNMATCHED])
            .map(RouteMetrics::new)
            .collect();
        Self { admission, routes }
    }

    fn metrics(&self, route: &str) -> Option<&RouteMetrics> {
        self.routes.iter().find(|metrics| metrics.route == route)
    }
}

/// The middleware: the `http.request` span (the route template, never the path:
/// it carries the webhook token), admission, the request metrics, and a warning
/// per `5xx` answer.
pub async fn edge(edge: Arc<Edge>, request: Request, next: Next) -> Response {
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    let span =
        tracing::info_span!("http.request", http.method = %request.method(), http.route = route);
    async {
        tracing::debug!("started processing request");
        let started = Instant::now();
        let unlisted;
        let metrics = match edge.metrics(route) {
            Some(metrics) => metrics,
            // Not a route given to `Edge::new` (none is): the same metrics, looked up now.
            None => {
                unlisted = RouteMetrics::new(route);
                &unlisted
            }
        };
        let response = if metrics.unlimited {
            next.run(request).await
        } else {
            server::admitted(&edge.admission, request, next).await
        };
        let latency = started.elapsed();
        let status = response.status();
        metrics.record(status, latency);
        let latency_ms = latency.as_millis();
        // A 503 is the ingress working as designed (broker down, blocked, not ready
        // yet): the handler says why; a warning, not an error, per failed response.
        if status.is_server_error() {
            tracing::warn!(
                classification = %format_args!("Status code: {status}"),
                latency = %format_args!("{latency_ms} ms"),
                "response failed"
            );
        } else {
            tracing::debug!(
                latency = %format_args!("{latency_ms} ms"),
                status = status.as_u16(),
                "finished processing request"
            );
        }
        response
    }
    .instrument(span)
    .await
}
