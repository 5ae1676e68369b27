//! Queries of `oauth_sessions`: the state of one install flow, OAuth 1.0a or 2.0
//! (docs/reference.md §6), written by `jirasync oauth start` and the OAuth jobs,
//! read by `oauth status`.
//! State changes are conditional on the current state, so redelivered jobs are no-ops.
//! A row is read as the [`Session`] of its flow, in a typed [`State`]. Private
//! keys, client secrets, verifiers and request-token secrets are sealed with the
//! keyring (their columns are declared in `crate::secrets::column`), bound to the
//! session's id (known before the row is inserted: `oauth start` makes it), and
//! cleared once the session is installed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row};
use uuid::Uuid;

use super::StoreError;
use super::sealed_columns::recheck;
use crate::secrets::column::{
    OauthSessions, SESSION_CLIENT_SECRET, SESSION_CODE_VERIFIER, SESSION_PRIVATE_KEY,
    SESSION_REQUEST_TOKEN_SECRET,
};
use crate::secrets::{Keyring, Sealed, Unreadable};

mod cleanup;
mod session;

pub use cleanup::{CLEANUP_BATCH, DELETE_AFTER, SCRUB_AFTER, delete_old, scrub_stale};
pub use session::{
    Flow, OAUTH2, OAUTH2_CLOUD, OAuth1, OAuth2, Oauth1Session, Oauth2Server, Oauth2Session,
    OauthSession, Session, State,
};

/// How long a claim of the access-token step (`authorizing`) excludes another
/// delivery of the same session; longer than the step itself can take (three
/// Jira calls of at most 15 s each), so it only expires after a crash.
pub const AUTHORIZING_LEASE: Duration = Duration::from_secs(120);

/// How long an OAuth 2.0 session's `state` may take to come back through the
/// callback; a later one is refused (nothing is exchanged).
pub const OAUTH2_STATE_LIFETIME: Duration = Duration::from_secs(10 * 60);

const COLUMNS: &str = "id, base_url, consumer_key, private_key, verify_ssl, state, request_token, \
     request_token_secret, authorize_url, error, integration_id, created_at, updated_at, flow, \
     client_secret, scope, code_verifier";

fn from_row(keys: &Keyring, row: &Row) -> Result<OauthSession, Unreadable> {
    let id: Uuid = row.get(0);
    let secret = |column: &Sealed<OauthSessions>, index: usize| {
        column.open_opt(keys, id, row.get::<_, Option<&str>>(index))
    };
    let server = match row.get::<_, &str>(13) {
        OAUTH2 => Some(Oauth2Server::Jira),
        OAUTH2_CLOUD => Some(Oauth2Server::Atlassian),
        _ => None,
    };
    let flow = if let Some(server) = server {
        Flow::OAuth2(OAuth2 {
            server,
            client_id: row.get(2),
            client_secret: secret(&SESSION_CLIENT_SECRET, 14)?,
            scope: row.get(15),
            code_verifier: secret(&SESSION_CODE_VERIFIER, 16)?,
        })
    } else {
        Flow::OAuth1(OAuth1 {
            consumer_key: row.get(2),
            private_key: SESSION_PRIVATE_KEY.open(keys, id, row.get(3))?,
            request_token: row.get(6),
            request_token_secret: secret(&SESSION_REQUEST_TOKEN_SECRET, 7)?,
        })
    };
    Ok(Session {
        id,
        base_url: row.get(1),
        verify_ssl: row.get(4),
        state: row.get(5),
        authorize_url: row.get(8),
        error: row.get(9),
        integration_id: row.get(10),
        created_at: row.get(11),
        updated_at: row.get(12),
        flow,
    })
}

/// The session of `row`, if any, its secrets opened.
fn session(keys: &Keyring, row: Option<Row>) -> Result<Option<OauthSession>, StoreError> {
    Ok(row.as_ref().map(|row| from_row(keys, row)).transpose()?)
}

/// What every new session records.
pub struct NewSession<'a> {
    /// Session id.
    pub id: Uuid,
    /// Jira's base URL, without a trailing slash.
    pub base_url: &'a str,
    /// Verify Jira's TLS certificate.
    pub verify_ssl: bool,
}

/// What `oauth start` records of an OAuth 1.0a session besides [`NewSession`].
pub struct NewOAuth1<'a> {
    /// Consumer key.
    pub consumer_key: &'a str,
    /// PEM private key.
    pub private_key: &'a str,
}

/// Records a new OAuth 1.0a session, `pending` its request token.
pub async fn insert_oauth1(
    client: &impl GenericClient,
    keys: &Keyring,
    new: &NewSession<'_>,
    oauth1: &NewOAuth1<'_>,
) -> Result<(), Error> {
    client
        .execute(
            "INSERT INTO oauth_sessions (id, base_url, consumer_key, private_key, verify_ssl, state)
             VALUES ($1, $2, $3, $4, $5, 'pending')",
            &[
                &new.id,
                &new.base_url,
                &oauth1.consumer_key,
                &SESSION_PRIVATE_KEY.seal(keys, new.id, oauth1.private_key),
                &new.verify_ssl,
            ],
        )
        .await?;
    Ok(())
}

/// What `oauth start --client-id` (or `--cloud`) records of an OAuth 2.0
/// session besides [`NewSession`].
pub struct NewOAuth2<'a> {
    /// Whose authorization server issues the code.
    pub server: Oauth2Server,
    /// The client id (stored as the link's key).
    pub client_id: &'a str,
    /// The client secret.
    pub client_secret: &'a str,
    /// The scope asked for.
    pub scope: &'a str,
    /// The PKCE verifier (none for Jira Cloud).
    pub code_verifier: Option<&'a str>,
    /// The `state` the callback must bring back.
    pub state: &'a str,
    /// Where the person authorizes.
    pub authorize_url: &'a str,
}

/// Records a new OAuth 2.0 session: `awaiting_authorization` at once.
pub async fn insert_oauth2(
    client: &impl GenericClient,
    keys: &Keyring,
    new: &NewSession<'_>,
    oauth2: &NewOAuth2<'_>,
) -> Result<(), Error> {
    client
        .execute(
            "INSERT INTO oauth_sessions (id, base_url, consumer_key, private_key, verify_ssl,
                    state, flow, client_secret, scope, code_verifier, oauth2_state, authorize_url)
             VALUES ($1, $2, $3, '', $4, 'awaiting_authorization', $10, $5, $6, $7, $8, $9)",
            &[
                &new.id,
                &new.base_url,
                &oauth2.client_id,
                &new.verify_ssl,
                &SESSION_CLIENT_SECRET.seal(keys, new.id, oauth2.client_secret),
                &oauth2.scope,
                &SESSION_CODE_VERIFIER.seal_opt(keys, new.id, oauth2.code_verifier),
                &oauth2.state,
                &oauth2.authorize_url,
                &oauth2.server.flow(),
            ],
        )
        .await?;
    Ok(())
}

/// Claims the OAuth 2.0 session of `server` and `state` for its token job: `awaiting_authorization`
/// (when the callback came within [`OAUTH2_STATE_LIFETIME`] of the session's
/// start, at `called_back_at`), or an `authorizing` claim older than
/// [`AUTHORIZING_LEASE`] → `authorizing`. `None` when no session may take it:
/// unknown, expired, installed, failed or claimed by another delivery.
pub async fn claim_oauth2(
    client: &impl GenericClient,
    keys: &Keyring,
    server: Oauth2Server,
    state: &str,
    called_back_at: DateTime<Utc>,
) -> Result<Option<Oauth2Session>, StoreError> {
    let (lifetime, lease) = (
        OAUTH2_STATE_LIFETIME.as_secs_f64(),
        AUTHORIZING_LEASE.as_secs_f64(),
    );
    let sql = format!(
        "UPDATE oauth_sessions
            SET state = 'authorizing', updated_at = now()
          WHERE oauth2_state = $1 AND flow = $5
            AND ((state = 'awaiting_authorization'
                  AND created_at >= $2::timestamptz - make_interval(secs => $3))
                 OR (state = 'authorizing' AND updated_at < now() - make_interval(secs => $4)))
      RETURNING {COLUMNS}"
    );
    recheck(client, keys).await?;
    let row = client
        .query_opt(
            &sql,
            &[&state, &called_back_at, &lifetime, &lease, &server.flow()],
        )
        .await?;
    // The statement claims OAuth 2.0 sessions only.
    Ok(session(keys, row)?.and_then(|session| session.into_oauth2()))
}

/// The session `session` names.
pub async fn find(
    client: &impl GenericClient,
    keys: &Keyring,
    named: SessionRef<'_>,
) -> Result<Option<OauthSession>, StoreError> {
    let (column, key) = named.column();
    recheck(client, keys).await?;
    let sql = format!("SELECT {COLUMNS} FROM oauth_sessions WHERE {column} = $1");
    session(keys, client.query_opt(&sql, &[key]).await?)
}

/// `pending` → `awaiting_authorization` with the request token; false when the
/// session was no longer pending (another delivery got there first).
pub async fn mark_awaiting_authorization(
    client: &impl GenericClient,
    keys: &Keyring,
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
            &[
                &id,
                &request_token,
                &SESSION_REQUEST_TOKEN_SECRET.seal(keys, id, request_token_secret),
                &authorize_url,
            ],
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
    keys: &Keyring,
    request_token: &str,
) -> Result<Option<Oauth1Session>, StoreError> {
    let lease_secs = AUTHORIZING_LEASE.as_secs_f64();
    let sql = format!(
        "UPDATE oauth_sessions
            SET state = 'authorizing', updated_at = now()
          WHERE request_token = $1
            AND (state IN ('awaiting_authorization', 'failed')
                 OR (state = 'authorizing' AND updated_at < now() - make_interval(secs => $2)))
      RETURNING {COLUMNS}"
    );
    recheck(client, keys).await?;
    let row = client
        .query_opt(&sql, &[&request_token, &lease_secs])
        .await?;
    // Only an OAuth 1.0a session has a request token.
    Ok(session(keys, row)?.and_then(|session| session.into_oauth1()))
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

/// What an ended (installed) session no longer needs: its private key, client
/// secret, verifier and request-token secret (the integration's credentials hold
/// what stays in use).
const ENDED: &str = "private_key = '', client_secret = NULL, code_verifier = NULL, \
     request_token_secret = NULL";

/// Records the session's integration and how far the install got; an installed
/// session has ended, and its secrets are cleared ([`ENDED`]).
pub async fn record(
    client: &impl GenericClient,
    id: Uuid,
    integration_id: i64,
    progress: Progress,
) -> Result<(), Error> {
    let sql = match progress {
        Progress::TokenStored => {
            "UPDATE oauth_sessions SET integration_id = $2, updated_at = now() WHERE id = $1"
                .to_owned()
        }
        Progress::Installed => format!(
            "UPDATE oauth_sessions
                SET integration_id = $2, updated_at = now(), state = 'installed', error = NULL,
                    {ENDED}
              WHERE id = $1"
        ),
    };
    client.execute(&sql, &[&id, &integration_id]).await?;
    Ok(())
}

/// Clears the secrets of every installed session that still holds some (sessions
/// installed by versions that kept them); how many.
pub async fn clear_ended(client: &impl GenericClient) -> Result<u64, Error> {
    let sql = format!(
        "UPDATE oauth_sessions SET {ENDED}
          WHERE state = 'installed'
            AND (private_key <> '' OR client_secret IS NOT NULL OR code_verifier IS NOT NULL
                 OR request_token_secret IS NOT NULL)"
    );
    client.execute(&sql, &[]).await
}

/// How a job names its session: `oauth start`'s request-token job by id, the
/// access-token job by the request token the callback received.
#[derive(Debug, Clone, Copy)]
pub enum SessionRef<'a> {
    /// `oauth_sessions.id`.
    Id(Uuid),
    /// `oauth_sessions.request_token`.
    RequestToken(&'a str),
    /// `oauth_sessions.oauth2_state`.
    OAuth2State(&'a str),
}

impl SessionRef<'_> {
    /// The column that names the session, and its value.
    fn column(&self) -> (&'static str, &(dyn ToSql + Sync)) {
        match self {
            Self::Id(id) => ("id", id),
            Self::RequestToken(token) => ("request_token", token),
            Self::OAuth2State(state) => ("oauth2_state", state),
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

/// The `state` of OAuth 2.0 session `id`, Data Center or Cloud (`None`: no such
/// session, or not OAuth 2.0): what `oauth finish --code` puts in the token
/// job, as the callback does.
pub async fn oauth2_state(client: &impl GenericClient, id: Uuid) -> Result<Option<String>, Error> {
    let row = client
        .query_opt(
            "SELECT oauth2_state FROM oauth_sessions
              WHERE id = $1 AND flow IN ('oauth2', 'oauth2_cloud')",
            &[&id],
        )
        .await?;
    Ok(row.and_then(|row| row.get(0)))
}
