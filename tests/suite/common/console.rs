//! The operator console (docs/reference.md §12) served in the test's process on
//! port 0 against the test's own database and queues, with a known password and
//! API token; shared by the HTTP tests (`console_http.rs`) and the browser tests
//! (`console_browser.rs`). The console stops when the [`Served`] drops.

use std::net::SocketAddr;

use jirasync::config::{ConsoleListen, ConsoleSettings, Settings, TrustedProxies};
use jirasync::shutdown::Shutdown;

/// The console's password in tests.
pub const PASSWORD: &str = "console-pa55word-for-tests";
/// The console's API token in tests.
pub const API_TOKEN: &str = "console-api-token-0123456789abcdefghijklmnop";

/// A console served in this process; stopped when dropped.
pub struct Served {
    /// Where it listens (loopback, port 0 chosen by the system).
    pub address: SocketAddr,
    shutdown: Shutdown,
}

impl Served {
    /// `http://<address>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The URL of `path` (`/…`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Serves the console for `settings` (their database, broker and retry tiers)
/// with [`PASSWORD`] and [`API_TOKEN`].
pub async fn serve(settings: &Settings, trusted_proxies: TrustedProxies) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let address = listener.local_addr().expect("address");
    let console = ConsoleSettings {
        listen: ConsoleListen::At(address),
        password: Some(PASSWORD.to_owned()),
        password_hash: None,
        api_token: Some(API_TOKEN.to_owned()),
    };
    let config = jirasync::console::Config {
        database: settings.database.clone(),
        broker: settings.broker.clone(),
        retries: settings.retries.clone(),
        trusted_proxies,
        auth: console.auth(address).expect("valid console settings"),
    };
    let shutdown = Shutdown::new();
    tokio::spawn(jirasync::console::serve(config, listener, shutdown.clone()));
    Served { address, shutdown }
}

/// Publishes a dead letter of a job to `P.dead` as a worker would leave it:
/// message id `id`, reason `reason`, source queue `P.jobs`.
pub async fn publish_dead_letter(settings: &Settings, id: &str, reason: &str) {
    let (_connection, channel) = super::amqp().await;
    let names = super::names(settings);
    let (_, props) = jirasync::queue::message::job_properties("jira_server.reconcile");
    let props = jirasync::queue::message::with_headers(
        &props,
        &[
            (
                "x-jirasync-error",
                jirasync::queue::message::long_string(reason),
            ),
            (
                "x-jirasync-source-queue",
                jirasync::queue::message::long_string(&names.jobs()),
            ),
        ],
    )
    .with_message_id(id.into());
    channel
        .confirm_select(Default::default())
        .await
        .expect("confirm mode");
    jirasync::queue::publisher::publish_confirmed(&channel, "", &names.dead(), b"{}", props)
        .await
        .expect("publish confirmed");
}
