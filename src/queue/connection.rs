//! Opening AMQP connections with a name the management UI shows and an error
//! that names the (redacted) URL and what to do. `amqps://` URLs may carry
//! RabbitMQ's `cacertfile=<PEM file>` query parameter: the CAs that signed the
//! broker's certificate, trusted besides the system's.

use anyhow::Context;
use lapin::tcp::OwnedTLSConfig;
use lapin::{Connection, ConnectionProperties, DefaultConnectionBuilder};

use crate::config::redact_url;

/// Connects to RabbitMQ; `role` names the connection in the management UI.
pub async fn connect(url: &str, role: &str) -> anyhow::Result<Connection> {
    let properties = ConnectionProperties::default()
        .with_connection_name(format!("jirasync-{role}-{}", std::process::id()).into());
    let (uri, tls) = tls_of(url)?;
    let builder = DefaultConnectionBuilder::new()
        .context("failed to start the AMQP runtime")?
        .with_uri_str(uri)
        .with_properties(properties)
        .with_tls_config(tls);
    match tokio::time::timeout(std::time::Duration::from_secs(10), builder.connect()).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(unreachable(url, e)),
        Err(_) => Err(unreachable(url, "timed out after 10 s")),
    }
}

/// `url` without `cacertfile`, and the TLS settings it named.
fn tls_of(url: &str) -> anyhow::Result<(String, OwnedTLSConfig)> {
    let mut tls = OwnedTLSConfig::default();
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), tls));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("cacertfile", file)) => {
                let file = crate::config::percent_decode(file);
                let pem = std::fs::read_to_string(&file).with_context(|| {
                    format!("cannot read the cacertfile {file} named in AMQP_URL")
                })?;
                anyhow::ensure!(
                    pem.contains("-----BEGIN CERTIFICATE-----"),
                    "the cacertfile {file} named in AMQP_URL holds no PEM certificate"
                );
                tls.cert_chain = Some(pem);
            }
            _ => kept.push(pair),
        }
    }
    let uri = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((uri, tls))
}

/// The one-line error for a broker that cannot be reached.
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
