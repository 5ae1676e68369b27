//! A stand-in, with the same signatures, for what the "records" branch adds
//! (`commands::dlq::{DeadLetter, list, attribute, ReplayOne, replay_id}` and
//! `db::activity`, docs/reference.md §12.10) until it is merged; at the merge
//! this file becomes `pub use` lines of the real ones. Until then nothing is
//! attributed, no activity is recorded and a replay by id finds nothing.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::BrokerSettings;

/// One dead letter as `dlq list` shows it, with its integration and issue key.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeadLetter {
    /// Message id.
    pub id: String,
    /// Message type.
    pub r#type: String,
    /// Why it was dead-lettered.
    pub error: String,
    /// Failed attempts.
    pub attempts: i64,
    /// The queue it came from.
    pub source_queue: String,
    /// When it was first received (ms since the epoch), when known.
    pub received_at_ms: Option<i64>,
    /// When it was dead-lettered (ms since the epoch), when known.
    pub dead_lettered_at_ms: Option<i64>,
    /// The integration, when known.
    pub integration_id: Option<i64>,
    /// The issue key, when known.
    pub issue_key: Option<String>,
}

/// `dlq::list`.
pub async fn list(broker: &BrokerSettings, limit: usize) -> anyhow::Result<Vec<DeadLetter>> {
    let letters = crate::commands::dlq::list(broker, limit).await?;
    Ok(letters
        .into_iter()
        .map(|letter| DeadLetter {
            id: letter.id,
            r#type: letter.r#type,
            error: letter.error,
            attempts: letter.attempts,
            source_queue: letter.source_queue,
            received_at_ms: letter.received_at_ms,
            dead_lettered_at_ms: letter.dead_lettered_at_ms,
            integration_id: None,
            issue_key: None,
        })
        .collect())
}

/// `dlq::attribute`: attributes nothing here.
pub async fn attribute(
    _client: &tokio_postgres::Client,
    _letters: &mut [DeadLetter],
) -> Result<(), tokio_postgres::Error> {
    Ok(())
}

/// What a replay by id did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayOne {
    /// This many letters with the id moved.
    Moved(usize),
    /// None had the id among the first `looked_at`.
    NotFound {
        /// Letters looked at.
        looked_at: usize,
    },
}

/// `dlq::replay_id`: finds nothing here.
pub async fn replay_id(_broker: &BrokerSettings, _id: &str) -> anyhow::Result<ReplayOne> {
    Ok(ReplayOne::NotFound { looked_at: 0 })
}

/// `db::activity::Activity`.
#[derive(Debug, Clone)]
pub struct Activity {
    /// The integration.
    pub integration_id: i64,
    /// When a worker last handled a webhook whose token verified for it.
    pub last_webhook_at: Option<DateTime<Utc>>,
    /// Its dead-letterings in the last 24 hours.
    pub dead_lettered_24h: i64,
}

/// `db::activity::activity`: nothing recorded here.
pub async fn activity(
    _client: &tokio_postgres::Client,
) -> Result<Vec<Activity>, tokio_postgres::Error> {
    Ok(Vec::new())
}
