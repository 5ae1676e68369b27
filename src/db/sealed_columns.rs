//! Every column that holds a sealed secret (`crate::secrets`), for `jirasync
//! secrets reencrypt`: read each value, and where it is plaintext or sealed with
//! another key than the current one, seal it anew. Each write is conditional on
//! the value read, so a value a running worker changed meanwhile (a refreshed
//! token, sealed already) is left as that worker wrote it.

use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

use crate::secrets::place;
use crate::secrets::{Keyring, Unreadable};

/// One place a sealed value is stored.
struct Column {
    /// `table.column` (or `table.metadata.key`), as the progress shows it.
    context: &'static str,
    /// Reads `(owner, id as text, value)` of every row holding a value.
    select: &'static str,
    /// Writes `$2` where the row's id is `$1` and the value is still `$3`.
    update: &'static str,
}

macro_rules! text_column {
    ($table:literal, $id:literal, $id_type:literal, $owner:literal, $column:literal, $context:expr) => {
        Column {
            context: $context,
            select: concat!(
                "SELECT ",
                $owner,
                " || ' ' || ",
                $id,
                "::text, ",
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
        }
    };
}

macro_rules! metadata_key {
    ($key:literal, $context:expr) => {
        Column {
            context: $context,
            select: concat!(
                "SELECT 'integration ' || id::text, id::text, metadata->>'",
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
        }
    };
}

macro_rules! credentials {
    ($column:literal, $context:expr) => {
        text_column!(
            "integration_credentials",
            "integration_id",
            "bigint",
            "'integration'",
            $column,
            $context
        )
    };
}

macro_rules! session {
    ($column:literal, $context:expr) => {
        text_column!(
            "oauth_sessions",
            "id",
            "uuid",
            "'OAuth session'",
            $column,
            $context
        )
    };
}

const COLUMNS: &[Column] = &[
    metadata_key!("webhook_secret", place::WEBHOOK_SECRET),
    metadata_key!("webhook_hmac_secret", place::WEBHOOK_HMAC_SECRET),
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
    /// Values sealed anew (plaintext, or sealed with the old key).
    pub sealed: u64,
    /// Values already sealed with the current key.
    pub current: u64,
    /// Values that changed while this ran (left as they are now).
    pub changed: u64,
    /// Values no configured key opens.
    pub unreadable: Vec<Unreadable>,
}

/// Re-encrypts every column under `keys`' current key, one column at a time,
/// calling `progress` after each.
pub async fn reencrypt(
    client: &impl GenericClient,
    keys: &Keyring,
    mut progress: impl FnMut(&Tally),
) -> Result<Vec<Tally>, Error> {
    let mut tallies = Vec::with_capacity(COLUMNS.len());
    for column in COLUMNS {
        let mut tally = Tally {
            column: column.context,
            ..Tally::default()
        };
        for row in client.query(column.select, &[]).await? {
            let (owner, id, stored): (String, String, String) =
                (row.get(0), row.get(1), row.get(2));
            if keys.is_current(&stored) {
                tally.current += 1;
                continue;
            }
            let plain = match keys.open_for(|| owner, column.context, &stored) {
                Ok(plain) => plain,
                Err(unreadable) => {
                    tally.unreadable.push(unreadable);
                    continue;
                }
            };
            let sealed = keys.seal(column.context, &plain);
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
    Ok(tallies)
}
