//! Configuration through the real binary: defaults, environment, flags, and
//! clear errors for invalid values (docs/reference.md §2).

use std::process::{Command, Output};

fn jirasync(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jirasync"));
    command.env_clear().args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run jirasync")
}

/// `jirasync config ARGS…`: the service flags follow the command they belong to.
fn config(args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let mut all = vec!["config"];
    all.extend_from_slice(args);
    let output = jirasync(&all, env);
    assert!(
        output.status.success(),
        "jirasync config failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("config prints JSON")
}

#[test]
fn defaults_are_the_contract_defaults() {
    let got = config(&[], &[]);
    let expected = serde_json::json!({
        "database_url": "postgres://postgres@127.0.0.1:5432/jirasync",
        "secret_key_id": null,
        "amqp_url": "amqp://guest:***@127.0.0.1:5672/%2f",
        "queue_prefix": "jirasync",
        "listen": "127.0.0.1:8080",
        "public_url": "http://127.0.0.1:8080",
        "worker_concurrency": 16,
        "worker_batch_size": 32,
        "worker_threads": 1,
        "max_body_bytes": 2097152,
        "trusted_proxies": [],
        "client_max_connections": 128,
        "client_max_in_flight": 64,
        "client_max_rejects": 20,
        "max_event_skew": "5m",
        "jira_outage_max": "1d",
        "retry_delays": ["5s", "30s", "2m", "10m", "30m"],
        "reconcile_interval": "10m",
        "reconcile_slice": "2m",
        "audit": "on",
        "outbound": "on",
        "metrics_listen": null,
        "log_format": "text",
        "rust_log": "info",
        "unsafe_dependency_logs": false,
        "console_listen": "127.0.0.1:8081",
        "console_password": null,
        "console_password_hash": null,
        "console_api_token": null,
        "atlassian_auth_url": "https://auth.atlassian.com",
        "cloud_webhook_refresh_interval": "7d",
        "cloud_webhook_jql": "project != NULL",
        "atlassian_api_url": "https://api.atlassian.com",
    });
    assert_eq!(got, expected);
}

#[test]
fn environment_overrides_defaults_and_flags_override_the_environment() {
    let env = [
        ("JIRASYNC_QUEUE_PREFIX", "from_env"),
        ("JIRASYNC_WORKER_CONCURRENCY", "3"),
        ("JIRASYNC_RETRY_DELAYS", "1s,2m"),
        ("JIRASYNC_RECONCILE_INTERVAL", "0"),
        ("JIRASYNC_LOG_FORMAT", "json"),
    ];
    let got = config(&[], &env);
    assert_eq!(got["queue_prefix"], "from_env");
    assert_eq!(got["worker_concurrency"], 3);
    assert_eq!(got["retry_delays"], serde_json::json!(["1s", "2m"]));
    assert_eq!(got["reconcile_interval"], "0");
    assert_eq!(got["log_format"], "json");

    let got = config(
        &["--queue-prefix", "from_flag", "--worker-concurrency", "7"],
        &env,
    );
    assert_eq!(got["queue_prefix"], "from_flag");
    assert_eq!(got["worker_concurrency"], 7);
    assert_eq!(
        got["log_format"], "json",
        "unflagged settings keep the environment's value"
    );
}

#[test]
fn invalid_values_give_a_clear_error_naming_the_setting() {
    for (name, value, says) in [
        ("JIRASYNC_WORKER_CONCURRENCY", "0", "worker-concurrency"),
        ("JIRASYNC_WORKER_THREADS", "0", "worker-threads"),
        ("JIRASYNC_RETRY_DELAYS", "5s,soon", "soon"),
        ("JIRASYNC_RECONCILE_INTERVAL", "10", "unit"),
        ("JIRASYNC_LISTEN", "localhost", "listen"),
        ("JIRASYNC_PUBLIC_URL", "ftp://x", "http"),
        ("JIRASYNC_MAX_BODY_BYTES", "lots", "body limit"),
        ("JIRASYNC_QUEUE_PREFIX", "has space", "queue prefix"),
        ("JIRASYNC_LOG_FORMAT", "xml", "xml"),
        (
            "JIRASYNC_ATLASSIAN_AUTH_URL",
            "http://auth.example.org",
            "must be https://",
        ),
        ("JIRASYNC_ATLASSIAN_API_URL", "ftp://x", "https://"),
    ] {
        let output = jirasync(&["config"], &[(name, value)]);
        assert!(!output.status.success(), "{name}={value} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{name}={value}: {stderr}");
    }
}

#[test]
fn help_never_prints_the_secret_urls_from_the_environment() {
    // `run` takes every setting, so its help lists them all.
    let output = jirasync(
        &["run", "--help"],
        &[
            ("DATABASE_URL", "postgres://u:dbsecret@h/db"),
            ("AMQP_URL", "amqp://u:mqsecret@h/%2f"),
            ("JIRASYNC_SECRET_KEY", crate::common::SECRET_KEY_A),
        ],
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("DATABASE_URL"), "{text}");
    assert!(text.contains("JIRASYNC_SECRET_KEY"), "{text}");
    assert!(
        !text.contains("dbsecret")
            && !text.contains("mqsecret")
            && !text.contains(crate::common::SECRET_KEY_A),
        "{text}"
    );
}

#[test]
fn config_shows_which_key_is_set_never_the_key() {
    let key = crate::common::SECRET_KEY_A;
    let got = config(&[], &[("JIRASYNC_SECRET_KEY", key)]);
    let id = jirasync::secrets::SecretKey::parse(key)
        .expect("a key")
        .id()
        .to_owned();
    assert_eq!(got["secret_key_id"], id.as_str());
    assert!(!got.to_string().contains(key), "{got}");
    let bad = config(&[], &[("JIRASYNC_SECRET_KEY", "c2hvcnQta2V5")]);
    assert_eq!(
        bad["secret_key_id"],
        "invalid: JIRASYNC_SECRET_KEY is 9 bytes, not 32 (make one with `openssl rand -base64 32`)"
    );
    let off = config(&[], &[("JIRASYNC_AUDIT", "off")]);
    assert_eq!(off["audit"], "off");
    let refused = jirasync(&["config"], &[("JIRASYNC_AUDIT", "maybe")]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("neither on nor off"));
}

#[test]
fn the_outbound_switch_is_on_or_off_from_the_environment_or_the_flag() {
    let off = config(&[], &[("JIRASYNC_OUTBOUND", "off")]);
    assert_eq!(off["outbound"], "off");
    assert_eq!(config(&["--outbound", "off"], &[])["outbound"], "off");
    let refused = jirasync(&["config"], &[("JIRASYNC_OUTBOUND", "later")]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("neither on nor off"));
}

#[test]
fn an_unreachable_database_is_one_line_naming_the_url_without_its_password() {
    let output = jirasync(
        &["migrate", "--create-database"],
        &[
            ("AMQP_URL", "amqp://guest:hunter2@127.0.0.1:1/%2f"),
            (
                "DATABASE_URL",
                "postgres://postgres:pw@127.0.0.1:1/jirasync",
            ),
        ],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(
            "error: cannot connect to Postgres at postgres://postgres:***@127.0.0.1:1/jirasync"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2") && !stderr.contains(":pw@"),
        "{stderr}"
    );
}

#[test]
fn passwords_in_query_parameters_and_key_value_strings_are_never_printed() {
    for (database_url, amqp_url) in [
        (
            "host=127.0.0.1 port=1 user=postgres password=kvsecret dbname=jirasync",
            "amqp://guest@127.0.0.1:1/%2f?password=qsecret",
        ),
        (
            "postgres://postgres@127.0.0.1:1/jirasync?password=kvsecret",
            "amqp://guest:qsecret@127.0.0.1:1/%2f,amqp://guest:qsecret@127.0.0.2:1/%2f",
        ),
    ] {
        let env = [("DATABASE_URL", database_url), ("AMQP_URL", amqp_url)];
        let shown = jirasync(&["config"], &env);
        let unreachable = jirasync(&["migrate"], &env);
        assert!(!unreachable.status.success());
        for output in [&shown, &unreachable] {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(
                !text.contains("kvsecret") && !text.contains("qsecret"),
                "{text}"
            );
        }
        let stderr = String::from_utf8_lossy(&unreachable.stderr);
        assert!(
            stderr.contains("cannot connect to Postgres at "),
            "{stderr}"
        );
    }
}
