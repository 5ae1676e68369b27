//! The ingress's settings: the public URL Jira reaches it at, and its HTTP
//! listener with the body limit and the per-client limits behind trusted proxies.

use std::net::SocketAddr;
use std::str::FromStr;

use clap::Args;

use super::proxies::TrustedProxies;
use super::values;

/// How Jira reaches the ingress.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Public URL")]
pub struct PublicSettings {
    /// How Jira reaches the ingress; used in webhook URLs and the OAuth callback.
    #[arg(
        id = "public_url",
        long = "public-url",
        alias = "jirasync-public-url",
        value_name = "URL",
        env = "JIRASYNC_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080",
        value_parser = values::parse_public_url
    )]
    pub url: String,
}

/// The ingress's HTTP listener.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Ingress")]
pub struct HttpSettings {
    /// Address the ingress listens on.
    #[arg(
        long,
        alias = "jirasync-listen",
        value_name = "ADDRESS",
        env = "JIRASYNC_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,

    /// Larger webhook bodies are refused with 413.
    #[arg(
        long,
        alias = "jirasync-max-body-bytes",
        value_name = "BYTES",
        env = "JIRASYNC_MAX_BODY_BYTES",
        default_value = "2097152",
        value_parser = values::parse_body_limit
    )]
    pub max_body_bytes: usize,

    /// Comma-separated CIDR blocks of the reverse proxies in front of the ingress,
    /// whose `X-Forwarded-For` names the client; unset: the header is ignored.
    #[arg(
        long,
        value_name = "CIDRS",
        env = "JIRASYNC_TRUSTED_PROXIES",
        default_value = "",
        hide_default_value = true,
        value_parser = TrustedProxies::from_str
    )]
    pub trusted_proxies: TrustedProxies,

    /// Open connections per client; one more closes that client's longest-idle
    /// connection.
    #[arg(
        long,
        value_name = "N",
        env = "JIRASYNC_CLIENT_MAX_CONNECTIONS",
        default_value = "128",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub client_max_connections: u32,

    /// Requests being handled per client; more get 429.
    #[arg(
        long,
        value_name = "N",
        env = "JIRASYNC_CLIENT_MAX_IN_FLIGHT",
        default_value = "64",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub client_max_in_flight: u32,

    /// Rejected webhook tokens per client and minute that make the client suspect.
    #[arg(
        long,
        value_name = "N",
        env = "JIRASYNC_CLIENT_MAX_REJECTS",
        default_value = "20",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub client_max_rejects: u32,
}
