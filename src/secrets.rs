//! Secrets at rest (docs/reference.md §2, §8): with `JIRASYNC_SECRET_KEY` set,
//! RSA private keys, OAuth tokens and secrets, client secrets, PATs and webhook
//! secrets are stored sealed with XChaCha20-Poly1305 — random 192-bit nonces, so no
//! nonce repeats under one key — as `jsenc2:<key id>:<base64url(nonce ‖ ciphertext)>`.
//! The key id (the first 8 hex digits of the key's SHA-256) says which key opens
//! a value, so `JIRASYNC_SECRET_KEY_OLD` can open what an older key sealed while
//! `jirasync secrets reencrypt` moves it to the new one. Each value is bound to
//! its [`Slot`] — column and row — as associated data (every sealed column is
//! declared once, in [`column`]): copied into another column
//! or another row it does not open. `jsenc1:` values (written by earlier versions)
//! are bound to their column only; they are still read, and `secrets reencrypt`
//! rebinds them. Values without a prefix are plaintext (written before a key was
//! set, or by hand) and are read as they are until `secrets reencrypt` records
//! that everything is sealed ([`policy`]); then they are refused.

pub mod column;
mod error;
mod keyring;
pub mod policy;
mod slot;

pub use column::{Sealed, place};
pub use error::{OpenError, Unreadable};
pub use keyring::{COLUMN_BOUND_PREFIX, Keyring, PREFIX, SecretKey};
pub use slot::Slot;
