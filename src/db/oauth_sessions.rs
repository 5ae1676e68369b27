//! Queries of `oauth_sessions`: the state of one OAuth 1.0a install flow
//! (docs/reference.md §6), written by `jirasync oauth start` and the two OAuth
//! jobs, read by `oauth status`.
//! State changes are conditional on the current state, so redelivered jobs are no-ops.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::{Value, json};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row};
use uuid::Uuid;

/// How long a claim of the access-token step (`authorizing`) excludes another
/// delivery of the same session; longer than the step itself can take (three
/// Jira calls of at most 15 s each), so it only expires after a crash.
pub const AUTHORIZING_LEASE: Duration = Duration::from_secs(120);

/// The states of `oauth_sessions.state` (docs/reference.md §8).
pub mod state {
    /// Created; the request-token job has not succeeded yet.
    pub const PENDING: &str = "pending";
    /// The request token is there; a person must open the authorize URL.
    pub const AWAITING_AUTHORIZATION: &str = "awaiting_authorization";
    /// The access-token job is working on it.
    pub const AUTHORIZING: &str = "authorizing";
    /// The integration exists and its webhook is registered.
    pub const INSTALLED: &str = "installed";
    /// A step failed for good; `error` says why and what to check.
    pub const FAILED: &str = "failed";
}

/// One row of `oauth_sessions`. Holds a private key and tokens: `Debug` redacts them.
#[derive(Clone)]
pub struct OauthSession {
    /// Session id.
    pub id: Uuid,
    /// Jira's base URL.
    pub base_url: String,
    /// Consumer key of the application link.
    pub consumer_key: String,
    /// PEM private key of the application link. Secret.
    pub private_key: String,
    /// Whether to verify Jira's TLS certificate.
    pub verify_ssl: bool,
    /// One of [`state`].
    pub state: String,
    /// The request token, once fetched. A temporary credential.
    pub request_token: Option<String>,
    /// Its secret. Secret.
    pub request_token_secret: Option<String>,
    /// Where the person authorizes the request token.
    pub authorize_url: Option<String>,
    /// Why it failed (or, while pending, the last passing failure).
    pub error: Option<String>,
    /// The integration it installed (set once the access token is stored).
    pub integration_id: Option<i64>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for OauthSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OauthSession")
            .field("id", &self.id)
            .field("base_url", &self.base_url)
            .field("consumer_key", &self.consumer_key)
            .field("state", &self.state)
            .field("integration_id", &self.integration_id)
            .finish_non_exhaustive()
    }
}

impl OauthSession {
    /// The session as `jirasync oauth status` shows it: no private key, no token
    /// or token secret (the authorize URL carries the request token, which is
    /// useless without the private key).
    pub fn public_json(&self) -> Value {
        json!({
            "session_id": self.id,
            "state": self.state,
            "base_url": self.base_url,
            "consumer_key": self.consumer_key,
            "verify_ssl": self.verify_ssl,
            "authorize_url": self.authorize_url,
            "error": self.error,
            "integration_id": self.integration_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

const COLUMNS: &str = "id, base_url, consumer_key, private_key, verify_ssl, state, request_token, \
     request_token_secret, authorize_url, error, integration_id, created_at, updated_at";

fn from_row(row: &Row) -> OauthSession {
    OauthSession {
        id: row.get(0),
        base_url: row.get(1),
        consumer_key: row.get(2),
        private_key: row.get(3),
        verify_ssl: row.get(4),
        state: row.get(5),
        request_token: row.get(6),
        request_token_secret: row.get(7),
        authorize_url: row.get(8),
        error: row.get(9),
        integration_id: row.get(10),
        created_at: row.get(11),
        updated_at: row.get(12),
    }
}

/// What `oauth start` records.
pub struct NewSession<'a> {
    /// Session id.
    pub id: Uuid,
    /// Jira's base URL, without a trailing slash.
    pub base_url: &'a str,
    /// Consumer key.
    pub consumer_key: &'a str,
    /// PEM private key.
    pub private_key: &'a str,
    /// Verify Jira's TLS certificate.
    pub verify_ssl: bool,
}

/// Records a new `pending` session.
pub async fn insert(client: &impl GenericClient, new: &NewSession<'_>) -> Result<(), Error> {
    client
        .execute(
            "INSERT INTO oauth_sessions (id, base_url, consumer_key, private_key, verify_ssl, state)
             VALUES ($1, $2, $3, $4, $5, 'pending')",
            &[
                &new.id,
                &new.base_url,
                &new.consumer_key,
                &new.private_key,
                &new.verify_ssl,
            ],
        )
        .await?;
    Ok(())
}

/// The session `session` names.
pub async fn find(
    client: &impl GenericClient,
    session: SessionRef<'_>,
) -> Result<Option<OauthSession>, Error> {
    let (column, key) = session.column();
    let sql = format!("SELECT {COLUMNS} FROM oauth_sessions WHERE {column} = $1");
    Ok(client.query_opt(&sql, &[key]).await?.as_ref().map(from_row))
}

/// `pending` → `awaiting_authorization` with the request token; false when the
/// session was no longer pending (another delivery got there first).
pub async fn mark_awaiting_authorization(
    client: &impl GenericClient,
    id: Uuid,
    request_token: &str,
    request_token_secret: &str,
    authorize_url: &str,
) -> Result<bool, Error> {
    let updated = client
        .execute(
            "UPDATE oauth_sessions
                SET state = 'awaiting_authorization', request_token = $2,
                    request_token_secret = $3, authorize_url = $4, error = NULL, updated_at = now()
              WHERE id = $1 AND state = 'pending'",
            &[&id, &request_token, &request_token_secret, &authorize_url],
        )
        .await?;
    Ok(updated == 1)
}

/// Notes a passing failure on a session that is still `pending`, so
/// `oauth status` and `oauth start --wait` can say why it takes long.
pub async fn note_pending_error(
    client: &impl GenericClient,
    id: Uuid,
    error: &str,
) -> Result<(), Error> {
    client
        .execute(
            "UPDATE oauth_sessions SET error = $2, updated_at = now()
              WHERE id = $1 AND state = 'pending'",
            &[&id, &error],
        )
        .await?;
    Ok(())
}

/// Claims the access-token step: `awaiting_authorization` or `failed` (or an
/// `authorizing` claim older than [`AUTHORIZING_LEASE`]) → `authorizing`.
/// `None` when the session is missing, installed, or claimed by another delivery.
pub async fn claim_authorizing(
    client: &impl GenericClient,
    request_token: &str,
) -> Result<Option<OauthSession>, Error> {
    let lease_secs = AUTHORIZING_LEASE.as_secs_f64();
    let sql = format!(
        "UPDATE oauth_sessions
            SET state = 'authorizing', updated_at = now()
          WHERE request_token = $1
            AND (state IN ('awaiting_authorization', 'failed')
                 OR (state = 'authorizing' AND updated_at < now() - make_interval(secs => $2)))
      RETURNING {COLUMNS}"
    );
    Ok(client
        .query_opt(&sql, &[&request_token, &lease_secs])
        .await?
        .as_ref()
        .map(from_row))
}

/// Gives a claim back after a passing failure, so the retry can claim it again.
pub async fn release_authorizing(client: &impl GenericClient, id: Uuid) -> Result<(), Error> {
    client
        .execute(
            "UPDATE oauth_sessions SET state = 'awaiting_authorization', updated_at = now()
              WHERE id = $1 AND state = 'authorizing'",
            &[&id],
        )
        .await?;
    Ok(())
}

/// How far the access-token step got with its integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The access token is stored in the integration; the session stays
    /// `authorizing`, and a retry skips the exchange, which Jira allows once.
    TokenStored,
    /// The webhook is registered too: the session is `installed`.
    Installed,
}

/// Records the session's integration and how far the install got.
pub async fn record(
    client: &impl GenericClient,
    id: Uuid,
    integration_id: i64,
    progress: Progress,
) -> Result<(), Error> {
    let installed = progress == Progress::Installed;
    client
        .execute(
            "UPDATE oauth_sessions
                SET integration_id = $2, updated_at = now(),
                    state = CASE WHEN $3 THEN 'installed' ELSE state END,
                    error = CASE WHEN $3 THEN NULL ELSE error END
              WHERE id = $1",
            &[&id, &integration_id, &installed],
        )
        .await?;
    Ok(())
}

/// How a job names its session: `oauth start`'s request-token job by id, the
/// access-token job by the request token the callback received.
#[derive(Debug, Clone, Copy)]
pub enum SessionRef<'a> {
    /// `oauth_sessions.id`.
    Id(Uuid),
    /// `oauth_sessions.request_token`.
    RequestToken(&'a str),
}

impl SessionRef<'_> {
    /// The column that names the session, and its value.
    fn column(&self) -> (&'static str, &(dyn ToSql + Sync)) {
        match self {
            Self::Id(id) => ("id", id),
            Self::RequestToken(token) => ("request_token", token),
        }
    }
}

/// → `failed` with `error`, unless already installed (a late failure of a
/// duplicate delivery must not undo a finished install).
pub async fn mark_failed(
    client: &impl GenericClient,
    session: SessionRef<'_>,
    error: &str,
) -> Result<(), Error> {
    let (column, key) = session.column();
    let sql = format!(
        "UPDATE oauth_sessions SET state = 'failed', error = $2, updated_at = now()
          WHERE {column} = $1 AND state <> 'installed'"
    );
    client.execute(&sql, &[key, &error]).await?;
    Ok(())
}
