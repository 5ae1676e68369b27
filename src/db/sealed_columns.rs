//! Every column that holds a sealed secret (`crate::secrets`), for `jirasync
//! secrets reencrypt`: read each value, and where it is plaintext, sealed with
//! another key than the current one, or sealed by an earlier version for its
//! column only, seal it anew for its column and row. Each write is conditional on
//! the value read, so a value a running worker changed meanwhile (a refreshed
//! token, sealed already) is left as that worker wrote it. When nothing is left in
//! plaintext or unreadable, the run is recorded in `secrets_sealed`, and from then
//! on plaintext is refused ([`recheck`] reads the record for every reader).

use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

use crate::secrets::{Keyring, PREFIX, Slot, Unreadable, place};

/// One place a sealed value is stored.
struct Column {
    /// `table.column` (or `table.metadata.key`), as the progress shows it.
    context: &'static str,
    /// Reads `(row key as text, value)` of every row holding a value.
    select: &'static str,
    /// Writes `$2` where the row's key is `$1` and the value is still `$3`.
    update: &'static str,
    /// Counts the values not matching the `LIKE` pattern `$1`.
    remaining: &'static str,
}

macro_rules! text_column {
    ($table:literal, $id:literal, $id_type:literal, $column:literal, $context:expr) => {
        Column {
            context: $context,
            select: concat!(
                "SELECT ",
                $id,
                "::text, ",
                $column,
                " FROM ",
                $table,
                " WHERE ",
                $column,
                " <> '' ORDER BY ",
                $id
            ),
            update: concat!(
                "UPDATE ",
                $table,
                " SET ",
                $column,
                " = $2 WHERE ",
                $id,
                " = $1::text::",
                $id_type,
                " AND ",
                $column,
                " = $3"
            ),
            remaining: concat!(
                "SELECT count(*) FROM ",
                $table,
                " WHERE ",
                $column,
                " <> '' AND ",
                $column,
                " NOT LIKE $1"
            ),
        }
    };
}

macro_rules! metadata_key {
    ($key:literal, $context:expr) => {
        Column {
            context: $context,
            select: concat!(
                "SELECT id::text, metadata->>'",
                $key,
                "' FROM integrations WHERE metadata->>'",
                $key,
                "' <> '' ORDER BY id"
            ),
            update: concat!(
                "UPDATE integrations SET metadata = jsonb_set(metadata, '{",
                $key,
                "}', to_jsonb($2::text)) WHERE id = $1::text::bigint AND metadata->>'",
                $key,
                "' = $3"
            ),
            remaining: concat!(
                "SELECT count(*) FROM integrations WHERE metadata->>'",
                $key,
                "' <> '' AND ",
                "metadata->>'",
                $key,
                "' NOT LIKE $1"
            ),
        }
    };
}

macro_rules! credentials {
    ($column:literal, $context:expr) => {
        text_column!(
            "integration_credentials",
            "integration_id",
            "bigint",
            $column,
            $context
        )
    };
}

macro_rules! session {
    ($column:literal, $context:expr) => {
        text_column!("oauth_sessions", "id", "uuid", $column, $context)
    };
}

const COLUMNS: &[Column] = &[
    metadata_key!("webhook_secret", place::WEBHOOK_SECRET),
    metadata_key!("webhook_hmac_secret", place::WEBHOOK_HMAC_SECRET),
    metadata_key!("previous_webhook_secret", place::PREVIOUS_WEBHOOK_SECRET),
    metadata_key!(
        "previous_webhook_hmac_secret",
        place::PREVIOUS_WEBHOOK_HMAC_SECRET
    ),
    credentials!("private_key", place::PRIVATE_KEY),
    credentials!("access_token", place::ACCESS_TOKEN),
    credentials!("access_token_secret", place::ACCESS_TOKEN_SECRET),
    credentials!("client_secret", place::CLIENT_SECRET),
    credentials!("refresh_token", place::REFRESH_TOKEN),
    session!("private_key", place::SESSION_PRIVATE_KEY),
    session!("client_secret", place::SESSION_CLIENT_SECRET),
    session!("code_verifier", place::SESSION_CODE_VERIFIER),
    session!("request_token_secret", place::SESSION_REQUEST_TOKEN_SECRET),
];

/// What re-encrypting one column did.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Where.
    pub column: &'static str,
    /// Values sealed anew (plaintext, sealed with the old key, or for the column only).
    pub sealed: u64,
    /// Values already sealed for their row with the current key.
    pub current: u64,
    /// Values that changed while this ran (left as they are now).
    pub changed: u64,
    /// Values that do not open where they are (no configured key opens them, sealed
    /// for another row, or plaintext once everything was recorded sealed).
    pub unreadable: Vec<Unreadable>,
}

/// What [`reencrypt`] did.
#[derive(Debug, Clone)]
pub struct Reencrypted {
    /// Column by column.
    pub tallies: Vec<Tally>,
    /// Values left that are not sealed with the current key in the row-bound
    /// format (plaintext or old ones that did not open, or that a process without
    /// the key wrote meanwhile).
    pub remaining: u64,
    /// Whether "everything sealed" is recorded (`secrets_sealed`): nothing remained
    /// and nothing was unreadable.
    pub recorded: bool,
}

/// Re-encrypts every column under `keys`' current key, each value bound to its
/// row, one column at a time, calling `progress` after each; then, when no value
/// is left otherwise, records that everything is sealed. `keys` must have a current key.
pub async fn reencrypt(
    client: &impl GenericClient,
    keys: &Keyring,
    mut progress: impl FnMut(&Tally),
) -> Result<Reencrypted, Error> {
    // Plaintext found after a record is planted: never sealed (that would launder it).
    recheck(client, keys).await?;
    let mut tallies = Vec::with_capacity(COLUMNS.len());
    for column in COLUMNS {
        let mut tally = Tally {
            column: column.context,
            ..Tally::default()
        };
        for row in client.query(column.select, &[]).await? {
            let (id, stored): (String, String) = (row.get(0), row.get(1));
            let slot = Slot::new(column.context, &id);
            let plain = match keys.open(&slot, &stored) {
                Ok(plain) => plain,
                Err(unreadable) => {
                    tally.unreadable.push(unreadable);
                    continue;
                }
            };
            if keys.is_current(&stored) {
                tally.current += 1;
                continue;
            }
            let sealed = keys.seal(&slot, &plain);
            match client
                .execute(column.update, &[&id, &sealed, &stored])
                .await?
            {
                0 => tally.changed += 1,
                _ => tally.sealed += 1,
            }
        }
        progress(&tally);
        tallies.push(tally);
    }
    let Some(key_id) = keys.current_id() else {
        return Ok(Reencrypted {
            tallies,
            remaining: 0,
            recorded: false,
        });
    };
    let pattern = format!("{PREFIX}{key_id}:%");
    let mut remaining = 0;
    for column in COLUMNS {
        let count: i64 = client
            .query_one(column.remaining, &[&pattern])
            .await?
            .get(0);
        remaining += u64::try_from(count).unwrap_or_default();
    }
    let unreadable = tallies.iter().any(|tally| !tally.unreadable.is_empty());
    let recorded = remaining == 0 && !unreadable;
    if recorded {
        client
            .execute(
                "INSERT INTO secrets_sealed (singleton, key_id, sealed_at) VALUES (true, $1, now())
                 ON CONFLICT (singleton) DO UPDATE SET key_id = EXCLUDED.key_id, sealed_at = now()",
                &[&key_id],
            )
            .await?;
        keys.record_read(true);
    }
    Ok(Reencrypted {
        tallies,
        remaining,
        recorded,
    })
}

/// Reads the record that everything is sealed into `keys`, when due (at most every
/// `secrets::policy::RECHECK` per process): called by every reader of a sealed
/// column before it opens what it read, so a record written while a process runs
/// takes effect in it within that interval, at one query per interval.
pub async fn recheck(client: &impl GenericClient, keys: &Keyring) -> Result<(), Error> {
    if !keys.recheck_due() {
        return Ok(());
    }
    match client
        .query_opt("SELECT key_id FROM secrets_sealed", &[])
        .await
    {
        Ok(row) => {
            keys.record_read(row.is_some());
            Ok(())
        }
        Err(error) => {
            keys.record_unread();
            Err(error)
        }
    }
}
