//! Installing a `jira_server` integration (CONTRACT §7, Sentry
//! `JiraServerIntegrationProvider.build_integration`): its external id, metadata,
//! credentials, and the webhook URL with its token. Shared by the access-token
//! job (`worker::oauth_access_token`) and `jirasync integration add`.

use deadpool_postgres::GenericClient;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::Rng as _;
use reqwest::Url;
use serde_json::json;

use crate::db::integrations::{self, Credentials, NewJiraServer, SavedIntegration};

/// Where Jira redirects after the user authorizes (CONTRACT §3).
pub const CALLBACK_PATH: &str = "/extensions/jira-server/oauth/callback";

/// The webhook route, before its token (CONTRACT §3).
pub const WEBHOOK_PATH: &str = "/extensions/jira-server/issue-updated/";

/// Longest external id, as in Sentry (`[:64]`).
const EXTERNAL_ID_MAX_CHARS: usize = 64;

/// Why an integration cannot be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The base URL cannot be parsed or has no host.
    #[error("Jira base URL {0:?} must be an http(s) URL with a host")]
    BaseUrl(String),
    /// The webhook token could not be signed.
    #[error("failed to sign the webhook token")]
    Token(#[from] jsonwebtoken::errors::Error),
}

/// `JIRASYNC_PUBLIC_URL` + the callback route.
pub fn callback_url(public_url: &str) -> String {
    format!("{}{CALLBACK_PATH}", public_url.trim_end_matches('/'))
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

/// `<host[:port]>:<consumer_key>` cut to 64 characters.
pub fn external_id(base_url: &str, consumer_key: &str) -> Result<String, InstallError> {
    let id = format!("{}:{consumer_key}", domain_name(base_url)?);
    Ok(id.chars().take(EXTERNAL_ID_MAX_CHARS).collect())
}

/// A fresh webhook secret: 32 random bytes, hex (64 characters).
pub fn fresh_webhook_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The webhook URL's token: an HS256 JWT `{"id": external_id}` signed with the
/// integration's webhook secret, as Sentry issues it and `worker::token` checks it.
pub fn webhook_token(external_id: &str, webhook_secret: &str) -> Result<String, InstallError> {
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({ "id": external_id }),
        &EncodingKey::from_secret(webhook_secret.as_bytes()),
    )?)
}

/// `JIRASYNC_PUBLIC_URL` + `/extensions/jira-server/issue-updated/<token>/`.
pub fn webhook_url(
    public_url: &str,
    external_id: &str,
    webhook_secret: &str,
) -> Result<String, InstallError> {
    let token = webhook_token(external_id, webhook_secret)?;
    Ok(format!(
        "{}{WEBHOOK_PATH}{token}/",
        public_url.trim_end_matches('/')
    ))
}

/// What an install writes.
pub struct Install<'a> {
    /// Jira's base URL.
    pub base_url: &'a str,
    /// Verify Jira's TLS certificate.
    pub verify_ssl: bool,
    /// Display name; `None` keeps the existing one, or uses the host for a new row.
    pub name: Option<&'a str>,
    /// The credentials (a missing access token keeps a stored one).
    pub credentials: Credentials,
}

/// Creates or updates the integration and its credentials, in the caller's
/// transaction. An existing webhook secret is kept, so registered webhook URLs
/// stay valid.
pub async fn save(
    client: &impl GenericClient,
    install: &Install<'_>,
) -> Result<SavedIntegration, SaveError> {
    let base_url = normalize_base_url(install.base_url);
    let domain = domain_name(&base_url)?;
    let external_id = external_id(&base_url, &install.credentials.consumer_key)?;
    let metadata = json!({
        "base_url": base_url,
        "domain_name": domain,
        "verify_ssl": install.verify_ssl,
        "webhook_secret": fresh_webhook_secret(),
    });
    let saved = integrations::upsert_jira_server(
        client,
        &NewJiraServer {
            external_id: &external_id,
            name: install.name.unwrap_or(&domain),
            keep_name: install.name.is_none(),
            metadata: &metadata,
        },
    )
    .await?;
    integrations::upsert_credentials(client, saved.id, &install.credentials).await?;
    Ok(saved)
}

/// Why [`save`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The input is unusable.
    #[error(transparent)]
    Install(#[from] InstallError),
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
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
        let url = webhook_url("https://sync.example.org/", "jira:ck", "s3cret").expect("signs");
        let token = url
            .strip_prefix("https://sync.example.org/extensions/jira-server/issue-updated/")
            .and_then(|rest| rest.strip_suffix('/'))
            .expect("shape");
        assert_eq!(
            crate::worker::token::external_id(token),
            Ok("jira:ck".into())
        );
        let integration = crate::db::integrations::Integration {
            id: 1,
            metadata: json!({ "webhook_secret": "s3cret" }),
        };
        assert_eq!(crate::worker::token::verify(token, &integration), Ok(()));
    }

    #[test]
    fn fresh_secrets_are_64_hex_characters_and_differ() {
        let (a, b) = (fresh_webhook_secret(), fresh_webhook_secret());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
