//! `jirasync config`: prints the effective configuration as JSON, every password
//! elided (for operators checking what a deployment's environment amounts to).

use crate::config::{LogSettings, Settings};

/// The arguments of `config`: every setting.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Every setting.
    #[command(flatten)]
    pub settings: Settings,
}

/// Prints the settings and the log settings as one JSON object.
pub fn run(args: &Args, log: &LogSettings) {
    println!("{:#}", args.settings.redacted_json(log));
}
