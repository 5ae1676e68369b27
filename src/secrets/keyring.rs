//! The keys: one 256-bit [`SecretKey`] and the [`Keyring`] of the current and
//! old keys that seals and opens values (the format is the module's, `secrets`).

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::error::{OpenError, Unreadable};
use super::policy::PlaintextPolicy;
use super::slot::Slot;

/// What a value sealed for its column and row starts with.
pub const PREFIX: &str = "jsenc2:";
/// What a value an earlier version sealed for its column only starts with.
pub const COLUMN_BOUND_PREFIX: &str = "jsenc1:";
const NONCE_LEN: usize = 24;

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

    /// `plaintext` sealed with `nonce` for `aad`, stored as `prefix`, the key's
    /// id, `:` and the nonce and ciphertext in base64url.
    fn seal(&self, prefix: &str, nonce: [u8; NONCE_LEN], aad: &str, plaintext: &str) -> String {
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 seals any length this holds");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{prefix}{}:{}", self.id, URL_SAFE_NO_PAD.encode(bytes))
    }
}

/// The keys a process has — the current one seals, both open — and whether it
/// still reads plaintext ([`policy`]), shared by every clone.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    current: Option<SecretKey>,
    old: Option<SecretKey>,
    plaintext: Arc<PlaintextPolicy>,
}

/// How a stored value is sealed.
enum Stored<'a> {
    /// `jsenc2:`: for its column and row.
    RowBound { key_id: &'a str, data: &'a str },
    /// `jsenc1:`: for its column only (an earlier version).
    ColumnBound { key_id: &'a str, data: &'a str },
    /// No prefix.
    Plaintext,
}

impl<'a> Stored<'a> {
    fn of(stored: &'a str) -> Self {
        let split = |rest: &'a str| rest.split_once(':').unwrap_or((rest, ""));
        if let Some(rest) = stored.strip_prefix(PREFIX) {
            let (key_id, data) = split(rest);
            Self::RowBound { key_id, data }
        } else if let Some(rest) = stored.strip_prefix(COLUMN_BOUND_PREFIX) {
            let (key_id, data) = split(rest);
            Self::ColumnBound { key_id, data }
        } else {
            Self::Plaintext
        }
    }
}

impl Keyring {
    /// `current` (`JIRASYNC_SECRET_KEY`) and `old` (`JIRASYNC_SECRET_KEY_OLD`).
    pub fn new(current: Option<SecretKey>, old: Option<SecretKey>) -> Self {
        Self {
            current,
            old,
            plaintext: Arc::default(),
        }
    }

    /// The id of the key that seals, if any (`jirasync config` shows it).
    pub fn current_id(&self) -> Option<&str> {
        self.current.as_ref().map(SecretKey::id)
    }

    /// Whether values are sealed (a current key is set).
    pub fn seals(&self) -> bool {
        self.current.is_some()
    }

    /// Whether plaintext is refused: `secrets reencrypt` recorded that
    /// everything is sealed, and this process has read that record.
    pub fn refuses_plaintext(&self) -> bool {
        self.plaintext.refused()
    }

    /// Whether the caller should read the record now ([`policy::RECHECK`]).
    pub fn recheck_due(&self) -> bool {
        self.plaintext.due()
    }

    /// What the record said: present (`true`) or not.
    pub fn record_read(&self, sealed: bool) {
        self.plaintext.read(sealed);
    }

    /// Reading the record failed; the next reader tries again.
    pub fn record_unread(&self) {
        self.plaintext.failed();
    }

    /// `plaintext` sealed for `slot` with the current key; as it is without one.
    pub fn seal(&self, slot: &Slot, plaintext: &str) -> String {
        let Some(key) = &self.current else {
            return plaintext.to_owned();
        };
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        key.seal(PREFIX, nonce, &slot.associated_data(), plaintext)
    }

    /// As [`seal`](Self::seal), for a value that may be absent.
    pub fn seal_opt(&self, slot: &Slot, plaintext: Option<&str>) -> Option<String> {
        plaintext.map(|plaintext| self.seal(slot, plaintext))
    }

    /// The plaintext of `stored`, found in `slot`: sealed for it, sealed for its
    /// column by an earlier version, or plaintext while that is still read.
    pub fn open(&self, slot: &Slot, stored: &str) -> Result<String, Unreadable> {
        let unreadable = |error| Unreadable {
            owner: slot.owner(),
            error,
        };
        let (key_id, data, aad) = match Stored::of(stored) {
            Stored::RowBound { key_id, data } => (key_id, data, slot.associated_data()),
            Stored::ColumnBound { key_id, data } => (key_id, data, slot.column.to_owned()),
            Stored::Plaintext if self.refuses_plaintext() => {
                return Err(unreadable(OpenError::Plaintext {
                    context: slot.column.to_owned(),
                }));
            }
            Stored::Plaintext => return Ok(stored.to_owned()),
        };
        self.decrypt(key_id, data, &aad).map_err(|error| {
            unreadable(match error {
                Decrypt::UnknownKey => OpenError::UnknownKey {
                    context: slot.column.to_owned(),
                    key_id: key_id.to_owned(),
                },
                Decrypt::Corrupt => OpenError::Corrupt {
                    context: slot.column.to_owned(),
                    key_id: key_id.to_owned(),
                },
            })
        })
    }

    /// As [`open`](Self::open), for a column that may be NULL.
    pub fn open_opt(
        &self,
        slot: &Slot,
        stored: Option<&str>,
    ) -> Result<Option<String>, Unreadable> {
        stored.map(|stored| self.open(slot, stored)).transpose()
    }

    fn decrypt(&self, key_id: &str, data: &str, aad: &str) -> Result<String, Decrypt> {
        let key = [&self.current, &self.old]
            .into_iter()
            .flatten()
            .find(|key| key.id == key_id)
            .ok_or(Decrypt::UnknownKey)?;
        let bytes = URL_SAFE_NO_PAD.decode(data).map_err(|_| Decrypt::Corrupt)?;
        if bytes.len() < NONCE_LEN {
            return Err(Decrypt::Corrupt);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| Decrypt::Corrupt)?;
        let plain = key
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| Decrypt::Corrupt)?;
        String::from_utf8(plain).map_err(|_| Decrypt::Corrupt)
    }

    /// Whether `stored` is already as [`seal`](Self::seal) would store it: sealed
    /// for its row with the current key, or plaintext when there is none. (Whether
    /// it opens in its slot is [`open`](Self::open)'s to say.)
    pub fn is_current(&self, stored: &str) -> bool {
        match (&self.current, Stored::of(stored)) {
            (Some(key), Stored::RowBound { key_id, .. }) => key_id == key.id,
            (None, Stored::Plaintext) => true,
            _ => false,
        }
    }
}

/// Why [`Keyring::decrypt`] failed.
enum Decrypt {
    UnknownKey,
    Corrupt,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::column::place;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const OTHER: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    fn key(text: &str) -> SecretKey {
        SecretKey::parse(text).expect("a valid key")
    }

    fn slot(row: i64) -> Slot {
        Slot::new(place::PRIVATE_KEY, row)
    }

    /// What an earlier version stored: sealed for the column only, as `jsenc1:`.
    fn column_bound(key: &SecretKey, column: &str, plaintext: &str) -> String {
        key.seal(COLUMN_BOUND_PREFIX, [7u8; NONCE_LEN], column, plaintext)
    }

    #[test]
    fn a_sealed_value_opens_in_its_slot_and_holds_no_plaintext() {
        let ring = Keyring::new(Some(key(KEY)), None);
        let sealed = ring.seal(&slot(1), "-----BEGIN PRIVATE KEY-----");
        assert!(
            sealed.starts_with(&format!("{PREFIX}{}:", key(KEY).id())),
            "{sealed}"
        );
        assert!(!sealed.contains("PRIVATE KEY"));
        assert_ne!(
            sealed,
            ring.seal(&slot(1), "-----BEGIN PRIVATE KEY-----"),
            "a fresh nonce each time"
        );
        assert_eq!(
            ring.open(&slot(1), &sealed).as_deref(),
            Ok("-----BEGIN PRIVATE KEY-----")
        );
        assert!(ring.is_current(&sealed));
    }

    #[test]
    fn a_sealed_value_copied_to_another_row_or_column_does_not_open() {
        let ring = Keyring::new(Some(key(KEY)), None);
        let sealed = ring.seal(&slot(1), "tok");
        for (case, other) in [
            ("another row", slot(2)),
            ("another column", Slot::new(place::ACCESS_TOKEN, 1)),
            ("another table", Slot::new(place::SESSION_PRIVATE_KEY, 1)),
        ] {
            let error = ring.open(&other, &sealed).expect_err(case);
            assert!(
                matches!(error.error, OpenError::Corrupt { .. }),
                "{case}: {error}"
            );
            assert_eq!(error.owner, other.owner(), "{case}: names the row");
        }
        assert_eq!(slot(2).owner(), "integration 2");
        assert!(
            Slot::new(place::SESSION_CLIENT_SECRET, "s")
                .owner()
                .starts_with("OAuth session")
        );
    }

    #[test]
    fn values_an_earlier_version_bound_to_their_column_are_still_read() {
        let ring = Keyring::new(Some(key(KEY)), None);
        let old = column_bound(&key(KEY), place::PRIVATE_KEY, "pem");
        assert_eq!(ring.open(&slot(1), &old).as_deref(), Ok("pem"));
        assert_eq!(ring.open(&slot(2), &old).as_deref(), Ok("pem"));
        assert!(!ring.is_current(&old), "to be rebound");
        assert!(
            ring.open(&Slot::new(place::ACCESS_TOKEN, 1), &old).is_err(),
            "still bound to its column"
        );
    }

    #[test]
    fn plaintext_is_read_until_everything_is_recorded_sealed() {
        let ring = Keyring::new(Some(key(KEY)), None);
        assert_eq!(
            ring.open(&slot(1), "plain token").as_deref(),
            Ok("plain token")
        );
        assert!(!ring.is_current("plain token"));
        let none = Keyring::default();
        assert_eq!(none.seal(&slot(1), "plain"), "plain");
        assert!(none.is_current("plain"));

        let clone = ring.clone();
        ring.record_read(true);
        assert!(clone.refuses_plaintext(), "clones share the record");
        let error = clone.open(&slot(1), "plain token").expect_err("refused");
        assert!(error.is_plaintext());
        assert!(
            error
                .to_string()
                .contains("plaintext where a sealed value is required"),
            "{error}"
        );
        let sealed = ring.seal(&slot(1), "tok");
        assert_eq!(clone.open(&slot(1), &sealed).as_deref(), Ok("tok"));
    }

    #[test]
    fn another_key_or_an_altered_value_do_not_open() {
        let ring = Keyring::new(Some(key(KEY)), None);
        let sealed = ring.seal(&slot(1), "tok");
        let other = Keyring::new(Some(key(OTHER)), None);
        assert!(matches!(
            other.open(&slot(1), &sealed).map_err(|e| e.error),
            Err(OpenError::UnknownKey { key_id, .. }) if key_id == key(KEY).id()
        ));
        let mut altered = sealed.clone();
        let last = altered.pop().expect("not empty");
        altered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(ring.open(&slot(1), &altered).is_err());
        assert!(ring.open(&slot(1), "jsenc2:nocolon").is_err());
        assert!(ring.open(&slot(1), "jsenc1:nocolon").is_err());
    }

    #[test]
    fn the_old_key_opens_while_the_new_one_seals() {
        let before = Keyring::new(Some(key(OTHER)), None);
        let sealed = before.seal(&slot(1), "secret");
        let rotating = Keyring::new(Some(key(KEY)), Some(key(OTHER)));
        assert_eq!(rotating.open(&slot(1), &sealed).as_deref(), Ok("secret"));
        assert!(!rotating.is_current(&sealed));
        let moved = rotating.seal(&slot(1), "secret");
        assert!(rotating.is_current(&moved));
        assert_eq!(
            Keyring::new(Some(key(KEY)), None)
                .open(&slot(1), &moved)
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
