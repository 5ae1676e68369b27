//! Jira Server's `jira:issue_updated` webhook body, read the way Sentry's
//! `handle_assignee_change` and `handle_status_change` read it
//! (docs/reference.md §5.3–5.7): what it asks for (`change.rs`) and how it is
//! read (`parse.rs`). Jira sends many more fields; only those `parse.rs` names
//! are looked at, and only those are built (`body.rs`). Read by the worker (its
//! webhook and reconcile handlers).

mod body;
mod change;
mod parse;

pub use change::{AssigneeChange, AssigneeRef, IssueChange, StatusChange, WebhookEvent};
pub use parse::{MalformedWebhook, current_state, issue_key, parse, parse_jira_time};
