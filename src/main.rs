//! The `jirasync` binary: parses the command line, starts telemetry, dispatches.

use clap::Parser;
use jirasync::cli::{Cli, Command};
use jirasync::{commands, demo, dlq, ingress, shutdown, telemetry, worker};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Err(error) = start(cli).await {
        eprintln!("error: {error:#}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}

async fn start(cli: Cli) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let settings = cli.settings;
    telemetry::init_tracing(settings.log_format, &settings.rust_log)?;
    match cli.command {
        Command::Migrate { create_database } => commands::migrate(&settings, create_database).await,
        Command::Config => {
            println!("{:#}", settings.redacted_json());
            Ok(())
        }
        Command::Ingress => ingress::run(settings, shutdown::on_signals()).await,
        Command::Worker => worker::run(settings, shutdown::on_signals()).await,
        Command::Run => commands::run(settings, shutdown::on_signals()).await,
        Command::Integration(command) => commands::integration::run(&settings, command).await,
        Command::Oauth(command) => commands::oauth::run(&settings, command).await,
        Command::Dlq(command) => dlq::run(&settings, command).await,
        Command::Demo { send } => demo::run(&settings, send).await,
        Command::Reconcile { integration, since } => {
            commands::reconcile::run(&settings, integration, since).await
        }
    }
}
