//! The command line (docs/reference.md §1): one binary, one subcommand per role,
//! each with the arguments its own file defines; `main` parses it and runs it.

use clap::{Parser, Subcommand};

use crate::commands;
use crate::config::LogSettings;
use crate::shutdown;

/// Keeps issue assignments in step with Jira Server webhooks.
#[derive(Debug, Parser)]
#[command(name = "jirasync", version, about, long_about = None)]
pub struct Cli {
    /// Logging, for every command.
    #[command(flatten)]
    pub log: LogSettings,

    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the SQL migrations and declare the RabbitMQ topology (idempotent).
    Migrate(commands::migrate::Args),
    /// Print the effective configuration as JSON (passwords elided).
    Config(commands::config::Args),
    /// Run the HTTP ingress that puts Jira webhooks on RabbitMQ.
    Ingress(crate::ingress::Args),
    /// Run one worker process: a pool of consumer tasks.
    Worker(crate::worker::Args),
    /// The local default: migrate --create-database, then ingress, worker and console in one process.
    Run(commands::run::Args),
    /// Serve the operator console alone (or, with --hash-password, hash its password).
    Console(commands::console::Args),
    /// Manage Jira Server integrations.
    #[command(subcommand)]
    Integration(commands::integration::Command),
    /// Connect a Jira Server by OAuth 1.0a or OAuth 2.0 (for a personal access
    /// token, see `integration add --pat-file`).
    #[command(subcommand)]
    Oauth(commands::oauth::Command),
    /// Inspect and replay dead-lettered messages.
    #[command(subcommand)]
    Dlq(commands::dlq::Command),
    /// Seed a small demo organization and integration and print a ready curl.
    Demo(commands::demo::Args),
    /// Enqueue reconcile jobs: re-read recently updated linked issues from Jira.
    Reconcile(commands::reconcile::Args),
    /// Why an issue's groups are (or are not) assigned: its recent sync history.
    Explain(commands::explain::Args),
    /// Map Jira users to users, for assignees whose email is hidden or matches no one.
    #[command(subcommand)]
    UserMap(commands::user_map::Command),
    /// Map each Jira project's statuses for resolved and unresolved groups (two-way sync).
    #[command(subcommand)]
    StatusMap(commands::status_map::Command),
    /// Encrypt stored secrets with JIRASYNC_SECRET_KEY, or move them to a new key.
    #[command(subcommand)]
    Secrets(commands::secrets::Command),
}

impl Cli {
    /// How many threads the command's runtime runs tasks on: the worker's
    /// setting for `jirasync worker`; `None`, one per core (or as
    /// `TOKIO_WORKER_THREADS` says), for every other command.
    pub fn runtime_threads(&self) -> Option<usize> {
        match &self.command {
            Command::Worker(args) => Some(usize::from(args.worker.threads)),
            _ => None,
        }
    }

    /// Runs the command; the long-running ones until SIGINT or SIGTERM.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Migrate(args) => commands::migrate::run(&args).await,
            Command::Config(args) => {
                commands::config::run(&args, &self.log);
                Ok(())
            }
            Command::Ingress(args) => crate::ingress::run(args, shutdown::on_signals()).await,
            Command::Worker(args) => crate::worker::run(args, shutdown::on_signals()).await,
            Command::Run(args) => commands::run::run(args, shutdown::on_signals()).await,
            Command::Console(args) => commands::console::run(args, shutdown::on_signals()).await,
            Command::Integration(command) => commands::integration::run(&command).await,
            Command::Oauth(command) => commands::oauth::run(&command).await,
            Command::Dlq(command) => commands::dlq::run(&command).await,
            Command::Demo(args) => commands::demo::run(&args).await,
            Command::Reconcile(args) => commands::reconcile::run(&args).await,
            Command::Explain(args) => commands::explain::run(&args).await,
            Command::UserMap(command) => commands::user_map::run(&command).await,
            Command::StatusMap(command) => commands::status_map::run(&command).await,
            Command::Secrets(command) => commands::secrets::run(&command).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn each_command_lists_only_the_service_flags_it_uses() {
        let cli = Cli::command();
        let flags = |path: &[&str]| -> Vec<String> {
            let mut command = &cli;
            for name in path {
                command = command
                    .find_subcommand(name)
                    .unwrap_or_else(|| panic!("no subcommand {name}"));
            }
            command
                .get_arguments()
                .filter_map(|arg| arg.get_long().map(str::to_owned))
                .collect()
        };
        let status = flags(&["oauth", "status"]);
        assert!(status.contains(&"database-url".to_owned()), "{status:?}");
        for absent in ["amqp-url", "listen", "worker-concurrency", "public-url"] {
            assert!(!status.contains(&absent.to_owned()), "{absent}: {status:?}");
        }
        let dlq = flags(&["dlq", "list"]);
        assert!(dlq.contains(&"amqp-url".to_owned()), "{dlq:?}");
        for absent in ["database-url", "retry-delays", "public-url"] {
            assert!(!dlq.contains(&absent.to_owned()), "{absent}: {dlq:?}");
        }
        let ingress = flags(&["ingress"]);
        assert!(ingress.contains(&"listen".to_owned()), "{ingress:?}");
        assert!(!ingress.contains(&"database-url".to_owned()), "{ingress:?}");
        let run = flags(&["run"]);
        for present in ["database-url", "amqp-url", "listen", "worker-concurrency"] {
            assert!(run.contains(&present.to_owned()), "{present}: {run:?}");
        }
    }

    #[test]
    fn one_auth_method_per_command() {
        let parse = |args: &[&str]| Cli::try_parse_from(["jirasync"].iter().chain(args));
        let base = ["--base-url", "https://jira.example.org"];
        let oauth2 = ["--client-id", "c", "--client-secret-file", "s"];
        let oauth1 = ["--consumer-key", "k", "--private-key-file", "p"];
        let start = |auth: &[&str]| {
            let mut args = vec!["oauth", "start"];
            args.extend(base);
            args.extend(auth);
            parse(&args)
        };
        assert!(start(&oauth2).is_ok());
        assert!(start(&oauth1).is_ok());
        let both = [&oauth1[..], &oauth2[..]].concat();
        let error = start(&both).expect_err("both methods");
        assert_eq!(error.kind(), clap::error::ErrorKind::ArgumentConflict);
        assert_eq!(
            start(&[]).expect_err("no method").kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        assert!(
            start(&["--client-id", "c"]).is_err(),
            "a client id needs its secret"
        );

        let cloud = |extra: &[&str]| {
            let mut args = vec!["oauth", "start", "--cloud"];
            args.extend(extra);
            parse(&args)
        };
        assert!(cloud(&oauth2).is_ok());
        assert!(cloud(&[&oauth2[..], &["--site", "https://acme.atlassian.net"]].concat()).is_ok());
        for (case, args) in [
            ("a base URL", [&oauth2[..], &base[..]].concat()),
            ("a scope", [&oauth2[..], &["--scope", "ADMIN"]].concat()),
            ("an application link", [&oauth2[..], &oauth1[..]].concat()),
        ] {
            assert_eq!(
                cloud(&args).expect_err(case).kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "case {case}"
            );
        }
        assert!(cloud(&[]).is_err(), "--cloud needs a client");
        let site_alone = [
            &base[..],
            &oauth2[..],
            &["--site", "https://acme.atlassian.net"],
        ]
        .concat();
        assert!(start(&site_alone[2..]).is_err(), "--site needs --cloud");

        let add = |auth: &[&str]| {
            let mut args = vec!["integration", "add"];
            args.extend(base);
            args.extend(auth);
            parse(&args)
        };
        assert!(add(&["--pat-file", "t"]).is_ok());
        let both = [&oauth1[..], &["--pat-file", "t"][..]].concat();
        assert_eq!(
            add(&both).expect_err("both").kind(),
            clap::error::ErrorKind::ArgumentConflict
        );
    }
}
