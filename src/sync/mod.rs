//! Inbound sync (docs/reference.md §5.5–5.7, §5.12): every transaction that writes
//! sync rows. A [`Change`] of an issue is applied by the one [unit of work](unit)
//! — alone, or with the other webhooks ready at the same time (`batch`) — by the
//! rules: which organizations and groups a Jira issue reaches, who gets assigned,
//! which status a group takes, and the ordering guard and its bounded clock
//! (`clock`). Free of HTTP, AMQP and Jira payload types; the worker's webhook and
//! reconcile handlers build the changes.

pub mod applied;
pub mod assignee;
pub mod audit;
pub mod batch;
pub mod change;
pub mod clock;
pub mod echo;
pub mod event;
pub mod guard;
pub mod rekey;
pub mod state;
pub mod status;
pub mod unit;

pub use applied::Applied;
pub use change::{Change, Delivery, StatusPlan};
pub use event::{Email, IssueEvent, IssueKey};
pub use guard::{Admitted, Reach};
pub use unit::{Error, Unit};
