//! Handler of `jira_server.outbound` (docs/reference.md §10; Sentry
//! `sync_assignee_outbound`, `sync_status_outbound`): pushes one external
//! issue's assignee or status to Jira — the group's state when the push runs.
//! One push per issue and kind at a time across all workers (`outbound::claim`,
//! a lock held by the transaction of the push's [batch]); a push
//! superseded by a newer change leaves it to that change's message. The
//! decision is recorded in `sync_events` in the same transaction that settles
//! the pending push and moves the issue's watermark to Jira's `updated`, so an
//! older webhook cannot undo it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::Statement;

use crate::db::batch::Watermarks;
use crate::db::pipelined::Pipelined;
use crate::db::sync::{MARK_SYNCED_ALL, mark_synced_all};
use crate::integration::{self, AccessError, Integration, Stored};
use crate::jira::{JiraClient, JiraError};

use crate::outbound::assignee::{self, Assignee, plan_assignee};
use crate::outbound::claim::{self, Claim};
use crate::outbound::plan::{self, Plan, PlanError, Target};
use crate::outbound::status::{self, plan_status};
use crate::outbound::{Kind, echo};
use crate::queue::handler::Failure;
use crate::sync::audit::detail::{PushChange, PushOutcome, Pushed};
use crate::sync::audit::{Audit, Decision};
use crate::worker::environment::Environment;
use crate::worker::failure;
use crate::worker::outcome::Outcome;

pub use crate::outbound::message::Push;

pub mod batch;
mod combine;

use batch::Echoes;

/// Marks the error of a push whose decision (`refused`, `no_transition`) is
/// recorded already: its dead letter records nothing more.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Recorded(String);

/// What the group holds now, to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Its assignee (or none).
    Assignee(Assignee),
    /// Resolved (true) or unresolved (false).
    Status(bool),
}

impl State {
    /// The decision's detail before anything is asked of Jira: the change, and
    /// the user or team.
    fn pushed(&self, group_id: i64, outcome: PushOutcome) -> Pushed {
        let (kind, change, user, team) = match self {
            Self::Assignee(Assignee::User(user)) => {
                (Kind::Assignee, PushChange::Assign, Some(user.clone()), None)
            }
            Self::Assignee(Assignee::Team(team)) => {
                (Kind::Assignee, PushChange::Assign, None, Some(team.clone()))
            }
            Self::Assignee(Assignee::Nobody) => (Kind::Assignee, PushChange::Unassign, None, None),
            Self::Status(true) => (Kind::Status, PushChange::Resolve, None, None),
            Self::Status(false) => (Kind::Status, PushChange::Unresolve, None, None),
        };
        Pushed {
            kind,
            outcome,
            group_id,
            change,
            user,
            team,
            ..Pushed::default()
        }
    }
}

/// The group's state of `kind` now; `None`: nothing to push (the group is gone,
/// or its status is neither resolved nor unresolved).
async fn current(client: &impl GenericClient, push: &Push) -> Result<Option<State>, Failure> {
    Ok(match push.kind {
        Kind::Assignee => assignee::current(client, push.group_id)
            .await?
            .map(State::Assignee),
        Kind::Status => status::current(client, push.group_id)
            .await?
            .map(State::Status),
    })
}

/// Pushes one external issue's assignee or status, settled together with the
/// pushes delivered with it (`batch`).
pub async fn handle(env: &Environment, push: &Push, message_id: &str) -> Result<Outcome, Failure> {
    tracing::Span::current().record("integration.id", push.integration_id);
    // At most its own slots and the lent ones at a time
    // (`queue::consumer::pushes`): a batch holds a connection for its locks
    // while Jira answers, and each write takes one for its echo record.
    let _permit = env.pushes.acquire().await.map_err(Failure::passing)?;
    env.push_batches.push(env, push, message_id).await
}

/// How the pushes of a batch reach one integration's Jira: read once per
/// batch, in the round trip of the pushes' own reads.
pub struct Access {
    integration: Option<Integration>,
    credentials: Option<Stored>,
    throttled: Option<DateTime<Utc>>,
}

impl Access {
    /// Reads the integration, its credentials, and its Jira's last 429.
    async fn read(env: &Environment, tx: &Object, integration_id: i64) -> Result<Self, Failure> {
        let keys = env.pool.keys();
        let (integration, credentials, throttled) = crate::statements!(
            integration =
                async { Ok::<_, Failure>(integration::by_id(tx, keys, integration_id).await?) },
            credentials = async {
                Ok::<_, Failure>(integration::credentials(tx, keys, integration_id).await?)
            },
            throttled = async { Ok::<_, Failure>(throttled(tx, integration_id).await?) },
        );
        Ok(Self {
            integration,
            credentials,
            throttled,
        })
    }
}

/// The integration whose change `push` sends, as its claim found it.
fn origin(push: &Push, claim: &Claim) -> Option<i64> {
    match claim {
        Claim::Current(Some(pending)) => pending.origin_integration_id,
        _ => push.origin_integration_id,
    }
}

/// Whether `push` may call Jira: only one that is current and whose change did
/// not come from its own integration (`same_origin`, every inbound change of a
/// two-way organization, reads no integration).
fn calls_jira(push: &Push, claim: &Claim) -> bool {
    matches!(claim, Claim::Current(_)) && origin(push, claim) != Some(push.integration_id)
}

/// What a push's claim found, and then its reads: the issue's key while it is
/// still a target, and the group's state.
pub struct Found {
    claim: Claim,
    key: Option<String>,
    state: Option<State>,
}

impl Found {
    /// Reads, in `tx` (which holds the lock), what a push that found `claim`
    /// needs: nothing for a superseded one.
    pub async fn read(tx: &Object, push: &Push, claim: Claim) -> Result<Self, Failure> {
        let (key, state) = match claim {
            Claim::Superseded => (None, None),
            Claim::Current(_) => crate::statements!(
                key = async { Ok::<_, Failure>(claim::target_key(tx, push).await?) },
                state = current(tx, push),
            ),
        };
        Ok(Self { claim, key, state })
    }

    /// Whether the push may call Jira (see `calls_jira`).
    pub fn calls_jira(&self, push: &Push) -> bool {
        calls_jira(push, &self.claim)
    }
}

/// Decides one push in `tx`, which holds its lock, from what it `found`: its
/// calls to Jira with `access` (`None` when it calls none, `calls_jira`), and
/// its writes; what is left once `tx` commits.
pub async fn decide(
    env: &Environment,
    echoes: &Echoes,
    tx: &Object,
    push: &Push,
    message_id: &str,
    found: Found,
    access: Option<&Access>,
) -> Result<Settled, Failure> {
    let Found { claim, key, state } = found;
    let origin = origin(push, &claim);
    let pending = match claim {
        Claim::Superseded => {
            tracing::debug!("a newer change of the issue is pending: its push sends it");
            return Ok(Settled::uncounted(Outcome::Superseded));
        }
        Claim::Current(pending) => pending,
    };
    let settle = Settle {
        push,
        message_id,
        committed_at: pending
            .as_ref()
            .map(|pending| pending.changed_at)
            .or_else(|| push.committed_at()),
    };
    let Some(key) = key else {
        claim::decided(tx, push.external_issue_id, push.kind, push.seq).await?;
        tracing::info!(
            group.id = push.group_id,
            "not pushed: the issue is no longer linked to the group with the flag on"
        );
        return Ok(Settled::uncounted(Outcome::NotATarget));
    };
    let Some(state) = state else {
        claim::decided(tx, push.external_issue_id, push.kind, push.seq).await?;
        tracing::info!(
            group.id = push.group_id,
            "not pushed: the group is gone, or neither resolved nor unresolved"
        );
        return Ok(Settled::uncounted(Outcome::NothingToPush));
    };
    let Some(access) = access else {
        let mut pushed = state.pushed(push.group_id, PushOutcome::SameOrigin);
        pushed.origin_integration_id = origin;
        return Ok(settle.decided(env, &key, pushed, None));
    };
    let Some(integration) = access.integration.as_ref().filter(|i| i.is_active()) else {
        claim::decided(tx, push.external_issue_id, push.kind, push.seq).await?;
        tracing::warn!("not pushed: the integration is gone or not active");
        return Ok(Settled::uncounted(Outcome::UnknownIntegration));
    };
    if let Some(until) = access.throttled {
        return Err(failure::jira(
            "push to Jira",
            JiraError::unavailable(
                format!("Jira asked for no calls before {until} (HTTP 429)"),
                None,
            ),
        ));
    }
    let attempt = Attempt {
        env,
        echoes,
        tx,
        push,
        target: Target {
            integration_id: push.integration_id,
            organization_id: push.organization_id,
            issue_key: &key,
            group_id: push.group_id,
        },
        state: &state,
        failed: Mutex::new(None),
    };
    let result = integration
        .with_stored_jira(&env.pool, access.credentials.clone(), |jira| {
            let attempt = &attempt;
            // A 429 is stored for every worker, not waited out holding the issue.
            let jira = jira.waiting_out_429(false);
            async move { attempt.run(&jira).await }
        })
        .await;
    let failed = attempt.failed;
    match result {
        Ok(Some(Ok((pushed, updated)))) => Ok(settle.decided(env, &key, pushed, updated)),
        Ok(Some(Err(failure))) => Err(failure),
        Ok(None) | Err(AccessError::NeedsReauth { .. }) => {
            let pushed = state.pushed(push.group_id, PushOutcome::Held);
            settle.held(env, tx, &key, pushed).await
        }
        Err(AccessError::Jira(error)) if error.is_refusal() => {
            let taken = failed.lock().ok().and_then(|mut slot| slot.take());
            let pushed = taken.unwrap_or_else(|| {
                plan::failed(state.pushed(push.group_id, PushOutcome::Refused), &error)
            });
            settle.refused(env, tx, &key, pushed, &error).await
        }
        Err(AccessError::Jira(error)) => {
            if let Some(wait) = error.retry_after() {
                throttle(env, push.integration_id, wait).await;
            }
            Err(failure::jira("push to Jira", error))
        }
        Err(error) => Err(failure::access("push to Jira", error)),
    }
}

/// A push's tries at Jira: one per call of `with_stored_jira`'s closure.
struct Attempt<'a> {
    env: &'a Environment,
    echoes: &'a Echoes,
    tx: &'a Object,
    push: &'a Push,
    target: Target<'a>,
    state: &'a State,
    /// The decision as far as a failed call got (its target, the transition).
    failed: Mutex<Option<Pushed>>,
}

impl Attempt<'_> {
    /// One try with `jira`: plans the push, records a write's value (committed
    /// before the write is sent) and sends it. A database failure is the inner
    /// `Err` (the call itself succeeded as far as Jira is concerned); when Jira
    /// fails, the decision as far as it got is left in `failed`.
    async fn run(
        &self,
        jira: &JiraClient,
    ) -> Result<Result<(Pushed, Option<Written>), Failure>, JiraError> {
        let (env, echoes, tx, push, state) =
            (self.env, self.echoes, self.tx, self.push, self.state);
        let (target, failed) = (&self.target, &self.failed);
        let keep = |pushed: Pushed| {
            if let Ok(mut slot) = failed.lock() {
                *slot = Some(pushed);
            }
        };
        let plan = match state {
            State::Assignee(assignee) => {
                plan_assignee(tx, jira, &env.jira_users, target, assignee).await
            }
            State::Status(resolved) => plan_status(tx, jira, target, *resolved).await,
        };
        let plan = match plan {
            Ok(plan) => plan,
            Err(PlanError::Jira(error, pushed)) => {
                keep(*pushed);
                return Err(error);
            }
            Err(PlanError::Db(error)) => return Ok(Err(error.into())),
        };
        match plan {
            Plan::Decided(pushed, updated) => {
                Ok(Ok((pushed, updated.map(|at| Written { value: None, at }))))
            }
            Plan::Write(write) => {
                let value = write.value.clone();
                let recorded = echoes
                    .writing(env, push.external_issue_id, push.kind, &value)
                    .await;
                if let Err(failure) = recorded {
                    return Ok(Err(failure));
                }
                let (pushed, updated) = match write.send(jira).await {
                    Ok(sent) => sent,
                    Err(error) => {
                        keep(write.failed(&error));
                        return Err(error);
                    }
                };
                Ok(Ok((
                    pushed,
                    updated.map(|at| Written {
                        value: Some(value),
                        at,
                    }),
                )))
            }
        }
    }
}

/// Jira's `updated` after a push (or the read that found Jira there already),
/// and the value written, if any.
#[derive(Debug, Clone)]
struct Written {
    value: Option<String>,
    at: DateTime<Utc>,
}

/// What is left of a decided push once the transaction that wrote its
/// decision commits: its outcome, and the decision to count.
pub struct Settled {
    outcome: Result<Outcome, Failure>,
    count: Option<Count>,
    /// What a decided push left to write with its batch's others ([`write_decided`]).
    writes: Option<Writes>,
}

/// What a decided push leaves to write, with the other decided pushes of its
/// batch ([`write_decided`]), besides its audit row: its pending row to settle,
/// and Jira's `updated` after it (with the value it wrote, if it wrote one).
struct Writes {
    external_issue_id: i64,
    kind: Kind,
    seq: i64,
    written: Option<Written>,
}

impl Settled {
    /// `outcome`, with no decision recorded.
    fn uncounted(outcome: Outcome) -> Self {
        Self {
            outcome: Ok(outcome),
            count: None,
            writes: None,
        }
    }

    /// A push that failed before it wrote anything (the retry tiers take it).
    pub fn failed(failure: Failure) -> Self {
        Self {
            outcome: Err(failure),
            count: None,
            writes: None,
        }
    }

    /// Whether the push failed before it wrote anything.
    pub fn is_failure(&self) -> bool {
        self.outcome.is_err() && self.count.is_none()
    }

    /// Once its transaction committed: counts the decision; the push's outcome.
    pub fn committed(self) -> Result<Outcome, Failure> {
        if let Some(count) = self.count {
            count.committed();
        }
        self.outcome
    }
}

/// A decision written in a push's transaction, counted once it commits.
struct Count {
    audit: Audit,
    kind: Kind,
    outcome: PushOutcome,
    /// When the change pushed was committed (the lag of a push).
    committed_at: Option<DateTime<Utc>>,
}

impl Count {
    fn committed(self) {
        self.audit.count();
        metrics::counter!(
            "jirasync_outbound_total",
            "kind" => self.kind.as_str(),
            "outcome" => self.outcome.as_str(),
        )
        .increment(1);
        if self.outcome == PushOutcome::Pushed
            && let Some(committed) = self.committed_at
        {
            let lag = (Utc::now() - committed).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::histogram!("jirasync_outbound_lag_seconds").record(lag);
        }
    }
}

/// Settles a push: records its decision and settles its pending row, in the
/// transaction that holds its lock.
struct Settle<'a> {
    push: &'a Push,
    message_id: &'a str,
    committed_at: Option<DateTime<Utc>>,
}

impl Settle<'_> {
    /// Decides the push as `pushed`: its audit row, the watermark moved to
    /// Jira's `updated` (`written`), its pending row settled — written with its
    /// batch's others ([`write_decided`]).
    fn decided(
        &self,
        env: &Environment,
        key: &str,
        pushed: Pushed,
        written: Option<Written>,
    ) -> Settled {
        let push = self.push;
        let outcome = Outcome::from(pushed.outcome);
        let count = self.count(env, key, pushed);
        let outcome = if outcome == Outcome::NoTransition {
            Err(Failure::permanent(
                outcome,
                anyhow::Error::new(Recorded(format!(
                    "no transition of {key} leads to the mapped status; fix the workflow or \
                     the mapping (`jirasync status-map`), then `jirasync dlq replay`"
                ))),
            ))
        } else {
            Ok(outcome)
        };
        Settled {
            outcome,
            count: Some(count),
            writes: Some(Writes {
                external_issue_id: push.external_issue_id,
                kind: push.kind,
                seq: push.seq,
                written,
            }),
        }
    }

    /// Marks the push held (recorded the first time only): it is sent again
    /// once the integration can call Jira (`outbound::resume`).
    async fn held(
        &self,
        env: &Environment,
        tx: &Object,
        key: &str,
        pushed: Pushed,
    ) -> Result<Settled, Failure> {
        if !claim::hold(tx, self.push.external_issue_id, self.push.kind).await? {
            return Ok(Settled::uncounted(Outcome::Held));
        }
        tracing::warn!("push held: the integration cannot call Jira until it is connected again");
        Ok(Settled {
            outcome: Ok(Outcome::Held),
            count: Some(self.record(env, tx, key, pushed).await?),
            writes: None,
        })
    }

    /// Records Jira's refusal and settles the row; the message is dead-lettered
    /// with one line naming Jira's answer.
    async fn refused(
        &self,
        env: &Environment,
        tx: &Object,
        key: &str,
        pushed: Pushed,
        error: &JiraError,
    ) -> Result<Settled, Failure> {
        let push = self.push;
        claim::decided(tx, push.external_issue_id, push.kind, push.seq).await?;
        let count = self.record(env, tx, key, pushed).await?;
        Ok(Settled {
            outcome: Err(Failure::permanent(
                Outcome::Refused,
                anyhow::Error::new(Recorded(format!(
                    "Jira refused the {} push to {key}: {error}; fix it in Jira or jirasync, then \
                     `jirasync dlq replay`",
                    push.kind.as_str()
                ))),
            )),
            count: Some(count),
            writes: None,
        })
    }

    /// Writes `pushed`'s audit row in `tx`; what to count once it commits.
    async fn record(
        &self,
        env: &Environment,
        tx: &Object,
        key: &str,
        pushed: Pushed,
    ) -> Result<Count, Failure> {
        let count = self.count(env, key, pushed);
        count.audit.write(tx).await?;
        Ok(count)
    }

    /// The audit trail of `pushed` (its row, unless the trail is off), to count.
    fn count(&self, env: &Environment, key: &str, pushed: Pushed) -> Count {
        let push = self.push;
        let mut audit =
            Audit::outbound(self.message_id, push.integration_id, key, self.committed_at);
        if !env.audit {
            audit = audit.unrecorded();
        }
        let (kind, outcome) = (pushed.kind, pushed.outcome);
        audit.record(Some(push.organization_id), Decision::Outbound(pushed));
        Count {
            audit,
            kind,
            outcome,
            committed_at: self.committed_at,
        }
    }
}

/// Writes what the decided pushes of a batch left ([`Settle::decided`]), one
/// statement each for all of them — the watermarks moved to Jira's `updated`
/// (one row per issue, both kinds together), the echo records' read-backs, the
/// pending rows settled, the audit rows — and commits `tx`: all in one round
/// trip.
///
/// The commit checks that no statement failed (see
/// [`Pipelined::commit_checked`]), and it is sent after the writes only
/// because each is sent when first polled, with no round trip before it: they
/// are prepared first (once per connection). A statement whose parameters do
/// not encode is never sent and its error returned, but the commit still goes:
/// the types here are fixed, and each statement's tests bind them.
pub async fn write_decided(tx: Pipelined<'_>, settled: &[Settled]) -> Result<(), Failure> {
    let db = tx.client();
    let decided: Vec<(&Writes, &Audit)> = settled
        .iter()
        .filter_map(|settled| Some((settled.writes.as_ref()?, &settled.count.as_ref()?.audit)))
        .collect();
    let mut watermarks: BTreeMap<i64, Watermarks> = BTreeMap::new();
    let mut read_backs = Vec::new();
    for (writes, _) in &decided {
        let Some(written) = &writes.written else {
            continue;
        };
        let watermark = watermarks.entry(writes.external_issue_id).or_default();
        match writes.kind {
            Kind::Assignee => watermark.assignee = Some(written.at),
            Kind::Status => watermark.status = Some(written.at),
        }
        if let Some(value) = &written.value {
            read_backs.push((
                writes.external_issue_id,
                writes.kind,
                value.as_str(),
                written.at,
            ));
        }
    }
    let watermarks: Vec<(i64, Watermarks)> = watermarks.into_iter().collect();
    let pending: Vec<(i64, Kind, i64)> = decided
        .iter()
        .map(|(writes, _)| (writes.external_issue_id, writes.kind, writes.seq))
        .collect();
    let audits: Vec<&Audit> = decided.iter().map(|(_, audit)| *audit).collect();
    // Prepared first (once per connection; after that the cache answers at
    // once), those with something to write, so that each is sent when first polled.
    let prepare = |sql: Option<&'static str>| async move {
        match sql {
            Some(sql) => db.prepare_cached(sql).await.map(Some),
            None => Ok(None),
        }
    };
    let (mark, read_back, settle, audit) = futures_util::try_join!(
        prepare((!watermarks.is_empty()).then_some(MARK_SYNCED_ALL)),
        prepare((!read_backs.is_empty()).then_some(echo::WRITTEN_ALL)),
        prepare((!pending.is_empty()).then_some(claim::DECIDED_ALL)),
        prepare(Audit::insert_for(&audits)),
    )?;
    crate::statements!(
        synced = if_prepared(&mark, |st| mark_synced_all(db, st, &watermarks)),
        echoed = if_prepared(&read_back, |st| echo::written_all(db, st, &read_backs)),
        settled = if_prepared(&settle, |st| claim::decided_all(db, st, &pending)),
        audited = if_prepared(&audit, |st| Audit::write_prepared(db, st, &audits)),
        committed = tx.commit_checked(),
    );
    Ok(())
}

/// Runs `write` with `statement`, when it was prepared (there is something to
/// write); in the same poll, so that the statement is sent when first polled.
async fn if_prepared<'s, W>(
    statement: &'s Option<Statement>,
    write: impl FnOnce(&'s Statement) -> W,
) -> Result<(), tokio_postgres::Error>
where
    W: Future<Output = Result<(), tokio_postgres::Error>>,
{
    match statement {
        Some(statement) => write(statement).await,
        None => Ok(()),
    }
}

/// Records `failed` for a push whose retries ran out (its last error in the
/// detail) and settles its pending row; a push whose decision was recorded
/// already (`Recorded`) records nothing more.
pub async fn dead_lettered(
    env: &Environment,
    push: &Push,
    message_id: &str,
    reason: &str,
    error: &anyhow::Error,
) -> Result<(), Failure> {
    if error.chain().any(|cause| cause.is::<Recorded>()) {
        return Ok(());
    }
    let client = env.pool.get().await?;
    let tx = Pipelined::new(&client);
    let ((), state) = futures_util::try_join!(
        async { Ok::<_, Failure>(tx.begin("").await?) },
        current(tx.client(), push)
    )?;
    let Some(state) = state else {
        return Ok(());
    };
    let mut pushed = state.pushed(push.group_id, PushOutcome::Failed);
    pushed.jira_message = Some(reason.to_owned());
    claim::decided(tx.client(), push.external_issue_id, push.kind, push.seq).await?;
    let settle = Settle {
        push,
        message_id,
        committed_at: push.committed_at(),
    };
    let count = settle
        .record(env, tx.client(), &push.issue_key, pushed)
        .await?;
    tx.commit().await?;
    count.committed();
    Ok(())
}

/// `$1` integration: until when Jira asked for no calls.
pub const THROTTLED: &str =
    "SELECT until FROM outbound_throttles WHERE integration_id = $1 AND until > now()";

/// `$1` integration, `$2` seconds: no calls before then (a later time wins).
const THROTTLE: &str = "INSERT INTO outbound_throttles (integration_id, until)
 VALUES ($1, now() + make_interval(secs => $2))
 ON CONFLICT (integration_id) DO UPDATE SET until = GREATEST(outbound_throttles.until, EXCLUDED.until)";

/// Until when the integration's Jira asked for no calls (its last 429), if later than now.
async fn throttled(
    client: &impl GenericClient,
    integration_id: i64,
) -> Result<Option<DateTime<Utc>>, tokio_postgres::Error> {
    Ok(client
        .query_opt(&client.prepare_cached(THROTTLED).await?, &[&integration_id])
        .await?
        .map(|row| row.get(0)))
}

/// Tells every worker not to call the integration's Jira for `wait` (a 429's
/// Retry-After). Best effort: when it cannot be stored, the retry tiers still
/// space the tries out.
async fn throttle(env: &Environment, integration_id: i64, wait: std::time::Duration) {
    let stored = match env.pool.get().await {
        Ok(client) => client
            .execute(THROTTLE, &[&integration_id, &wait.as_secs_f64()])
            .await
            .map(drop)
            .map_err(anyhow::Error::new),
        Err(error) => Err(anyhow::Error::new(error)),
    };
    if let Err(error) = stored {
        tracing::warn!(error = %format!("{error:#}"), "could not store Jira's Retry-After");
    }
}
