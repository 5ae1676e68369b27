//! Every column that holds a sealed secret, declared once ([`Sealed`]): where it
//! is (its table, the key of its rows, a text column or a key of a JSON column),
//! the [`place`] its values are bound to, and so how they are sealed, opened and,
//! by `jirasync secrets reencrypt` (`db::sealed_columns`, which walks [`ALL`]),
//! re-sealed. A `Sealed` is made only by the declaration below, which also lists
//! it in [`ALL`]: a new secret is one line there, and no column can miss rotation.

use std::fmt;
use std::marker::PhantomData;

use uuid::Uuid;

use super::error::Unreadable;
use super::keyring::Keyring;
use super::slot::Slot;

/// A table holding sealed values, and the key of its rows (what each value is
/// bound to besides its column).
pub trait Table {
    /// The row key's Rust type.
    type Row: fmt::Display + Copy;
    /// The table's name.
    const NAME: &'static str;
    /// The row key's column.
    const KEY: &'static str;
    /// The row key's SQL type.
    const KEY_TYPE: &'static str;
}

/// Where in its row a sealed value is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// A text column of that name (empty or NULL: no value).
    Text(&'static str),
    /// A key of the `metadata` JSON object (missing or empty: no value).
    MetadataKey(&'static str),
}

/// One sealed column without the type of its rows' key: what rotation walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// The place its values are bound to (one of [`place`]), as progress and
    /// errors show it.
    pub place: &'static str,
    /// The table.
    pub table: &'static str,
    /// The row key's column.
    pub key: &'static str,
    /// The row key's SQL type.
    pub key_type: &'static str,
    /// Where in the row.
    pub cell: Cell,
}

impl Column {
    /// The slot of the value in the row whose key is `row` (as text).
    pub fn slot(&self, row: impl fmt::Display) -> Slot {
        Slot::new(self.place, row)
    }
}

/// A column of table `T` that holds a sealed secret: its values are sealed for
/// it and for their row, whose key (`T::Row`) the compiler checks.
#[derive(Debug)]
pub struct Sealed<T: Table> {
    column: Column,
    table: PhantomData<fn() -> T>,
}

impl<T: Table> Sealed<T> {
    /// Only [`declare`] makes one, so each is in [`ALL`].
    const fn new(place: &'static str, cell: Cell) -> Self {
        Self {
            column: Column {
                place,
                table: T::NAME,
                key: T::KEY,
                key_type: T::KEY_TYPE,
                cell,
            },
            table: PhantomData,
        }
    }

    /// The place its values are bound to (one of [`place`]).
    pub const fn place(&self) -> &'static str {
        self.column.place
    }

    /// The JSON key, for a secret stored in `metadata`.
    pub const fn metadata_key(&self) -> Option<&'static str> {
        match self.column.cell {
            Cell::MetadataKey(key) => Some(key),
            Cell::Text(_) => None,
        }
    }

    /// The slot of its value in row `row`.
    pub fn slot(&self, row: T::Row) -> Slot {
        self.column.slot(row)
    }

    /// `plain` sealed for this column in row `row` (as it is without a key).
    pub fn seal(&self, keys: &Keyring, row: T::Row, plain: &str) -> String {
        keys.seal(&self.slot(row), plain)
    }

    /// As [`seal`](Self::seal), for a value that may be absent.
    pub fn seal_opt(&self, keys: &Keyring, row: T::Row, plain: Option<&str>) -> Option<String> {
        plain.map(|plain| self.seal(keys, row, plain))
    }

    /// The plaintext of `stored`, read from this column in row `row`.
    pub fn open(&self, keys: &Keyring, row: T::Row, stored: &str) -> Result<String, Unreadable> {
        keys.open(&self.slot(row), stored)
    }

    /// As [`open`](Self::open), for a value that may be absent.
    pub fn open_opt(
        &self,
        keys: &Keyring,
        row: T::Row,
        stored: Option<&str>,
    ) -> Result<Option<String>, Unreadable> {
        stored
            .map(|stored| self.open(keys, row, stored))
            .transpose()
    }
}

/// The cell of a declared column: `name` or `metadata["key"]`.
macro_rules! cell {
    (metadata [$key:literal]) => {
        Cell::MetadataKey($key)
    };
    ($column:ident) => {
        Cell::Text(stringify!($column))
    };
}

/// Declares the tables, their sealed columns, [`place`] and [`ALL`].
macro_rules! declare {
    ($(
        $(#[$table_doc:meta])*
        $table:ident = $name:ident ($key:ident $key_type:ident: $row:ty) {
            $(
                $(#[$doc:meta])*
                $const:ident = $column:ident $([$json_key:literal])?;
            )*
        }
    )*) => {
        $(
            $(#[$table_doc])*
            #[derive(Debug)]
            pub enum $table {}

            impl Table for $table {
                type Row = $row;
                const NAME: &'static str = stringify!($name);
                const KEY: &'static str = stringify!($key);
                const KEY_TYPE: &'static str = stringify!($key_type);
            }

            $(
                $(#[$doc])*
                pub const $const: Sealed<$table> = Sealed::new(
                    concat!(stringify!($name), ".", stringify!($column) $(, ".", $json_key)?),
                    cell!($column $([$json_key])?),
                );
            )*
        )*

        /// The places sealed values are bound to: with the row, the associated
        /// data each is sealed with, so a value copied into another column, key
        /// or table does not open.
        pub mod place {
            $($(
                $(#[$doc])*
                pub const $const: &str = super::$const.place();
            )*)*
        }

        /// Every sealed column, in the order `secrets reencrypt` walks them.
        pub const ALL: &[Column] = &[$($($const.column,)*)*];
    };
}

declare! {
    /// `integrations`, by integration id: the webhook secrets in `metadata`.
    Integrations = integrations(id bigint: i64) {
        /// `integrations.metadata->>'webhook_secret'`.
        WEBHOOK_SECRET = metadata["webhook_secret"];
        /// `integrations.metadata->>'webhook_hmac_secret'`.
        WEBHOOK_HMAC_SECRET = metadata["webhook_hmac_secret"];
        /// `integrations.metadata->>'previous_webhook_secret'`: valid until `previous_valid_until`.
        PREVIOUS_WEBHOOK_SECRET = metadata["previous_webhook_secret"];
        /// `integrations.metadata->>'previous_webhook_hmac_secret'`.
        PREVIOUS_WEBHOOK_HMAC_SECRET = metadata["previous_webhook_hmac_secret"];
    }
    /// `integration_credentials`, by integration id.
    IntegrationCredentials = integration_credentials(integration_id bigint: i64) {
        /// `integration_credentials.private_key`.
        PRIVATE_KEY = private_key;
        /// `integration_credentials.access_token` (OAuth 1.0a and 2.0 tokens, PATs).
        ACCESS_TOKEN = access_token;
        /// `integration_credentials.access_token_secret`.
        ACCESS_TOKEN_SECRET = access_token_secret;
        /// `integration_credentials.client_secret`.
        CLIENT_SECRET = client_secret;
        /// `integration_credentials.refresh_token`.
        REFRESH_TOKEN = refresh_token;
    }
    /// `oauth_sessions`, by session id.
    OauthSessions = oauth_sessions(id uuid: Uuid) {
        /// `oauth_sessions.private_key`.
        SESSION_PRIVATE_KEY = private_key;
        /// `oauth_sessions.client_secret`.
        SESSION_CLIENT_SECRET = client_secret;
        /// `oauth_sessions.code_verifier`.
        SESSION_CODE_VERIFIER = code_verifier;
        /// `oauth_sessions.request_token_secret`.
        SESSION_REQUEST_TOKEN_SECRET = request_token_secret;
    }
}

/// The secrets of `integrations.metadata`, in [`ALL`]'s order.
pub fn metadata_secrets() -> impl Iterator<Item = (&'static str, &'static Column)> {
    ALL.iter().filter_map(|column| match column.cell {
        Cell::MetadataKey(key) => Some((key, column)),
        Cell::Text(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_place_is_bound_to_one_column_and_named_as_before() {
        let mut places: Vec<_> = ALL.iter().map(|column| column.place).collect();
        places.sort_unstable();
        places.dedup();
        assert_eq!(places.len(), ALL.len(), "a place is declared twice");
        assert_eq!(
            place::PREVIOUS_WEBHOOK_HMAC_SECRET,
            "integrations.metadata.previous_webhook_hmac_secret"
        );
        assert_eq!(place::ACCESS_TOKEN, "integration_credentials.access_token");
        assert_eq!(
            place::SESSION_REQUEST_TOKEN_SECRET,
            "oauth_sessions.request_token_secret"
        );
        assert_eq!(ALL.len(), 13);
        assert_eq!(
            metadata_secrets().map(|(key, _)| key).collect::<Vec<_>>(),
            [
                "webhook_secret",
                "webhook_hmac_secret",
                "previous_webhook_secret",
                "previous_webhook_hmac_secret"
            ]
        );
    }

    #[test]
    fn a_column_binds_its_values_to_its_table_s_row_key() {
        let session = Uuid::nil();
        assert_eq!(
            SESSION_CLIENT_SECRET.slot(session).column(),
            place::SESSION_CLIENT_SECRET
        );
        assert!(
            SESSION_CLIENT_SECRET
                .slot(session)
                .owner()
                .starts_with("OAuth session")
        );
        assert_eq!(PRIVATE_KEY.slot(12).owner(), "integration 12");
        assert_eq!(WEBHOOK_SECRET.metadata_key(), Some("webhook_secret"));
        assert_eq!(PRIVATE_KEY.metadata_key(), None);
        let ring = Keyring::default();
        assert_eq!(ACCESS_TOKEN.seal_opt(&ring, 1, None), None);
        assert_eq!(
            ACCESS_TOKEN.open_opt(&ring, 1, Some("plain")),
            Ok(Some("plain".to_owned()))
        );
    }
}
