//! The echo of a push (docs/reference.md §10.7 b): the webhook Jira sends for
//! jirasync's own write. A change is an echo in an organization when it sets the
//! field of that organization's issue row to a value a push wrote (recorded in
//! `outbound_writes` before the write was sent), with Jira's own event time no
//! later than Jira's `updated` read back after that write — or, while the write's
//! answer is still awaited, within [`IN_FLIGHT`] of it.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

use super::audit::detail::{Clock, Echo, PushKind};

/// How long a write whose answer never came (a worker killed mid-push) still
/// makes a change to its value an echo.
pub const IN_FLIGHT: &str = "10 minutes";

/// `$1` external issue, `$2` kind, `$3` value, `$4` Jira's event time (or NULL).
pub const ECHO: &str = concat!(
    "SELECT written_at, jira_updated FROM outbound_writes
  WHERE external_issue_id = $1 AND kind = $2 AND value = $3
    AND (($4::timestamptz IS NOT NULL AND jira_updated IS NOT NULL AND $4 <= jira_updated)
      OR (jira_updated IS NULL AND written_at > now() - interval '",
    "10 minutes",
    "'))"
);

/// The value of a change as pushes record it: a Jira user name in lower case,
/// empty for unassigned; a status id as it is.
pub fn assignee_value(jira_user: Option<&str>) -> String {
    jira_user.map(str::to_lowercase).unwrap_or_default()
}

/// The push whose echo a change setting `value` of `kind` on row
/// `external_issue_id` at Jira's time `at` is, if it is one.
pub async fn of(
    client: &impl GenericClient,
    external_issue_id: i64,
    kind: PushKind,
    value: &str,
    at: Option<DateTime<Utc>>,
) -> Result<Option<Echo>, Error> {
    let statement = client.prepare_cached(ECHO).await?;
    let row = client
        .query_opt(
            &statement,
            &[&external_issue_id, &kind.as_str(), &value, &at],
        )
        .await?;
    Ok(row.map(|row| Echo {
        kind,
        echo_of: value.to_owned(),
        written_at: row.get(0),
        jira_updated: row.get(1),
        clock: Clock::default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_in_flight_window_is_the_one_the_statement_uses() {
        assert!(ECHO.contains(&format!("interval '{IN_FLIGHT}'")));
    }

    #[test]
    fn assignee_values_are_lower_case_names_and_empty_for_nobody() {
        assert_eq!(assignee_value(Some("Amy.Jones")), "amy.jones");
        assert_eq!(assignee_value(None), "");
    }
}
