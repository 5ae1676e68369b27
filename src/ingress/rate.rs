//! The OAuth callbacks' rate limit (docs/reference.md §3): a token bucket per
//! [`Client`], so a flood from one client cannot lock the admin's browser out of
//! its own callback. `router` puts [`rate_limited`] on both callback routes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::client::Client;
use super::error::ApiError;

/// Callback requests a client may make at once…
pub const CALLBACK_BURST: f64 = 50.0;
/// …and per second after that.
pub const CALLBACK_PER_SECOND: f64 = 5.0;
/// Buckets kept at most. A full bucket is the same as none, so they are dropped
/// when the table is full; clients that still find no room share one bucket.
const MAX_BUCKETS: usize = 4096;
/// The table is swept for full buckets at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Token buckets by client: `burst` requests at once, then `per_second`. The
/// OAuth callbacks are public and each one they take enqueues a job; this bounds
/// how many one client can enqueue (the jobs themselves are cheap for a state or
/// token no session holds).
#[derive(Clone)]
pub struct RateLimit {
    /// A std lock: held for one map lookup, never across an await.
    buckets: Arc<Mutex<Buckets>>,
    burst: f64,
    per_second: f64,
}

struct Buckets {
    by_client: HashMap<Client, Bucket>,
    /// Shared by the clients that found the table full.
    overflow: Bucket,
    swept: Instant,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant, burst: f64, per_second: f64) {
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(burst);
        self.last = now;
    }
}

impl RateLimit {
    /// The callbacks' limit.
    pub fn callbacks() -> Self {
        Self::new(CALLBACK_BURST, CALLBACK_PER_SECOND)
    }

    fn new(burst: f64, per_second: f64) -> Self {
        let now = Instant::now();
        Self {
            buckets: Arc::new(Mutex::new(Buckets {
                by_client: HashMap::new(),
                overflow: Bucket::full(burst, now),
                swept: now,
            })),
            burst,
            per_second,
        }
    }

    /// Takes one of `client`'s tokens, if it has one.
    fn take(&self, client: Client) -> bool {
        let Ok(mut buckets) = self.buckets.lock() else {
            return false;
        };
        let now = Instant::now();
        let (burst, per_second) = (self.burst, self.per_second);
        let buckets = &mut *buckets;
        if buckets.by_client.len() >= MAX_BUCKETS
            && !buckets.by_client.contains_key(&client)
            && now.duration_since(buckets.swept) >= SWEEP_EVERY
        {
            buckets.swept = now;
            buckets.by_client.retain(|_, bucket| {
                bucket.refill(now, burst, per_second);
                bucket.tokens < burst
            });
        }
        let bucket =
            if buckets.by_client.len() < MAX_BUCKETS || buckets.by_client.contains_key(&client) {
                buckets
                    .by_client
                    .entry(client)
                    .or_insert_with(|| Bucket::full(burst, now))
            } else {
                &mut buckets.overflow
            };
        bucket.refill(now, burst, per_second);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Middleware of the OAuth callbacks: a token of the request's client, else `429`.
pub async fn rate_limited(limit: RateLimit, request: Request, next: Next) -> Response {
    if !limit.take(Client::of(&request)) {
        metrics::counter!("jirasync_http_shed_total", "reason" => "rate").increment(1);
        return ApiError::TooMany.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(n: u32) -> Client {
        Client(std::net::IpAddr::from(n.to_be_bytes()))
    }

    #[test]
    fn each_client_has_its_own_bucket() {
        let limit = RateLimit::new(3.0, 0.0);
        for _ in 0..3 {
            assert!(limit.take(client(1)));
        }
        assert!(!limit.take(client(1)), "the first client's burst is spent");
        assert!(limit.take(client(2)), "another client's is not");
    }

    #[test]
    fn the_table_stays_bounded_and_clients_beyond_it_share_one_bucket() {
        let limit = RateLimit::new(2.0, 0.0);
        for n in 0..MAX_BUCKETS as u32 + 100 {
            limit.take(client(n));
        }
        let buckets = limit.buckets.lock().expect("lock");
        assert_eq!(buckets.by_client.len(), MAX_BUCKETS);
        assert!(
            buckets.overflow.tokens < 1.0,
            "the rest shared the overflow"
        );
    }

    #[test]
    fn full_buckets_are_swept_to_make_room() {
        let limit = RateLimit::new(2.0, 1000.0);
        for n in 0..MAX_BUCKETS as u32 {
            limit.take(client(n));
        }
        limit.buckets.lock().expect("lock").swept.clone_from(
            &Instant::now()
                .checked_sub(SWEEP_EVERY)
                .expect("the clock is past one second"),
        );
        std::thread::sleep(Duration::from_millis(5));
        assert!(limit.take(client(u32::MAX)));
        let buckets = limit.buckets.lock().expect("lock");
        assert!(buckets.by_client.len() < 10, "{}", buckets.by_client.len());
    }
}
