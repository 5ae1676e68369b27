//! The assignee push (docs/reference.md §10.4): the group's assignee now, the
//! Jira user who is that user — the user map confirmed by Jira, else a verified
//! email that an assignable Jira user has exactly — and the write that makes
//! the issue's assignee match, unless Jira holds it already. A team assignment
//! and a user without a Jira user are recorded, not sent. Called by the push's
//! handler (`worker::jobs::outbound`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use deadpool_postgres::GenericClient;

use super::plan::{Plan, PlanError, Target, Write};
use crate::jira::payload::AssigneeRef;
use crate::jira::{JiraClient, JiraError, JiraUser, UserRef};
use crate::sync::audit::detail::{
    JiraUserVia, PushChange, PushKind, PushOutcome, PushUser, Pushed,
};

/// How long Jira's answers about users are reused.
const TTL: Duration = Duration::from_secs(5 * 60);
/// At most this many answers are kept; when full, expired ones go, and a new
/// answer that still finds no room is used, not kept.
const MAX_ENTRIES: usize = 10_000;

/// A group's assignee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignee {
    /// A user.
    User(PushUser),
    /// A team (its slug): nothing is sent.
    Team(String),
    /// Nobody: the issue is unassigned.
    Nobody,
}

/// `$1` group: the group's assignee (user id and name, team slug), no row when
/// the group is gone or being deleted.
pub const CURRENT: &str = "SELECT ga.user_id, u.username, t.slug
  FROM groups g
  LEFT JOIN group_assignees ga ON ga.group_id = g.id
  LEFT JOIN users u ON u.id = ga.user_id
  LEFT JOIN teams t ON t.id = ga.team_id
 WHERE g.id = $1 AND g.status NOT IN ('pending_deletion', 'deletion_in_progress')";

/// The group's assignee now; `None` when the group is gone (or being deleted):
/// nothing to push.
pub async fn current(
    db: &impl GenericClient,
    group_id: i64,
) -> Result<Option<Assignee>, tokio_postgres::Error> {
    let Some(row) = db
        .query_opt(&db.prepare_cached(CURRENT).await?, &[&group_id])
        .await?
    else {
        return Ok(None);
    };
    let user: (Option<i64>, Option<String>) = (row.get(0), row.get(1));
    let team: Option<String> = row.get(2);
    Ok(Some(match (user, team) {
        ((Some(id), Some(username)), _) => Assignee::User(PushUser { id, username }),
        (_, Some(slug)) => Assignee::Team(slug),
        _ => Assignee::Nobody,
    }))
}

/// What the push asks Jira about users, per integration.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Question {
    /// `GET /rest/api/2/user?username=` / `?key=`.
    User(AssigneeRef),
    /// Cloud: `GET /rest/api/3/user?accountId=`.
    Account(String),
    /// `GET /rest/api/2/user/assignable/search?issueKey=…&username=<address>`,
    /// per project: who may take an issue is a permission of its project (the
    /// permission scheme's "Assignable user"), so Jira's answer for one issue
    /// serves the project's others (`scope`: the project's key, else the issue's).
    Assignable { scope: String, email: String },
}

/// Jira's answer to a [`Question`] (the users it named), and when it gave it.
type Answer = (Instant, Vec<JiraUser>);

/// Jira users as Jira answered them, per integration, reused for 5 minutes; one
/// per worker, shared by its tasks. Only answers are kept, never errors. Two
/// pushes that ask the same at once both ask Jira: a push holds its issue, so
/// this is rare, and costs one call.
pub struct JiraUsers {
    /// Answers by integration and question, with when Jira gave them.
    // std: held for a lookup or an insert, never across an await.
    answers: Mutex<HashMap<(i64, Question), Answer>>,
    /// How long an answer is reused.
    ttl: Duration,
}

impl Default for JiraUsers {
    fn default() -> Self {
        Self {
            answers: Mutex::new(HashMap::new()),
            ttl: TTL,
        }
    }
}

impl JiraUsers {
    /// Jira's answer to `question` in `integration_id`'s Jira: the one kept, if
    /// fresh, else `ask`'s, then kept.
    async fn ask<F>(
        &self,
        integration_id: i64,
        question: Question,
        ask: impl FnOnce() -> F,
    ) -> Result<Vec<JiraUser>, JiraError>
    where
        F: Future<Output = Result<Vec<JiraUser>, JiraError>>,
    {
        let key = (integration_id, question);
        {
            // A poisoned lock only means another task panicked mid-insert; the map is usable.
            let answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
            let fresh = |(at, _): &&(Instant, _)| at.elapsed() < self.ttl;
            if let Some((_, users)) = answers.get(&key).filter(fresh) {
                return Ok(users.clone());
            }
        }
        let users = ask().await?;
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        if answers.len() >= MAX_ENTRIES {
            answers.retain(|_, (at, _)| at.elapsed() < self.ttl);
        }
        if answers.len() < MAX_ENTRIES {
            answers.insert(key, (Instant::now(), users.clone()));
        }
        Ok(users)
    }

    /// The Jira user `entry` (a user map entry: a name, else a key; on Cloud an
    /// `accountId`) names in `integration_id`'s Jira: `?username=`, then
    /// `?key=`; on Cloud `?accountId=` (docs/reference.md §11).
    async fn mapped(
        &self,
        jira: &JiraClient,
        integration_id: i64,
        entry: &str,
    ) -> Result<Option<JiraUser>, JiraError> {
        if jira.is_cloud() {
            let question = Question::Account(entry.to_owned());
            let user = self
                .ask(integration_id, question, || async {
                    let user = jira.get_user(UserRef::AccountId(entry)).await?;
                    Ok(user.into_iter().collect())
                })
                .await?;
            return Ok(user.into_iter().find(|user| user.active));
        }
        for asked in [
            AssigneeRef::Username(entry.to_owned()),
            AssigneeRef::Key(entry.to_owned()),
        ] {
            let user = self
                .ask(integration_id, Question::User(asked.clone()), || async {
                    let user = jira.get_user(asked.as_user_ref()).await?;
                    Ok(user.into_iter().collect())
                })
                .await?;
            if let Some(user) = user.into_iter().next() {
                return Ok(Some(user));
            }
        }
        Ok(None)
    }

    /// The first active user who may take `issue_key` (of the project `scope`)
    /// and whose email is `email` (ignoring case; Jira's search matches
    /// prefixes, so it is checked here).
    async fn by_email(
        &self,
        jira: &JiraClient,
        integration_id: i64,
        (issue_key, scope): (&str, &str),
        email: &str,
    ) -> Result<Option<JiraUser>, JiraError> {
        let question = Question::Assignable {
            scope: scope.to_owned(),
            email: email.to_owned(),
        };
        let users = self
            .ask(integration_id, question, || {
                jira.assignable_users(issue_key, email)
            })
            .await?;
        Ok(users.into_iter().find(|user| {
            user.active
                && user
                    .email_address
                    .as_deref()
                    .is_some_and(|address| address.trim().eq_ignore_ascii_case(email.trim()))
        }))
    }
}

/// `$1` integration, `$2` user: the user's newest user map entry for the
/// integration, and their verified addresses, oldest first.
pub const CANDIDATES: &str = "SELECT
   (SELECT jira_user FROM jira_user_mappings
     WHERE integration_id = $1 AND user_id = $2 ORDER BY id DESC LIMIT 1),
   ARRAY(SELECT email FROM user_emails WHERE user_id = $2 AND is_verified ORDER BY id)";

/// The Jira user found for a user, and how; or what was tried.
enum Found {
    /// This Jira user: a name, or on Cloud an `accountId`.
    User(String, JiraUserVia),
    /// None: the user map entry (if any) and the addresses tried.
    Nobody(Option<String>, Vec<String>),
}

/// `user`'s newest user map entry for the target's integration, and their
/// verified addresses, oldest first.
async fn candidates(
    db: &impl GenericClient,
    target: &Target<'_>,
    user: &PushUser,
) -> Result<(Option<String>, Vec<String>), tokio_postgres::Error> {
    let row = db
        .query_one(
            &db.prepare_cached(CANDIDATES).await?,
            &[&target.integration_id, &user.id],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// The Jira user of `user` in the target's integration (§10.4 a–c), from their
/// user map entry and addresses (`candidates`). Only verified addresses are
/// ever sent to Jira.
async fn jira_user(
    jira: &JiraClient,
    users: &JiraUsers,
    target: &Target<'_>,
    scope: &str,
    user: &PushUser,
    (entry, emails): (Option<String>, Vec<String>),
) -> Result<Found, PlanError> {
    let trying = |pushed: Pushed| move |error| PlanError::jira(error, &pushed);
    let attempt = assignee_pushed(target, &Assignee::User(user.clone()));
    if let Some(entry) = &entry {
        let mapped = users
            .mapped(jira, target.integration_id, entry)
            .await
            .map_err(trying(attempt.clone()))?;
        if let Some(found) = mapped {
            return Ok(Found::User(found.handle().to_owned(), JiraUserVia::UserMap));
        }
    }
    for email in &emails {
        let found = users
            .by_email(
                jira,
                target.integration_id,
                (target.issue_key, scope),
                email,
            )
            .await
            .map_err(trying(attempt.clone()))?;
        if let Some(found) = found {
            return Ok(Found::User(found.handle().to_owned(), JiraUserVia::Email));
        }
    }
    Ok(Found::Nobody(entry, emails))
}

/// The decision of a push of `assignee` to the target, before Jira was asked.
fn assignee_pushed(target: &Target<'_>, assignee: &Assignee) -> Pushed {
    let (change, user, team) = match assignee {
        Assignee::User(user) => (PushChange::Assign, Some(user.clone()), None),
        Assignee::Team(slug) => (PushChange::Assign, None, Some(slug.clone())),
        Assignee::Nobody => (PushChange::Unassign, None, None),
    };
    Pushed {
        kind: PushKind::Assignee,
        group_id: target.group_id,
        change,
        user,
        team,
        ..Pushed::default()
    }
}

/// Reads the issue from Jira and plans the push of `assignee` (§10.4): a team
/// sends nothing (and reads nothing); nobody unassigns; a user is sent as the
/// Jira user found for them, unless Jira has them already.
pub async fn plan_assignee(
    db: &impl GenericClient,
    jira: &JiraClient,
    users: &JiraUsers,
    target: &Target<'_>,
    assignee: &Assignee,
) -> Result<Plan, PlanError> {
    let mut pushed = assignee_pushed(target, assignee);
    if matches!(assignee, Assignee::Team(_)) {
        pushed.outcome = PushOutcome::TeamAssignee;
        return Ok(Plan::Decided(pushed, None));
    }
    // The user's candidates are read while Jira answers.
    let (issue, candidates) = tokio::join!(jira.get_issue(target.issue_key), async {
        match assignee {
            Assignee::User(user) => candidates(db, target, user).await.map(Some),
            _ => Ok(None),
        }
    });
    let issue = issue.map_err(|error| PlanError::jira(error, &pushed))?;
    let candidates = candidates?;
    let updated = issue.updated();
    let scope = issue
        .fields
        .project
        .as_ref()
        .map_or(target.issue_key, |project| project.key.as_str())
        .to_owned();
    let holder = issue.fields.assignee.map(|user| user.handle().to_owned());
    pushed.from.clone_from(&holder);
    let name = match assignee {
        Assignee::User(user) => match jira_user(
            jira,
            users,
            target,
            &scope,
            user,
            candidates.unwrap_or_default(),
        )
        .await?
        {
            Found::User(name, via) => {
                pushed.jira_user = Some(name.clone());
                pushed.via = Some(via);
                pushed.to = Some(name.clone());
                Some(name)
            }
            Found::Nobody(entry, emails) => {
                pushed.outcome = PushOutcome::NoJiraUser;
                pushed.user_map = entry;
                pushed.emails_tried = Some(emails);
                return Ok(Plan::Decided(pushed, updated));
            }
        },
        Assignee::Team(_) | Assignee::Nobody => None,
    };
    // Jira Server's user names do not tell case apart.
    let held = match (&holder, &name) {
        (Some(holder), Some(name)) => holder.to_lowercase() == name.to_lowercase(),
        (None, None) => true,
        _ => false,
    };
    if held {
        pushed.outcome = PushOutcome::Unchanged;
        return Ok(Plan::Decided(pushed, updated));
    }
    Ok(Plan::Write(Write::assign(target.issue_key, name, pushed)))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn amy() -> Vec<JiraUser> {
        serde_json::from_str(r#"[{"name":"amy"}]"#).expect("user")
    }

    #[tokio::test]
    async fn jiras_answers_are_reused_per_integration_and_question_and_errors_are_not() {
        let users = JiraUsers::default();
        let asked = AtomicU32::new(0);
        let question = || Question::User(AssigneeRef::Username("amy".into()));
        let answer = || async {
            asked.fetch_add(1, Ordering::SeqCst);
            Ok(amy())
        };
        assert_eq!(
            users.ask(1, question(), answer).await.expect("answer"),
            amy()
        );
        assert_eq!(
            users.ask(1, question(), answer).await.expect("reused"),
            amy()
        );
        assert_eq!(asked.load(Ordering::SeqCst), 1, "asked once");
        users.ask(2, question(), answer).await.expect("answer");
        assert_eq!(
            asked.load(Ordering::SeqCst),
            2,
            "another integration asks its Jira"
        );

        let failing = || async { Err(JiraError::unavailable("HTTP 503", None)) };
        let other = || Question::User(AssigneeRef::Key("JIRAUSER1".into()));
        assert!(users.ask(1, other(), failing).await.is_err());
        users.ask(1, other(), answer).await.expect("asked again");
        assert_eq!(asked.load(Ordering::SeqCst), 3, "an error is not kept");
    }

    #[tokio::test]
    async fn expired_answers_are_asked_again_and_a_full_cache_stays_bounded() {
        let users = JiraUsers {
            ttl: Duration::ZERO,
            ..JiraUsers::default()
        };
        let asked = AtomicU32::new(0);
        let answer = || async {
            asked.fetch_add(1, Ordering::SeqCst);
            Ok(Vec::new())
        };
        for n in 0..(MAX_ENTRIES + 5) {
            let question = Question::Assignable {
                scope: "ACC".into(),
                email: format!("u{n}@example.org"),
            };
            users.ask(1, question, answer).await.expect("answer");
        }
        let question = || Question::User(AssigneeRef::Username("amy".into()));
        users.ask(1, question(), answer).await.expect("answer");
        users.ask(1, question(), answer).await.expect("answer");
        assert_eq!(asked.load(Ordering::SeqCst) as usize, MAX_ENTRIES + 7);
        let kept = users.answers.lock().expect("lock").len();
        assert!(kept <= MAX_ENTRIES, "{kept} answers kept");
    }

    fn target() -> Target<'static> {
        Target {
            integration_id: 1,
            organization_id: 2,
            issue_key: "ACC-1",
            group_id: 3,
        }
    }

    #[test]
    fn each_assignee_asks_its_change_of_jira() {
        let amy = PushUser {
            id: 7,
            username: "amy".into(),
        };
        let cases = [
            (
                Assignee::User(amy.clone()),
                PushChange::Assign,
                Some(amy),
                None,
            ),
            (
                Assignee::Team("ops".into()),
                PushChange::Assign,
                None,
                Some("ops".to_owned()),
            ),
            (Assignee::Nobody, PushChange::Unassign, None, None),
        ];
        for (assignee, change, user, team) in cases {
            let pushed = assignee_pushed(&target(), &assignee);
            assert_eq!(pushed.kind, PushKind::Assignee, "{assignee:?}");
            assert_eq!(pushed.group_id, 3, "{assignee:?}");
            assert_eq!(pushed.change, change, "{assignee:?}");
            assert_eq!(pushed.user, user, "{assignee:?}");
            assert_eq!(pushed.team, team, "{assignee:?}");
        }
    }
}
