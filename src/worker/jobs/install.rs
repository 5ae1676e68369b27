//! What the OAuth jobs share: the OAuth 1.0a session's client (request-token and
//! access-token steps); and for the install jobs (OAuth 1.0a's access-token
//! step, OAuth 2.0's token step, Jira Cloud's 3LO token step) the outcome of a step, judging a Jira failure,
//! a delivery that claimed nothing, saving the integration, the webhook
//! registration once the integration holds its tokens, and the session's end.

use deadpool_postgres::Object;
use tracing::Span;

use crate::db::StoreError;
use crate::db::oauth_sessions::{self, Oauth1Session, Progress, Session, SessionRef, State};
use crate::integration::install_record::{self, Install, SaveError};
use crate::integration::webhook_registration::{self, RegisterError};
use crate::integration::{self, Credentials, Integration, jira_client};
use crate::jira::{Auth, JiraClient, JiraError, Signer};
use crate::queue::handler::Failure;
use crate::secrets::Keyring;
use crate::worker::environment::Environment;
use crate::worker::outcome::Outcome;

/// Why the install cannot succeed by retrying: the session becomes `failed`
/// with this text and the job is acked (the fix is in Jira or the arguments).
pub struct Refusal(pub String);

/// Where a step ended: its result, or a refusal; a [`Failure`] (passing, or a
/// database error retrying cannot fix) is the handler's own.
pub type Step<T> = Result<Result<T, Refusal>, Failure>;

/// The value of a [`Step`]; its refusal or failure is returned from the function.
macro_rules! step {
    ($step:expr) => {
        match $step? {
            Ok(value) => value,
            Err(refusal) => return Ok(Err(refusal)),
        }
    };
}
pub(super) use step;

/// What a Jira call `doing` something with the session's Jira returned: its
/// value, or (see [`refusal`]) a passing failure or the session's refusal.
pub fn judged<F, T>(session: &Session<F>, doing: &str, result: Result<T, JiraError>) -> Step<T> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(error) => refusal(session, doing, error).map(Err),
    }
}

/// A failed Jira call while `doing` something with the session's Jira: passing
/// when retrying can help, else the refusal that fails the session.
fn refusal<F>(session: &Session<F>, doing: &str, error: JiraError) -> Result<Refusal, Failure> {
    if error.is_transient() {
        return Err(Failure::passing(error));
    }
    Ok(Refusal(format!(
        "{doing} Jira at {} failed: {error}",
        session.base_url
    )))
}

/// Registers the webhook of the integration the session saved; a refusal says
/// how to finish by hand (`retry`: the command that tries again).
pub async fn register_webhook<F>(
    env: &Environment,
    session: &Session<F>,
    integration_id: i64,
    retry: &str,
) -> Step<i64> {
    let integration = step!(installed_integration(env, integration_id).await);
    match webhook_registration::register(&env.pool, &integration, &env.public_url).await {
        Ok(_) => Ok(Ok(integration_id)),
        Err(error) if error.is_transient() => Err(Failure::passing(error)),
        Err(error) => Ok(Err(Refusal(not_registered(
            session,
            integration_id,
            retry,
            &error,
        )))),
    }
}

/// The integration the session saved, read back for its webhook registration.
pub async fn installed_integration(env: &Environment, integration_id: i64) -> Step<Integration> {
    Span::current().record("integration.id", integration_id);
    let integration = {
        let client = env.pool.get().await?;
        integration::by_id(&client, env.pool.keys(), integration_id).await?
    };
    match integration {
        Some(integration) => Ok(Ok(integration)),
        None => Ok(Err(Refusal(format!(
            "integration {integration_id} disappeared during the install"
        )))),
    }
}

/// The refusal of a registration: what failed, and the two ways on.
fn not_registered<F>(
    session: &Session<F>,
    integration_id: i64,
    retry: &str,
    error: &RegisterError,
) -> String {
    let rights = if error.is_forbidden() {
        " (registering webhooks needs a Jira administrator, and an OAuth 2.0 link the ADMIN scope)"
    } else {
        ""
    };
    format!(
        "integration {integration_id} was saved, but registering its webhook in Jira at {} failed{rights}: \
         {error}; fix that and run `{retry}` again, or register the URL from \
         `jirasync integration webhook-url {integration_id}` in Jira by hand \
         (Administration > System > WebHooks, events jira:issue_created, jira:issue_updated)",
        session.base_url
    )
}

/// Ends a claimed session: `installed`, `failed` with a refusal (acked), or the
/// claim given back for a retry.
pub async fn settle<F>(
    client: &Object,
    session: &Session<F>,
    step: Step<i64>,
) -> Result<Outcome, Failure> {
    match step {
        Ok(Ok(integration_id)) => {
            oauth_sessions::record(client, session.id, integration_id, Progress::Installed).await?;
            tracing::info!(session.id = %session.id, "integration installed");
            Ok(Outcome::Installed)
        }
        Ok(Err(Refusal(text))) => {
            oauth_sessions::mark_failed(client, SessionRef::Id(session.id), &text).await?;
            tracing::warn!(session.id = %session.id, error = %text, "OAuth session failed");
            Ok(Outcome::Failed)
        }
        Err(failure) => {
            if let Err(error) = oauth_sessions::release_authorizing(client, session.id).await {
                // The claim expires by itself (AUTHORIZING_LEASE).
                tracing::warn!(%error, "could not release the OAuth session claim");
            }
            Err(failure)
        }
    }
}

/// The integration and access token an earlier try of this session stored:
/// a retry skips the exchange (Jira takes a request token or a code once).
pub async fn stored_access_token<F>(
    client: &Object,
    keys: &Keyring,
    session: &Session<F>,
) -> Result<Option<i64>, Failure> {
    let Some(integration_id) = session.integration_id else {
        return Ok(None);
    };
    let stored = integration::credentials(client, keys, integration_id).await?;
    Ok(stored
        .filter(|stored| stored.credentials.can_call_rest())
        .map(|_| integration_id))
}

/// The client for an OAuth 1.0a session's Jira: its base URL, TLS setting and
/// key, no access token yet.
pub fn session_client(session: &Oauth1Session) -> Result<JiraClient, JiraError> {
    let flow = &session.flow;
    let signer = Signer::from_pem(flow.consumer_key.clone(), &flow.private_key)?;
    jira_client(&session.base_url, session.verify_ssl, Auth::oauth1(signer))
}

/// No claim: the session is unknown, installed, or another delivery holds it.
pub async fn unclaimed(
    client: &Object,
    keys: &Keyring,
    session: SessionRef<'_>,
) -> Result<Outcome, Failure> {
    let session = oauth_sessions::find(client, keys, session).await?;
    match session.map(|session| session.state) {
        Some(State::Installed) => Ok(Outcome::AlreadyInstalled),
        Some(State::Authorizing) => Err(Failure::passing(anyhow::anyhow!(
            "another delivery is completing this OAuth session"
        ))),
        _ => {
            tracing::warn!("no OAuth session awaits this token or state; ignored");
            Ok(Outcome::UnknownSession)
        }
    }
}

/// Saves the integration the session installs with `credentials` (`link`: the
/// application link's consumer key or client id), and links the session to it,
/// in one transaction.
pub async fn save<F>(
    client: &mut Object,
    keys: &Keyring,
    session: &Session<F>,
    link: &str,
    credentials: &Credentials,
) -> Step<i64> {
    let install = Install {
        base_url: &session.base_url,
        verify_ssl: session.verify_ssl,
        name: None,
        link,
        credentials: Some(credentials),
    };
    let tx = client.transaction().await?;
    let saved = step!(saved(install_record::save(&tx, keys, &install).await));
    oauth_sessions::record(&tx, session.id, saved.id, Progress::TokenStored).await?;
    tx.commit().await?;
    note_disabled(&saved);
    Ok(Ok(saved.id))
}

/// What saving an integration came to: a database failure is the handler's,
/// unusable input the session's refusal.
pub fn saved(result: Result<Integration, SaveError>) -> Step<Integration> {
    match result {
        Ok(saved) => Ok(Ok(saved)),
        Err(SaveError::Db(error)) => Err(error.into()),
        Err(SaveError::Unreadable(error)) => Err(StoreError::Unreadable(error).into()),
        Err(SaveError::Install(error)) => Ok(Err(Refusal(error.to_string()))),
    }
}

/// Logs that an installed integration stays disabled, when it is.
pub fn note_disabled(saved: &Integration) {
    if saved.is_disabled() {
        tracing::warn!(
            integration.id = saved.id,
            "the integration is disabled: its credentials were updated and it stays disabled; \
             `jirasync integration enable` lets it take webhooks again"
        );
    }
}
