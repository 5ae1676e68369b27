//! Why a stored secret does not open ([`OpenError`]), and the error naming what
//! holds it ([`Unreadable`]) that a handler dead-letters with (`secret_unreadable`)
//! and a command prints, each with what to do.

use std::fmt;

/// Why a stored value does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Sealed with a key the process does not have.
    #[error(
        "{context} is sealed with key {key_id}, \
         which neither JIRASYNC_SECRET_KEY nor JIRASYNC_SECRET_KEY_OLD is"
    )]
    UnknownKey { context: String, key_id: String },
    /// Altered, or sealed for another column or row (copied there).
    #[error(
        "{context} does not open with key {key_id}: it was altered, or sealed for another \
         column or row"
    )]
    Corrupt { context: String, key_id: String },
    /// Plaintext, after `secrets reencrypt` recorded that everything is sealed.
    #[error(
        "{context} holds plaintext where a sealed value is required (`jirasync secrets \
         reencrypt` recorded that every secret is sealed, so this one was written by hand or \
         planted); it is refused, never used"
    )]
    Plaintext { context: String },
}

/// A stored secret that does not open, with what it belongs to: the error a
/// handler dead-letters with and a command prints, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Unreadable {
    /// What holds the value, e.g. `integration 12`.
    pub owner: String,
    /// Why it does not open.
    pub error: OpenError,
}

impl Unreadable {
    /// Whether it is plaintext where a sealed value is required (a value planted
    /// by a database writer, logged at error where it is handled).
    pub fn is_plaintext(&self) -> bool {
        matches!(self.error, OpenError::Plaintext { .. })
    }
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { owner, error } = self;
        match error {
            OpenError::UnknownKey { .. } => write!(
                f,
                "{owner}: {error}; set JIRASYNC_SECRET_KEY (or, while rotating, \
                 JIRASYNC_SECRET_KEY_OLD) to the key it was sealed with, or connect it again"
            ),
            // Copied from elsewhere or planted: no key helps, the value must be replaced.
            OpenError::Corrupt { .. } | OpenError::Plaintext { .. } => write!(
                f,
                "{owner}: {error}; replace it: `jirasync integration rotate-webhook-secret` for \
                 a webhook secret, connect it again (`jirasync integration add`, `jirasync oauth \
                 start`) for credentials"
            ),
        }
    }
}
