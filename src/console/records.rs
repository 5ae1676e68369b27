//! What the console reads of dead letters and integrations' activity, and how it
//! replays (docs/reference.md §12.7, §12.10): the same code as `jirasync dlq`.

pub use crate::commands::dlq::{DeadLetter, ReplayOne, attribute, list, replay_id};
pub use crate::db::activity::{Activity, activity};
