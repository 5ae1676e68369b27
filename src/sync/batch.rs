//! Group commit of webhooks (docs/reference.md §5.12): a webhook's change ready
//! to apply waits in a channel; a writer task takes what is waiting — up to the
//! batch size, never waiting for more — and settles it as one
//! [unit of work](super::unit): a burst pays one commit per batch; a lone webhook
//! is applied at once in a transaction of its own, as before batching.
//!
//! One writer takes every batch while its batches end quickly: what arrives
//! meanwhile waits for its next one, so batches grow and each webhook costs less
//! (two writers sharing a few webhooks in flight made twice the batches of half
//! the size). The other [`WRITERS`] relieve it: once the first has been busy with
//! one batch for [`STUCK`] (a lock held elsewhere, a slow commit), a relief writer
//! takes what is waiting, so a stuck batch holds up no other.
//!
//! Within a batch, webhooks of one issue are applied one after the other in the
//! order they arrived (and the ordering guard still decides by event time);
//! different issues' statements are sent together. Each message's task acks only
//! after the commit. When a batch fails, the unit of work applies each of its
//! webhooks alone: only the message that fails takes the retry tiers or the
//! dead-letter queue, and one stuck on a lock holds up nobody else.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, watch};

use super::applied::Applied;
use super::change::{Change, Delivery};
use super::unit::{Error, Pending, Unit};
use crate::db::DbPool;

/// Writer tasks (and so transactions in progress) per worker process: the
/// first, and the relief writers.
pub const WRITERS: usize = 2;

/// How long the first writer is busy with one batch before the relief writers
/// take what waits: several times what a batch takes when nothing holds it up.
pub const STUCK: Duration = Duration::from_millis(20);

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
        // Which batch the first writer is settling (`None` between batches).
        let (busy, watching) = watch::channel(None);
        let first = Writer {
            unit: unit.clone(),
            size,
            receiver: Arc::clone(&receiver),
        };
        tokio::spawn(first.run(busy));
        for _ in 1..writers.max(1) {
            let relief = Writer {
                unit: unit.clone(),
                size,
                receiver: Arc::clone(&receiver),
            };
            tokio::spawn(relief.relieve(watching.clone()));
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
    receiver: Arc<Mutex<mpsc::Receiver<Pending>>>,
}

impl Writer {
    /// The first writer: takes every batch, waiting for the next webhook, and
    /// tells `busy` which batch it settles (`None` between batches).
    async fn run(self, busy: watch::Sender<Option<u64>>) {
        for batch_number in 0u64.. {
            let batch = {
                let mut receiver = self.receiver.lock().await;
                let Some(first) = receiver.recv().await else {
                    return;
                };
                self.fill(&mut receiver, first)
            };
            busy.send_replace(Some(batch_number));
            self.settle(batch).await;
            busy.send_replace(None);
        }
    }

    /// A relief writer: while the first has been busy with one batch for
    /// [`STUCK`] or more, takes what is waiting (never waiting for more) and
    /// settles it, again and again until the first is done with that batch.
    async fn relieve(self, mut busy: watch::Receiver<Option<u64>>) {
        loop {
            // Closed: the first writer is gone, and the channel with it.
            let Ok(stuck) = busy.wait_for(Option::is_some).await.map(|b| *b) else {
                return;
            };
            match tokio::time::timeout(STUCK, busy.wait_for(|now| *now != stuck)).await {
                Ok(Ok(_)) => continue,
                Ok(Err(_)) => return,
                Err(_) => {}
            }
            // The first writer is stuck on one batch, not waiting for webhooks.
            while *busy.borrow() == stuck {
                let batch = {
                    let Ok(mut receiver) = self.receiver.try_lock() else {
                        break;
                    };
                    match receiver.try_recv() {
                        Ok(first) => self.fill(&mut receiver, first),
                        Err(_) => break,
                    }
                };
                metrics::counter!("jirasync_webhook_batch_reliefs_total").increment(1);
                self.settle(batch).await;
            }
            // Nothing waits, or the first is free again: from the top, which
            // looks again in STUCK if the first is still on that batch.
        }
    }

    /// `first` and whatever else waits, up to the batch size.
    fn fill(&self, receiver: &mut mpsc::Receiver<Pending>, first: Pending) -> Vec<Pending> {
        let mut batch = vec![first];
        while batch.len() < self.size {
            match receiver.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        batch
    }

    /// Settles `batch` as one unit of work (each change alone when that fails).
    async fn settle(&self, batch: Vec<Pending>) {
        let size = batch.len();
        metrics::histogram!("jirasync_webhook_batch_size").record(size as f64);
        if let Some(failure) = self.unit.settle(batch).await {
            tracing::info!(size, error = %failure, "a batch failed; each of its webhooks is applied alone");
            metrics::counter!("jirasync_webhook_batch_fallbacks_total").increment(1);
        }
    }
}
