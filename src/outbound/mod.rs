//! Outbound sync (docs/reference.md §10): what the application changes is
//! pushed to Jira. Postgres captures every change of an assignment or a
//! resolution (`migrations/V7__outbound.sql`); the workers' relay (`relay`)
//! turns captured changes into one pending push per external issue and kind
//! (`pending`) and publishes a [`Push`](message::Push) message for it on
//! `P.outbound`; the worker's job (`worker::jobs::outbound`) pushes the group's
//! state of that moment — the assignee (`assignee`) or the status through the
//! project's mapping (`status`, `mapping`) — one push per issue and kind at a
//! time across all workers.

pub mod assignee;
pub mod claim;
pub mod echo;
pub mod mapping;
pub mod message;
pub mod pending;
pub mod plan;
pub mod relay;
pub mod resume;
pub mod status;

/// The most `P.outbound` messages a worker holds with its own slots
/// (`queue::consumer::prefetch`); webhook and job slots lent to pushes add up to
/// `queue::consumer::LENDABLE` more (docs/reference.md §10.2).
pub const PUSHES: usize = 8;

/// What a push sets in Jira: the assignee or the status. Defined beside the
/// audit's details, which name it too.
pub use crate::sync::audit::detail::PushKind as Kind;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_back_as_they_are_written() {
        for kind in [Kind::Assignee, Kind::Status] {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
            assert_eq!(Kind::from_audit_kind(kind.audit_kind()), Some(kind));
            assert_eq!(kind.audit_kind(), format!("{}_outbound", kind.as_str()));
        }
        assert_eq!(Kind::parse("assignee_outbound"), None);
        assert_eq!(Kind::from_audit_kind("assignee"), None);
    }
}
