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
    pub async fn commit(mut self) -> Result<(), Error> {
        self.client.batch_execute("COMMIT").await?;
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
