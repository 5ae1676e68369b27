//! A private Postgres cluster for one test (`tests/db_outage.rs`): its own data
//! directory and port, so the test can restart or stop it without touching the
//! shared server. Stopped (immediate) and removed on drop, also when the test panics.
//!
//! `initdb` refuses to run as root: as root, the cluster runs as the `postgres`
//! user and the directory belongs to it. `fsync` stays on (the restart test is
//! about durability); only `initdb`'s own final sync is skipped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A running private cluster.
pub struct PrivatePg {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    /// TLS only (`ssl = on`, `hostnossl … reject`), with this certificate and key.
    tls: Option<(PathBuf, PathBuf)>,
    /// How long `initdb` and the first start took.
    pub setup: Duration,
}

/// The newest `/usr/lib/postgresql/<version>/bin` (PG_BIN overrides).
fn bin_dir() -> PathBuf {
    if let Ok(bin) = std::env::var("PG_BIN") {
        return PathBuf::from(bin);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("/usr/lib/postgresql lists the installed Postgres versions")
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("a Postgres server with initdb under /usr/lib/postgresql/*/bin")
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind port 0")
        .port()
}

impl PrivatePg {
    /// Creates a cluster in a fresh temporary directory and starts it.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// As [`start`](Self::start), accepting TLS connections only (`ssl = on`,
    /// `hostnossl … reject`), with the certificate and key of the PEM files given.
    pub async fn start_tls_only(certificate: &std::path::Path, key: &std::path::Path) -> Self {
        Self::start_with(Some((certificate.to_owned(), key.to_owned()))).await
    }

    async fn start_with(tls: Option<(PathBuf, PathBuf)>) -> Self {
        let started = Instant::now();
        let dir = std::env::temp_dir().join(format!("jst_pg_{}", super::unique()));
        std::fs::create_dir(&dir).expect("create the cluster directory");
        let as_postgres = running_as_root();
        let mut pg = Self {
            dir,
            bin: bin_dir(),
            port: 0,
            as_postgres,
            tls: None,
            setup: Duration::ZERO,
        };
        if as_postgres {
            pg.run_root("chown", &["postgres:postgres", pg.dir_str()])
                .await;
        }
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "--auth=trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        )
        .await;
        if let Some((certificate, key)) = tls {
            pg.install_tls(&certificate, &key).await;
        }
        // Another process may take the port between bind and start: try a few.
        for attempt in 1..=3 {
            pg.port = free_port();
            if pg.try_start().await {
                break;
            }
            assert!(
                attempt < 3,
                "the private Postgres did not start:\n{}",
                pg.log()
            );
        }
        pg.setup = started.elapsed();
        pg
    }

    /// `postgres://postgres@127.0.0.1:PORT`, without a database name.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// A fast restart: open connections are terminated.
    pub async fn restart(&self) {
        let options = self.options();
        let (data, log) = (self.data(), self.log_path());
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-m", "fast", "-w", "-o", &options, "restart",
            ],
        )
        .await;
    }

    /// A fast stop: open connections are terminated, new ones refused.
    pub async fn stop(&self) {
        let data = self.data();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"])
            .await;
    }

    /// Starts it again after `stop`.
    pub async fn start_again(&self) {
        assert!(
            self.try_start().await,
            "the private Postgres did not start again:\n{}",
            self.log()
        );
    }

    async fn try_start(&self) -> bool {
        let options = self.options();
        let (data, log) = (self.data(), self.log_path());
        let mut start = self.command("pg_ctl");
        start.args(["-D", &data, "-l", &log, "-w", "-o", &options, "start"]);
        output(start).await.status.success()
    }

    /// The server's certificate and key in its data directory, readable by it
    /// alone (Postgres refuses a key others can read), and a `pg_hba.conf` that
    /// refuses TCP without TLS.
    async fn install_tls(&mut self, certificate: &std::path::Path, key: &std::path::Path) {
        let data = std::path::Path::new(&self.data()).to_owned();
        let (cert_to, key_to) = (data.join("server.crt"), data.join("server.key"));
        std::fs::copy(certificate, &cert_to).expect("copy the server certificate");
        std::fs::copy(key, &key_to).expect("copy the server key");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 0.0.0.0/0 reject\n",
        )
        .expect("write pg_hba.conf");
        for path in [&cert_to, &key_to, &data.join("pg_hba.conf")] {
            let path = path.to_str().expect("a UTF-8 path");
            if self.as_postgres {
                self.run_root("chown", &["postgres:postgres", path]).await;
            }
            self.run_root("chmod", &["600", path]).await;
        }
        self.tls = Some((cert_to, key_to));
    }

    fn options(&self) -> String {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c shared_buffers=16MB",
            self.port,
            self.dir_str()
        );
        if self.tls.is_some() {
            options.push_str(" -c ssl=on");
        }
        options
    }

    fn dir_str(&self) -> &str {
        self.dir.to_str().expect("a UTF-8 temp dir")
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    fn log_path(&self) -> String {
        self.dir.join("server.log").to_string_lossy().into_owned()
    }

    /// The server log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// A command for a Postgres program, as the `postgres` user when we are root.
    fn command(&self, program: &str) -> std::process::Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            std::process::Command::new(path)
        }
    }

    async fn run(&self, program: &str, args: &[&str]) {
        let mut command = self.command(program);
        command.args(args);
        let out = output(command).await;
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    async fn run_root(&self, program: &str, args: &[&str]) {
        let mut command = std::process::Command::new(program);
        command.args(args);
        let out = output(command).await;
        assert!(out.status.success(), "{program} {args:?} failed");
    }
}

/// Runs `command` to its end off the async threads.
async fn output(mut command: std::process::Command) -> std::process::Output {
    let what = format!("{command:?}");
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join the command")
        .unwrap_or_else(|e| panic!("run {what}: {e}"))
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
