//! Where a sealed value is stored ([`Slot`]: its column, one of
//! [`place`](super::place), and its row): the associated data it is sealed with, and what errors name.

use std::fmt;

/// Where one sealed value is stored: its column (one of [`place`](super::place)) and the key of
/// its row — the integration id for `integrations` and `integration_credentials`,
/// the session id for `oauth_sessions`. Sealed as associated data; named in errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub(super) column: &'static str,
    row: String,
}

impl Slot {
    /// Column `column` (one of [`place`](super::place)) of the row whose key is `row`.
    pub fn new(column: &'static str, row: impl fmt::Display) -> Self {
        Self {
            column,
            row: row.to_string(),
        }
    }

    /// The column.
    pub fn column(&self) -> &'static str {
        self.column
    }

    /// What holds the value, as errors name it: `integration 12`, `OAuth session …`.
    pub fn owner(&self) -> String {
        if self.column.starts_with("oauth_sessions.") {
            format!("OAuth session {}", self.row)
        } else {
            format!("integration {}", self.row)
        }
    }

    /// The associated data of a row-bound value: the format, the column (which
    /// names the table) and the row key, separated by a byte neither contains.
    pub(super) fn associated_data(&self) -> String {
        format!("jsenc2\u{1f}{}\u{1f}{}", self.column, self.row)
    }
}
