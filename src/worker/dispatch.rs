//! The dispatcher: every message type the worker handles, parsed once per
//! delivery and routed to its job's handler (`worker::jobs`), and what is
//! recorded when a job is dead-lettered.

use crate::db::oauth_sessions::{self, SessionRef};
use crate::integration::Provider;
use crate::integration::messages::{CLOUD_WEBHOOK, WEBHOOK};
use crate::queue::handler::{self, Failure, Handler, Incoming};
use crate::queue::job::Job;
use crate::worker::environment::Environment;
use crate::worker::failure;
use crate::worker::jobs::{
    CloudOauth2Token, Oauth2Token, OauthAccessToken, OauthRequestToken, Push, Reconcile,
    WebhookRefresh, cloud_oauth2_token, oauth_access_token, oauth_request_token, oauth2_token,
    outbound, reconcile, webhook, webhook_refresh,
};
use crate::worker::outage::Outage;

/// Routes a message to the handler of its type.
pub struct Dispatcher {
    /// What the jobs share.
    pub env: Environment,
    /// Whether Postgres is down, as the tasks found it.
    pub outage: Outage,
}

/// Every message type the worker handles, parsed once per delivery: this match
/// is the one list of them (the topology binds `messages::JOB_TYPES` to `P.jobs`).
pub enum Message {
    /// `jira_server.webhook` and `jira_cloud.webhook`: the body is read after
    /// the token is verified.
    Webhook(webhook::Delivery),
    /// `jira_server.oauth_request_token`.
    RequestToken(OauthRequestToken),
    /// `jira_server.oauth_access_token`.
    AccessToken(OauthAccessToken),
    /// `jira_server.oauth2_token`.
    Oauth2Token(Oauth2Token),
    /// `jira_cloud.oauth2_token`.
    CloudOauth2Token(CloudOauth2Token),
    /// `jira_server.reconcile`, and its message id.
    Reconcile(Reconcile, String),
    /// `jira_server.outbound`, and its message id (its audit rows name it, its
    /// dead letter's too).
    Outbound(Push, String),
    /// `jira_cloud.webhook_refresh`, and its message id.
    WebhookRefresh(WebhookRefresh, String),
}

impl Message {
    /// The message a delivery carries, by its `type`.
    fn parse(incoming: &Incoming) -> Result<Self, Failure> {
        let body = incoming.body.as_slice();
        Ok(match incoming.kind.as_str() {
            WEBHOOK => Self::Webhook(webhook::Delivery::new(&incoming.id, Provider::Server)),
            CLOUD_WEBHOOK => Self::Webhook(webhook::Delivery::new(&incoming.id, Provider::Cloud)),
            OauthRequestToken::TYPE => Self::RequestToken(OauthRequestToken::parse(body)?),
            OauthAccessToken::TYPE => Self::AccessToken(OauthAccessToken::parse(body)?),
            Oauth2Token::TYPE => Self::Oauth2Token(Oauth2Token::parse(body)?),
            CloudOauth2Token::TYPE => Self::CloudOauth2Token(CloudOauth2Token::parse(body)?),
            Reconcile::TYPE => Self::Reconcile(Reconcile::parse(body)?, incoming.id.clone()),
            Push::TYPE => Self::Outbound(Push::parse(body)?, incoming.id.clone()),
            WebhookRefresh::TYPE => {
                Self::WebhookRefresh(WebhookRefresh::parse(body)?, incoming.id.clone())
            }
            other => {
                return Err(Failure::permanent(
                    handler::Outcome::UNKNOWN_TYPE,
                    anyhow::anyhow!("no handler for message type {other:?}"),
                ));
            }
        })
    }
}

impl Message {
    /// The integration the message is attributed to, with its message id: a
    /// webhook's once its token verified, a job's or a push's own.
    fn integration(&self) -> Option<(i64, &str)> {
        match self {
            Self::Webhook(delivery) => delivery.integration().map(|i| (i, delivery.id())),
            Self::Reconcile(job, id) => Some((job.integration_id, id)),
            Self::Outbound(push, id) => Some((push.integration_id, id)),
            Self::WebhookRefresh(job, id) => Some((job.integration_id, id)),
            Self::RequestToken(_)
            | Self::AccessToken(_)
            | Self::Oauth2Token(_)
            | Self::CloudOauth2Token(_) => None,
        }
    }
}

impl Handler for Dispatcher {
    type Message = Message;

    fn parse(&self, incoming: &Incoming) -> Result<Message, Failure> {
        Message::parse(incoming)
    }

    async fn handle(
        &self,
        message: &Message,
        incoming: &Incoming,
    ) -> Result<handler::Outcome, Failure> {
        let outcome = match message {
            Message::Webhook(delivery) => webhook::handle(&self.env, incoming, delivery).await,
            Message::RequestToken(job) => oauth_request_token::handle(&self.env, job).await,
            Message::AccessToken(job) => oauth_access_token::handle(&self.env, job).await,
            Message::Oauth2Token(job) => oauth2_token::handle(&self.env, job, incoming).await,
            Message::CloudOauth2Token(job) => {
                cloud_oauth2_token::handle(&self.env, job, incoming).await
            }
            Message::Reconcile(job, id) => reconcile::handle(&self.env, job, id).await,
            Message::Outbound(push, id) => outbound::handle(&self.env, push, id).await,
            Message::WebhookRefresh(job, _) => webhook_refresh::handle(&self.env, job).await,
        };
        outcome.map(handler::Outcome::from)
    }

    async fn recovered(&self) -> bool {
        self.outage.recovered().await
    }

    /// An OAuth job that is dead-lettered (retries exhausted, or a permanent
    /// failure) leaves its session `failed` with the reason, so `oauth status`
    /// and `oauth start --wait` do not show `pending` forever; a push whose
    /// retries ran out is recorded `failed` (docs/reference.md §10.8). Each one
    /// attributable to an integration is recorded for the console (§12.10).
    async fn dead_lettering(&self, message: &Message, reason: &str, error: &anyhow::Error) {
        if let Some((integration_id, id)) = message.integration() {
            let env = &self.env;
            env.activity
                .dead_lettered(&env.pool, integration_id, id, reason)
                .await;
        }
        let (session, command) = match message {
            Message::RequestToken(job) => (SessionRef::Id(job.session_id), "oauth start"),
            Message::AccessToken(job) => {
                (SessionRef::RequestToken(&job.oauth_token), "oauth finish")
            }
            Message::Oauth2Token(job) => (SessionRef::OAuth2State(&job.state), "oauth start"),
            Message::CloudOauth2Token(job) => {
                (SessionRef::OAuth2State(&job.0.state), "oauth start --cloud")
            }
            Message::Outbound(push, id) => {
                if let Err(failure) =
                    outbound::dead_lettered(&self.env, push, id, reason, error).await
                {
                    tracing::warn!(error = %failure, "could not record the failed push");
                }
                return;
            }
            Message::Webhook(_) | Message::Reconcile(..) | Message::WebhookRefresh(..) => return,
        };
        let what = if failure::is_database(error) {
            "Postgres"
        } else {
            "Jira"
        };
        let error = format!(
            "{reason}; check that {what} is reachable from the worker, then run `jirasync {command}` again"
        );
        let failed = match self.env.pool.get().await {
            Ok(client) => oauth_sessions::mark_failed(&client, session, &error)
                .await
                .map_err(anyhow::Error::new),
            Err(error) => Err(anyhow::Error::new(error)),
        };
        if let Err(error) = failed {
            tracing::warn!(error = %format!("{error:#}"), "could not mark the OAuth session failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_type_the_topology_routes_has_a_handler() {
        for kind in crate::integration::messages::JOB_TYPES.into_iter().chain([
            WEBHOOK,
            CLOUD_WEBHOOK,
            crate::integration::messages::OUTBOUND,
        ]) {
            let incoming = Incoming {
                queue: "P.jobs".into(),
                kind: kind.into(),
                id: "-".into(),
                properties: Default::default(),
                body: Vec::new(),
            };
            // An empty body is malformed for every job, but the type is known.
            let known = match Message::parse(&incoming) {
                Ok(_) => true,
                Err(Failure::Permanent { outcome, .. }) => {
                    outcome != handler::Outcome::UNKNOWN_TYPE
                }
                Err(Failure::Passing(_) | Failure::Outage(_) | Failure::DependencyDown { .. }) => {
                    false
                }
            };
            assert!(known, "{kind} has no handler");
        }
    }
}
