//! Pushes settled together (docs/reference.md §10.2): the pushes a worker holds
//! at the same moment share one transaction — one statement takes all their
//! locks, one reads all their pending rows, each integration's credentials are
//! read once, and once all decided one statement each writes what they left,
//! sent with the commit (`write_decided`) — while each push still reads, calls
//! Jira and decides on its own, concurrently with the others.
//!
//! There is no batching task (`combine::Combine`): the first push to arrive while none
//! gathers leads the next batch; it lets the pushes delivered with it arrive (a
//! few turns of the scheduler), takes every push waiting and settles them, and
//! each push of the batch waits for its own answer. A push that arrives
//! meanwhile leads the next batch, which runs beside this one: no push waits for
//! another batch. (Making the next batch wait for the running ones made bigger
//! batches and cheaper pushes, but fewer of them: docs/performance.md, "Pushes
//! settled together".)
//!
//! A push that fails (Jira down, a 429) writes nothing, and the batch commits the
//! others. When the batch itself fails (a statement, a deadlock, the commit, a
//! push that panicked), it is rolled back and each push runs alone in a
//! transaction of its own, as it would without batching. Two messages of the
//! same issue and kind never share a batch: the second runs alone once the
//! batch committed.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::join_all;
use tokio::sync::oneshot;
use tracing::{Instrument, Span};

use super::combine::Combine;
use super::{Access, Found, Push, Settled, calls_jira, decide, write_decided};
use crate::db::pipelined::{self, Pipelined};
use crate::outbound::{Kind, claim, echo};
use crate::queue::handler::Failure;
use crate::worker::environment::Environment;
use crate::worker::failure;
use crate::worker::outcome::Outcome;

/// How a batch of pushes plans its statements: once per connection (generic
/// plans, as a batch of webhooks', `sync::unit::GENERIC_PLANS`), and with
/// sequential scans off. Every statement of a push reads or writes rows by key,
/// and two of its tables start empty and grow: `outbound_writes` by a row per
/// write, `outbound_pending` from nothing, while pushes keep up, to a backlog
/// after an outage. A plan made while either was small would read it whole for
/// good (docs/performance.md, "A plan made while the table was small").
pub const PUSH_PLANS: &str =
    "SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off";

/// A push waiting for its batch, and where its outcome goes.
struct Asked {
    push: Push,
    message_id: String,
    /// Its message's span: what the batch logs for it is logged there.
    span: Span,
    reply: oneshot::Sender<Result<Outcome, Failure>>,
}

/// The pushes waiting for a batch; one per worker process.
#[derive(Default)]
pub struct Gather(Combine<Asked>);

impl Gather {
    /// Pushes `push` in the next batch; its outcome once the batch committed.
    pub async fn push(
        &self,
        env: &Environment,
        push: &Push,
        message_id: &str,
    ) -> Result<Outcome, Failure> {
        let (reply, answer) = oneshot::channel();
        let asked = Asked {
            push: push.clone(),
            message_id: message_id.to_owned(),
            span: Span::current(),
            reply,
        };
        if let Some(batch) = self.0.join(asked).await {
            settle(env, batch).await;
        }
        answer.await.unwrap_or_else(|_| {
            Err(Failure::passing(anyhow::anyhow!(
                "the push's batch ended before deciding it"
            )))
        })
    }
}

/// A write's echo record (`outbound::echo`), waiting to be written.
struct Record {
    external_issue_id: i64,
    kind: Kind,
    value: String,
    reply: oneshot::Sender<Result<(), Arc<EchoError>>>,
}

/// Why the echo records could not be written.
enum EchoError {
    Pool(deadpool_postgres::PoolError),
    Db(tokio_postgres::Error),
}

/// The echo records of a batch's writes, each committed before its write is
/// sent: the writes whose plans end together share one statement and one
/// commit.
#[derive(Default)]
pub struct Echoes(Combine<Record>);

impl Echoes {
    /// Records, and commits, that `value` is about to be written to the issue.
    pub async fn writing(
        &self,
        env: &Environment,
        external_issue_id: i64,
        kind: Kind,
        value: &str,
    ) -> Result<(), Failure> {
        let (reply, answer) = oneshot::channel();
        let record = Record {
            external_issue_id,
            kind,
            value: value.to_owned(),
            reply,
        };
        if let Some(records) = self.0.join(record).await {
            let written = async {
                let client = env.pool.get().await.map_err(EchoError::Pool)?;
                let all = records
                    .iter()
                    .map(|r| (r.external_issue_id, r.kind, r.value.as_str()));
                echo::writing_all(&client, all).await.map_err(EchoError::Db)
            }
            .await
            .map_err(Arc::new);
            for record in records {
                let _ = record.reply.send(written.clone());
            }
        }
        match answer.await {
            Ok(Ok(())) => Ok(()),
            // No connection: Postgres is away, the push waits for it.
            Ok(Err(error)) => Err(match &*error {
                EchoError::Pool(error) => failure::pool(error),
                EchoError::Db(error) => failure::database(error),
            }),
            Err(_) => Err(Failure::passing(anyhow::anyhow!(
                "the write's echo record was dropped before it was written"
            ))),
        }
    }
}

/// Settles `batch` and answers each of its pushes.
async fn settle(env: &Environment, batch: Vec<Asked>) {
    metrics::histogram!("jirasync_outbound_batch_size").record(batch.len() as f64);
    let mut seen = HashSet::new();
    let (batch, later): (Vec<Asked>, Vec<Asked>) = batch
        .into_iter()
        .partition(|asked| seen.insert((asked.push.external_issue_id, asked.push.kind)));
    if batch.len() > 1 {
        match together(env, &batch).await {
            Ok(settled) => answer(batch, settled),
            Err(failure) => {
                tracing::warn!(
                    pushes = batch.len(),
                    error = %failure,
                    "a batch of pushes failed; each is pushed alone"
                );
                join_all(batch.into_iter().map(|asked| alone(env, asked))).await;
            }
        }
    } else {
        for asked in batch {
            alone(env, asked).await;
        }
    }
    for asked in later {
        alone(env, asked).await;
    }
}

/// Settles one push in a transaction of its own and answers it.
async fn alone(env: &Environment, asked: Asked) {
    match together(env, std::slice::from_ref(&asked)).await {
        Ok(settled) => answer(vec![asked], settled),
        Err(failure) => {
            let _ = asked.reply.send(Err(failure));
        }
    }
}

/// Answers each push of a committed batch (the asker may be gone: shutdown).
fn answer(batch: Vec<Asked>, settled: Vec<Settled>) {
    for (asked, settled) in batch.into_iter().zip(settled) {
        let _ = asked.reply.send(settled.committed());
    }
}

/// Settles `batch` in one transaction: what each push left to do once it
/// committed, in order, or why the transaction failed.
async fn together(env: &Environment, batch: &[Asked]) -> Result<Vec<Settled>, Failure> {
    let client = env.pool.get().await?;
    let tx = Pipelined::new(&client);
    let pushes = batch.iter().map(|asked| &asked.push);
    // Sent together: `BEGIN` and how the statements are planned, the locks,
    // the rows.
    let ((), claims) = crate::statements!(
        begun = async { Ok::<_, Failure>(tx.begin(PUSH_PLANS).await?) },
        claims = async { Ok::<_, Failure>(claim::claim_all(tx.client(), pushes).await?) },
    );
    let db = tx.client();
    // Only pushes that may call Jira read (and open) their integration.
    let integrations: BTreeSet<i64> = batch
        .iter()
        .zip(&claims)
        .filter(|(asked, claim)| calls_jira(&asked.push, claim))
        .map(|(asked, _)| asked.push.integration_id)
        .collect();
    // Sent together: the integrations and every push's reads; of their
    // errors, the statement's that failed, not the others' aborted answers.
    let (access, found) = futures_util::join!(
        join_all(
            integrations
                .into_iter()
                .map(|id| async move { Ok::<_, Failure>((id, Access::read(env, db, id).await?)) }),
        ),
        join_all(batch.iter().zip(claims).map(|(asked, claim)| Found::read(
            db,
            &asked.push,
            claim
        ))),
    );
    let (access, found) = crate::statements!(
        access = std::future::ready(pipelined::values(access)),
        found = std::future::ready(pipelined::values(found)),
    );
    let access: HashMap<i64, Access> = access.into_iter().collect();
    let echoes = Echoes::default();
    let decisions = batch.iter().zip(found).map(|(asked, found)| {
        let access = found
            .calls_jira(&asked.push)
            .then(|| access.get(&asked.push.integration_id))
            .flatten();
        let decided = decide(
            env,
            &echoes,
            db,
            &asked.push,
            &asked.message_id,
            found,
            access,
        );
        async move {
            match AssertUnwindSafe(decided).catch_unwind().await {
                Ok(Ok(settled)) => Ok(settled),
                Ok(Err(failure)) => Ok(Settled::failed(failure)),
                Err(panic) => Err(Failure::panicked(panic.as_ref())),
            }
        }
        .instrument(asked.span.clone())
    });
    // A push that panicked may have written part of its decision: the
    // transaction is rolled back (dropped).
    let settled = join_all(decisions)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    if let [alone] = settled.as_slice()
        && alone.is_failure()
    {
        // Nothing to commit (the transaction is rolled back): the push's own
        // failure, not the aborted transaction's.
        return Ok(settled);
    }
    // A statement that failed aborted the transaction, and a bare `COMMIT`
    // would roll it back without an error: a failed push wrote nothing, but its
    // batch's others must know (the commit is checked).
    write_decided(tx, &settled).await?;
    Ok(settled)
}
