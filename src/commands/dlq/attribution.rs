//! Which integration and issue a dead letter belongs to (CONTRACT §12.7), for
//! `dlq list --json` and the console: what the message itself says ([`About`],
//! read by `dlq::list`) and, for a webhook, the integration its token's `id`
//! claim names ([`attribute`], which needs Postgres). Never the body or the token.

use std::collections::HashMap;

use lapin::BasicProperties;
use serde::Deserialize;
use serde_json::Value;

use super::DeadLetter;
use crate::integration::PROVIDERS;
use crate::integration::messages::{TOKEN, WEBHOOK};
use crate::integration::token;
use crate::queue::message;

/// Longest issue key kept, in characters: a longer string is not one.
pub const MAX_ISSUE_KEY: usize = 255;

/// What a dead letter says of its integration and issue.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct About {
    /// A job's or an outbound message's `integration_id`.
    pub integration_id: Option<i64>,
    /// A JSON body's `issue.key`, or an outbound message's `issue_key`.
    pub issue_key: Option<String>,
    /// A webhook's token's `id` claim, read without verification.
    pub token_external_id: Option<String>,
}

/// The fields of a body read for [`About`]; the rest is skipped unread.
#[derive(Deserialize)]
struct Peek {
    #[serde(default)]
    integration_id: Option<Value>,
    #[serde(default)]
    issue_key: Option<Value>,
    #[serde(default)]
    issue: Option<Value>,
}

impl About {
    /// What the message of type `kind` with `props` and `body` says; nothing
    /// from a body that is not a JSON object. A webhook's `integration_id` is
    /// Jira's to write, so only its token names its integration.
    pub(super) fn read(kind: &str, props: &BasicProperties, body: &[u8]) -> Self {
        let peek = serde_json::from_slice::<Peek>(body).ok();
        let issue_key = peek.as_ref().and_then(|peek| {
            let nested = peek.issue.as_ref().and_then(|issue| issue.get("key"));
            nested
                .or(peek.issue_key.as_ref())
                .and_then(Value::as_str)
                .filter(|key| key.chars().count() <= MAX_ISSUE_KEY)
                .map(str::to_owned)
        });
        if kind == WEBHOOK {
            let token_external_id =
                message::header_str(props, TOKEN).and_then(|token| token::external_id(&token).ok());
            return Self {
                integration_id: None,
                issue_key,
                token_external_id,
            };
        }
        Self {
            integration_id: peek
                .as_ref()
                .and_then(|peek| peek.integration_id.as_ref())
                .and_then(Value::as_i64),
            issue_key,
            token_external_id: None,
        }
    }
}

/// Every integration of the providers `$1` among external ids `$2`.
const BY_EXTERNAL_ID: &str =
    "SELECT external_id, id FROM integrations WHERE provider = ANY ($1) AND external_id = ANY ($2)";

/// Fills in the `integration_id` of each webhook among `letters` whose token's
/// `id` claim names an integration (whatever its status: the token itself is
/// not checked). Letters already attributed are left as they are.
pub async fn attribute(
    client: &tokio_postgres::Client,
    letters: &mut [DeadLetter],
) -> Result<(), tokio_postgres::Error> {
    let mut wanted: Vec<&str> = letters
        .iter()
        .filter(|letter| letter.integration_id.is_none())
        .filter_map(|letter| letter.token_external_id.as_deref())
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    if wanted.is_empty() {
        return Ok(());
    }
    let rows = client
        .query(BY_EXTERNAL_ID, &[&&PROVIDERS[..], &wanted])
        .await?;
    let ids: HashMap<String, i64> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    for letter in letters.iter_mut() {
        if letter.integration_id.is_none()
            && let Some(external_id) = &letter.token_external_id
        {
            letter.integration_id = ids.get(external_id).copied();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use lapin::types::FieldTable;
    use serde_json::json;

    use super::*;
    use crate::integration::messages::{OUTBOUND, RECONCILE};

    fn with_token(token: &str) -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert(TOKEN.into(), message::long_string(token));
        BasicProperties::default().with_headers(headers)
    }

    #[test]
    fn each_kind_of_message_says_its_integration_and_issue_its_own_way() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let token = token::mint("jira:abc", "secret").expect("mint");
        let body = |value: Value| value.to_string().into_bytes();
        let cases = [
            (
                "a webhook: the token's claim, the body's issue.key, never its integration_id",
                WEBHOOK,
                with_token(&token),
                body(json!({"integration_id": 5, "issue": {"key": "ABC-1", "fields": {}}})),
                About {
                    integration_id: None,
                    issue_key: Some("ABC-1".into()),
                    token_external_id: Some("jira:abc".into()),
                },
            ),
            (
                "a webhook without a readable token",
                WEBHOOK,
                with_token("not-a-jwt"),
                body(json!({"issue": {"key": "ABC-2"}})),
                About {
                    issue_key: Some("ABC-2".into()),
                    ..About::default()
                },
            ),
            (
                "an outbound push",
                OUTBOUND,
                BasicProperties::default(),
                body(json!({"integration_id": 7, "issue_key": "OUT-3", "group_id": 1})),
                About {
                    integration_id: Some(7),
                    issue_key: Some("OUT-3".into()),
                    token_external_id: None,
                },
            ),
            (
                "a reconcile job",
                RECONCILE,
                BasicProperties::default(),
                body(json!({"integration_id": 9})),
                About {
                    integration_id: Some(9),
                    ..About::default()
                },
            ),
            (
                "a body that is not JSON",
                RECONCILE,
                BasicProperties::default(),
                b"{not json".to_vec(),
                About::default(),
            ),
            (
                "fields of the wrong type",
                OUTBOUND,
                BasicProperties::default(),
                body(json!({"integration_id": "7", "issue_key": 3, "issue": "x"})),
                About::default(),
            ),
            (
                "a key too long to be one",
                OUTBOUND,
                BasicProperties::default(),
                body(json!({"issue_key": "K".repeat(MAX_ISSUE_KEY + 1)})),
                About::default(),
            ),
        ];
        for (case, kind, props, body, expected) in cases {
            assert_eq!(About::read(kind, &props, &body), expected, "{case}");
        }
    }
}
