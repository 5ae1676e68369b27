//! Group commit of webhooks (docs/reference.md §5.12): a webhook's change ready
//! to apply waits in a channel; each of [`WRITERS`] tasks takes what is waiting —
//! up to the batch size, never waiting for more — and settles it as one
//! [unit of work](super::unit): a burst pays one commit per batch; a lone webhook
//! is applied at once in a transaction of its own, as before batching.
//!
//! Within a batch, webhooks of one issue are applied one after the other in the
//! order they arrived (and the ordering guard still decides by event time);
//! different issues' statements are sent together. Each message's task acks only
//! after the commit. When a batch fails, the unit of work applies each of its
//! webhooks alone: only the message that fails takes the retry tiers or the
//! dead-letter queue, and one stuck on a lock holds up nobody else.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc};

use super::applied::Applied;
use super::change::{Change, Delivery};
use super::unit::{Error, Pending, Unit};
use crate::db::DbPool;

/// Writer tasks (and so transactions in progress) per worker process.
pub const WRITERS: usize = 2;

/// The way to the writers.
pub struct Batches {
    sender: mpsc::Sender<Pending>,
    /// Where a webhook is applied alone when no writer takes it.
    unit: Unit,
}

impl Batches {
    /// Starts `writers` tasks that apply at most `size` webhooks per transaction
    /// on `pool`, recording decisions when `record`. They stop once this is dropped
    /// and what was handed to them is applied.
    pub fn start(pool: &DbPool, record: bool, writers: usize, size: usize) -> Self {
        let size = size.max(1);
        let unit = Unit::new(pool.clone(), record);
        let (sender, receiver) = mpsc::channel(size * writers.max(1));
        // A tokio mutex: a writer holds it while it awaits the next webhook.
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..writers.max(1) {
            let writer = Writer {
                unit: unit.clone(),
                size,
            };
            tokio::spawn(writer.run(Arc::clone(&receiver)));
        }
        Self { sender, unit }
    }

    /// Applies `change` with whatever else is ready, or, when that fails, alone;
    /// returns once it is committed (or failed).
    pub async fn apply(&self, change: Change) -> Result<Applied, Error> {
        self.apply_delivery(change, None).await
    }

    /// As [`Batches::apply`], the change of a Jira Cloud `delivery`, recorded
    /// in the transaction that applies it (docs/reference.md §11.4).
    pub async fn apply_delivery(
        &self,
        change: Change,
        delivery: Option<Delivery>,
    ) -> Result<Applied, Error> {
        let (pending, answer) = Pending::of_delivery(change, delivery);
        match self.sender.send(pending).await {
            Ok(()) => answer.get().await,
            // No writer (shutting down): the change is in the error.
            Err(mpsc::error::SendError(pending)) => {
                let unit = &self.unit;
                unit.alone_delivery(pending.change(), pending.delivery())
                    .await
            }
        }
    }

    /// Where a change is applied alone (and a Cloud delivery that changes
    /// nothing is recorded).
    pub fn unit(&self) -> &Unit {
        &self.unit
    }
}

/// One writer task.
struct Writer {
    unit: Unit,
    size: usize,
}

impl Writer {
    async fn run(self, receiver: Arc<Mutex<mpsc::Receiver<Pending>>>) {
        loop {
            let batch = {
                let mut receiver = receiver.lock().await;
                let Some(first) = receiver.recv().await else {
                    return;
                };
                let mut batch = vec![first];
                while batch.len() < self.size {
                    match receiver.try_recv() {
                        Ok(pending) => batch.push(pending),
                        Err(_) => break,
                    }
                }
                batch
            };
            let size = batch.len();
            metrics::histogram!("jirasync_webhook_batch_size").record(size as f64);
            if let Some(failure) = self.unit.settle(batch).await {
                tracing::info!(size, error = %failure, "a batch failed; each of its webhooks is applied alone");
                metrics::counter!("jirasync_webhook_batch_fallbacks_total").increment(1);
            }
        }
    }
}
