//! The `jirasync` binary: parses the command line, starts telemetry, runs the command.

use clap::Parser;
use jirasync::cli::Cli;
use jirasync::telemetry;

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
    telemetry::init_tracing(&cli.log)?;
    cli.run().await
}
