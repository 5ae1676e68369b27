//! The open connections of one listener (docs/reference.md §3), for
//! `server::serve` (the ingress's port and the metrics listener): at most
//! [`MAX_CONNECTIONS`](super::server::MAX_CONNECTIONS) in all and
//! `JIRASYNC_CLIENT_MAX_CONNECTIONS` per TCP peer, and each socket read through
//! [`Watched`], which closes a connection silent for [`IDLE_TIMEOUT`] between requests.

use std::collections::HashMap;
use std::future::Future as _;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// A connection that sends no byte for this long while no request is in
/// progress (a new one, or a kept-alive one between requests) is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3);

/// The connections of a listener, by TCP peer. Per-peer rather than per
/// [`Client`](super::client::Client): a proxy's `X-Forwarded-For` is only known
/// per request, and a connection is admitted before its first byte.
pub struct Connections {
    max: usize,
    max_per_peer: usize,
    /// What the connections' times count from.
    epoch: Instant,
    /// A std lock: held for a map lookup (and, with a peer at its cap, a scan of
    /// its connections) at accept and close, never across an await.
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    /// Only peers with a connection open: at most `max` entries.
    by_peer: HashMap<IpAddr, Vec<Arc<Conn>>>,
}

/// What a connection's socket, its requests and the accept loop share.
pub struct Conn {
    epoch: Instant,
    /// A request is being handled (hyper's HTTP/1 handles one at a time).
    busy: AtomicBool,
    /// A byte arrived since it was accepted or last went idle.
    heard: AtomicBool,
    /// When it was accepted or last went idle, ms after `epoch`.
    idle_since_ms: AtomicU64,
    /// When its last byte arrived (or it was accepted), ms after `epoch`.
    last_byte_ms: AtomicU64,
    /// Told when a newer connection of its peer takes its place.
    evicted: Notify,
}

impl Conn {
    fn new(epoch: Instant) -> Self {
        let now = millis(epoch);
        Self {
            epoch,
            busy: AtomicBool::new(false),
            heard: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(now),
            last_byte_ms: AtomicU64::new(now),
            evicted: Notify::new(),
        }
    }

    /// Marks a request in progress until the guard drops.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.busy.store(true, Ordering::Relaxed);
        Busy(Arc::clone(self))
    }

    /// Resolves when another connection of the same peer took this one's place.
    pub async fn evicted(&self) {
        self.evicted.notified().await;
    }

    fn heard(&self) {
        self.heard.store(true, Ordering::Relaxed);
        self.last_byte_ms
            .store(millis(self.epoch), Ordering::Relaxed);
    }

    /// When it is to be closed for silence: idle (no request in progress) and
    /// not a byte since it went so.
    fn idle_deadline(&self) -> Option<Instant> {
        if self.busy.load(Ordering::Relaxed) || self.heard.load(Ordering::Relaxed) {
            return None;
        }
        let since = self.idle_since_ms.load(Ordering::Relaxed);
        Some(self.epoch + Duration::from_millis(since) + IDLE_TIMEOUT)
    }
}

/// A request in progress on a connection; when it drops the connection is idle
/// again and its [`IDLE_TIMEOUT`] starts.
pub struct Busy(Arc<Conn>);

impl Drop for Busy {
    fn drop(&mut self) {
        let conn = &self.0;
        conn.idle_since_ms
            .store(millis(conn.epoch), Ordering::Relaxed);
        conn.heard.store(false, Ordering::Relaxed);
        conn.busy.store(false, Ordering::Relaxed);
    }
}

fn millis(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Connections {
    /// At most `max` connections, `max_per_peer` of one peer.
    pub fn new(max: usize, max_per_peer: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            max_per_peer: max_per_peer.max(1),
            epoch: Instant::now(),
            open: Mutex::new(Open::default()),
        })
    }

    /// Room for a new connection from `peer`, or `None` (close it): at its
    /// peer's cap, that peer's longest-silent connection with no request in
    /// progress is told to close and the new one takes its place; when none is
    /// idle, or all `max` are open, the new one is refused.
    pub fn open(self: &Arc<Self>, peer: IpAddr) -> Option<Held> {
        let conn = Arc::new(Conn::new(self.epoch));
        let Ok(mut open) = self.open.lock() else {
            return None;
        };
        let open = &mut *open;
        let at_peer = open.by_peer.get(&peer).map_or(0, Vec::len);
        if at_peer >= self.max_per_peer {
            let list = open.by_peer.get_mut(&peer)?;
            let (quietest, _) = list
                .iter()
                .enumerate()
                .filter(|(_, conn)| !conn.busy.load(Ordering::Relaxed))
                .min_by_key(|(_, conn)| conn.last_byte_ms.load(Ordering::Relaxed))?;
            // The replaced one leaves the count now; the total stays.
            let replaced = list.swap_remove(quietest);
            replaced.evicted.notify_one();
            list.push(Arc::clone(&conn));
        } else {
            if open.total >= self.max {
                return None;
            }
            open.total += 1;
            open.by_peer
                .entry(peer)
                .or_default()
                .push(Arc::clone(&conn));
        }
        Some(Held {
            connections: Arc::clone(self),
            peer,
            conn,
        })
    }

    /// Open connections, and peers with one open.
    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        self.open
            .lock()
            .map_or((0, 0), |open| (open.total, open.by_peer.len()))
    }
}

/// An admitted connection's place; dropping it (the connection ended) frees it.
pub struct Held {
    connections: Arc<Connections>,
    peer: IpAddr,
    conn: Arc<Conn>,
}

impl Held {
    /// The connection's shared state.
    pub fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let Ok(mut open) = self.connections.open.lock() else {
            return;
        };
        let Some(list) = open.by_peer.get_mut(&self.peer) else {
            return;
        };
        // Not found: it was replaced, and its place already given away.
        if let Some(at) = list.iter().position(|conn| Arc::ptr_eq(conn, &self.conn)) {
            list.swap_remove(at);
            if list.is_empty() {
                open.by_peer.remove(&self.peer);
            }
            open.total -= 1;
        }
    }
}

/// A connection's socket: notes when bytes arrive, and reads end (EOF, so
/// hyper closes the connection quietly) once it is idle and silent for
/// [`IDLE_TIMEOUT`].
pub struct Watched {
    stream: TcpStream,
    conn: Arc<Conn>,
    /// Created at the first idle wait, then reset: one timer per connection.
    idle: Option<Pin<Box<Sleep>>>,
}

impl Watched {
    /// `stream`, watched for `conn`.
    pub fn new(stream: TcpStream, conn: Arc<Conn>) -> Self {
        Self {
            stream,
            conn,
            idle: None,
        }
    }

    /// Whether the idle deadline passed (registering the wake-up otherwise).
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.conn.idle_deadline() else {
            return false;
        };
        let timer = self
            .idle
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().poll(cx).is_ready()
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.conn.heard();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.idle_expired(cx) => Poll::Ready(Ok(())),
            other => other,
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[tokio::test]
    async fn a_peer_over_its_cap_replaces_its_longest_silent_idle_connection() {
        let connections = Connections::new(10, 2);
        let first = connections.open(peer(2)).expect("room");
        tokio::time::sleep(Duration::from_millis(5)).await;
        let second = connections.open(peer(2)).expect("room");
        second.conn().heard();
        let third = connections.open(peer(2)).expect("replaces the first");
        assert!(
            futures_util::FutureExt::now_or_never(first.conn().evicted()).is_some(),
            "the first (silent longest) is told to close"
        );
        assert_eq!(connections.counts(), (2, 1));
        drop(first);
        assert_eq!(connections.counts(), (2, 1), "its place was given away");
        // Both left are busy: a fourth is refused.
        let _busy = (second.conn().busy(), third.conn().busy());
        assert!(connections.open(peer(2)).is_none());
        assert!(connections.open(peer(3)).is_some(), "another peer has room");
    }

    #[tokio::test]
    async fn over_the_total_new_connections_are_refused_and_peers_are_forgotten() {
        let connections = Connections::new(3, 2);
        let held: Vec<Held> = [2, 2, 3]
            .into_iter()
            .map(|last| connections.open(peer(last)).expect("room"))
            .collect();
        assert!(connections.open(peer(4)).is_none(), "the total is reached");
        assert_eq!(connections.counts(), (3, 2));
        drop(held);
        assert_eq!(connections.counts(), (0, 0), "no peer is kept");
    }

    #[tokio::test]
    async fn only_an_idle_silent_connection_has_a_deadline() {
        let connections = Connections::new(3, 2);
        let held = connections.open(peer(2)).expect("room");
        let conn = held.conn();
        assert!(conn.idle_deadline().is_some(), "new and silent");
        conn.heard();
        assert!(conn.idle_deadline().is_none(), "a request head is coming");
        let busy = conn.busy();
        assert!(conn.idle_deadline().is_none(), "a request in progress");
        drop(busy);
        assert!(
            conn.idle_deadline().is_some(),
            "idle again after the answer"
        );
    }
}
