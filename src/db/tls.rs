//! Postgres over TLS, as libpq's `sslmode` and `sslrootcert` in `DATABASE_URL` say
//! (docs/reference.md §2), on rustls. tokio-postgres knows only `disable`, `prefer`
//! and `require` (and refuses `sslrootcert`), so both are read here, taken out of
//! the URL, and mapped onto a connector:
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (the default) | when the server offers it | not checked |
//! | `require` | always | not checked; with `sslrootcert`, as `verify-ca` (as libpq) |
//! | `verify-ca` | always | signed by `sslrootcert` |
//! | `verify-full` | always | signed by `sslrootcert` and naming the host |
//!
//! "Not checked" is libpq's meaning too: it keeps passive listeners out, not a
//! server that pretends. The handshake's signatures are verified in every mode.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` values (`allow` is taken as `prefer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "disable" => Self::Disable,
            "allow" | "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
                ));
            }
        })
    }
}

/// A `DATABASE_URL` read: what tokio-postgres is given, and how TLS is done.
#[derive(Clone)]
pub struct Target {
    /// The connection settings, `sslmode` mapped onto tokio-postgres's three.
    pub config: tokio_postgres::Config,
    /// The connector for every mode (unused with `disable`).
    pub tls: MakeRustlsConnect,
    /// The mode asked for.
    pub mode: SslMode,
}

impl Target {
    /// Reads `url` (a URL or libpq's key-value form).
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let (rest, mode, root) = split(url)?;
        let mut config = tokio_postgres::Config::from_str(&rest)?;
        let mode = match (mode, &root) {
            (None, _) => SslMode::Prefer,
            (Some(SslMode::Require), Some(_)) => SslMode::VerifyCa,
            (Some(mode), _) => mode,
        };
        config.ssl_mode(match mode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
        });
        let tls = MakeRustlsConnect::new(client_config(mode, root.as_ref())?);
        Ok(Self { config, tls, mode })
    }
}

/// `url` without `sslmode` and `sslrootcert`, and their values.
fn split(url: &str) -> anyhow::Result<(String, Option<SslMode>, Option<PathBuf>)> {
    let mut mode = None;
    let mut root = None;
    let mut take = |key: &str, value: String| -> anyhow::Result<bool> {
        match key {
            "sslmode" => mode = Some(value.parse().map_err(anyhow::Error::msg)?),
            "sslrootcert" => root = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (rest, taken) = crate::config::take_query_params(url, &["sslmode", "sslrootcert"]);
        for (key, value) in taken {
            take(&key, value)?;
        }
        rest
    } else {
        let mut kept = Vec::new();
        for (key, value, text) in key_values(url) {
            if !take(&key, value)? {
                kept.push(text);
            }
        }
        kept.join(" ")
    };
    Ok((rest, mode, root))
}

/// The `key=value` pairs of libpq's key-value form, each with its text (values
/// may be single-quoted, with `\` escaping).
fn key_values(text: &str) -> Vec<(String, String, String)> {
    let mut pairs = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut key = String::new();
        let mut value = String::new();
        let mut in_value = false;
        let mut quoted = false;
        let mut end = text.len();
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' if in_value => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '\'' if in_value => quoted = !quoted,
                '=' if !in_value => in_value = true,
                c if c.is_whitespace() && !quoted => {
                    end = at;
                    break;
                }
                c if in_value => value.push(c),
                c => key.push(c),
            }
        }
        pairs.push((key, value, text[start..end].to_owned()));
    }
    pairs
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The rustls configuration of `mode`, trusting the CAs of `root`.
fn client_config(mode: SslMode, root: Option<&PathBuf>) -> anyhow::Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("rustls refused its default protocol versions")?;
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => Arc::new(AnyName {
            chain: None,
            provider: provider(),
        }),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let Some(root) = root else {
                anyhow::bail!(
                    "sslmode={} needs sslrootcert=<file of the CA that signed the server's \
                     certificate> in DATABASE_URL",
                    if mode == SslMode::VerifyCa {
                        "verify-ca"
                    } else {
                        "verify-full"
                    }
                );
            };
            let verifier =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots(root)?), provider())
                    .build()
                    .context("failed to build the certificate verifier")?;
            if mode == SslMode::VerifyCa {
                Arc::new(AnyName {
                    chain: Some(verifier),
                    provider: provider(),
                })
            } else {
                verifier
            }
        }
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The certificates of the PEM file `path`.
fn roots(path: &PathBuf) -> anyhow::Result<RootCertStore> {
    let shown = path.display();
    let mut roots = RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read sslrootcert {shown}"))?;
    for certificate in certificates {
        let certificate =
            certificate.with_context(|| format!("sslrootcert {shown} holds no valid PEM"))?;
        roots
            .add(certificate)
            .with_context(|| format!("sslrootcert {shown} holds a certificate rustls refuses"))?;
    }
    anyhow::ensure!(
        !roots.is_empty(),
        "sslrootcert {shown} holds no certificate"
    );
    Ok(roots)
}

/// `prefer` and `require` (no chain: any certificate) and `verify-ca` (the
/// chain checked, whatever host it names); signatures verified in every mode.
#[derive(Debug)]
struct AnyName {
    /// The CAs' verifier, whose name errors are ignored; `None`: none checked.
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    // The chain's verifier checks signatures with the same provider's algorithms.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_of_a_url() {
        let (rest, mode, root) = split(
            "postgres://u:p@db.example.org:5432/jirasync?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
        )
        .expect("split");
        assert_eq!(
            rest,
            "postgres://u:p@db.example.org:5432/jirasync?application_name=x"
        );
        assert_eq!(mode, Some(SslMode::VerifyFull));
        assert_eq!(root, Some(PathBuf::from("/etc/ca.pem")));
        let (rest, mode, root) = split("postgresql://h/db?sslmode=require").expect("split");
        assert_eq!(
            (rest.as_str(), mode, root),
            ("postgresql://h/db", Some(SslMode::Require), None)
        );
    }

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_of_key_value_settings() {
        let (rest, mode, root) = split(
            "host=db dbname=jirasync sslmode=verify-ca sslrootcert='/etc/my ca.pem' password='a b\\'c'",
        )
        .expect("split");
        assert_eq!(rest, "host=db dbname=jirasync password='a b\\'c'");
        assert_eq!(mode, Some(SslMode::VerifyCa));
        assert_eq!(root, Some(PathBuf::from("/etc/my ca.pem")));
    }

    #[test]
    fn the_default_is_prefer_and_require_with_a_root_verifies_the_chain() {
        let target = Target::parse("postgres://h/db").expect("parse");
        assert_eq!(target.mode, SslMode::Prefer);
        assert_eq!(target.config.get_ssl_mode(), PgSslMode::Prefer);
        let error =
            Target::parse("postgres://h/db?sslmode=require&sslrootcert=/nonexistent/ca.pem")
                .err()
                .expect("the CA file is read");
        assert!(
            format!("{error:#}").contains("cannot read sslrootcert /nonexistent/ca.pem"),
            "{error:#}"
        );
    }

    #[test]
    fn verify_modes_need_a_root_and_unknown_modes_are_named() {
        let error = Target::parse("postgres://h/db?sslmode=verify-full")
            .err()
            .expect("refused");
        assert!(
            format!("{error:#}").contains("sslmode=verify-full needs sslrootcert="),
            "{error:#}"
        );
        let error = Target::parse("postgres://h/db?sslmode=verify")
            .err()
            .expect("refused");
        assert!(
            format!("{error:#}").contains("sslmode=verify is not one of"),
            "{error:#}"
        );
    }
}
