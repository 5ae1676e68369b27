//! `jirasync secrets reencrypt` over every column that holds a sealed secret
//! (`crate::secrets::column::ALL`, each declared once there): read each value, and where it is plaintext, sealed with
//! another key than the current one, or sealed by an earlier version for its
//! column only, seal it anew for its column and row. Each write is conditional on
//! the value read, so a value a running worker changed meanwhile (a refreshed
//! token, sealed already) is left as that worker wrote it. When nothing is left in
//! plaintext or unreadable, the run is recorded in `secrets_sealed`, and from then
//! on plaintext is refused ([`recheck`] reads the record for every reader).

use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

use crate::secrets::column::{ALL, Cell, Column};
use crate::secrets::{Keyring, PREFIX, Unreadable};

/// The statements that re-encrypt one [`Column`].
struct Statements {
    /// Reads `(row key as text, value)` of every row holding a value.
    select: String,
    /// Writes `$2` where the row's key is `$1` and the value is still `$3`.
    update: String,
    /// Counts the values not matching the `LIKE` pattern `$1`.
    remaining: String,
}

impl Statements {
    fn of(column: &Column) -> Self {
        let Column {
            table,
            key,
            key_type,
            cell,
            ..
        } = column;
        let (value, set) = match cell {
            Cell::Text(name) => ((*name).to_owned(), format!("{name} = $2")),
            Cell::MetadataKey(json_key) => (
                format!("metadata->>'{json_key}'"),
                format!("metadata = jsonb_set(metadata, '{{{json_key}}}', to_jsonb($2::text))"),
            ),
        };
        Self {
            select: format!(
                "SELECT {key}::text, {value} FROM {table} WHERE {value} <> '' ORDER BY {key}"
            ),
            update: format!(
                "UPDATE {table} SET {set} WHERE {key} = $1::text::{key_type} AND {value} = $3"
            ),
            remaining: format!(
                "SELECT count(*) FROM {table} WHERE {value} <> '' AND {value} NOT LIKE $1"
            ),
        }
    }
}

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
    let mut tallies = Vec::with_capacity(ALL.len());
    for column in ALL {
        let statements = Statements::of(column);
        let mut tally = Tally {
            column: column.place,
            ..Tally::default()
        };
        for row in client.query(&statements.select, &[]).await? {
            let (id, stored): (String, String) = (row.get(0), row.get(1));
            let slot = column.slot(&id);
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
                .execute(&statements.update, &[&id, &sealed, &stored])
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
    for column in ALL {
        let count: i64 = client
            .query_one(&Statements::of(column).remaining, &[&pattern])
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::column::{SESSION_CODE_VERIFIER, WEBHOOK_HMAC_SECRET};
    use crate::secrets::place;

    #[test]
    fn each_kind_of_column_is_reencrypted_with_the_statements_of_before() {
        let column = |place: &str| ALL.iter().find(|c| c.place == place).expect("declared");
        let metadata = Statements::of(column(WEBHOOK_HMAC_SECRET.place()));
        assert_eq!(
            metadata.select,
            "SELECT id::text, metadata->>'webhook_hmac_secret' FROM integrations \
             WHERE metadata->>'webhook_hmac_secret' <> '' ORDER BY id"
        );
        assert_eq!(
            metadata.update,
            "UPDATE integrations SET metadata = jsonb_set(metadata, '{webhook_hmac_secret}', \
             to_jsonb($2::text)) WHERE id = $1::text::bigint \
             AND metadata->>'webhook_hmac_secret' = $3"
        );
        assert_eq!(
            metadata.remaining,
            "SELECT count(*) FROM integrations WHERE metadata->>'webhook_hmac_secret' <> '' \
             AND metadata->>'webhook_hmac_secret' NOT LIKE $1"
        );
        let credentials = Statements::of(column(place::REFRESH_TOKEN));
        assert_eq!(
            credentials.select,
            "SELECT integration_id::text, refresh_token FROM integration_credentials \
             WHERE refresh_token <> '' ORDER BY integration_id"
        );
        assert_eq!(
            credentials.update,
            "UPDATE integration_credentials SET refresh_token = $2 \
             WHERE integration_id = $1::text::bigint AND refresh_token = $3"
        );
        let session = Statements::of(column(SESSION_CODE_VERIFIER.place()));
        assert_eq!(
            session.update,
            "UPDATE oauth_sessions SET code_verifier = $2 WHERE id = $1::text::uuid \
             AND code_verifier = $3"
        );
        assert_eq!(
            session.remaining,
            "SELECT count(*) FROM oauth_sessions WHERE code_verifier <> '' \
             AND code_verifier NOT LIKE $1"
        );
    }
}
