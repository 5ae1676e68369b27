//! The `jirasync` binary: parses the command line, starts telemetry, runs the command.

use clap::Parser;
use jirasync::cli::Cli;
use jirasync::telemetry;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = cli.runtime_threads() {
        runtime.worker_threads(threads);
    }
    let result = match runtime.build() {
        Ok(runtime) => runtime.block_on(start(cli)),
        Err(error) => Err(anyhow::Error::new(error).context("could not start the async runtime")),
    };
    if let Err(error) = result {
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
