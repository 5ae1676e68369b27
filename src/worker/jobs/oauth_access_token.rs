//! Handler of `jira_server.oauth_access_token` (docs/reference.md §6.1, Sentry
//! `JiraServerIntegrationProvider.build_integration`): exchanges the authorized
//! request token for an access token, saves the integration and its credentials,
//! registers the webhook in Jira and marks the session `installed`.
//! [`OauthAccessToken`] is the message its producers publish.

use super::install::{self, Step, save, session_client, step, unclaimed};
use crate::db::oauth_sessions::{self, Oauth1Session, SessionRef};
use crate::integration::Credentials;
use crate::integration::messages;
use crate::jira::JiraClient;
use crate::queue::handler::Failure;
use crate::queue::job::Job;
use crate::secrets::Keyring;
use crate::worker::environment::Environment;
use crate::worker::outcome::Outcome;
use deadpool_postgres::Object;
use serde::{Deserialize, Serialize};

/// `jira_server.oauth_access_token`: exchange an authorized request token.
/// Sent by the OAuth callback (its query is the body) and `oauth finish`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OauthAccessToken {
    /// The request token, as the callback received it.
    pub oauth_token: String,
    /// The verifier; absent or empty means "use `oauth_token`", which Jira Server accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_verifier: Option<String>,
}

impl std::fmt::Debug for OauthAccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OauthAccessToken { oauth_token: [redacted], oauth_verifier: [redacted] }")
    }
}

impl OauthAccessToken {
    /// The verifier to sign the exchange with.
    pub fn verifier(&self) -> &str {
        self.oauth_verifier
            .as_deref()
            .filter(|verifier| !verifier.is_empty())
            .unwrap_or(&self.oauth_token)
    }
}

impl Job for OauthAccessToken {
    const TYPE: &'static str = messages::OAUTH_ACCESS_TOKEN;
    const SHAPE: &'static str = r#"{"oauth_token":"…","oauth_verifier":"…"}"#;

    fn validate(&self) -> Result<(), String> {
        if self.oauth_token.is_empty() {
            return Err("oauth_token is empty".into());
        }
        Ok(())
    }
}

/// Completes the install.
///
/// Idempotent: the session is claimed (`authorizing`) so a duplicate delivery
/// (the callback and `oauth finish`, or a redelivery) waits or does nothing; an
/// installed session acks at once; once the access token is stored, a retry
/// skips the exchange (Jira accepts a request token once) and only registers
/// the webhook. A crash between registering and marking `installed` can
/// register the webhook twice. An unknown request token is acked and logged:
/// the callback route is public, so anyone can send one.
/// Refusals mark the session `failed` and are acked, like the request-token job.
pub async fn handle(env: &Environment, job: &OauthAccessToken) -> Result<Outcome, Failure> {
    let mut client = env.pool.get().await?;
    let Some(session) =
        oauth_sessions::claim_authorizing(&client, env.pool.keys(), &job.oauth_token).await?
    else {
        return unclaimed(
            &client,
            env.pool.keys(),
            SessionRef::RequestToken(&job.oauth_token),
        )
        .await;
    };
    let step = complete(env, &mut client, &session, job).await;
    install::settle(&client, &session, step).await
}

/// Exchange (unless done before), save, register; the integration id.
async fn complete(
    env: &Environment,
    client: &mut Object,
    session: &Oauth1Session,
    job: &OauthAccessToken,
) -> Step<i64> {
    let jira = step!(install::judged(
        session,
        "setting up the client for",
        session_client(session)
    ));
    let integration_id =
        match install::stored_access_token(client, env.pool.keys(), session).await? {
            Some(stored) => stored,
            None => step!(exchange(client, env.pool.keys(), &jira, session, job).await),
        };
    let retry = format!("jirasync oauth finish {}", session.id);
    install::register_webhook(env, session, integration_id, &retry).await
}

/// Exchanges the request token and stores the integration, its credentials and
/// the link from the session, in one transaction.
async fn exchange(
    client: &mut Object,
    keys: &Keyring,
    jira: &JiraClient,
    session: &Oauth1Session,
    job: &OauthAccessToken,
) -> Step<i64> {
    let token = jira
        .access_token(
            &job.oauth_token,
            session
                .flow
                .request_token_secret
                .as_deref()
                .unwrap_or_default(),
            job.verifier(),
        )
        .await;
    let token = step!(install::judged(
        session,
        "exchanging the request token with",
        token
    ));
    let link = &session.flow.consumer_key;
    let credentials = Credentials::OAuth1 {
        consumer_key: link.clone(),
        private_key: session.flow.private_key.clone(),
        access_token: Some(token.token.clone()),
        access_token_secret: Some(token.secret.clone()),
    };
    save(client, keys, session, link, &credentials).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::handler::{Failure, Outcome};

    #[test]
    fn the_access_token_job_falls_back_to_the_token_as_verifier() {
        let job =
            OauthAccessToken::parse(br#"{"oauth_token":"t","oauth_verifier":""}"#).expect("parses");
        assert_eq!(job.verifier(), "t");
        let job = OauthAccessToken::parse(br#"{"oauth_token":"t","oauth_verifier":"v"}"#)
            .expect("parses");
        assert_eq!(job.verifier(), "v");
    }

    #[test]
    fn an_empty_token_is_malformed() {
        let failure = OauthAccessToken::parse(br#"{"oauth_token":""}"#).expect_err("empty token");
        assert!(
            matches!(failure, Failure::Permanent { outcome, .. } if outcome == Outcome::MALFORMED),
            "{failure:?}"
        );
        assert!(
            failure.to_string().contains("oauth_token is empty"),
            "{failure}"
        );
    }
}
