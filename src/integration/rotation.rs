//! Rotating an integration's webhook secrets (`jirasync integration
//! rotate-webhook-secret`, docs/reference.md §1, §5.1–5.2): a fresh
//! `webhook_secret` (so a fresh URL) and, where Jira signs deliveries, a fresh
//! `webhook_hmac_secret`; the replaced ones stay accepted until
//! `previous_valid_until`. The command then updates Jira (`webhook_registration::update`).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use deadpool_postgres::GenericClient;
use serde_json::{Value, json};

use super::install_record::fresh_webhook_secret;
use super::provider::PROVIDER;
use super::row::Integration;
use super::store;
use crate::db::StoreError;
use crate::secrets::column::{Integrations, WEBHOOK_HMAC_SECRET, WEBHOOK_SECRET};
use crate::secrets::{Keyring, Sealed, Unreadable};

/// The metadata keys of the previous secrets, replaced by every rotation.
const PREVIOUS: [&str; 3] = [
    "previous_webhook_secret",
    "previous_webhook_hmac_secret",
    "previous_valid_until",
];

/// What a rotation did.
#[derive(Debug)]
pub struct Rotated {
    /// The integration with its new secrets.
    pub integration: Integration,
    /// Until when the replaced secrets are accepted; `None` when none is (an
    /// overlap of 0, or current secrets that did not open).
    pub previous_valid_until: Option<DateTime<Utc>>,
    /// Current secrets that did not open (a copied or planted value): replaced
    /// without any overlap.
    pub dropped: Vec<Unreadable>,
}

/// Why a rotation failed.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// No integration of [`PROVIDER`] has the id (a Jira Cloud one cannot be
    /// rotated yet).
    #[error(
        "no {provider} integration has id {0} (rotating a Jira Cloud integration's webhook secrets is not supported yet)",
        provider = PROVIDER
    )]
    NotFound(i64),
    /// The overlap reaches past what a timestamp holds.
    #[error("the overlap is too long; give at most a few years (e.g. 24h, 30d)")]
    OverlapTooLong,
    /// The database failed, or the rotated row does not open.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tokio_postgres::Error> for RotateError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Store(error.into())
    }
}

/// Gives integration `id` a fresh `webhook_secret` and, when it has one, a fresh
/// `webhook_hmac_secret`, in the caller's transaction (the row is locked, so two
/// rotations at once run one after the other). The replaced secrets become the
/// previous ones, accepted until now + `overlap`; previous ones of an earlier
/// rotation are dropped at once (only one generation overlaps).
pub async fn rotate(
    client: &impl GenericClient,
    keys: &Keyring,
    id: i64,
    overlap: Duration,
) -> Result<Rotated, RotateError> {
    let Some(stored) = store::lock_sealed_metadata(client, keys, id).await? else {
        return Err(RotateError::NotFound(id));
    };
    let stored_secret = |key: &str| {
        stored
            .get(key)
            .and_then(Value::as_str)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
    };
    let mut dropped = Vec::new();
    let mut previous = |column: &Sealed<Integrations>| {
        let sealed = stored_secret(column.metadata_key()?)?;
        column
            .open(keys, id, &sealed)
            .map_err(|unreadable| dropped.push(unreadable))
            .ok()
    };
    let old_secret = previous(&WEBHOOK_SECRET);
    let signs = stored_secret("webhook_hmac_secret").is_some();
    let old_hmac = previous(&WEBHOOK_HMAC_SECRET);
    let mut patch = json!({ "webhook_secret": fresh_webhook_secret() });
    if signs {
        patch["webhook_hmac_secret"] = json!(fresh_webhook_secret());
    }
    let until = TimeDelta::from_std(overlap)
        .ok()
        .and_then(|overlap| Utc::now().checked_add_signed(overlap))
        .ok_or(RotateError::OverlapTooLong)?;
    let keep = !overlap.is_zero() && (old_secret.is_some() || old_hmac.is_some());
    if keep {
        for (key, old) in [
            ("previous_webhook_secret", &old_secret),
            ("previous_webhook_hmac_secret", &old_hmac),
        ] {
            if let Some(old) = old {
                patch[key] = json!(old);
            }
        }
        patch["previous_valid_until"] = json!(until);
    }
    store::merge_metadata(client, keys, id, &PREVIOUS, &patch).await?;
    let integration = store::by_id(client, keys, id)
        .await?
        .ok_or(RotateError::NotFound(id))?;
    Ok(Rotated {
        integration,
        previous_valid_until: keep.then_some(until),
        dropped,
    })
}
