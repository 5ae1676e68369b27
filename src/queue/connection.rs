//! Opening AMQP connections with a name the management UI shows and an error
//! that names the (redacted) URL and what to do. `AMQP_URL` may list the nodes of
//! one cluster, comma-separated: each connect tries them all, starting at a random
//! one so processes spread over the cluster, and takes the first that answers
//! (whoever reconnects after losing a node so moves to a surviving one).
//! `amqps://` URLs may carry RabbitMQ's `cacertfile=<PEM file>` query parameter:
//! the CAs that signed the broker's certificate, trusted besides the system's.

use std::time::Duration;

use anyhow::Context;
use lapin::tcp::OwnedTLSConfig;
use lapin::{Connection, ConnectionProperties, DefaultConnectionBuilder};

use crate::config::redact_url;

/// How long one node may take to accept a connection.
const NODE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to RabbitMQ, to the first node of `url` that answers; `role` names
/// the connection in the management UI.
pub async fn connect(url: &str, role: &str) -> anyhow::Result<Connection> {
    let nodes = nodes(url);
    let start = rand::random_range(0..nodes.len());
    let mut failures = Vec::new();
    for node in nodes.iter().cycle().skip(start).take(nodes.len()) {
        match connect_node(node, role).await {
            Ok(connection) => {
                if nodes.len() > 1 {
                    tracing::info!(role, node = %redact_url(node), "connected to a RabbitMQ node");
                }
                return Ok(connection);
            }
            Err(error) => failures.push(error),
        }
    }
    Err(unreachable(url, failures.join("; ")))
}

/// The nodes `url` lists (one, or several comma-separated).
pub fn nodes(url: &str) -> Vec<String> {
    let nodes: Vec<String> = url
        .split(',')
        .map(str::trim)
        .filter(|node| !node.is_empty())
        .map(str::to_owned)
        .collect();
    if nodes.is_empty() {
        vec![url.to_owned()]
    } else {
        nodes
    }
}

/// One node: its error in one line (the node named, its password elided).
async fn connect_node(node: &str, role: &str) -> Result<Connection, String> {
    let properties = ConnectionProperties::default()
        .with_connection_name(format!("jirasync-{role}-{}", std::process::id()).into());
    let (uri, tls) = tls_of(node).map_err(|e| format!("{e:#}"))?;
    let builder = DefaultConnectionBuilder::new()
        .map_err(|e| format!("failed to start the AMQP runtime: {e}"))?
        .with_uri_str(uri)
        .with_properties(properties)
        .with_tls_config(tls);
    let shown = redact_url(node);
    match tokio::time::timeout(NODE_TIMEOUT, builder.connect()).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(format!("{shown}: {e}")),
        Err(_) => Err(format!(
            "{shown}: timed out after {} s",
            NODE_TIMEOUT.as_secs()
        )),
    }
}

/// `url` without `cacertfile`, and the TLS settings it named.
fn tls_of(url: &str) -> anyhow::Result<(String, OwnedTLSConfig)> {
    let mut tls = OwnedTLSConfig::default();
    let (uri, taken) = crate::config::take_query_params(url, &["cacertfile"]);
    for (_, file) in taken {
        let pem = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read the cacertfile {file} named in AMQP_URL"))?;
        anyhow::ensure!(
            pem.contains("-----BEGIN CERTIFICATE-----"),
            "the cacertfile {file} named in AMQP_URL holds no PEM certificate"
        );
        tls.cert_chain = Some(pem);
    }
    Ok((uri, tls))
}

/// The one-line error for a broker (or every node of a cluster) that cannot be
/// reached.
pub fn unreachable(url: &str, error: impl std::fmt::Display) -> anyhow::Error {
    let error = error.to_string();
    let advice = if error.contains("certificate") || error.contains("TLS") {
        "check that cacertfile in AMQP_URL is the CA that signed RabbitMQ's certificate and \
         that the host in AMQP_URL is a name the certificate carries"
    } else {
        "check that RabbitMQ is running and AMQP_URL is right"
    };
    anyhow::anyhow!(
        "cannot connect to RabbitMQ at {}: {error}; {advice}",
        redact_url(url)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_list_names_each_node() {
        assert_eq!(
            nodes("amqp://a:5672/%2f, amqp://b:5672/%2f,,amqp://c/%2f"),
            ["amqp://a:5672/%2f", "amqp://b:5672/%2f", "amqp://c/%2f"]
        );
        assert_eq!(nodes("amqp://a/%2f"), ["amqp://a/%2f"]);
    }

    #[test]
    fn cacertfile_is_taken_out_of_the_url_and_read() {
        let dir = std::env::temp_dir().join(format!("jirasync-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("ca.pem");
        std::fs::write(
            &file,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let url = format!(
            "amqps://u:p@mq.example.org:5671/%2f?heartbeat=30&cacertfile={}",
            file.display()
        );
        let (uri, tls) = tls_of(&url).expect("parsed");
        assert_eq!(uri, "amqps://u:p@mq.example.org:5671/%2f?heartbeat=30");
        assert!(
            tls.cert_chain
                .is_some_and(|pem| pem.contains("BEGIN CERTIFICATE"))
        );
        let (uri, tls) = tls_of("amqp://h/%2f").expect("parsed");
        assert_eq!(uri, "amqp://h/%2f");
        assert!(tls.cert_chain.is_none());
        let Err(error) = tls_of("amqps://h/%2f?cacertfile=/nonexistent.pem") else {
            panic!("a missing cacertfile is refused");
        };
        assert!(format!("{error:#}").contains("cannot read the cacertfile /nonexistent.pem"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
