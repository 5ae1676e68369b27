//! `docs/reference.md` stays true: every command, flag and environment variable of
//! the real command line, every message type, outcome label and metric of the
//! code, and every table of `migrations/` appears in it.

use std::collections::BTreeSet;

use clap::CommandFactory;
use jirasync::cli::Cli;
use jirasync::integration::messages::{JOB_TYPES, WEBHOOK};

const REFERENCE: &str = include_str!("../../docs/reference.md");

/// Every command path (`oauth start`), with the command itself.
fn commands(command: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
    for sub in command.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let path = format!("{path} {}", sub.get_name()).trim().to_owned();
        out.push((path.clone(), sub.clone()));
        commands(sub, &path, out);
    }
}

/// Of `names`, those whose `shown` form the reference never mentions.
fn missing<'a>(
    names: impl IntoIterator<Item = &'a str>,
    shown: impl Fn(&str) -> String,
) -> Vec<String> {
    names
        .into_iter()
        .filter(|name| !REFERENCE.contains(&shown(name)))
        .map(str::to_owned)
        .collect()
}

/// Whether `token` appears as a word of its own (`--since`, not `--since-ms`).
fn mentioned(token: &str) -> bool {
    let word =
        |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    REFERENCE.match_indices(token).any(|(at, _)| {
        !word(REFERENCE[..at].chars().next_back())
            && !word(REFERENCE[at + token.len()..].chars().next())
    })
}

#[test]
fn every_command_flag_and_variable_of_the_command_line_is_documented() {
    let cli = Cli::command();
    let mut all = Vec::new();
    commands(&cli, "", &mut all);
    assert!(all.len() >= 15, "{} commands", all.len());
    let paths: Vec<&str> = all.iter().map(|(path, _)| path.as_str()).collect();
    let undocumented = missing(paths, |path| format!("`jirasync {path}"));
    assert!(
        undocumented.is_empty(),
        "commands missing from docs/reference.md: {undocumented:?}"
    );

    let mut flags = BTreeSet::new();
    let mut variables = BTreeSet::new();
    for command in std::iter::once(&cli).chain(all.iter().map(|(_, command)| command)) {
        for arg in command.get_arguments() {
            if let Some(long) = arg.get_long() {
                flags.insert(format!("--{long}"));
            }
            if let Some(env) = arg.get_env() {
                variables.insert(env.to_string_lossy().into_owned());
            }
        }
    }
    flags.remove("--help");
    flags.remove("--version");
    assert!(variables.len() >= 12, "{variables:?}");
    let undocumented: Vec<&String> = flags.iter().filter(|flag| !mentioned(flag)).collect();
    assert!(
        undocumented.is_empty(),
        "flags missing from docs/reference.md: {undocumented:?}"
    );
    let undocumented: Vec<&String> = variables.iter().filter(|var| !mentioned(var)).collect();
    assert!(
        undocumented.is_empty(),
        "variables missing from docs/reference.md: {undocumented:?}"
    );
}

#[test]
fn every_message_type_and_outcome_is_documented() {
    let types = JOB_TYPES.into_iter().chain([WEBHOOK]);
    let undocumented = missing(types, |kind| format!("`{kind}`"));
    assert!(
        undocumented.is_empty(),
        "message types missing: {undocumented:?}"
    );
    let labels = jirasync::worker::outcome::all_labels();
    let undocumented = missing(labels, |label| format!("`{label}`"));
    assert!(
        undocumented.is_empty(),
        "outcomes missing: {undocumented:?}"
    );
}

#[test]
fn every_table_and_metric_is_documented() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut tables = Vec::new();
    for entry in std::fs::read_dir(format!("{root}/migrations")).expect("migrations/") {
        let sql = std::fs::read_to_string(entry.expect("entry").path()).expect("a migration");
        for line in sql.lines() {
            if let Some(rest) = line.strip_prefix("CREATE TABLE ") {
                tables.push(
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
        }
    }
    assert!(tables.len() >= 18, "{tables:?}");
    let undocumented = missing(tables.iter().map(String::as_str), |table| {
        format!("\n{table}(")
    });
    assert!(
        undocumented.is_empty(),
        "tables missing from §8: {undocumented:?}"
    );

    let mut metrics = BTreeSet::new();
    let mut dirs = vec![std::path::PathBuf::from(format!("{root}/src"))];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let code = std::fs::read_to_string(&path).expect("a source file");
            for part in code.split("!(\"jirasync_").skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                metrics.insert(format!("jirasync_{name}"));
            }
        }
    }
    assert!(metrics.len() >= 9, "{metrics:?}");
    let undocumented = missing(metrics.iter().map(String::as_str), |metric| {
        format!("`{metric}`")
    });
    assert!(
        undocumented.is_empty(),
        "metrics missing from §9: {undocumented:?}"
    );
}

/// Every `.rs` file under `dir`, concatenated.
fn sources(dir: &std::path::Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).expect("read a source file"));
        }
    }
}

#[test]
fn the_readme_troubleshooting_quotes_what_the_code_logs_and_counts() {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## Troubleshooting")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README.md has a Troubleshooting section");
    let mut code = String::new();
    sources(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut code,
    );
    // What an operator greps the logs and metrics for.
    let quoted = [
        "RabbitMQ unavailable; retrying",
        "request not accepted: broker unavailable",
        "RabbitMQ blocked the connection",
        "cannot connect to RabbitMQ at ",
        "waiting for Postgres",
        "Postgres is unreachable: holding the messages in hand",
        "Postgres answers again; resuming",
        "the integration's Jira is failing",
        "the integration's Jira answers again",
        "jirasync_jira_available",
        "webhook rejected",
        "Jira refused the integration's credentials; it needs to be connected again",
        "RabbitMQ refused the message (nack): its queue is full",
        "the ingress is busy",
        "broker unavailable\\n",
        "jirasync_broker_connected",
        "jirasync_database_available",
        "jirasync_needs_reauth_total",
        "jirasync_dead_lettered_total",
        "jirasync_http_shed_total",
        "invalid_token",
        "dead-lettered by the broker",
        "which neither JIRASYNC_SECRET_KEY nor JIRASYNC_SECRET_KEY_OLD is",
        "JIRASYNC_SECRET_KEY is not set",
        "secret_unreadable",
        "plaintext where a sealed value is required: refused, not used",
        "sealed for another column or row",
    ];
    let mut stale = Vec::new();
    for text in quoted {
        let shown = text.trim_end_matches("\\n");
        if !section.contains(shown) {
            stale.push(format!(
                "the README's Troubleshooting no longer quotes {shown:?}"
            ));
        }
        if !code.contains(text) {
            stale.push(format!(
                "no code writes {text:?} any more: update the README"
            ));
        }
    }
    assert!(stale.is_empty(), "{}", stale.join("\n"));
}
