//! `jira_server.reconcile`: the job that re-reads an integration's recently
//! updated linked issues (sent by the scheduler and `jirasync reconcile`).

use serde::{Deserialize, Serialize};

use crate::integration::messages;
use crate::queue::job::Job;

/// `jira_server.reconcile`: re-read an integration's recently updated linked issues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconcile {
    /// The integration to reconcile.
    pub integration_id: i64,
    /// Search from this time (ms since the epoch) instead of the last reconciliation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
}

impl Job for Reconcile {
    const TYPE: &'static str = messages::RECONCILE;
    const SHAPE: &'static str = r#"{"integration_id":…,"since_ms":…}"#;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_round_trip_and_leave_absent_options_out() {
        let job = Reconcile {
            integration_id: 7,
            since_ms: None,
        };
        let (_, body, properties) = job.to_message();
        assert_eq!(body, br#"{"integration_id":7}"#);
        assert_eq!(
            crate::queue::message::message_type(&properties),
            "jira_server.reconcile"
        );
        assert_eq!(Reconcile::parse(&body).expect("parses"), job);
        assert!(Reconcile::parse(b"nope").is_err());
    }
}
