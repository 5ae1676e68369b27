//! Opening AMQP connections with a name the management UI shows and an error
//! that names the (redacted) URL and what to do.

use lapin::{Connection, ConnectionProperties};

use crate::config::redact_url;

/// Connects to RabbitMQ; `role` names the connection in the management UI.
pub async fn connect(url: &str, role: &str) -> anyhow::Result<Connection> {
    let properties = ConnectionProperties::default()
        .with_connection_name(format!("jirasync-{role}-{}", std::process::id()).into());
    let connect = Connection::connect(url, properties);
    match tokio::time::timeout(std::time::Duration::from_secs(10), connect).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(unreachable(url, e)),
        Err(_) => Err(unreachable(url, "timed out after 10 s")),
    }
}

/// The one-line error for a broker that cannot be reached.
pub fn unreachable(url: &str, error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot connect to RabbitMQ at {}: {error}; check that RabbitMQ is running and AMQP_URL is right",
        redact_url(url)
    )
}
