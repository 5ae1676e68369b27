//! A TCP proxy the test controls: forwards to a target until cut, then drops every
//! connection and refuses new ones until restored; or, frozen, keeps every
//! connection open and forwards nothing either way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy.
pub struct Proxy {
    pub address: SocketAddr,
    cut: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
    frozen: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on 127.0.0.1:0 and forwards to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let cut = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let (frozen, _) = watch::channel(false);
        let task = {
            let cut = Arc::clone(&cut);
            let generation = generation.clone();
            let frozen = frozen.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    if cut.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let mut cut_signal = generation.subscribe();
                    let (up_frozen, down_frozen) = (frozen.subscribe(), frozen.subscribe());
                    tokio::spawn(async move {
                        let Ok(upstream) = TcpStream::connect(target).await else {
                            return;
                        };
                        let (client_read, client_write) = client.into_split();
                        let (upstream_read, upstream_write) = upstream.into_split();
                        tokio::select! {
                            () = pump(client_read, upstream_write, up_frozen) => {}
                            () = pump(upstream_read, client_write, down_frozen) => {}
                            _ = cut_signal.changed() => {}
                        }
                    });
                }
            })
        };
        Self {
            address,
            cut,
            generation,
            frozen,
            task,
        }
    }

    /// Stops forwarding, both ways, on every connection, keeping them open: what
    /// either side sends waits in the sockets' buffers.
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    /// An AMQP URL through this proxy.
    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.address)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to` until either closes, reading nothing while frozen.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut frozen: watch::Receiver<bool>) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if *frozen.borrow_and_update() {
            if frozen.changed().await.is_err() {
                return;
            }
            continue;
        }
        tokio::select! {
            read = from.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if to.write_all(&buffer[..n]).await.is_err() {
                        return;
                    }
                }
            },
            changed = frozen.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}
