//! What the pages and the API show, read once for both: the integrations with
//! their health (docs/reference.md §12.7 (a)), the queue depths, sync events and
//! dead letters. Nothing secret leaves here: the integration summary is
//! `integration status`'s, the dead letters `dlq list`'s.

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::Console;
use super::records::{self, DeadLetter};
use crate::commands::integration_status::summary;
use crate::integration::Provider;
use crate::sync::audit::SyncEvent;

/// One integration's row of the overview and of `GET /api/integrations`.
#[derive(Debug, Clone, Serialize)]
pub struct IntegrationRow {
    /// Row id.
    pub id: i64,
    /// `jira_server` or `jira_cloud`.
    pub provider: String,
    /// Display name.
    pub name: String,
    /// The webhook token's `id` claim.
    pub external_id: String,
    /// A Cloud site; `None` for Jira Server.
    pub site: Option<String>,
    /// `oauth1`, `oauth2`, `pat`; none without credentials.
    pub auth_method: Option<String>,
    /// `active`, `needs_reauth`, or the row's own status.
    pub state: String,
    /// When an OAuth 2.0 access token expires.
    pub access_token_expires_at: Option<DateTime<Utc>>,
    /// The webhook jirasync registered, if any.
    pub webhook: Option<Webhook>,
    /// When a worker last handled a webhook whose token verified for it.
    pub last_webhook_at: Option<DateTime<Utc>>,
    /// `integration_reconciliations.reconciled_at`.
    pub last_reconciled_at: Option<DateTime<Utc>>,
    /// Its applied `sync_events` of the last 24 hours.
    pub applied_24h: i64,
    /// Its dead-letterings of the last 24 hours.
    pub dead_lettered_24h: i64,
}

/// The webhook jirasync registered for an integration.
#[derive(Debug, Clone, Serialize)]
pub struct Webhook {
    /// Which kind of webhook: `jira_server` (Data Center's), or on Cloud
    /// `admin` or `dynamic`.
    pub kind: String,
    /// Its resource path in Jira.
    pub path: Option<String>,
    /// Its id in Jira.
    pub id: Option<String>,
    /// Whether Jira signs its deliveries.
    pub hmac_signed: bool,
    /// When it expires (Cloud's dynamic webhooks).
    pub expires_at: Option<DateTime<Utc>>,
}

/// Outcomes that count as applied in the overview's *Applied 24h*.
const APPLIED: [&str; 5] = [
    "assigned",
    "unassigned",
    "resolved",
    "unresolved",
    "rekeyed",
];

/// A connection of the console's pool.
async fn db(console: &Console) -> anyhow::Result<deadpool_postgres::Object> {
    console
        .pool
        .get()
        .await
        .context("failed to get a database connection")
}

/// Every integration with its health.
pub async fn integrations(console: &Console) -> anyhow::Result<Vec<IntegrationRow>> {
    let client = db(console).await?;
    let all = crate::integration::all(&client, console.pool.keys())
        .await
        .context("failed to read the integrations")?;
    let names: HashMap<i64, (String, String)> = client
        .query("SELECT id, provider, name FROM integrations", &[])
        .await
        .context("failed to read the integrations' names")?
        .iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect();
    let reconciled: HashMap<i64, Option<DateTime<Utc>>> = client
        .query(
            "SELECT integration_id, reconciled_at FROM integration_reconciliations",
            &[],
        )
        .await
        .context("failed to read the reconciliations")?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let applied: HashMap<i64, i64> = client
        .query(
            "SELECT integration_id, count(*) FROM sync_events
              WHERE created_at > now() - interval '24 hours' AND outcome = ANY($1)
                AND integration_id IS NOT NULL
              GROUP BY integration_id",
            &[&APPLIED.as_slice()],
        )
        .await
        .context("failed to count the applied events")?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let activity: HashMap<i64, records::Activity> = records::activity(&client)
        .await
        .context("failed to read the integrations' activity")?
        .into_iter()
        .map(|a| (a.integration_id, a))
        .collect();
    let time = |value: &Value| {
        value
            .as_str()
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|at| at.with_timezone(&Utc))
    };
    let mut rows = Vec::with_capacity(all.len());
    for (integration, stored) in &all {
        let shown = summary(integration, stored.as_ref());
        let (provider, name) = names.get(&integration.id).cloned().unwrap_or_default();
        let metadata = &integration.metadata;
        let registered = metadata.webhook_path.is_some() || metadata.webhook_id.is_some();
        let activity = activity.get(&integration.id);
        rows.push(IntegrationRow {
            id: integration.id,
            provider,
            name,
            external_id: integration.external_id.clone(),
            site: metadata.site.clone(),
            auth_method: shown["auth_method"].as_str().map(str::to_owned),
            state: shown["state"].as_str().unwrap_or("unknown").to_owned(),
            access_token_expires_at: time(&shown["access_token_expires_at"]),
            webhook: registered.then(|| Webhook {
                kind: match integration.provider {
                    Provider::Server => "jira_server".to_owned(),
                    Provider::Cloud => metadata
                        .webhook_kind
                        .clone()
                        .unwrap_or_else(|| "admin".to_owned()),
                },
                path: metadata.webhook_path.clone(),
                id: metadata.webhook_id.clone(),
                hmac_signed: metadata.webhook_hmac_secret.is_some()
                    && metadata.webhook_kind.as_deref() != Some("dynamic"),
                expires_at: metadata.webhook_expires_at,
            }),
            last_webhook_at: activity.and_then(|a| a.last_webhook_at),
            last_reconciled_at: reconciled.get(&integration.id).copied().flatten(),
            applied_24h: applied.get(&integration.id).copied().unwrap_or(0),
            dead_lettered_24h: activity.map_or(0, |a| a.dead_lettered_24h),
        });
    }
    Ok(rows)
}

/// One queue and the messages ready in it.
#[derive(Debug, Clone, Serialize)]
pub struct Queue {
    /// Full name.
    pub name: String,
    /// Messages ready.
    pub messages: u32,
}

/// The source queues, every retry tier and `P.dead`, by full name; an error when
/// the broker cannot be reached.
pub async fn queues(console: &Console) -> anyhow::Result<Vec<Queue>> {
    let names = crate::integration::messages::names(&console.broker);
    let mut all = vec![names.webhooks(), names.jobs(), names.outbound()];
    for (source, _) in names.sources() {
        for delay in &console.delays {
            all.push(names.retry(&source, *delay));
        }
    }
    all.push(names.dead());
    let mut guard = console.amqp.lock().await;
    let connection = match guard.take() {
        Some(connection) if connection.status().connected() => connection,
        _ => crate::queue::connection::connect(&console.broker.url, "console").await?,
    };
    let mut queues = Vec::with_capacity(all.len());
    let mut failed = None;
    for name in all {
        // A passive declare that fails closes its channel: one channel per queue.
        let channel = connection
            .create_channel()
            .await
            .context("failed to open a channel")?;
        match crate::queue::topology::waiting(&channel, &name).await {
            Ok(messages) => {
                queues.push(Queue { name, messages });
                let _ = channel.close(200, "done".into()).await;
            }
            Err(error) => failed = Some(format!("{name}: {error}")),
        }
    }
    *guard = Some(connection);
    match failed {
        Some(error) if queues.is_empty() => anyhow::bail!("no queue could be read ({error})"),
        _ => Ok(queues),
    }
}

/// Whether Postgres and RabbitMQ answer (`/readyz`).
pub async fn ready(console: &Console) -> bool {
    let database = async {
        match console.pool.get().await {
            Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    };
    let broker = async {
        let mut guard = console.amqp.lock().await;
        if guard.as_ref().is_some_and(|c| c.status().connected()) {
            return true;
        }
        match crate::queue::connection::connect(&console.broker.url, "console").await {
            Ok(connection) => {
                *guard = Some(connection);
                true
            }
            Err(_) => false,
        }
    };
    let deadline = std::time::Duration::from_secs(3);
    matches!(
        tokio::time::timeout(deadline, async { tokio::join!(database, broker) }).await,
        Ok((true, true))
    )
}

/// The filters of the events page and `GET /api/events`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct EventFilter {
    /// Only this outcome.
    pub outcome: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this integration (a number).
    pub integration: Option<String>,
    /// At most this many (a number).
    pub limit: Option<String>,
}

impl EventFilter {
    fn text(value: Option<&String>) -> Option<&str> {
        value.map(|v| v.trim()).filter(|v| !v.is_empty())
    }
    /// The outcome asked for.
    pub fn outcome(&self) -> Option<&str> {
        Self::text(self.outcome.as_ref())
    }
    /// The kind asked for.
    pub fn kind(&self) -> Option<&str> {
        Self::text(self.kind.as_ref())
    }
    /// The integration asked for; `Err` when it is not a number.
    pub fn integration(&self) -> Result<Option<i64>, String> {
        number(self.integration.as_ref(), "integration")
    }
    /// The limit asked for, within 1..=`max`, default `max`.
    pub fn limit(&self, max: i64) -> Result<i64, String> {
        Ok(number(self.limit.as_ref(), "limit")?.map_or(max, |n| n.clamp(1, max)))
    }
}

/// An optional whole number of a query.
pub fn number(value: Option<&String>, name: &str) -> Result<Option<i64>, String> {
    match value.map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| format!("{name} must be a whole number")),
    }
}

/// The newest `limit` sync events of all issues, filtered.
pub async fn events(
    console: &Console,
    outcome: Option<&str>,
    kind: Option<&str>,
    integration: Option<i64>,
    limit: i64,
) -> anyhow::Result<Vec<SyncEvent>> {
    let client = db(console).await?;
    let rows = client
        .query(
            "SELECT e.id, e.created_at, e.message_id, e.integration_id, e.issue_key, e.kind,
                    e.event_time, e.organization_id, o.slug, e.outcome, e.detail
               FROM sync_events e LEFT JOIN organizations o ON o.id = e.organization_id
              WHERE ($1::text IS NULL OR e.outcome = $1)
                AND ($2::text IS NULL OR e.kind = $2)
                AND ($3::bigint IS NULL OR e.integration_id = $3)
              ORDER BY e.id DESC LIMIT $4",
            &[&outcome, &kind, &integration, &limit],
        )
        .await
        .context("failed to read the sync events")?;
    Ok(rows.iter().map(SyncEvent::from_row).collect())
}

/// The newest `limit` decisions about `key` (`jirasync explain`).
pub async fn issue_events(
    console: &Console,
    key: &str,
    integration: Option<i64>,
    limit: i64,
) -> anyhow::Result<Vec<SyncEvent>> {
    let client = db(console).await?;
    crate::sync::audit::recent(&client, key, integration, limit)
        .await
        .context("failed to read the sync history")
}

/// An event as `explain --json` prints it: its columns and its sentence.
pub fn event_json(event: &SyncEvent) -> Value {
    let mut object = serde_json::json!(event);
    object["text"] = serde_json::json!(event.sentence().to_string());
    object
}

/// Up to `limit` dead letters, attributed where the database knows how.
pub async fn dead_letters(console: &Console, limit: usize) -> anyhow::Result<Vec<DeadLetter>> {
    let mut letters = records::list(&console.broker, limit).await?;
    let client = db(console).await?;
    records::attribute(&client, &mut letters)
        .await
        .context("failed to attribute the dead letters")?;
    Ok(letters)
}

/// The outbound sync's backlog (`jirasync_outbound_backlog`): changes captured
/// and pushes pending, and when the oldest of them was committed.
#[derive(Debug, Clone, Serialize)]
pub struct Outbound {
    /// Changes captured and pushes pending.
    pub backlog: i64,
    /// When the oldest of them was committed.
    pub oldest_at: Option<DateTime<Utc>>,
}

/// The outbound backlog now.
pub async fn outbound(console: &Console) -> anyhow::Result<Outbound> {
    let client = db(console).await?;
    let backlog = crate::outbound::pending::backlog(&client)
        .await
        .context("failed to read the outbound backlog")?;
    let oldest_at = (backlog.count > 0)
        .then(|| chrono::Duration::try_milliseconds((backlog.oldest_seconds * 1000.0) as i64))
        .flatten()
        .map(|age| Utc::now() - age);
    Ok(Outbound {
        backlog: backlog.count,
        oldest_at,
    })
}
