//! A transaction whose `BEGIN` travels with its first statements: one round trip
//! fewer than `Client::transaction`, which waits for `BEGIN`'s answer before
//! anything else is sent. A batch of webhooks (`sync::unit`) opens one per batch.

use deadpool_postgres::Object;
use futures_util::FutureExt;
use tokio_postgres::Error;

/// A transaction on a pooled connection, begun by the future [`Pipelined::begin`]
/// returns, awaited together with the transaction's first statements (sent
/// after it, so they run inside it). Dropped before [`Pipelined::commit`]
/// succeeded, it queues a `ROLLBACK` on the connection — sent before anything
/// the connection's next user sends, as tokio-postgres's own `Transaction` does.
pub struct Pipelined<'a> {
    client: &'a Object,
    open: bool,
}

impl<'a> Pipelined<'a> {
    /// A transaction on `client`, to begin with [`Pipelined::begin`].
    pub fn new(client: &'a Object) -> Self {
        Self { client, open: true }
    }

    /// Sends `BEGIN` and then `settings` (`SET LOCAL …`; empty for none) as one
    /// simple query, when first polled: poll it before the statements that follow.
    pub async fn begin(&self, settings: &str) -> Result<(), Error> {
        self.client
            .batch_execute(&format!("BEGIN; {settings}"))
            .await
    }

    /// The connection, to run the transaction's statements on.
    pub fn client(&self) -> &'a Object {
        self.client
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), Error> {
        self.commit_with("COMMIT").await
    }

    /// Commits, or fails when a statement failed in the transaction: `COMMIT`
    /// alone answers such a transaction with a rollback, not an error. The
    /// check travels with the commit (a simple query stops at its first error).
    pub async fn commit_checked(self) -> Result<(), Error> {
        self.commit_with("SELECT 1; COMMIT").await
    }

    async fn commit_with(mut self, query: &str) -> Result<(), Error> {
        self.client.batch_execute(query).await?;
        self.open = false;
        Ok(())
    }
}

impl Drop for Pipelined<'_> {
    fn drop(&mut self) {
        if self.open {
            // tokio-postgres queues a request when its future is first polled,
            // before it awaits the answer: one poll sends the ROLLBACK, and the
            // answer is not waited for. Outside a transaction (a failed COMMIT,
            // or a BEGIN never sent) Postgres only warns.
            drop(self.client.batch_execute("ROLLBACK").now_or_never());
        }
    }
}

/// Whether `error` only says the transaction was aborted by an earlier error
/// (25P02): the statement that failed is another.
pub fn is_aborted(error: &Error) -> bool {
    error.code() == Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION)
}

/// An error that may only say its transaction was aborted by an earlier
/// statement's (25P02), as [`statements!`](crate::statements) asks of each: a
/// statement's own, or a handler's failure made of one.
pub trait Aborted {
    /// Whether this only says the transaction was aborted.
    fn is_aborted(&self) -> bool;
}

impl Aborted for Error {
    fn is_aborted(&self) -> bool {
        is_aborted(self)
    }
}

/// The error of statements sent together in one transaction: the one that
/// failed, not the others' [aborted](is_aborted) answers, whichever was polled
/// first (`tokio::join!` turns its starting point; and even an in-order join
/// can meet an aborted answer first, see [`statements!`](crate::statements)).
pub fn root_cause(results: impl IntoIterator<Item = Result<(), Error>>) -> Result<(), Error> {
    values(results).map(drop)
}

/// The values of statements sent together in one transaction, in order, or
/// the error of the one that failed rather than the others' [aborted](Aborted)
/// answers.
pub fn values<T, E: Aborted>(results: impl IntoIterator<Item = Result<T, E>>) -> Result<Vec<T>, E> {
    let mut values = Vec::new();
    let mut aborted = None;
    for result in results {
        match result {
            Ok(value) => values.push(value),
            Err(error) if !error.is_aborted() => return Err(error),
            Err(error) => {
                aborted.get_or_insert(error);
            }
        }
    }
    aborted.map_or(Ok(values), Err)
}

/// Awaits the futures of statements sent together in one transaction, each
/// named, all of them to the end, and gives their values as a tuple — or
/// returns, as `?` does, the error of the statement that failed rather than
/// the [aborted](is_aborted) answers of those sent with it. An in-order join
/// (`futures_util::try_join!`) is not enough: a future that prepares its
/// statement first sends it only once the prepare is answered, after
/// statements of the futures polled after it, so its aborted answer can come
/// first (a dead letter then named 25P02, not the missing table).
///
/// The futures' errors may be any [`Aborted`] type (statements' own errors, or
/// a handler's `Failure`s), all of one type.
#[macro_export]
macro_rules! statements {
    ($($name:ident = $future:expr),+ $(,)?) => {{
        let ($($name,)+) = futures_util::join!($($future),+);
        // The statement's own error first, wherever it stands.
        $(
            let $name = match $name {
                Err(error) if !$crate::db::pipelined::Aborted::is_aborted(&error) => {
                    return Err(error.into());
                }
                other => other,
            };
        )+
        // Then, none failed on its own: each value, or the first aborted answer.
        ($($name?,)+)
    }};
}
