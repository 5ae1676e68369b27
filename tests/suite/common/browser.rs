//! A real browser for the console's tests: Debian's headless Chromium driven
//! through its chromedriver (`.ci/run` installs both when missing) with
//! fantoccini. [`Browser::start`] runs `/usr/bin/chromedriver` on a free port in a
//! process group of its own and opens a session; dropping the [`Browser`] kills
//! that group (chromedriver and the Chromium it started) and removes the profile,
//! also when the test panics. [`Browser::close`] ends the session cleanly first.

use std::ops::Deref;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::json;

/// Debian's chromium-driver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long chromedriver and Chromium may take to start.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// A headless Chromium session; derefs to the fantoccini [`Client`].
pub struct Browser {
    client: Client,
    driver: Driver,
}

impl Deref for Browser {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session
    /// (`--no-sandbox`: tests run as root here) of 1280×900 with a profile of
    /// its own.
    pub async fn start() -> Self {
        let driver = Driver::start();
        let url = format!("http://127.0.0.1:{}", driver.port);
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--no-first-run",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", driver.profile.display()),
                ],
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal");
        };
        let start = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                // Until chromedriver listens: refused connections.
                Err(_) if start.elapsed() < START_DEADLINE => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!(
                    "no WebDriver session from {CHROMEDRIVER} within {START_DEADLINE:?}: {error}"
                ),
            }
        };
        Self { client, driver }
    }

    /// Saves a PNG of the viewport to `path` (its folders created); returns the path.
    pub async fn screenshot(&self, path: impl AsRef<Path>) -> PathBuf {
        let path = path.as_ref().to_owned();
        let png = self.client.screenshot().await.expect("take a screenshot");
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).expect("create the screenshot's folder");
        }
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }

    /// Ends the session (Chromium quits), then chromedriver.
    pub async fn close(self) {
        let Self { client, driver } = self;
        let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        drop(driver);
    }
}

/// A chromedriver process, the leader of its own process group; the group is
/// killed and the profile removed when dropped.
struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Driver {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("find a free port")
            .port();
        let profile = std::env::temp_dir().join(format!("jst_browser_{}", super::unique()));
        std::fs::create_dir_all(&profile).expect("create the browser profile");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--log-level=WARNING")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            // Chromium inherits the group: one kill ends both.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start {CHROMEDRIVER} ({error}); install chromium-driver (.ci/run does)"
                )
            });
        Self {
            child,
            port,
            profile,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group is the one this process made (its id is chromedriver's pid).
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
