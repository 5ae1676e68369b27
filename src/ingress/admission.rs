//! What a request is admitted under (docs/reference.md §3): one of
//! [`MAX_IN_FLIGHT`] slots and one of its client's `JIRASYNC_CLIENT_MAX_IN_FLIGHT`
//! (the edge layer takes them), and, for a webhook, room for its body in a budget
//! of body bytes being read and in its client's quarter of that budget (the
//! webhook route takes it). Beyond a global limit `503`, beyond a client's `429`,
//! both with `Retry-After`; and a body silent for [`BODY_STALL_TIMEOUT`] is cut.

use std::collections::HashMap;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Frame;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

use super::client::Client;
use super::error::ApiError;

/// Requests being handled at most; more get `503`.
pub const MAX_IN_FLIGHT: usize = 256;
/// A body that sends no byte for this long gets `408` and its connection is closed.
pub const BODY_STALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Bodies up to this size draw on their own budget, so a flood of large bodies
/// cannot starve Jira's ordinary webhooks (a few KB each).
const SMALL_BODY_BYTES: usize = 64 * 1024;
/// Bytes of small bodies being read at once (128 of the largest).
const SMALL_BODY_BUDGET_BYTES: usize = 128 * SMALL_BODY_BYTES;
/// Bytes of larger bodies being read at once: 8 of the largest, at least 16 MiB.
const LARGE_BODY_BUDGET_MIN_BYTES: usize = 16 * 1024 * 1024;
const LARGE_BODY_BUDGET_BODIES: usize = 8;
/// A client may hold this share of each body budget.
const CLIENT_BUDGET_SHARE: u32 = 4;
/// Clients tracked at most. Each entry lives while its client has a request in
/// flight, and HTTP/1 carries one per connection, so the connection cap keeps the
/// table far below this; the cap keeps it bounded whatever changes.
const MAX_TRACKED_CLIENTS: usize = 4096;

/// Why a request was refused: the `reason` of `jirasync_http_shed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// [`MAX_IN_FLIGHT`] requests are being handled (`503`).
    InFlight,
    /// The body budget is spent (`503`).
    BodyBudget,
    /// The client has `JIRASYNC_CLIENT_MAX_IN_FLIGHT` requests in flight (`429`).
    ClientInFlight,
    /// The client's share of the body budget is spent (`429`).
    ClientBodyBudget,
}

impl Shed {
    /// The metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Self::InFlight => "in_flight",
            Self::BodyBudget => "body_budget",
            Self::ClientInFlight => "client_in_flight",
            Self::ClientBodyBudget => "client_body_budget",
        }
    }
}

impl IntoResponse for Shed {
    /// Counted; `503` for the ingress's limits, `429` for the client's own.
    fn into_response(self) -> Response {
        metrics::counter!("jirasync_http_shed_total", "reason" => self.reason()).increment(1);
        match self {
            Self::InFlight | Self::BodyBudget => ApiError::Overloaded.into_response(),
            Self::ClientInFlight | Self::ClientBodyBudget => ApiError::TooMany.into_response(),
        }
    }
}

/// The limits every request is admitted under.
#[derive(Clone)]
pub struct Admission {
    in_flight: Arc<Semaphore>,
    /// Budgets of body bytes being read, in KiB: small bodies, larger ones.
    budgets: [Arc<Semaphore>; 2],
    max_body_bytes: usize,
    clients: Arc<Clients>,
}

/// What each client holds.
struct Clients {
    max_in_flight: u32,
    /// A client's share of each budget, in KiB.
    shares: [u32; 2],
    /// A std lock: held for one map lookup, never across an await.
    used: Mutex<HashMap<Client, Used>>,
}

#[derive(Default)]
struct Used {
    in_flight: u32,
    kib: [u32; 2],
}

/// What a [`Hold`] holds of its client's limits.
enum Held {
    Request,
    Body(usize, u32),
}

/// A client's request slot or body room, given back when dropped (the entry
/// goes once its client holds nothing).
struct Hold {
    clients: Arc<Clients>,
    client: Client,
    held: Held,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let Ok(mut used) = self.clients.used.lock() else {
            return;
        };
        let Some(entry) = used.get_mut(&self.client) else {
            return;
        };
        match self.held {
            Held::Request => entry.in_flight = entry.in_flight.saturating_sub(1),
            Held::Body(budget, kib) => entry.kib[budget] = entry.kib[budget].saturating_sub(kib),
        }
        if entry.in_flight == 0 && entry.kib == [0, 0] {
            used.remove(&self.client);
        }
    }
}

impl Clients {
    /// Takes `held` for `client` when its limit allows.
    fn take(self: &Arc<Self>, client: Client, held: Held) -> Result<Hold, Shed> {
        let refused = match held {
            Held::Request => Shed::ClientInFlight,
            Held::Body(..) => Shed::ClientBodyBudget,
        };
        let mut used = self.used.lock().map_err(|_| refused)?;
        if used.len() >= MAX_TRACKED_CLIENTS && !used.contains_key(&client) {
            return Err(refused);
        }
        let entry = used.entry(client).or_default();
        let fits = match held {
            Held::Request if entry.in_flight < self.max_in_flight => {
                entry.in_flight += 1;
                true
            }
            Held::Body(budget, kib) if entry.kib[budget] + kib <= self.shares[budget] => {
                entry.kib[budget] += kib;
                true
            }
            _ => false,
        };
        if !fits {
            // An entry made just now for this refusal holds nothing: not kept.
            if entry.in_flight == 0 && entry.kib == [0, 0] {
                used.remove(&client);
            }
            return Err(refused);
        }
        drop(used);
        Ok(Hold {
            clients: Arc::clone(self),
            client,
            held,
        })
    }
}

/// A request's place among those in flight.
pub struct Slot {
    _client: Hold,
    _global: OwnedSemaphorePermit,
}

/// Room for a body being read.
pub struct Room {
    _client: Hold,
    _global: OwnedSemaphorePermit,
}

impl Admission {
    /// Limits for bodies of at most `max_body_bytes`, `client_max_in_flight`
    /// requests per client.
    pub fn new(max_body_bytes: usize, client_max_in_flight: u32) -> Self {
        let large = LARGE_BODY_BUDGET_MIN_BYTES.max(LARGE_BODY_BUDGET_BODIES * max_body_bytes);
        let kib = |bytes: usize| u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        let budgets = [kib(SMALL_BODY_BUDGET_BYTES), kib(large)];
        Self {
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            budgets: budgets.map(|kib| Arc::new(Semaphore::new(kib as usize))),
            max_body_bytes,
            clients: Arc::new(Clients {
                max_in_flight: client_max_in_flight.max(1),
                shares: budgets.map(|kib| kib / CLIENT_BUDGET_SHARE),
                used: Mutex::default(),
            }),
        }
    }

    /// A slot for one request of `client`: its own limit first (`429`), then the
    /// ingress's (`503`).
    pub fn request(&self, client: Client) -> Result<Slot, Shed> {
        let own = self.clients.take(client, Held::Request)?;
        let global = Arc::clone(&self.in_flight)
            .try_acquire_owned()
            .map_err(|_| Shed::InFlight)?;
        Ok(Slot {
            _client: own,
            _global: global,
        })
    }

    /// Room for the body a request of `client` with `headers` announces (its
    /// `content-length`, else the largest body): in the client's share first
    /// (`429`), then in the budget (`503`).
    pub fn body(&self, client: Client, headers: &HeaderMap) -> Result<Room, Shed> {
        let announced = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<usize>().ok())
            .unwrap_or(self.max_body_bytes)
            .min(self.max_body_bytes);
        let budget = usize::from(announced > SMALL_BODY_BYTES);
        let kib = u32::try_from(announced.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        let own = self.clients.take(client, Held::Body(budget, kib))?;
        let global = Arc::clone(&self.budgets[budget])
            .try_acquire_many_owned(kib)
            .map_err(|_| Shed::BodyBudget)?;
        Ok(Room {
            _client: own,
            _global: global,
        })
    }
}

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Over the limit.
    TooLarge,
    /// No byte for [`BODY_STALL_TIMEOUT`]: answer [`stalled`].
    Stalled,
    /// The connection broke, or the chunked framing is wrong.
    Unreadable,
}

/// Reads `body` whole, at most `limit` bytes, cutting it off when it is silent
/// for [`BODY_STALL_TIMEOUT`].
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let watched = Stalling {
        inner: body,
        timer: None,
        armed: false,
    };
    match Limited::new(watched, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(BodyError::TooLarge),
        Err(error) if error.is::<StalledBody>() => Err(BodyError::Stalled),
        Err(_) => Err(BodyError::Unreadable),
    }
}

/// The answer to a stalled body: `408`, and the connection closed (the rest of
/// the body is not waited for).
pub fn stalled() -> Response {
    metrics::counter!("jirasync_http_timeouts_total").increment(1);
    let mut response = ApiError::BadRequest(
        StatusCode::REQUEST_TIMEOUT,
        format!(
            "no byte of the body arrived for {} s",
            BODY_STALL_TIMEOUT.as_secs()
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The error of a body silent for too long.
#[derive(Debug, thiserror::Error)]
#[error("no byte of the body arrived for {0:?}")]
struct StalledBody(Duration);

/// A body that fails with [`StalledBody`] when no frame arrives for
/// [`BODY_STALL_TIMEOUT`]. The timer is made at the first wait only: a body that
/// came with its headers costs none.
struct Stalling {
    inner: Body,
    timer: Option<Pin<Box<Sleep>>>,
    /// The timer runs for the current wait.
    armed: bool,
}

impl hyper::body::Body for Stalling {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.armed = false;
                Poll::Ready(frame.map(|result| result.map_err(Into::into)))
            }
            Poll::Pending => {
                let deadline = tokio::time::Instant::now() + BODY_STALL_TIMEOUT;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !this.armed {
                    timer.as_mut().reset(deadline);
                    this.armed = true;
                }
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(StalledBody(BODY_STALL_TIMEOUT).into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(last: u8) -> Client {
        Client(std::net::IpAddr::from([127, 0, 0, last]))
    }

    fn announcing(bytes: usize) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, bytes.into());
        headers
    }

    #[test]
    fn a_client_over_its_in_flight_limit_is_refused_and_others_are_not() {
        let admission = Admission::new(2 * 1024 * 1024, 2);
        let held: Vec<Slot> = (0..2)
            .map(|_| admission.request(client(2)).expect("room"))
            .collect();
        assert_eq!(
            admission.request(client(2)).err(),
            Some(Shed::ClientInFlight)
        );
        assert!(admission.request(client(3)).is_ok());
        drop(held);
        assert!(admission.request(client(2)).is_ok(), "given back");
        assert!(
            admission.clients.used.lock().expect("lock").is_empty(),
            "no client holding nothing is kept"
        );
    }

    #[test]
    fn a_client_gets_a_quarter_of_each_body_budget_and_the_budget_stays_global() {
        let admission = Admission::new(2 * 1024 * 1024, 64);
        let small = announcing(64 * 1024);
        let mut rooms = Vec::new();
        for _ in 0..32 {
            rooms.push(admission.body(client(2), &small).expect("within the share"));
        }
        assert_eq!(
            admission.body(client(2), &small).err(),
            Some(Shed::ClientBodyBudget)
        );
        for last in 3..6 {
            for _ in 0..32 {
                rooms.push(admission.body(client(last), &small).expect("own share"));
            }
        }
        assert_eq!(
            admission.body(client(6), &small).err(),
            Some(Shed::BodyBudget),
            "128 small bodies spend the budget"
        );
        // A chunked body (no length) counts as the largest, in the other budget.
        let chunked = HeaderMap::new();
        let large: Vec<Room> = (0..2)
            .map(|_| admission.body(client(2), &chunked).expect("share"))
            .collect();
        assert_eq!(
            admission.body(client(2), &chunked).err(),
            Some(Shed::ClientBodyBudget)
        );
        drop((rooms, large));
        assert!(admission.clients.used.lock().expect("lock").is_empty());
    }
}
