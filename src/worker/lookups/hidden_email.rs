//! Hidden assignee emails (docs/reference.md §5.5, §11.5): when a webhook's assignee
//! has no `emailAddress`, the webhook handler asks Jira (`GET /rest/api/2/user`, or
//! Cloud's `/rest/api/3/user?accountId=`, with the integration's credentials) and
//! caches the answer per integration and user for a few minutes, shared by all of
//! the worker's tasks.

use std::time::Duration;

use crate::db::DbPool;

use super::cache::Cache;
use crate::integration::Integration;
use crate::jira::payload::AssigneeRef;
use crate::queue::handler::Failure;
use crate::sync::Email;
use crate::worker::failure;

/// How long an answer (an email, or "none") is reused.
const TTL: Duration = Duration::from_secs(5 * 60);
/// At most this many users are remembered.
const MAX_ENTRIES: usize = 10_000;

/// What Jira said about a user whose email the webhook hid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Jira returned an email.
    Found(Email),
    /// Jira knows the user but hides the email too.
    Hidden,
    /// Jira does not know the user.
    NotFound,
    /// The integration has no access token: nothing was asked.
    NoAccessToken,
}

/// The in-process cache of user look-ups per integration and user.
pub struct EmailCache(Cache<(i64, AssigneeRef), Answer>);

/// What Jira answered about a user, as cached.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Email(Email),
    Hidden,
    NotFound,
}

impl Default for EmailCache {
    fn default() -> Self {
        Self(Cache::new(TTL, MAX_ENTRIES))
    }
}

impl EmailCache {
    /// The email of `user` in `integration`'s Jira, from the cache or from Jira.
    /// Jira 5xx, 429 and timeouts are passing failures; they are not cached.
    pub async fn lookup(
        &self,
        pool: &DbPool,
        integration: &Integration,
        user: &AssigneeRef,
    ) -> Result<Lookup, Failure> {
        let answer = self
            .0
            .get_or_fetch((integration.id, user.clone()), || async {
                let answer = integration
                    .with_jira(pool, |jira| async move {
                        jira.get_user(user.as_user_ref()).await
                    })
                    .await
                    .map_err(|error| failure::access("look up the assignee in Jira", error))?;
                // None: nothing could be asked.
                Ok::<_, Failure>(answer.map(|user| {
                    match user {
                        None => Answer::NotFound,
                        Some(user) => user
                            .email_address
                            .and_then(|email| Email::parse(&email))
                            .map_or(Answer::Hidden, Answer::Email),
                    }
                }))
            })
            .await?;
        Ok(match answer {
            None => Lookup::NoAccessToken,
            Some(Answer::NotFound) => Lookup::NotFound,
            Some(Answer::Hidden) => Lookup::Hidden,
            Some(Answer::Email(email)) => Lookup::Found(email),
        })
    }
}
