//! The `jira_server.outbound` message (docs/reference.md §10.8): one pending push
//! of one external issue and kind, published by the relay on `P.outbound`. It
//! names what to push, never a value: the worker pushes the group's state when
//! the push runs.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::Kind;
use crate::integration::messages::OUTBOUND;
use crate::queue::job::Job;

/// A push to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Push {
    /// Assignee or status.
    pub kind: Kind,
    /// The group whose state is pushed.
    pub group_id: i64,
    /// The `external_issues` row pushed to.
    pub external_issue_id: i64,
    /// Its integration.
    pub integration_id: i64,
    /// Its organization.
    pub organization_id: i64,
    /// Its Jira key when the message was published.
    pub issue_key: String,
    /// The pending push's `seq` it was published for (the newest change's
    /// `outbound_changes.id`, or more once changes joined the push): a message
    /// older than the pending push's is superseded.
    pub seq: i64,
    /// When that change was committed, in ms since the epoch.
    pub committed_at_ms: i64,
    /// The integration whose inbound sync wrote that change, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_integration_id: Option<i64>,
}

impl Push {
    /// When the newest change was committed.
    pub fn committed_at(&self) -> Option<DateTime<Utc>> {
        Utc.timestamp_millis_opt(self.committed_at_ms).single()
    }
}

impl Job for Push {
    const TYPE: &'static str = OUTBOUND;
    const SHAPE: &'static str = r#"{"kind":"assignee"|"status","group_id":…,"external_issue_id":…,"integration_id":…,"organization_id":…,"issue_key":"…","seq":…,"committed_at_ms":…}"#;

    fn validate(&self) -> Result<(), String> {
        if self.issue_key.is_empty() || self.issue_key.len() > 255 {
            return Err("issue_key is empty or longer than 255 bytes".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_round_trips_and_names_every_field_the_contract_asks() {
        let push = Push {
            kind: Kind::Status,
            group_id: 1,
            external_issue_id: 2,
            integration_id: 3,
            organization_id: 4,
            issue_key: "ACC-1".into(),
            seq: 5,
            committed_at_ms: 1_700_000_000_000,
            origin_integration_id: None,
        };
        let (_, body, properties) = push.to_message();
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        for field in [
            "kind",
            "group_id",
            "external_issue_id",
            "integration_id",
            "issue_key",
        ] {
            assert!(json.get(field).is_some(), "{field} missing in {json}");
        }
        assert_eq!(json["kind"], "status");
        assert_eq!(crate::queue::message::message_type(&properties), OUTBOUND);
        assert_eq!(Push::parse(&body).expect("parses"), push);
        assert!(Push::parse(br#"{"kind":"title","group_id":1}"#).is_err());
    }
}
