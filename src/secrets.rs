//! Secrets at rest (docs/reference.md §8): with `JIRASYNC_SECRET_KEY` set, RSA
//! private keys, OAuth tokens and secrets, client secrets, PATs and webhook secrets
//! are stored sealed with XChaCha20-Poly1305 — random 192-bit nonces, so no nonce
//! repeats under one key — as `jsenc1:<key id>:<base64url(nonce ‖ ciphertext)>`.
//! The key id (the first 8 hex digits of the key's SHA-256) says which key opens
//! a value, so `JIRASYNC_SECRET_KEY_OLD` can open what an older key sealed while
//! `jirasync secrets reencrypt` moves it to the new one. Each value is bound to
//! where it is stored (its context, e.g. `integration_credentials.private_key`) as
//! associated data: a sealed value copied into another column does not open.
//! Values without the prefix are plaintext written before a key was set (or by an
//! older version) and are read as they are.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// What a sealed value starts with.
pub const PREFIX: &str = "jsenc1:";
const NONCE_LEN: usize = 24;

/// Where each sealed value is stored: the associated data it is sealed with, so
/// a value copied into another column, key or table does not open.
pub mod place {
    /// `integrations.metadata->>'webhook_secret'`.
    pub const WEBHOOK_SECRET: &str = "integrations.metadata.webhook_secret";
    /// `integrations.metadata->>'webhook_hmac_secret'`.
    pub const WEBHOOK_HMAC_SECRET: &str = "integrations.metadata.webhook_hmac_secret";
    /// `integration_credentials.private_key`.
    pub const PRIVATE_KEY: &str = "integration_credentials.private_key";
    /// `integration_credentials.access_token` (OAuth 1.0a and 2.0 tokens, PATs).
    pub const ACCESS_TOKEN: &str = "integration_credentials.access_token";
    /// `integration_credentials.access_token_secret`.
    pub const ACCESS_TOKEN_SECRET: &str = "integration_credentials.access_token_secret";
    /// `integration_credentials.client_secret`.
    pub const CLIENT_SECRET: &str = "integration_credentials.client_secret";
    /// `integration_credentials.refresh_token`.
    pub const REFRESH_TOKEN: &str = "integration_credentials.refresh_token";
    /// `oauth_sessions.private_key`.
    pub const SESSION_PRIVATE_KEY: &str = "oauth_sessions.private_key";
    /// `oauth_sessions.client_secret`.
    pub const SESSION_CLIENT_SECRET: &str = "oauth_sessions.client_secret";
    /// `oauth_sessions.code_verifier`.
    pub const SESSION_CODE_VERIFIER: &str = "oauth_sessions.code_verifier";
    /// `oauth_sessions.request_token_secret`.
    pub const SESSION_REQUEST_TOKEN_SECRET: &str = "oauth_sessions.request_token_secret";
}

/// One 256-bit key and its id.
#[derive(Clone)]
pub struct SecretKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    /// A key from its base64 text (32 random bytes: `openssl rand -base64 32`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bytes =
            Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| {
                "is not base64 (make one with `openssl rand -base64 32`)".to_owned()
            })?);
        if bytes.len() != 32 {
            return Err(format!(
                "is {} bytes, not 32 (make one with `openssl rand -base64 32`)",
                bytes.len()
            ));
        }
        let digest = Sha256::digest(bytes.as_slice());
        let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes)
            .map_err(|_| "is not a valid key".to_owned())?;
        Ok(Self { id, cipher })
    }

    /// The key's id, as stored in what it seals.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A stored value no configured key opens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error(
        "{context} is sealed with key {key_id}, \
         which neither JIRASYNC_SECRET_KEY nor JIRASYNC_SECRET_KEY_OLD is"
    )]
    UnknownKey { context: String, key_id: String },
    #[error(
        "{context} does not open with key {key_id}: it was altered, or sealed for another place"
    )]
    Corrupt { context: String, key_id: String },
}

/// A stored secret that no configured key opens, with what it belongs to: the
/// error a handler dead-letters with and a command prints, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{owner}: {error}; set JIRASYNC_SECRET_KEY (or, while rotating, JIRASYNC_SECRET_KEY_OLD) \
     to the key it was sealed with, or connect it again"
)]
pub struct Unreadable {
    /// What holds the value, e.g. `integration 12`.
    pub owner: String,
    /// Why it does not open.
    pub error: OpenError,
}

/// The keys a process has: the current one seals, both open.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    current: Option<SecretKey>,
    old: Option<SecretKey>,
}

impl Keyring {
    /// `current` (`JIRASYNC_SECRET_KEY`) and `old` (`JIRASYNC_SECRET_KEY_OLD`).
    pub fn new(current: Option<SecretKey>, old: Option<SecretKey>) -> Self {
        Self { current, old }
    }

    /// The id of the key that seals, if any (`jirasync config` shows it).
    pub fn current_id(&self) -> Option<&str> {
        self.current.as_ref().map(SecretKey::id)
    }

    /// Whether values are sealed (a current key is set).
    pub fn seals(&self) -> bool {
        self.current.is_some()
    }

    /// `plaintext` sealed for `context` with the current key; as it is without one.
    pub fn seal(&self, context: &str, plaintext: &str) -> String {
        let Some(key) = &self.current else {
            return plaintext.to_owned();
        };
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = key
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 seals any length this holds");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}:{}", key.id, URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The plaintext of `stored` (sealed for `context`, or plaintext as it is).
    pub fn open(&self, context: &str, stored: &str) -> Result<String, OpenError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let (key_id, data) = rest.split_once(':').unwrap_or((rest, ""));
        let corrupt = || OpenError::Corrupt {
            context: context.to_owned(),
            key_id: key_id.to_owned(),
        };
        let key = [&self.current, &self.old]
            .into_iter()
            .flatten()
            .find(|key| key.id == key_id)
            .ok_or_else(|| OpenError::UnknownKey {
                context: context.to_owned(),
                key_id: key_id.to_owned(),
            })?;
        let bytes = URL_SAFE_NO_PAD.decode(data).map_err(|_| corrupt())?;
        if bytes.len() < NONCE_LEN {
            return Err(corrupt());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| corrupt())?;
        let plain = key
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| corrupt())?;
        String::from_utf8(plain).map_err(|_| corrupt())
    }

    /// As [`open`](Self::open), the error naming `owner` (called only on failure).
    pub fn open_for(
        &self,
        owner: impl FnOnce() -> String,
        context: &str,
        stored: &str,
    ) -> Result<String, Unreadable> {
        self.open(context, stored).map_err(|error| Unreadable {
            owner: owner(),
            error,
        })
    }

    /// As [`open_for`](Self::open_for), for a column that may be NULL.
    pub fn open_opt(
        &self,
        owner: impl FnOnce() -> String,
        context: &str,
        stored: Option<String>,
    ) -> Result<Option<String>, Unreadable> {
        stored
            .map(|stored| self.open_for(owner, context, &stored))
            .transpose()
    }

    /// As [`seal`](Self::seal), for a value that may be absent.
    pub fn seal_opt(&self, context: &str, plaintext: Option<&str>) -> Option<String> {
        plaintext.map(|plaintext| self.seal(context, plaintext))
    }

    /// Whether `stored` is already as [`seal`](Self::seal) would store it: sealed
    /// with the current key, or plaintext when there is none.
    pub fn is_current(&self, stored: &str) -> bool {
        match &self.current {
            Some(key) => stored
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split_once(':'))
                .is_some_and(|(id, _)| id == key.id),
            None => !stored.starts_with(PREFIX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const OTHER: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    fn key(text: &str) -> SecretKey {
        SecretKey::parse(text).expect("a valid key")
    }

    #[test]
    fn a_sealed_value_opens_and_holds_no_plaintext() {
        let ring = Keyring::new(Some(key(KEY)), None);
        let sealed = ring.seal(
            "integration_credentials.private_key",
            "-----BEGIN PRIVATE KEY-----",
        );
        assert!(
            sealed.starts_with(&format!("{PREFIX}{}:", key(KEY).id())),
            "{sealed}"
        );
        assert!(!sealed.contains("PRIVATE KEY"));
        assert_ne!(
            sealed,
            ring.seal(
                "integration_credentials.private_key",
                "-----BEGIN PRIVATE KEY-----"
            ),
            "a fresh nonce each time"
        );
        assert_eq!(
            ring.open("integration_credentials.private_key", &sealed)
                .as_deref(),
            Ok("-----BEGIN PRIVATE KEY-----")
        );
        assert!(ring.is_current(&sealed));
    }

    #[test]
    fn plaintext_from_before_a_key_is_read_as_it_is() {
        let ring = Keyring::new(Some(key(KEY)), None);
        assert_eq!(ring.open("c", "plain token").as_deref(), Ok("plain token"));
        assert!(!ring.is_current("plain token"));
        let none = Keyring::default();
        assert_eq!(none.seal("c", "plain"), "plain");
        assert!(none.is_current("plain"));
    }

    #[test]
    fn another_key_another_place_or_an_altered_value_do_not_open() {
        let ring = Keyring::new(Some(key(KEY)), None);
        let sealed = ring.seal("integration_credentials.access_token", "tok");
        let other = Keyring::new(Some(key(OTHER)), None);
        assert!(matches!(
            other.open("integration_credentials.access_token", &sealed),
            Err(OpenError::UnknownKey { key_id, .. }) if key_id == key(KEY).id()
        ));
        assert!(matches!(
            ring.open("integration_credentials.client_secret", &sealed),
            Err(OpenError::Corrupt { .. })
        ));
        let mut altered = sealed.clone();
        let last = altered.pop().expect("not empty");
        altered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(
            ring.open("integration_credentials.access_token", &altered)
                .is_err()
        );
        assert!(ring.open("c", "jsenc1:nocolon").is_err());
    }

    #[test]
    fn the_old_key_opens_while_the_new_one_seals() {
        let before = Keyring::new(Some(key(OTHER)), None);
        let sealed = before.seal("c", "secret");
        let rotating = Keyring::new(Some(key(KEY)), Some(key(OTHER)));
        assert_eq!(rotating.open("c", &sealed).as_deref(), Ok("secret"));
        assert!(!rotating.is_current(&sealed));
        let moved = rotating.seal("c", "secret");
        assert!(rotating.is_current(&moved));
        assert_eq!(
            Keyring::new(Some(key(KEY)), None)
                .open("c", &moved)
                .as_deref(),
            Ok("secret")
        );
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64_and_never_show() {
        assert!(
            SecretKey::parse("not base64!")
                .expect_err("refused")
                .contains("openssl rand -base64 32")
        );
        assert!(
            SecretKey::parse("c2hvcnQ=")
                .expect_err("refused")
                .contains("is 5 bytes, not 32")
        );
        let shown = format!("{:?}", key(KEY));
        assert!(
            !shown.contains(KEY) && shown.contains(key(KEY).id()),
            "{shown}"
        );
    }
}
