//! OAuth 1.0a request signing with RSA-SHA1 (RFC 5849 §3.4.3), as Jira Server
//! application links require: parameters in the `Authorization` header, empty
//! consumer secret. Used by [`Auth`](super::Auth) for every OAuth 1.0a call and by
//! the install flow's steps (`oauth1_flow.rs`); usable on its own.
//!
//! `oauth_version="1.0"` is always sent: RFC 5849 makes it optional and Jira
//! accepts either, but oauthlib (Sentry's signer) sends it and so do we.

mod base_string;
mod key;
#[cfg(test)]
mod known_answers;

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::Rng as _;
use rand::distr::Alphanumeric;
use reqwest::{Method, Url};
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use sha1::Sha1;

pub use base_string::percent_encode;
pub use key::KeyError;

/// The `oauth_signature_method` this signer implements.
pub const SIGNATURE_METHOD: &str = "RSA-SHA1";

/// Length of generated nonces: 32 alphanumerics, about 190 bits.
const NONCE_LEN: usize = 32;

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The URL to sign has no host, so it has no base string URI.
    #[error("cannot sign a request to a URL without a host")]
    NoHost,
    /// The RSA operation failed.
    #[error("failed to compute the RSA-SHA1 signature")]
    Rsa(#[source] rsa::signature::Error),
}

/// The OAuth protocol parameters that vary between requests. All optional:
/// `callback` for the request-token step, `token` + `verifier` for the
/// access-token step, `token` alone for REST calls.
#[derive(Clone, Copy, Default)]
pub struct OAuthParams<'a> {
    /// `oauth_callback`: where Jira redirects after the user authorizes.
    pub callback: Option<&'a str>,
    /// `oauth_token`: a request token or an access token.
    pub token: Option<&'a str>,
    /// `oauth_verifier`: the verifier of the authorization step.
    pub verifier: Option<&'a str>,
    /// A fixed `oauth_nonce`, for tests; `None` draws a fresh random one.
    pub nonce: Option<&'a str>,
    /// A fixed `oauth_timestamp`, for tests; `None` uses the current time.
    pub timestamp: Option<u64>,
}

impl fmt::Debug for OAuthParams<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |value: Option<&str>| value.map(|_| "[redacted]");
        f.debug_struct("OAuthParams")
            .field("callback", &self.callback)
            .field("token", &redact(self.token))
            .field("verifier", &redact(self.verifier))
            .field("nonce", &self.nonce)
            .field("timestamp", &self.timestamp)
            .finish()
    }
}

/// Signs requests for one Jira application link: a consumer key and its RSA
/// private key. Cheap to clone; `Debug` never shows the key.
#[derive(Clone)]
pub struct Signer {
    consumer_key: String,
    key: SigningKey<Sha1>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("consumer_key", &self.consumer_key)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

impl Signer {
    /// A signer for `consumer_key` with the PEM private key `private_key_pem`
    /// (PKCS#1 `BEGIN RSA PRIVATE KEY` or unencrypted PKCS#8 `BEGIN PRIVATE KEY`).
    pub fn from_pem(
        consumer_key: impl Into<String>,
        private_key_pem: &str,
    ) -> Result<Self, KeyError> {
        Ok(Self {
            consumer_key: consumer_key.into(),
            key: key::signing_key_from_pem(private_key_pem)?,
        })
    }

    /// The consumer key this signer signs for.
    pub fn consumer_key(&self) -> &str {
        &self.consumer_key
    }

    /// The `Authorization` header value for a request: `method` to `url`
    /// (its query parameters are signed), with `form` the decoded parameters of
    /// an `application/x-www-form-urlencoded` body (empty for any other body).
    /// A fresh nonce and timestamp are drawn unless `params` fixes them.
    pub fn authorization_header(
        &self,
        method: &Method,
        url: &Url,
        form: &[(&str, &str)],
        params: &OAuthParams<'_>,
    ) -> Result<String, SignError> {
        let protocol = self.protocol_parameters(params);
        let base = base_string(method, url, form, &protocol)?;
        let signature = self.key.try_sign(base.as_bytes()).map_err(SignError::Rsa)?;
        let signature = BASE64.encode(signature.to_bytes());

        let mut header = String::from("OAuth ");
        let mut fields: Vec<(&str, &str)> = protocol
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        fields.push(("oauth_signature", &signature));
        fields.sort_unstable();
        for (index, (name, value)) in fields.iter().enumerate() {
            if index > 0 {
                header.push_str(", ");
            }
            // §3.5.1: names and values percent-encoded, values in double quotes.
            header.push_str(&format!(
                "{}=\"{}\"",
                percent_encode(name),
                percent_encode(value)
            ));
        }
        Ok(header)
    }

    /// The `oauth_*` parameters except `oauth_signature`.
    fn protocol_parameters(&self, params: &OAuthParams<'_>) -> Vec<(&'static str, String)> {
        let nonce = params.nonce.map_or_else(fresh_nonce, str::to_owned);
        let timestamp = params.timestamp.unwrap_or_else(now_unix_seconds);
        let mut protocol = vec![
            ("oauth_consumer_key", self.consumer_key.clone()),
            ("oauth_nonce", nonce),
            ("oauth_signature_method", SIGNATURE_METHOD.to_owned()),
            ("oauth_timestamp", timestamp.to_string()),
            ("oauth_version", "1.0".to_owned()),
        ];
        let optional = [
            ("oauth_callback", params.callback),
            ("oauth_token", params.token),
            ("oauth_verifier", params.verifier),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                protocol.push((name, value.to_owned()));
            }
        }
        protocol
    }
}

/// Collects query, form and protocol parameters (§3.4.1.3.1) into the base string.
fn base_string(
    method: &Method,
    url: &Url,
    form: &[(&str, &str)],
    protocol: &[(&'static str, String)],
) -> Result<String, SignError> {
    let uri = base_string::base_string_uri(url).ok_or(SignError::NoHost)?;
    // The query is decoded as `application/x-www-form-urlencoded` (`+` is a space).
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let parameters = query
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .chain(form.iter().copied())
        .chain(protocol.iter().map(|(name, value)| (*name, value.as_str())));
    let normalized = base_string::normalize_parameters(parameters);
    Ok(base_string::signature_base_string(
        method.as_str(),
        &uri,
        &normalized,
    ))
}

fn fresh_nonce() -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(NONCE_LEN)
        .map(char::from)
        .collect()
}

fn now_unix_seconds() -> u64 {
    // A clock before 1970 is broken beyond what a signature can fix; Jira will
    // answer `timestamp_refused`, which names the problem.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
