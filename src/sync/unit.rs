//! The one unit of work of inbound sync (docs/reference.md §5.12): every
//! transaction that writes sync rows. Changes ready together are applied in one
//! transaction: the issues' rows locked first, per integration in id order — the
//! order every change locks in — so that concurrent transactions cannot deadlock
//! on them, and what the changes need read with them (`sync::state`); then each
//! change (its move, assignee and status) decided in order, what they decided
//! written once per table with the audit trail, one commit, and the decisions
//! counted once committed. The transaction
//! waits at most [`LOCK_WAIT`] for a lock. When it fails (a bad change, a
//! deadlock, a row locked for longer, a lost connection, a panic), it is rolled
//! back and each change is applied alone, in a task of its own, without the lock
//! timeout: only the change that fails fails, and one stuck on a lock holds up
//! nobody else. The webhook writers (`sync::batch`) and reconciliation use it.

use std::any::Any;
use std::panic::AssertUnwindSafe;

use deadpool_postgres::Object;
use futures_util::FutureExt;
use tokio::sync::oneshot;
use tracing::{Instrument, Span};

use super::applied::{Applied, applied};
use super::audit::detail::{Clock, DuplicateDelivery, NotSynced};
use super::audit::{Audit, Decision};
use super::change::{Change, Delivery, StatusPlan};
use super::event::IssueEvent;
use super::state::State;
use super::{assignee, rekey, status};
use crate::cloud::delivery::duplicates::{self, Seen};
use crate::db::DbPool;
use crate::db::pipelined::Pipelined;
use crate::integration;

/// How long a transaction of several changes waits for a row lock
/// (`lock_timeout`, 1 s): far longer than another one holds one, short enough
/// that a change stuck behind a lock held for long delays the others by no more.
pub const LOCK_WAIT: &str = "SET LOCAL lock_timeout = '1s'";

/// How a unit of work's set-based statements are planned: once per connection
/// (`force_generic_plan`) rather than again for every batch's arrays. Their
/// generic plans read no large table whole (`tests/suite/query_plans.rs`).
pub const GENERIC_PLANS: &str = "SET LOCAL plan_cache_mode = force_generic_plan";

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
    /// The change was prepared with a kept row of its integration
    /// ([`Change::integration_version`]) that is no longer its current one,
    /// or no longer active: nothing of it was written; prepare it again.
    #[error("the integration's row changed since the change was prepared")]
    IntegrationChanged,
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
        let failure = match AssertUnwindSafe(self.run(&changes, true))
            .catch_unwind()
            .await
        {
            Ok(Ok(applied)) => {
                for (pending, applied) in batch.into_iter().zip(applied) {
                    let answer = match applied {
                        Some((applied, audit)) => {
                            audit.count();
                            Ok(applied)
                        }
                        None => Err(Error::IntegrationChanged),
                    };
                    // The asker may be gone (shutdown): nothing to tell.
                    let _ = pending.reply.send(Ok(answer));
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
        let span = Span::current();
        let mut applied = self.run(&[(change, delivery, &span)], false).await?;
        let (applied, audit) = applied.remove(0).ok_or(Error::IntegrationChanged)?;
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

    /// Applies `batch` in one transaction, each change's result (and its trail,
    /// to count once committed) in the batch's order, waiting at most [`LOCK_WAIT`] for a
    /// lock when `lock_wait`: the Cloud deliveries recorded, the rows read
    /// ([`State::read`]) with the versions of the integrations the changes were
    /// prepared with, each change decided in the batch's order (which is each
    /// issue's order of arrival), what they decided written, then the audit
    /// trail, one commit. A change prepared with a row of its integration that
    /// is no longer current ([`Change::integration_version`]) is left out: `None`.
    async fn run(
        &self,
        batch: &[Item<'_>],
        lock_wait: bool,
    ) -> Result<Vec<Option<(Applied, Audit)>>, Error> {
        let client = self.pool.get().await?;
        let transaction = Pipelined::new(&client);
        let tx = transaction.client();
        let deliveries: Vec<(i64, &str, &str)> = batch
            .iter()
            .filter_map(|(change, delivery, _)| {
                let identifier = delivery.as_ref()?.webhook_identifier.as_str();
                Some((
                    change.integration_id,
                    identifier,
                    change.message_id.as_str(),
                ))
            })
            .collect();
        let changes: Vec<&Change> = batch.iter().map(|(change, ..)| *change).collect();
        let mut kept: Vec<i64> = changes
            .iter()
            .filter(|change| change.integration_version.is_some())
            .map(|change| change.integration_id)
            .collect();
        kept.sort_unstable();
        kept.dedup();
        let settings = match lock_wait {
            true => format!("{GENERIC_PLANS}; {LOCK_WAIT}"),
            false => GENERIC_PLANS.to_owned(),
        };
        // Sent together, executed in this order: `BEGIN` and the settings first.
        let ((), seen, current, mut state) = crate::statements!(
            began = transaction.begin(&settings),
            seen = duplicates::record_all(tx, &deliveries),
            current = integration::active_versions(tx, &kept),
            state = State::read(tx, &changes),
        );
        let mut seen = seen.into_iter();
        let mut applied = Vec::with_capacity(batch.len());
        for &(change, delivery, span) in batch {
            let seen = delivery.and_then(|delivery| Some((delivery, seen.next()?)));
            if let Some(version) = change.integration_version
                && !current.contains(&(change.integration_id, version))
            {
                applied.push(None);
                continue;
            }
            let result = apply(tx, &mut state, change, seen, self.record)
                .instrument(span.clone())
                .await?;
            applied.push(Some(result));
        }
        let audits: Vec<&Audit> = applied.iter().flatten().map(|(_, audit)| audit).collect();
        // Sent together: the statements do not depend on each other's answers.
        crate::statements!(
            written = state.write(tx),
            audited = Audit::write_all(tx, &audits),
        );
        transaction.commit().await?;
        Ok(applied)
    }
}

/// A change of a batch, the Cloud delivery it came in, and its message's span.
type Item<'a> = (&'a Change, Option<&'a Delivery>, &'a Span);

/// Applies `change` in `tx` and `state`: the move, the assignee and the
/// status. Returns the result and the trail of what was decided, which the
/// caller writes in `tx` before it commits, and [counts](Audit::count) once
/// committed. The change of a Cloud delivery another message carried already
/// (`seen`, as the batch recorded it) is a duplicate and changes nothing
/// (docs/reference.md §11.4).
async fn apply(
    tx: &Object,
    state: &mut State,
    change: &Change,
    seen: Option<(&Delivery, Seen)>,
    record: bool,
) -> Result<(Applied, Audit), tokio_postgres::Error> {
    if let Some((delivery, Seen::Duplicate { first_message_id })) = seen {
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
    let event = change.event();
    let mut audit = audit(record, &change.message_id, event);
    let moved = match &change.moved_from {
        Some(from) => {
            // The move renames rows: what the batch read of them is stale.
            state.write_and_forget(tx).await?;
            rekey::apply(tx, event, from, &mut audit).await?
        }
        None => rekey::Report::default(),
    };
    let assigned = match &change.assignee {
        Some(action) => Some(assignee::apply(tx, state, event, action, &mut audit).await?),
        None => None,
    };
    let resolved = match change.status {
        Some(StatusPlan::Apply(transition)) => Some((
            transition,
            status::apply(
                tx,
                state,
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

/// A panic's message, as the consumer loop tells it (`queue::handler::Failure::panicked`).
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string payload")
}
