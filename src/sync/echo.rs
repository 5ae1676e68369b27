//! The echo of a push (docs/reference.md §10.7 b): the webhook Jira sends for
//! jirasync's own write. A change is an echo in an organization when it sets the
//! field of that organization's issue row to a value a push wrote (recorded in
//! `outbound_writes` before the write was sent), with Jira's own event time no
//! later than Jira's `updated` read back after that write — or, while the write's
//! answer is still awaited, within [`IN_FLIGHT`] of it. The unit of work reads
//! the writes of every issue of a batch at once (`db::batch::PUSH_WRITES`) and
//! tells an echo in memory (`sync::state::State::echo`).

/// How long a write whose answer never came (a worker killed mid-push) still
/// makes a change to its value an echo.
pub const IN_FLIGHT: &str = "10 minutes";

/// The value of a change as pushes record it: a Jira user name in lower case,
/// empty for unassigned; a status id as it is.
pub fn assignee_value(jira_user: Option<&str>) -> String {
    jira_user.map(str::to_lowercase).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_in_flight_window_is_the_one_the_statement_uses() {
        let statement = crate::db::batch::PUSH_WRITES;
        assert!(statement.contains(&format!("interval '{IN_FLIGHT}'")));
    }

    #[test]
    fn assignee_values_are_lower_case_names_and_empty_for_nobody() {
        assert_eq!(assignee_value(Some("Amy.Jones")), "amy.jones");
        assert_eq!(assignee_value(None), "");
    }
}
