//! Turns the errors below the handlers into a [`Failure`] at the `?`
//! (`queue/handler.rs` says which error type is used where): database errors (and
//! sync's, which wrap them) by their SQLSTATE, an empty pool as an outage, an
//! integration's Jira failing (5xx, 429, timeouts, network errors) as a dependency
//! outage that messages wait out (docs/reference.md §5.11), other Jira errors as
//! permanent.

use crate::db::StoreError;
use crate::integration::AccessError;
use crate::jira::JiraError;
use crate::queue::handler::Failure;
use crate::worker::outcome::Outcome;

/// A database failure in one line: the SQLSTATE with Postgres's message, the
/// table and constraint, and the hint, or what broke the connection (tokio-postgres's own `Display` says
/// only "db error").
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
pub struct DatabaseError {
    text: String,
    /// It only says the transaction was aborted by an earlier error (25P02).
    aborted: bool,
}

impl DatabaseError {
    fn new(error: &tokio_postgres::Error) -> Self {
        let Some(db) = error.as_db_error() else {
            return Self::other(format!("database connection failed: {}", chain(error)));
        };
        let mut text = format!(
            "database error {} ({}): {}",
            db.code().code(),
            db.severity(),
            db.message()
        );
        // Not the detail: it quotes row values ("Key (email)=(…)").
        for (what, name) in [("table", db.table()), ("constraint", db.constraint())] {
            if let Some(name) = name {
                text.push_str(&format!("; {what} {name}"));
            }
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
        Self {
            text,
            aborted: crate::db::pipelined::is_aborted(error),
        }
    }

    /// A failure that names no aborted transaction.
    fn other(text: String) -> Self {
        Self {
            text,
            aborted: false,
        }
    }
}

impl crate::db::pipelined::Aborted for Failure {
    /// Whether its database error only says the transaction was aborted by an
    /// earlier one (`statements!` then names the earlier one).
    fn is_aborted(&self) -> bool {
        let error = match self {
            Self::Passing(error) | Self::Outage(error) => error,
            Self::DependencyDown { error, .. } | Self::Permanent { error, .. } => error,
        };
        error.chain().any(|cause| {
            cause
                .downcast_ref::<DatabaseError>()
                .is_some_and(|db| db.aborted)
        })
    }
}

use crate::db::error_chain as chain;

/// Whether `error` is (or was caused by) a database failure.
pub fn is_database(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.is::<DatabaseError>())
}

impl From<tokio_postgres::Error> for Failure {
    /// A lost or refused connection is an outage (the message is held until
    /// Postgres answers); serialization failures, deadlocks and the like pass;
    /// anything else will fail again the same way.
    fn from(error: tokio_postgres::Error) -> Self {
        database(&error)
    }
}

/// The failure of `error` (see `From<tokio_postgres::Error>`), for a message
/// among several that share one error.
pub fn database(error: &tokio_postgres::Error) -> Failure {
    let (outage, transient) = (is_outage(error), is_transient(error));
    let error = anyhow::Error::new(DatabaseError::new(error));
    if outage {
        Failure::Outage(error)
    } else if transient {
        Failure::Passing(error)
    } else {
        Failure::permanent(Outcome::Failed, error)
    }
}

impl From<StoreError> for Failure {
    /// The database as above; a stored secret that does not open will not open
    /// on a retry either: dead-lettered, naming what holds it.
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Db(error) => error.into(),
            StoreError::Unreadable(error) => {
                if error.is_plaintext() {
                    // Written by hand or planted by a database writer: an operator must look.
                    tracing::error!(
                        owner = %error.owner,
                        "plaintext where a sealed value is required: refused, not used"
                    );
                }
                Self::permanent(Outcome::SecretUnreadable, anyhow::Error::new(error))
            }
        }
    }
}

impl From<crate::sync::Error> for Failure {
    /// A change sync did not apply: the database as above; a writer that stopped
    /// before answering, or an integration whose row changed again while the
    /// webhook was prepared anew, passes.
    fn from(error: crate::sync::Error) -> Self {
        match error {
            crate::sync::Error::Db(error) => error.into(),
            crate::sync::Error::Pool(error) => error.into(),
            crate::sync::Error::Stopped => Self::passing(anyhow::anyhow!(
                "the worker's database writer stopped before applying the webhook"
            )),
            crate::sync::Error::IntegrationChanged => Self::passing(anyhow::anyhow!(
                "the integration's row changed while the webhook was applied"
            )),
        }
    }
}

impl From<deadpool_postgres::PoolError> for Failure {
    /// A pool that cannot hand out a connection: Postgres is unreachable.
    fn from(error: deadpool_postgres::PoolError) -> Self {
        pool(&error)
    }
}

/// The failure of `error` (see `From<deadpool_postgres::PoolError>`), for a
/// message among several that share one error.
pub fn pool(error: &deadpool_postgres::PoolError) -> Failure {
    let text = format!("database unavailable: {}", chain(error));
    Failure::Outage(anyhow::Error::new(DatabaseError::other(text)))
}

/// Whether `error` says Postgres cannot be reached: the connection closed or
/// broke, or the server refuses connections (shutting down, starting, full).
fn is_outage(error: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    match error.code() {
        None => {
            error.is_closed()
                || std::error::Error::source(error)
                    .is_some_and(|cause| cause.is::<std::io::Error>())
        }
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::TOO_MANY_CONNECTIONS,
                ]
                .contains(code)
        }
    }
}

/// A failed call of an integration's Jira while trying `to`: the database as
/// above, Jira by [`jira`]; credentials Jira refused for good dead-letter the
/// message (`needs_reauth`), to be replayed once the integration is connected again.
pub fn access(to: &str, error: AccessError) -> Failure {
    match error {
        AccessError::Db(error) => error.into(),
        AccessError::Unreadable(error) => StoreError::Unreadable(error).into(),
        AccessError::Pool(error) => error.into(),
        AccessError::Jira(error) => jira(to, error),
        AccessError::NeedsReauth { .. } => Failure::permanent(
            Outcome::NeedsReauth,
            anyhow::Error::new(error).context(format!("failed to {to}")),
        ),
        setup @ AccessError::Setup(_) => Failure::permanent(
            Outcome::JiraFailed,
            anyhow::Error::new(setup).context(format!("failed to {to}")),
        ),
    }
}

/// What the dead letter of a message that waited out a Jira outage names.
const JIRA: &str = "Jira";

/// A failed call of an integration's Jira while trying `to` (e.g. "look up the
/// assignee in Jira"): 5xx, 429, timeouts and network errors are an outage of that
/// Jira, which the message waits out on the retry tiers for up to
/// `JIRASYNC_JIRA_OUTAGE_MAX` after its first failure; a refusal or a broken setup
/// is dead-lettered, to be replayed once fixed.
pub fn jira(to: &str, error: JiraError) -> Failure {
    let transient = error.is_transient();
    let error = anyhow::Error::new(error).context(format!("failed to {to}"));
    if transient {
        Failure::dependency_down(JIRA, error)
    } else {
        Failure::permanent(Outcome::JiraFailed, error)
    }
}

/// Whether a database error may pass: no SQLSTATE (the connection itself
/// failed), class 08, serialization failures, deadlocks, shutdowns, too many
/// connections, lock timeouts and cancels.
fn is_transient(error: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    match error.code() {
        None => true,
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::TOO_MANY_CONNECTIONS,
                    SqlState::LOCK_NOT_AVAILABLE,
                    SqlState::QUERY_CANCELED,
                ]
                .contains(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_jira_is_waited_out_and_a_refusal_is_dead_lettered() {
        let failure = jira("fetch", JiraError::unavailable("HTTP 503", None));
        assert!(
            matches!(
                failure,
                Failure::DependencyDown {
                    dependency: "Jira",
                    ..
                }
            ),
            "{failure:?}"
        );
        assert_eq!(
            failure.to_string(),
            "failed to fetch: Jira is unavailable: HTTP 503"
        );
        let failure = jira("fetch", JiraError::unexpected(400, ""));
        assert!(
            matches!(
                failure,
                Failure::Permanent { outcome, .. } if outcome == Outcome::JiraFailed.into()
            ),
            "{failure:?}"
        );
    }
}
