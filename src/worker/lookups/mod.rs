//! What the worker's jobs look up before they write, shared by all of its
//! tasks: the integration a token names (Postgres), hidden assignee emails and
//! `done` statuses (Jira, cached for minutes). One single-flight mechanism
//! ([`single_flight`]) makes tasks that ask the same thing at the same time
//! share one lookup.

mod cache;
pub mod hidden_email;
pub mod jira_statuses;
pub mod single_flight;
