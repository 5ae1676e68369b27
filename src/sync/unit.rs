//! The one unit of work of inbound sync (docs/reference.md §5.12): every
//! transaction that writes sync rows. Changes ready together are applied in one
//! transaction: the issues' rows locked first, per integration in id order — the
//! order every change locks in — so that concurrent transactions cannot deadlock
//! on them; then each change (its move, assignee and status), then the audit
//! trail, one commit, and the decisions counted once committed. The transaction
//! waits at most [`LOCK_WAIT`] for a lock. When it fails (a bad change, a
//! deadlock, a row locked for longer, a lost connection, a panic), it is rolled
//! back and each change is applied alone, in a task of its own, without the lock
//! timeout: only the change that fails fails, and one stuck on a lock holds up
//! nobody else. The webhook writers (`sync::batch`) and reconciliation use it.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;

use deadpool_postgres::Transaction;
use futures_util::FutureExt;
use futures_util::future::try_join_all;
use tokio::sync::oneshot;
use tracing::{Instrument, Span};

use super::applied::{Applied, applied};
use super::audit::detail::{Clock, DuplicateDelivery, NotSynced};
use super::audit::{Audit, Decision};
use super::change::{Change, Delivery, StatusPlan};
use super::event::IssueEvent;
use super::{assignee, rekey, status};
use crate::cloud::delivery::duplicates::{self, Seen};
use crate::db::{DbPool, rekey as lock};

/// How long a transaction of several changes waits for a row lock
/// (`lock_timeout`, 1 s): far longer than another one holds one, short enough
/// that a change stuck behind a lock held for long delays the others by no more.
pub const LOCK_WAIT: &str = "SET LOCAL lock_timeout = '1s'";

/// Why a change was not applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A statement (or the commit) failed.
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    /// No connection could be had.
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The task applying it stopped before answering (the runtime shuts down).
    #[error("the writer stopped before applying the change")]
    Stopped,
}

/// Where the changes are written, and whether their decisions are recorded
/// (`JIRASYNC_AUDIT`) or only counted.
#[derive(Clone)]
pub struct Unit {
    pool: DbPool,
    record: bool,
}

/// What a change's answer carries: its result, or the panic that applying it alone raised.
type Reply = std::thread::Result<Result<Applied, Error>>;

/// A change handed to [`Unit::settle`], and where its result goes.
pub struct Pending {
    change: Box<Change>,
    /// The Cloud delivery it came in, recorded with it.
    delivery: Option<Delivery>,
    /// The span of the message that asked: what its application logs is logged in it.
    span: Span,
    reply: oneshot::Sender<Reply>,
}

impl Pending {
    /// `change`, to be applied in the current span, and its answer.
    pub fn new(change: Change) -> (Self, Answer) {
        Self::of_delivery(change, None)
    }

    /// As [`Pending::new`], the change of a Jira Cloud `delivery`, recorded in
    /// the transaction that applies it (a duplicate changes nothing).
    pub fn of_delivery(change: Change, delivery: Option<Delivery>) -> (Self, Answer) {
        let (reply, answer) = oneshot::channel();
        let pending = Self {
            change: Box::new(change),
            delivery,
            span: Span::current(),
            reply,
        };
        (pending, Answer(answer))
    }

    /// The change.
    pub fn change(&self) -> &Change {
        &self.change
    }

    /// The Cloud delivery it came in, if any.
    pub fn delivery(&self) -> Option<&Delivery> {
        self.delivery.as_ref()
    }
}

/// Where the result of a [`Pending`] change arrives.
pub struct Answer(oneshot::Receiver<Reply>);

impl Answer {
    /// The change's result once committed (or failed). A panic raised while
    /// applying it alone goes on here, as if it had been applied here.
    pub async fn get(self) -> Result<Applied, Error> {
        match self.0.await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(Error::Stopped),
        }
    }
}

impl Unit {
    /// Writes on `pool`, recording decisions when `record`.
    pub fn new(pool: DbPool, record: bool) -> Self {
        Self { pool, record }
    }

    /// Applies `batch` in one transaction and answers each change. When that
    /// fails, each change is applied [alone](Self::alone) in a task of its own,
    /// which answers it (its task is awaited through the [`Answer`]); returns
    /// why the batch failed, having fallen back.
    pub async fn settle(&self, batch: Vec<Pending>) -> Option<String> {
        let changes: Vec<Item<'_>> = batch
            .iter()
            .map(|p| (&*p.change, p.delivery.as_ref(), &p.span))
            .collect();
        let failure = match AssertUnwindSafe(self.together(&changes))
            .catch_unwind()
            .await
        {
            Ok(Ok(applied)) => {
                for (pending, (applied, audit)) in batch.into_iter().zip(applied) {
                    audit.count();
                    // The asker may be gone (shutdown): nothing to tell.
                    let _ = pending.reply.send(Ok(Ok(applied)));
                }
                return None;
            }
            Ok(Err(error)) => format!("{:#}", anyhow::Error::new(error)),
            Err(panic) => format!("handler panicked: {}", panic_message(panic.as_ref())),
        };
        for pending in batch {
            let unit = self.clone();
            let span = pending.span.clone();
            tokio::spawn(
                async move {
                    let alone = unit.alone_delivery(&pending.change, pending.delivery.as_ref());
                    let alone = AssertUnwindSafe(alone);
                    let _ = pending.reply.send(alone.catch_unwind().await);
                }
                .instrument(span),
            );
        }
        Some(failure)
    }

    /// Applies `change` in a transaction of its own, waiting for its rows as
    /// long as they are locked.
    pub async fn alone(&self, change: &Change) -> Result<Applied, Error> {
        self.alone_delivery(change, None).await
    }

    /// As [`Unit::alone`], the change of a Jira Cloud `delivery`.
    pub async fn alone_delivery(
        &self,
        change: &Change,
        delivery: Option<&Delivery>,
    ) -> Result<Applied, Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let (applied, audit) = apply(&tx, change, delivery, self.record).await?;
        audit.write(&tx).await?;
        tx.commit().await?;
        audit.count();
        Ok(applied)
    }

    /// A verified Cloud `delivery` of message `message_id` that changes nothing
    /// (no changelog, nothing to sync; or found to be a duplicate before Jira
    /// was asked): recorded in a short transaction of its own, unless `only_ask`
    /// (then only looked up). A duplicate writes its `delivery`/`duplicate`
    /// decision under `issue_key` (none without one). Whether it is one.
    pub async fn delivery_alone(
        &self,
        integration_id: i64,
        message_id: &str,
        issue_key: Option<&str>,
        delivery: &Delivery,
        only_ask: bool,
    ) -> Result<bool, Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let identifier = delivery.webhook_identifier.as_str();
        let seen = if only_ask {
            duplicates::seen(&tx, integration_id, identifier, message_id).await?
        } else {
            duplicates::record(&tx, integration_id, identifier, message_id).await?
        };
        let Seen::Duplicate { first_message_id } = seen else {
            tx.commit().await?;
            return Ok(false);
        };
        let audit = duplicate(
            self.record,
            message_id,
            integration_id,
            issue_key,
            delivery,
            first_message_id,
        );
        audit.write(&tx).await?;
        tx.commit().await?;
        audit.count();
        Ok(true)
    }

    /// Every change of the batch in one transaction, each change's result (and
    /// its trail, to count once committed) in the batch's order.
    async fn together(&self, batch: &[Item<'_>]) -> Result<Vec<(Applied, Audit)>, Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.batch_execute(LOCK_WAIT).await?;
        if batch.len() > 1 {
            lock_in_order(&tx, batch.iter().map(|(change, ..)| *change)).await?;
        }
        // A move renames rows another change of the batch may look up: then one
        // after the other, in order. Otherwise each issue's changes in order,
        // the issues side by side (their statements pipelined on the connection).
        let issues = if batch.iter().any(|(change, ..)| change.moved_from.is_some()) {
            vec![(0..batch.len()).collect()]
        } else {
            by_issue(batch.iter().map(|(change, ..)| *change))
        };
        let applied = try_join_all(issues.iter().map(|indices| {
            let tx = &tx;
            async move {
                let mut applied = Vec::with_capacity(indices.len());
                for &index in indices {
                    let (change, delivery, span) = batch[index];
                    let result = apply(tx, change, delivery, self.record)
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

/// A change of a batch, the Cloud delivery it came in, and its message's span.
type Item<'a> = (&'a Change, Option<&'a Delivery>, &'a Span);

/// Applies `change` in `tx`: the move, the assignee and the status. Returns the
/// result and the trail of what was decided, which the caller writes in `tx`
/// before it commits, and [counts](Audit::count) once committed. The change of
/// a Cloud `delivery` that another message carried already is a duplicate and
/// changes nothing (docs/reference.md §11.4); else the delivery is recorded here.
async fn apply(
    tx: &Transaction<'_>,
    change: &Change,
    delivery: Option<&Delivery>,
    record: bool,
) -> Result<(Applied, Audit), tokio_postgres::Error> {
    if let Some(delivery) = delivery {
        let seen = duplicates::record(
            tx,
            change.integration_id,
            &delivery.webhook_identifier,
            &change.message_id,
        )
        .await?;
        if let Seen::Duplicate { first_message_id } = seen {
            let audit = duplicate(
                record,
                &change.message_id,
                change.integration_id,
                Some(change.key.as_str()),
                delivery,
                first_message_id,
            );
            return Ok((Applied::Duplicate, audit));
        }
    }
    let event = change.event();
    let mut audit = audit(record, &change.message_id, event);
    let moved = match &change.moved_from {
        Some(from) => rekey::apply(tx, event, from, &mut audit).await?,
        None => rekey::Report::default(),
    };
    let assigned = match &change.assignee {
        Some(action) => Some(assignee::apply(tx, event, action, &mut audit).await?),
        None => None,
    };
    let resolved = match change.status {
        Some(StatusPlan::Apply(transition)) => Some((
            transition,
            status::apply(
                tx,
                event,
                transition,
                change.status_to.as_deref(),
                &mut audit,
            )
            .await?,
        )),
        Some(StatusPlan::Skipped(reason)) => {
            let detail = NotSynced {
                reason,
                clock: Clock::default(),
            };
            audit.record(None, Decision::StatusNotSynced(detail));
            None
        }
        None => None,
    };
    tracing::debug!(?assigned, ?resolved, "changes applied");
    let status_asked = change.status.is_some();
    let applied = applied(moved, assigned.as_ref(), resolved.as_ref(), status_asked);
    Ok((applied, audit))
}

/// The trail of a duplicate Cloud delivery (docs/reference.md §11.4): one
/// `delivery`/`duplicate` decision, no organization, under the payload's issue
/// key (none without one).
pub fn duplicate(
    record: bool,
    message_id: &str,
    integration_id: i64,
    issue_key: Option<&str>,
    delivery: &Delivery,
    first_message_id: String,
) -> Audit {
    let mut audit = Audit::delivery(message_id, integration_id, issue_key.unwrap_or_default());
    if issue_key.is_some() {
        let detail = DuplicateDelivery {
            webhook_identifier: delivery.webhook_identifier.clone(),
            first_message_id,
            clock: Clock::default(),
        };
        audit.record(None, Decision::Duplicate(detail));
    }
    if record { audit } else { audit.unrecorded() }
}

/// The audit trail of `event`, delivered as `message_id`: recorded, or only
/// counted when `record` is false (`JIRASYNC_AUDIT=off`).
fn audit(record: bool, message_id: &str, event: IssueEvent<'_>) -> Audit {
    let message_id = Some(message_id).filter(|id| !id.is_empty());
    let audit = Audit::new(message_id, event);
    if record { audit } else { audit.unrecorded() }
}

/// Locks the rows of every key the changes touch (a move's both keys), in the
/// order every change locks in: by integration, then by row id.
async fn lock_in_order<'a>(
    tx: &Transaction<'_>,
    changes: impl Iterator<Item = &'a Change>,
) -> Result<(), tokio_postgres::Error> {
    let mut keys: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    for change in changes {
        let of = keys.entry(change.integration_id).or_default();
        of.push(change.key.as_str());
        of.extend(change.moved_from.as_ref().map(|key| key.as_str()));
    }
    for (integration_id, keys) in keys {
        lock::lock(tx, integration_id, &keys).await?;
    }
    Ok(())
}

/// The positions of the changes, grouped by issue, each group in arrival order.
fn by_issue<'a>(changes: impl Iterator<Item = &'a Change>) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut index: HashMap<(i64, &str), usize> = HashMap::new();
    for (position, change) in changes.enumerate() {
        let key = (change.integration_id, change.key.as_str());
        let group = *index.entry(key).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[group].push(position);
    }
    groups
}

/// A panic's message, as the consumer loop tells it (`queue::handler::Failure::panicked`).
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string payload")
}
