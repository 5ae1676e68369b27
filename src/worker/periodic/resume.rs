//! Held pushes sent again (docs/reference.md §10.8): every
//! [`EVERY`](crate::outbound::resume::EVERY), each worker releases the held pushes
//! of the integrations that can call Jira again (`outbound::resume`); the relay
//! publishes them with the groups' state of that moment.

use super::runner::{self, First};
use crate::db::DbPool;
use crate::outbound::resume::{self, EVERY};
use crate::shutdown::Shutdown;

/// Starts the task.
pub fn spawn(pool: DbPool, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
    runner::spawn(First::AfterOnePeriod, EVERY, shutdown, move || {
        let pool = pool.clone();
        async move {
            let released = match pool.get().await {
                Ok(client) => resume::release(&client).await.map_err(anyhow::Error::new),
                Err(error) => Err(anyhow::Error::new(error)),
            };
            match released {
                Ok(0) => {}
                Ok(released) => tracing::info!(
                    released,
                    "sending held pushes: their integration can call Jira again"
                ),
                Err(error) => tracing::warn!(
                    error = %format!("{error:#}"),
                    "could not check the held pushes"
                ),
            }
        }
    })
}
