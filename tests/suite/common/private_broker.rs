//! A private RabbitMQ node per test, for tests that stop the broker or raise its
//! memory alarm without disturbing the shared node on 5672: free ports, its own
//! node name, data, logs, cookie and config in a temp dir, no plugins. Dropping it
//! shuts the node down (kill -9 as a last resort) and removes the dir.
//!
//! [`PrivateBroker::start`] runs this machine's RabbitMQ (3.10);
//! [`PrivateBroker::start_rabbitmq4`] runs RabbitMQ 4 from a Debian trixie tree under
//! chroot (its Erlang needs a newer glibc than the host's), the tree named by
//! `JIRASYNC_RABBITMQ4_ROOT` and made by `.ci/rabbitmq4`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where the installed RabbitMQ's scripts are (not the /usr/sbin wrappers, which
/// switch to the `rabbitmq` user when run as root).
const BIN: &str = "/usr/lib/rabbitmq/bin";

/// How long a node may take to boot.
const BOOT_DEADLINE: Duration = Duration::from_secs(90);

/// A running private node.
pub struct PrivateBroker {
    ctl: Ctl,
    server: Option<Child>,
    /// How long the node took to boot.
    pub boot_time: Duration,
    /// The AMQPS port, when it has a TLS listener.
    tls_port: Option<u16>,
    /// The server's environment, to start it again after a kill.
    server_env: Vec<(String, std::ffi::OsString)>,
}

/// How to make a node: the tree it runs from, a TLS listener, a cookie shared
/// with other nodes (a cluster).
#[derive(Default)]
pub struct NodeOptions {
    pub root: Option<PathBuf>,
    pub tls: Option<TlsFiles>,
    pub cookie: Option<String>,
}

/// A TLS listener's certificate, key and CA (PEM files).
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// What the CLI tools need to reach the node; cheap to clone into blocking tasks.
#[derive(Clone)]
struct Ctl {
    node: String,
    amqp_port: u16,
    /// The node's dir, as this process sees it.
    dir: PathBuf,
    /// The tree the node runs in under chroot, if not the host's.
    root: Option<PathBuf>,
}

impl Ctl {
    /// `path` (under `dir`) as the node sees it.
    fn inner(&self, path: &Path) -> PathBuf {
        match &self.root {
            Some(root) => Path::new("/").join(path.strip_prefix(root).unwrap_or(path)),
            None => path.to_owned(),
        }
    }

    /// A command running `tool` of the node's RabbitMQ, in its tree.
    fn command(&self, tool: &str) -> Command {
        let program = format!("{BIN}/{tool}");
        let mut command = match &self.root {
            Some(root) => {
                let mut command = Command::new("chroot");
                command.arg(root).arg(program);
                command
            }
            None => Command::new(program),
        };
        base_env(&mut command, &self.inner(&self.dir));
        command
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind port 0")
        .local_addr()
        .expect("local address")
        .port()
}

/// Environment shared by the server and the CLI tools: the cookie in `$HOME`, no
/// global rabbitmq-env.conf (it names the shared node).
fn base_env(command: &mut Command, dir: &Path) {
    command
        .env("HOME", dir)
        .env("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf"))
        .env("ERL_EPMD_ADDRESS", "127.0.0.1");
}

impl PrivateBroker {
    /// Boots a node of this machine's RabbitMQ and waits until it runs and its
    /// AMQP port accepts.
    pub async fn start() -> Self {
        Self::start_with(NodeOptions::default()).await
    }

    /// Boots a node made as `options` say.
    pub async fn start_with(options: NodeOptions) -> Self {
        tokio::task::spawn_blocking(move || Self::start_blocking(options))
            .await
            .expect("join the boot")
    }

    /// Boots a RabbitMQ 4 node from the trixie tree of `JIRASYNC_RABBITMQ4_ROOT`.
    pub async fn start_rabbitmq4() -> Self {
        let root = std::env::var_os("JIRASYNC_RABBITMQ4_ROOT").map(PathBuf::from);
        let root = root.filter(|root| root.join(BIN.trim_start_matches('/')).exists());
        let root = root.unwrap_or_else(|| {
            panic!(
                "JIRASYNC_RABBITMQ4_ROOT names no RabbitMQ 4 tree: make one with \
                 `bash .ci/rabbitmq4` and export what it prints"
            )
        });
        Self::start_with(NodeOptions {
            root: Some(root),
            ..NodeOptions::default()
        })
        .await
    }

    /// Boots a node of this machine's RabbitMQ with a TLS listener as well
    /// ([`amqps_url`](Self::amqps_url)) that presents `tls`'s certificate.
    pub async fn start_tls(tls: TlsFiles) -> Self {
        Self::start_with(NodeOptions {
            tls: Some(tls),
            ..NodeOptions::default()
        })
        .await
    }

    fn start_blocking(options: NodeOptions) -> Self {
        let NodeOptions {
            root,
            tls,
            cookie: shared_cookie,
        } = options;
        let id = super::unique();
        let node = format!("jst_{id}@localhost");
        let temp = match &root {
            Some(root) => root.join("tmp"),
            None => std::env::temp_dir(),
        };
        let dir = temp.join(format!("jst_rabbit_{id}"));
        std::fs::create_dir_all(&dir).expect("create the node's dir");
        let amqp_port = free_port();
        let dist_port = loop {
            // The distribution port must differ from the AMQP port.
            let port = free_port();
            if port != amqp_port {
                break port;
            }
        };
        let cookie = dir.join(".erlang.cookie");
        let secret =
            shared_cookie.unwrap_or_else(|| format!("JST{}", super::unique().to_uppercase()));
        std::fs::write(&cookie, secret).expect("write the cookie");
        set_mode(&cookie, 0o400);
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("write enabled_plugins");
        std::fs::write(dir.join("rabbitmq-env.conf"), "").expect("write rabbitmq-env.conf");
        let mut conf =
            format!("listeners.tcp.local = 127.0.0.1:{amqp_port}\nloopback_users = none\n");
        let tls_port = tls.as_ref().map(|tls| {
            let port = loop {
                let port = free_port();
                if port != amqp_port && port != dist_port {
                    break port;
                }
            };
            conf.push_str(&format!(
                "listeners.ssl.local = 127.0.0.1:{port}\nssl_options.cacertfile = {}\n\
                 ssl_options.certfile = {}\nssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n",
                tls.ca.display(),
                tls.certificate.display(),
                tls.key.display()
            ));
            port
        });
        std::fs::write(dir.join("rabbitmq.conf"), conf).expect("write rabbitmq.conf");
        let ctl = Ctl {
            node: node.clone(),
            amqp_port,
            dir: dir.clone(),
            root,
        };
        let inner = ctl.inner(&dir);
        let server_env = [
            ("RABBITMQ_NODENAME", node.clone().into()),
            ("RABBITMQ_MNESIA_BASE", inner.join("mnesia").into()),
            ("RABBITMQ_LOG_BASE", inner.join("log").into()),
            ("RABBITMQ_PID_FILE", inner.join("pid").into()),
            (
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                inner.join("enabled_plugins").into(),
            ),
            ("RABBITMQ_CONFIG_FILE", inner.join("rabbitmq.conf").into()),
            (
                "RABBITMQ_ADVANCED_CONFIG_FILE",
                inner.join("advanced.config").into(),
            ),
            ("RABBITMQ_DIST_PORT", dist_port.to_string().into()),
            (
                "ERL_FLAGS",
                "-kernel inet_dist_use_interface {127,0,0,1}".into(),
            ),
        ]
        .into_iter()
        .map(|(key, value): (&str, std::ffi::OsString)| (key.to_owned(), value))
        .collect();
        let mut broker = Self {
            ctl,
            server: None,
            boot_time: Duration::ZERO,
            tls_port,
            server_env,
        };
        broker.boot();
        broker
    }

    /// Starts the server (again) and waits until it runs and its AMQP port accepts.
    fn boot(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.ctl.dir.join("server.out"))
            .expect("open server.out");
        let mut command = self.ctl.command("rabbitmq-server");
        command
            .envs(self.server_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log);
        let started = Instant::now();
        self.server = Some(command.spawn().expect("start rabbitmq-server"));
        let broker = self;
        // await_startup fails at once while the node is not registered yet: retry it.
        loop {
            if broker
                .ctl
                .run("rabbitmqctl", &["await_startup", "--timeout", "60"])
                .status
                .success()
            {
                break;
            }
            if let Some(server) = broker.server.as_mut()
                && let Ok(Some(status)) = server.try_wait()
            {
                panic!(
                    "the private RabbitMQ node exited during boot ({status}):\n{}",
                    broker.server_output()
                );
            }
            assert!(
                started.elapsed() < BOOT_DEADLINE,
                "the private RabbitMQ node did not boot within {BOOT_DEADLINE:?}:\n{}",
                broker.server_output()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        broker.ctl.wait_for_amqp(BOOT_DEADLINE);
        broker.boot_time = started.elapsed();
        eprintln!(
            "private RabbitMQ node {} booted in {:.1} s (AMQP port {})",
            broker.ctl.node,
            broker.boot_time.as_secs_f64(),
            broker.ctl.amqp_port
        );
    }

    /// The node's name (`jst_…@localhost`).
    pub fn node(&self) -> &str {
        &self.ctl.node
    }

    /// `kill -9` of the node's Erlang VM: no goodbye to clients or peers. Its data
    /// stays, for [`start_again`](Self::start_again).
    pub async fn kill(&mut self) {
        let pid = std::fs::read_to_string(self.ctl.dir.join("pid")).unwrap_or_default();
        let pid = pid.trim().to_owned();
        assert!(!pid.is_empty(), "the node wrote no pid file");
        let status = Command::new("kill")
            .args(["-9", &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -9 {pid}");
        if let Some(mut server) = self.server.take() {
            tokio::task::spawn_blocking(move || {
                let _ = server.kill();
                let _ = server.wait();
            })
            .await
            .expect("join");
        }
    }

    /// Starts a killed node again, on its data, name and ports (the boot blocks,
    /// so the test's runtime must be multi-threaded).
    pub fn start_again(&mut self) {
        tokio::task::block_in_place(|| self.boot());
    }

    /// Whether stopping this node now would leave some quorum queue without a
    /// majority (`rabbitmq-queues check_if_node_is_quorum_critical`).
    pub async fn quorum_critical(&self) -> bool {
        !self
            .tool("rabbitmq-queues", &["check_if_node_is_quorum_critical"])
            .await
            .status
            .success()
    }

    /// `rabbitmqctl args…` on this node; its output, panicking when it fails.
    pub async fn ctl(&self, args: &[&str]) -> String {
        self.ctl_ok(args).await
    }

    fn server_output(&self) -> String {
        std::fs::read_to_string(self.ctl.dir.join("server.out")).unwrap_or_default()
    }

    /// Runs `rabbitmqctl args…` on the blocking pool; panics when it fails.
    async fn ctl_ok(&self, args: &[&str]) -> String {
        self.tool_ok("rabbitmqctl", args).await
    }

    async fn tool_ok(&self, tool: &'static str, args: &[&str]) -> String {
        let output = self.tool(tool, args).await;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{tool} {args:?} failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    async fn tool(&self, tool: &'static str, args: &[&str]) -> Output {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let ctl = self.ctl.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ctl.run(tool, &args)
        })
        .await
        .expect("join a RabbitMQ CLI tool")
    }
}

impl Ctl {
    fn wait_for_amqp(&self, deadline: Duration) {
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.amqp_port)).is_err() {
            assert!(
                started.elapsed() < deadline,
                "the private node's AMQP port did not open within {deadline:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `tool -n node args…` (bounded by coreutils `timeout`).
    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let mut command = self.command(tool);
        command.arg("-n").arg(&self.node).args(args);
        let program = command.get_program().to_owned();
        let mut timed = Command::new("timeout");
        timed.arg("90").arg(program).args(command.get_args());
        for (key, value) in command.get_envs() {
            if let Some(value) = value {
                timed.env(key, value);
            }
        }
        timed.output().expect("run a RabbitMQ CLI tool")
    }
}

impl PrivateBroker {
    /// `amqps://guest:guest@<host>:<TLS port>/%2f` (a node of [`start_tls`](Self::start_tls)).
    pub fn amqps_url(&self, host: &str) -> String {
        let port = self.tls_port.expect("a node started with a TLS listener");
        format!("amqps://guest:guest@{host}:{port}/%2f")
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`.
    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.ctl.amqp_port)
    }

    /// The RabbitMQ version the node runs (`4.0.5`).
    pub async fn version(&self) -> String {
        self.tool_ok("rabbitmq-diagnostics", &["-q", "server_version"])
            .await
            .trim()
            .to_owned()
    }

    /// `rabbitmqctl stop_app`: the broker stops, the Erlang node stays.
    pub async fn stop_app(&self) {
        self.ctl_ok(&["stop_app"]).await;
    }

    /// `rabbitmqctl start_app`, then waits for the AMQP port.
    pub async fn start_app(&self) {
        self.ctl_ok(&["start_app"]).await;
        self.ctl_ok(&["await_startup", "--timeout", "60"]).await;
        let ctl = self.ctl.clone();
        tokio::task::spawn_blocking(move || ctl.wait_for_amqp(Duration::from_secs(60)))
            .await
            .expect("join");
    }

    /// `rabbitmqctl set_vm_memory_high_watermark <fraction>`.
    pub async fn set_memory_watermark(&self, fraction: f64) {
        self.ctl_ok(&["set_vm_memory_high_watermark", &fraction.to_string()])
            .await;
    }

    /// Whether a resource alarm is in effect on the node.
    pub async fn alarm_active(&self) -> bool {
        let output = self
            .tool("rabbitmq-diagnostics", &["check_local_alarms"])
            .await;
        !output.status.success()
    }

    /// (ready, unacknowledged) messages of every queue, by name.
    pub async fn queue_counts(&self) -> std::collections::HashMap<String, (u64, u64)> {
        let out = self
            .ctl_ok(&[
                "list_queues",
                "--quiet",
                "--no-table-headers",
                "name",
                "messages_ready",
                "messages_unacknowledged",
            ])
            .await;
        out.lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let name = fields.next()?.to_owned();
                let ready = fields.next()?.parse().ok()?;
                let unacked = fields.next()?.parse().ok()?;
                Some((name, (ready, unacked)))
            })
            .collect()
    }

    /// Connection names and states (`running`, `blocking`, `blocked`, …).
    pub async fn connection_states(&self) -> Vec<(String, String)> {
        let out = self
            .ctl_ok(&[
                "list_connections",
                "--quiet",
                "--no-table-headers",
                "client_properties",
                "state",
            ])
            .await;
        out.lines()
            .map(|line| {
                let state = line
                    .split_whitespace()
                    .last()
                    .unwrap_or_default()
                    .to_owned();
                (line.to_owned(), state)
            })
            .collect()
    }

    fn shutdown_blocking(&mut self) {
        let _ = self.ctl.run("rabbitmqctl", &["shutdown"]);
        let pid = std::fs::read_to_string(self.ctl.dir.join("pid")).unwrap_or_default();
        let pid = pid.trim();
        if !pid.is_empty() && Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        let _ = std::fs::remove_dir_all(&self.ctl.dir);
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        // Also a killed node: its dir goes.
        if !self.ctl.dir.as_os_str().is_empty() {
            self.shutdown_blocking();
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
