//! Static checks of the deployment files: `docker-compose.yml`, `.env.example`,
//! `deploy/Dockerfile`, `deploy/k8s/*.yaml`, Prometheus and Grafana. They check the
//! files against the Compose Specification, the binary's own command line and
//! docs/reference.md §2, and against each other. No network, no Docker.

mod support;

mod compose;
mod dockerfile;
mod env;
mod k8s;
mod monitoring;

/// docs/reference.md §2: the only environment variables jirasync reads (checked
/// against the command line's own by `env.rs`).
pub const SETTING_VARS: &[&str] = &[
    "JIRASYNC_METRICS_LISTEN",
    "DATABASE_URL",
    "AMQP_URL",
    "JIRASYNC_QUEUE_PREFIX",
    "JIRASYNC_QUEUE_MAX_LENGTH",
    "JIRASYNC_LISTEN",
    "JIRASYNC_PUBLIC_URL",
    "JIRASYNC_WORKER_CONCURRENCY",
    "JIRASYNC_WORKER_BATCH_SIZE",
    "JIRASYNC_WORKER_THREADS",
    "JIRASYNC_MAX_BODY_BYTES",
    "JIRASYNC_RETRY_DELAYS",
    "JIRASYNC_RECONCILE_INTERVAL",
    "JIRASYNC_RECONCILE_SLICE",
    "JIRASYNC_LOG_FORMAT",
    "RUST_LOG",
    "JIRASYNC_SECRET_KEY",
    "JIRASYNC_SECRET_KEY_OLD",
    "JIRASYNC_AUDIT",
    "JIRASYNC_OUTBOUND",
    "JIRASYNC_TRUSTED_PROXIES",
    "JIRASYNC_CLIENT_MAX_CONNECTIONS",
    "JIRASYNC_CLIENT_MAX_IN_FLIGHT",
    "JIRASYNC_CLIENT_MAX_REJECTS",
    "JIRASYNC_MAX_EVENT_SKEW",
    "JIRASYNC_JIRA_OUTAGE_MAX",
    "JIRASYNC_UNSAFE_DEPENDENCY_LOGS",
    "JIRASYNC_CONSOLE_LISTEN",
    "JIRASYNC_CONSOLE_PASSWORD",
    "JIRASYNC_CONSOLE_PASSWORD_HASH",
    "JIRASYNC_CONSOLE_API_TOKEN",
    "JIRASYNC_ATLASSIAN_AUTH_URL",
    "JIRASYNC_ATLASSIAN_API_URL",
    "JIRASYNC_CLOUD_WEBHOOK_REFRESH_INTERVAL",
    "JIRASYNC_CLOUD_WEBHOOK_JQL",
];

/// docs/reference.md §1: the subcommands of `jirasync`.
pub const SUBCOMMANDS: &[&str] = &[
    "migrate",
    "ingress",
    "worker",
    "run",
    "integration",
    "oauth",
    "dlq",
    "demo",
    "reconcile",
    "secrets",
    "explain",
    "user-map",
    "status-map",
    "console",
];

/// The build command CI uses for release builds; the image must be built the same way.
pub const RELEASE_BUILD: &str = "cargo build --release --locked";

/// Paths of the checked files, relative to the repository root.
pub const COMPOSE: &str = "docker-compose.yml";
pub const ENV_EXAMPLE: &str = ".env.example";
pub const DOCKERFILE: &str = "deploy/Dockerfile";
pub const K8S_DIR: &str = "deploy/k8s";
