//! Handler of `jira_server.outbound` (docs/reference.md §10; Sentry
//! `sync_assignee_outbound`, `sync_status_outbound`): pushes one external
//! issue's assignee or status to Jira — the group's state when the push runs.
//! One push per issue and kind at a time across all workers (`outbound::claim`,
//! a lock held by this push's transaction); a push superseded by a newer change
//! leaves it to that change's message. The decision is recorded in `sync_events`
//! in the same transaction that settles the pending push and moves the issue's
//! watermark to Jira's `updated`, so an older webhook cannot undo it.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use crate::db::pipelined::Pipelined;
use crate::db::sync::{Watermark, mark_synced};
use crate::integration::{self, AccessError, Integration};
use crate::jira::{JiraClient, JiraError};
use std::sync::Mutex;

use crate::outbound::assignee::{self, Assignee, plan_assignee};
use crate::outbound::claim::{self, Claim};
use crate::outbound::plan::{self, Plan, PlanError, Target};
use crate::outbound::status::{self, plan_status};
use crate::outbound::{Kind, echo};
use crate::queue::handler::Failure;
use crate::sync::audit::detail::{PushChange, PushOutcome, Pushed};
use crate::sync::audit::{Audit, Decision};
use crate::sync::unit::GENERIC_PLANS;
use crate::worker::environment::Environment;
use crate::worker::failure;
use crate::worker::outcome::Outcome;

pub use crate::outbound::message::Push;

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

/// Pushes one external issue's assignee or status.
pub async fn handle(env: &Environment, push: &Push, message_id: &str) -> Result<Outcome, Failure> {
    tracing::Span::current().record("integration.id", push.integration_id);
    // Each push holds a connection for its lock while Jira answers: at most
    // its own slots and the lent ones at a time (`queue::consumer::pushes`), so
    // the others still find connections in the pool.
    let _permit = env.pushes.acquire().await.map_err(Failure::passing)?;
    let client = env.pool.get().await?;
    let tx = Pipelined::new(&client);
    // Sent together: `BEGIN` and the setting that plans a push's statements once
    // per connection (as a batch's, `sync::unit`), then the lock and the pending row.
    let ((), claimed) = tokio::try_join!(tx.begin(GENERIC_PLANS), claim::claim(tx.client(), push))?;
    let pending = match claimed {
        Claim::Superseded => {
            tx.commit().await?;
            tracing::debug!("a newer change of the issue is pending: its push sends it");
            return Ok(Outcome::Superseded);
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
    let origin = pending
        .as_ref()
        .map_or(push.origin_integration_id, |p| p.origin_integration_id);
    // Only a push that may call Jira reads (and opens) its integration:
    // `same_origin`, every inbound change of a two-way organization, does not.
    let calls_jira = origin != Some(push.integration_id);
    // Whether there is anything to push, and how to reach Jira, in one round
    // trip: these reads are sent together on the push's connection (its lock
    // taken before them).
    let (key, state, access) = tokio::try_join!(
        async { Ok::<_, Failure>(claim::target_key(tx.client(), push).await?) },
        current(tx.client(), push),
        async {
            if !calls_jira {
                return Ok(None);
            }
            Ok::<_, Failure>(Some(tokio::try_join!(
                async {
                    Ok::<_, Failure>(
                        integration::by_id(tx.client(), env.pool.keys(), push.integration_id)
                            .await?,
                    )
                },
                async {
                    Ok::<_, Failure>(
                        integration::credentials(tx.client(), env.pool.keys(), push.integration_id)
                            .await?,
                    )
                },
                async { Ok(throttled(tx.client(), push.integration_id).await?) },
            )?))
        },
    )?;
    let Some(key) = key else {
        claim::decided(tx.client(), push.external_issue_id, push.kind, push.seq).await?;
        tx.commit().await?;
        tracing::info!(
            group.id = push.group_id,
            "not pushed: the issue is no longer linked to the group with the flag on"
        );
        return Ok(Outcome::NotATarget);
    };
    let Some(state) = state else {
        claim::decided(tx.client(), push.external_issue_id, push.kind, push.seq).await?;
        tx.commit().await?;
        tracing::info!(
            group.id = push.group_id,
            "not pushed: the group is gone, or neither resolved nor unresolved"
        );
        return Ok(Outcome::NothingToPush);
    };
    let Some((integration, credentials, throttled)) = access else {
        let mut pushed = state.pushed(push.group_id, PushOutcome::SameOrigin);
        pushed.origin_integration_id = origin;
        return settle.decided(env, tx, &key, pushed, None).await;
    };
    let Some(integration) = integration.filter(Integration::is_active) else {
        claim::decided(tx.client(), push.external_issue_id, push.kind, push.seq).await?;
        tx.commit().await?;
        tracing::warn!("not pushed: the integration is gone or not active");
        return Ok(Outcome::UnknownIntegration);
    };
    if let Some(until) = throttled {
        return Err(failure::jira(
            "push to Jira",
            JiraError::unavailable(
                format!("Jira asked for no calls before {until} (HTTP 429)"),
                None,
            ),
        ));
    }
    let target = Target {
        integration_id: push.integration_id,
        organization_id: push.organization_id,
        issue_key: &key,
        group_id: push.group_id,
    };
    // The decision as far as a failed call got (its target, the transition).
    let failed = Mutex::new(None);
    let result = integration
        .with_stored_jira(&env.pool, credentials, |jira| {
            let (tx, target, state, failed) = (tx.client(), &target, &state, &failed);
            // A 429 is stored for every worker, not waited out holding the issue.
            let jira = jira.waiting_out_429(false);
            async move { attempt(env, tx, &jira, push, target, state, failed).await }
        })
        .await;
    match result {
        Ok(Some(Ok((pushed, updated)))) => settle.decided(env, tx, &key, pushed, updated).await,
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

/// One try of the push with `jira`: plans it, records a write's value (committed
/// before the write is sent) and sends it. A database failure is the inner `Err`
/// (the call itself succeeded as far as Jira is concerned); when Jira fails, the
/// decision as far as it got is left in `failed`.
async fn attempt(
    env: &Environment,
    tx: &impl GenericClient,
    jira: &JiraClient,
    push: &Push,
    target: &Target<'_>,
    state: &State,
    failed: &Mutex<Option<Pushed>>,
) -> Result<Result<(Pushed, Option<Written>), Failure>, JiraError> {
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
            let recorded = match env.pool.get().await {
                Ok(client) => echo::writing(&client, push.external_issue_id, push.kind, &value)
                    .await
                    .map_err(Failure::from),
                // No connection: Postgres is away, the push waits for it.
                Err(error) => Err(Failure::from(error)),
            };
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

/// Jira's `updated` after a push (or the read that found Jira there already),
/// and the value written, if any.
#[derive(Debug, Clone)]
struct Written {
    value: Option<String>,
    at: DateTime<Utc>,
}

/// Settles a push: records its decision, settles its pending row, commits.
struct Settle<'a> {
    push: &'a Push,
    message_id: &'a str,
    committed_at: Option<DateTime<Utc>>,
}

impl Settle<'_> {
    /// Records `pushed`, moves the watermark to Jira's `updated` (`written`) and
    /// settles the pending row, in `tx`, then commits and counts.
    async fn decided(
        &self,
        env: &Environment,
        tx: Pipelined<'_>,
        key: &str,
        pushed: Pushed,
        written: Option<Written>,
    ) -> Result<Outcome, Failure> {
        let push = self.push;
        let watermark = match push.kind {
            Kind::Assignee => Watermark::Assignee,
            Kind::Status => Watermark::Status,
        };
        let (kind, outcome) = (pushed.kind, pushed.outcome);
        let audit = self.audit(env, key, pushed);
        // Sent together with the audit row, in one round trip.
        tokio::try_join!(
            async {
                match &written {
                    Some(written) => {
                        mark_synced(tx.client(), push.external_issue_id, watermark, written.at)
                            .await
                    }
                    None => Ok(()),
                }
            },
            async {
                match &written {
                    Some(Written {
                        value: Some(value),
                        at,
                    }) => {
                        echo::written(tx.client(), push.external_issue_id, push.kind, value, *at)
                            .await
                    }
                    _ => Ok(()),
                }
            },
            claim::decided(tx.client(), push.external_issue_id, push.kind, push.seq),
            audit.write(tx.client()),
        )?;
        self.committed(tx, &audit, kind, outcome).await?;
        if outcome == PushOutcome::Pushed
            && let Some(committed) = self.committed_at
        {
            let lag = (Utc::now() - committed).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::histogram!("jirasync_outbound_lag_seconds").record(lag);
        }
        let outcome = Outcome::from(outcome);
        if outcome == Outcome::NoTransition {
            return Err(Failure::permanent(
                outcome,
                anyhow::Error::new(Recorded(format!(
                    "no transition of {key} leads to the mapped status; fix the workflow or \
                     the mapping (`jirasync status-map`), then `jirasync dlq replay`"
                ))),
            ));
        }
        Ok(outcome)
    }

    /// Marks the push held (recorded the first time only) and commits: it is
    /// sent again once the integration can call Jira (`outbound::resume`).
    async fn held(
        &self,
        env: &Environment,
        tx: Pipelined<'_>,
        key: &str,
        pushed: Pushed,
    ) -> Result<Outcome, Failure> {
        if claim::hold(tx.client(), self.push.external_issue_id, self.push.kind).await? {
            tracing::warn!(
                "push held: the integration cannot call Jira until it is connected again"
            );
            self.record(env, tx, key, pushed).await?;
        } else {
            tx.commit().await?;
        }
        Ok(Outcome::Held)
    }

    /// Records Jira's refusal, settles the row, commits, and dead-letters the
    /// message with one line naming Jira's answer.
    async fn refused(
        &self,
        env: &Environment,
        tx: Pipelined<'_>,
        key: &str,
        pushed: Pushed,
        error: &JiraError,
    ) -> Result<Outcome, Failure> {
        claim::decided(
            tx.client(),
            self.push.external_issue_id,
            self.push.kind,
            self.push.seq,
        )
        .await?;
        self.record(env, tx, key, pushed).await?;
        Err(Failure::permanent(
            Outcome::Refused,
            anyhow::Error::new(Recorded(format!(
                "Jira refused the {} push to {key}: {error}; fix it in Jira or jirasync, then \
                 `jirasync dlq replay`",
                self.push.kind.as_str()
            ))),
        ))
    }

    /// Writes `pushed`'s audit row in `tx`, commits, counts.
    async fn record(
        &self,
        env: &Environment,
        tx: Pipelined<'_>,
        key: &str,
        pushed: Pushed,
    ) -> Result<(), Failure> {
        let (kind, outcome) = (pushed.kind, pushed.outcome);
        let audit = self.audit(env, key, pushed);
        audit.write(tx.client()).await?;
        self.committed(tx, &audit, kind, outcome).await
    }

    /// The audit trail of `pushed`: its row, unless the trail is off.
    fn audit(&self, env: &Environment, key: &str, pushed: Pushed) -> Audit {
        let push = self.push;
        let mut audit =
            Audit::outbound(self.message_id, push.integration_id, key, self.committed_at);
        if !env.audit {
            audit = audit.unrecorded();
        }
        audit.record(Some(push.organization_id), Decision::Outbound(pushed));
        audit
    }

    /// Commits `tx`, which wrote `audit`, and counts the decision.
    async fn committed(
        &self,
        tx: Pipelined<'_>,
        audit: &Audit,
        kind: Kind,
        outcome: PushOutcome,
    ) -> Result<(), Failure> {
        tx.commit().await?;
        audit.count();
        metrics::counter!(
            "jirasync_outbound_total",
            "kind" => kind.as_str(),
            "outcome" => outcome.as_str(),
        )
        .increment(1);
        Ok(())
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
    let ((), state) = tokio::try_join!(
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
    settle.record(env, tx, &push.issue_key, pushed).await
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
