//! The record installing a `jira_server` integration writes (docs/reference.md §7,
//! Sentry `JiraServerIntegrationProvider.build_integration`): its external id,
//! metadata, webhook secret and credentials. The one [`save`] of the OAuth 1.0a
//! access-token job, `integration add` and `demo`.

use deadpool_postgres::GenericClient;
use rand::Rng as _;
use reqwest::Url;

use super::credentials::Credentials;
use super::metadata::Metadata;
use super::provider::Kind;
use super::row::Integration;
use super::store;
use crate::db::StoreError;
use crate::secrets::{Keyring, Unreadable};

/// Longest external id, as in Sentry (`[:64]`).
const EXTERNAL_ID_MAX_CHARS: usize = 64;

/// Why an integration cannot be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The base URL cannot be parsed or has no host.
    #[error("Jira base URL {0:?} must be an http(s) URL with a host")]
    BaseUrl(String),
}

/// Why [`save`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The input is unusable.
    #[error(transparent)]
    Install(#[from] InstallError),
    /// The database failed.
    #[error("failed to save the integration")]
    Db(#[from] tokio_postgres::Error),
    /// The stored integration's secrets do not open with the configured keys.
    #[error(transparent)]
    Unreadable(#[from] Unreadable),
}

impl From<StoreError> for SaveError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Db(error) => Self::Db(error),
            StoreError::Unreadable(error) => Self::Unreadable(error),
        }
    }
}

/// A base URL without surrounding blanks and trailing slashes.
pub fn normalize_base_url(base_url: &str) -> String {
    base_url.trim().trim_end_matches('/').to_owned()
}

/// `host[:port]` of the base URL (Sentry's `domain_name`, from `netloc`); the
/// port only when it is not the scheme's default.
pub fn domain_name(base_url: &str) -> Result<String, InstallError> {
    let url = Url::parse(base_url).map_err(|_| InstallError::BaseUrl(base_url.to_owned()))?;
    let host = url
        .host_str()
        .ok_or_else(|| InstallError::BaseUrl(base_url.to_owned()))?;
    Ok(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// `<host[:port]>:<link>` cut to 64 characters, where `link` names how jirasync
/// connects: the OAuth 1.0a consumer key, the OAuth 2.0 client id, or
/// `pat:<Jira user name>` for a personal access token.
pub fn external_id(base_url: &str, link: &str) -> Result<String, InstallError> {
    let id = format!("{}:{link}", domain_name(base_url)?);
    Ok(id.chars().take(EXTERNAL_ID_MAX_CHARS).collect())
}

/// A fresh webhook secret: 32 random bytes, hex (64 characters).
pub fn fresh_webhook_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// What an install writes.
pub struct Install<'a> {
    /// Jira's base URL.
    pub base_url: &'a str,
    /// Verify Jira's TLS certificate.
    pub verify_ssl: bool,
    /// Display name; `None` keeps the existing one, or uses the host for a new row.
    pub name: Option<&'a str>,
    /// Names the connection in the external id (see [`external_id`]).
    pub link: &'a str,
    /// How jirasync calls this Jira (a missing access token keeps a stored one);
    /// `None` for an integration that only receives webhooks (the demo).
    pub credentials: Option<&'a Credentials>,
}

/// Creates or updates the integration and its credentials, in the caller's
/// transaction. An existing webhook secret is kept, so registered webhook URLs
/// stay valid; the integration is returned with the secret in effect.
pub async fn save(
    client: &impl GenericClient,
    keys: &Keyring,
    install: &Install<'_>,
) -> Result<Integration, SaveError> {
    let base_url = normalize_base_url(install.base_url);
    let domain = domain_name(&base_url)?;
    let external_id = external_id(&base_url, install.link)?;
    let metadata = Metadata {
        base_url,
        domain_name: domain,
        verify_ssl: install.verify_ssl,
        webhook_secret: Some(fresh_webhook_secret()),
        ..Metadata::default()
    };
    let saved = store::upsert(
        client,
        keys,
        Kind::Server,
        &external_id,
        install.name,
        &metadata.domain_name,
        &metadata,
    )
    .await?;
    if let Some(credentials) = install.credentials {
        store::upsert_credentials(client, keys, saved.id, credentials).await?;
    }
    Ok(saved)
}

/// What connecting a Jira Cloud site writes (docs/reference.md §11.1).
pub struct CloudInstall<'a> {
    /// The site, `https://acme.atlassian.net`.
    pub site: &'a str,
    /// Its cloudId (`<site>/_edge/tenant_info`): the external id.
    pub cloud_id: &'a str,
    /// Where REST calls go: the site, or the gateway `<API>/ex/jira/<cloudId>`
    /// (whichever answered the check).
    pub base_url: &'a str,
    /// Display name; `None` keeps the existing one, or uses the site's host.
    pub name: Option<&'a str>,
    /// How jirasync calls the site.
    pub credentials: &'a Credentials,
}

/// Creates or updates the site's `jira_cloud` integration (one per cloudId) and
/// its credentials, in the caller's transaction: connecting a site again updates
/// its method and credentials (clearing `needs_reauth`) and keeps its
/// `webhook_secret` and `webhook_hmac_secret`, which a new row gets fresh.
pub async fn save_cloud(
    client: &impl GenericClient,
    keys: &Keyring,
    install: &CloudInstall<'_>,
) -> Result<Integration, SaveError> {
    let site = normalize_base_url(install.site);
    let domain = domain_name(&site)?;
    let metadata = Metadata {
        base_url: normalize_base_url(install.base_url),
        domain_name: domain,
        site: Some(site),
        cloud_id: Some(install.cloud_id.to_owned()),
        webhook_secret: Some(fresh_webhook_secret()),
        ..Metadata::default()
    };
    let mut saved = store::upsert(
        client,
        keys,
        Kind::Cloud,
        install.cloud_id,
        install.name,
        &metadata.domain_name,
        &metadata,
    )
    .await?;
    if saved.metadata.webhook_hmac_secret.is_none() {
        let secret = fresh_webhook_secret();
        let patch = serde_json::json!({ "webhook_hmac_secret": secret });
        store::merge_metadata(client, keys, saved.id, &[], &patch).await?;
        saved.metadata.webhook_hmac_secret = Some(secret);
    }
    store::upsert_credentials(client, keys, saved.id, install.credentials).await?;
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_ids_are_host_port_and_consumer_key_cut_to_64_characters() {
        let long_key = "k".repeat(80);
        let cases = [
            (
                "https://jira.example.org",
                "jirasync",
                "jira.example.org:jirasync",
            ),
            (
                "https://jira.example.org:8443/jira/",
                "ck",
                "jira.example.org:8443:ck",
            ),
            ("https://jira.example.org:443", "ck", "jira.example.org:ck"),
            ("http://127.0.0.1:8080", "ck", "127.0.0.1:8080:ck"),
        ];
        for (base, key, expected) in cases {
            assert_eq!(external_id(base, key).expect(base), expected, "case {base}");
        }
        let cut = external_id("https://jira.example.org", &long_key).expect("valid");
        assert_eq!(cut.chars().count(), 64);
        assert!(cut.starts_with("jira.example.org:kkk"));
        assert!(external_id("jira.example.org", "ck").is_err());
    }

    #[test]
    fn webhook_urls_carry_a_token_the_worker_accepts() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let integration = Integration {
            id: 1,
            provider: Kind::Server,
            external_id: "jira:ck".into(),
            status: "active".into(),
            metadata: Metadata {
                webhook_secret: Some("s3cret".into()),
                ..Metadata::default()
            },
        };
        let url = integration
            .webhook_url("https://sync.example.org/")
            .expect("signs");
        let token = url
            .strip_prefix("https://sync.example.org/extensions/jira-server/issue-updated/")
            .and_then(|rest| rest.strip_suffix('/'))
            .expect("shape");
        assert_eq!(
            super::super::token::external_id(token),
            Ok("jira:ck".into())
        );
        assert_eq!(
            super::super::token::verify(token, &integration.metadata),
            Ok(())
        );
    }

    #[test]
    fn fresh_secrets_are_64_hex_characters_and_differ() {
        let (a, b) = (fresh_webhook_secret(), fresh_webhook_secret());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
