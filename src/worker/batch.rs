//! Group commit of webhooks (docs/reference.md §5.12): a webhook
//! ready to apply (`webhook::Change`) waits in a channel; each of [`WRITERS`]
//! tasks takes what is waiting — up to the batch size, never waiting for more —
//! and applies it in one transaction. A burst pays one commit per batch; a lone
//! webhook is applied at once in a transaction of its own, as before batching.
//!
//! Within a batch, webhooks of one issue are applied one after the other in the
//! order they arrived (and the ordering guard still decides by event time);
//! different issues' statements are sent together. The batch first locks every
//! issue row it will touch, per integration in id order — the order every change
//! locks in — so that concurrent batches cannot deadlock on them. Each message's
//! task acks only after the commit. A writer waits at most [`LOCK_WAIT`] for a
//! lock. When a batch fails (a bad message, a deadlock, a row locked for longer, a
//! lost connection, a panic), it is rolled back and each webhook goes back to its
//! message's task, which applies it alone, as without batching: only the message
//! that fails takes the retry tiers or the dead-letter queue, and one stuck on a
//! lock holds up nobody else.

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::try_join_all;
use tokio::sync::{Mutex, mpsc, oneshot};
use tracing::{Instrument, Span};

use super::webhook::{self, Change};
use crate::db::{DbPool, rekey};
use crate::queue::handler::Failure;
use crate::sync::audit::Audit;
use crate::worker::Outcome;

/// Writer tasks (and so transactions in progress) per worker process.
pub const WRITERS: usize = 2;

/// How long a writer's transaction waits for a row lock (`lock_timeout`, 1 s):
/// far longer than another batch holds one, short enough that a webhook stuck
/// behind a lock held for long delays its batch-mates by no more.
pub const LOCK_WAIT: &str = "SET LOCAL lock_timeout = '1s'";

/// A webhook waiting for its writer, and where its result goes: its outcome
/// once committed, or the change back for the message's task to apply alone.
struct Pending {
    change: Box<Change>,
    /// The message's span: what its application logs is logged in it.
    span: Span,
    reply: oneshot::Sender<Result<Outcome, Box<Change>>>,
}

/// The way to the writers.
pub struct Batches {
    sender: mpsc::Sender<Pending>,
    /// Where a webhook handed back is applied alone, recording decisions when `record`.
    pool: DbPool,
    record: bool,
}

impl Batches {
    /// Starts `writers` tasks that apply at most `size` webhooks per transaction
    /// on `pool`, recording decisions when `record`. They stop once this is dropped
    /// and what was handed to them is applied.
    pub fn start(pool: &DbPool, record: bool, writers: usize, size: usize) -> Self {
        let size = size.max(1);
        let (sender, receiver) = mpsc::channel(size * writers.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..writers.max(1) {
            let writer = Writer {
                pool: pool.clone(),
                record,
                size,
            };
            tokio::spawn(writer.run(Arc::clone(&receiver)));
        }
        Self {
            sender,
            pool: pool.clone(),
            record,
        }
    }

    /// Applies `change` with whatever else is ready, or, when that fails, alone;
    /// returns once it is committed (or failed).
    pub async fn apply(&self, change: Box<Change>) -> Result<Outcome, Failure> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            change,
            span: Span::current(),
            reply,
        };
        let change = match self.sender.send(pending).await {
            Ok(()) => match answer.await {
                Ok(Ok(outcome)) => return Ok(outcome),
                Ok(Err(change)) => change,
                Err(_) => {
                    return Err(Failure::passing(anyhow::anyhow!(
                        "the worker's database writer stopped before applying the webhook"
                    )));
                }
            },
            // No writer (shutting down): the change is in the error.
            Err(mpsc::error::SendError(pending)) => pending.change,
        };
        alone(&self.pool, &change, self.record).await
    }
}

/// One webhook in a transaction of its own.
async fn alone(pool: &DbPool, change: &Change, record: bool) -> Result<Outcome, Failure> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let (outcome, audit) = webhook::apply(&tx, change, record).await?;
    audit.write(&tx).await?;
    tx.commit().await?;
    audit.count();
    Ok(outcome)
}

/// One writer task.
struct Writer {
    pool: DbPool,
    record: bool,
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
            self.settle(batch).await;
        }
    }

    /// Applies `batch` together and answers each message: its outcome, or its
    /// change back when the batch failed.
    async fn settle(&self, batch: Vec<Pending>) {
        metrics::histogram!("jirasync_webhook_batch_size").record(batch.len() as f64);
        let changes: Vec<(&Change, &Span)> = batch.iter().map(|p| (&*p.change, &p.span)).collect();
        let failure = match AssertUnwindSafe(self.together(&changes))
            .catch_unwind()
            .await
        {
            Ok(Ok(applied)) => {
                for (pending, (outcome, audit)) in batch.into_iter().zip(applied) {
                    audit.count();
                    // The message's task may be gone (shutdown): nothing to tell.
                    let _ = pending.reply.send(Ok(outcome));
                }
                return;
            }
            Ok(Err(error)) => format!("{error:#}"),
            Err(panic) => Failure::panicked(panic.as_ref()).to_string(),
        };
        tracing::info!(size = batch.len(), error = %failure, "a batch failed; each of its webhooks is applied alone");
        metrics::counter!("jirasync_webhook_batch_fallbacks_total").increment(1);
        for pending in batch {
            let _ = pending.reply.send(Err(pending.change));
        }
    }

    /// Every change of the batch in one transaction, each change's result in
    /// the batch's order.
    async fn together(&self, batch: &[(&Change, &Span)]) -> anyhow::Result<Vec<(Outcome, Audit)>> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.batch_execute(LOCK_WAIT).await?;
        if batch.len() > 1 {
            lock_in_order(&tx, batch.iter().map(|(change, _)| *change)).await?;
        }
        // A move renames rows another change of the batch may look up: then one
        // after the other, in order. Otherwise each issue's changes in order,
        // the issues side by side (their statements pipelined on the connection).
        let issues = if batch
            .iter()
            .any(|(change, _)| change.moved_from().is_some())
        {
            vec![(0..batch.len()).collect()]
        } else {
            by_issue(batch.iter().map(|(change, _)| *change))
        };
        let applied = try_join_all(issues.iter().map(|indices| {
            let tx = &tx;
            async move {
                let mut applied = Vec::with_capacity(indices.len());
                for &index in indices {
                    let (change, span) = batch[index];
                    let result = webhook::apply(tx, change, self.record)
                        .instrument(span.clone())
                        .await?;
                    applied.push((index, result));
                }
                Ok::<_, tokio_postgres::Error>(applied)
            }
        }))
        .await?;
        // In the batch's order, which is each issue's order of application.
        let mut applied: Vec<_> = applied.into_iter().flatten().collect();
        applied.sort_by_key(|(index, _)| *index);
        let audits: Vec<&Audit> = applied.iter().map(|(_, (_, audit))| audit).collect();
        Audit::write_all(&tx, &audits).await?;
        tx.commit().await?;
        Ok(applied.into_iter().map(|(_, result)| result).collect())
    }
}

/// Locks the rows of every key the changes touch (a move's both keys), in the
/// order every change locks in: by integration, then by row id.
async fn lock_in_order<'a>(
    tx: &deadpool_postgres::Transaction<'_>,
    changes: impl Iterator<Item = &'a Change>,
) -> Result<(), tokio_postgres::Error> {
    let mut keys: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    for change in changes {
        let of = keys.entry(change.integration_id()).or_default();
        of.push(change.key().as_str());
        of.extend(change.moved_from().map(|key| key.as_str()));
    }
    for (integration_id, keys) in keys {
        rekey::lock(tx, integration_id, &keys).await?;
    }
    Ok(())
}

/// The positions of the changes, grouped by issue, each group in arrival order.
fn by_issue<'a>(changes: impl Iterator<Item = &'a Change>) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut index: HashMap<(i64, &str), usize> = HashMap::new();
    for (position, change) in changes.enumerate() {
        let key = (change.integration_id(), change.key().as_str());
        let group = *index.entry(key).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[group].push(position);
    }
    groups
}
