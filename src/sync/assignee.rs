//! Applies one assignee change to every linked group, in one transaction
//! (Sentry `sync_group_assignee_inbound`, plus the link-type, deletion-status and
//! ordering fixes of docs/reference.md §5.6, and the user map of §5.10), noting
//! per organization what was decided and why (§5.9).

use deadpool_postgres::Object;

use super::audit::detail::{
    Asked, AssigneeGroup, AssigneeResult, Assignment, Chosen, ChosenUser, CloudAssignee,
    EmailSource, RejectedUser, SourceResult, SourceTried, Via,
};
use super::audit::{Audit, Decision};
use super::echo;
use super::event::{Email, IssueEvent};
use super::guard::{self, Reach};
use super::state::State;
use crate::db::sync::{self as q, Assignee, LinkedGroup, Watermark};

/// What to do to the linked groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Assign the user with this email, else the user the Jira user is mapped
    /// to. Neither known: nothing can be assigned (`missing_email`).
    Assign {
        /// The assignee's email, when Jira gave one.
        email: Option<Email>,
        /// How Jira names the assignee (`name`, else `key`), for the user map.
        jira_user: Option<String>,
    },
    /// Assign a Jira Cloud account (docs/reference.md §11.5): the user with its
    /// email when one was found, else the user its `accountId` is mapped to.
    AssignAccount(AccountAssignee),
    /// Remove the assignee.
    Unassign,
}

/// A Jira Cloud assignee as the worker found it before the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountAssignee {
    /// Its `accountId`: the user map's key.
    pub account_id: String,
    /// Its email, when the payload or Jira's user API gave one.
    pub email: Option<Email>,
    /// Which of them gave it (`payload` or `lookup`); `None` without an email.
    pub email_source: Option<EmailSource>,
    /// The sources that gave no email, in order, with what they gave.
    pub tried: Vec<SourceTried>,
}

impl Action {
    /// The email to find the assignee by, if there is one.
    pub fn email(&self) -> Option<&str> {
        match self {
            Self::Assign { email, .. } => email.as_ref().map(Email::as_str),
            Self::AssignAccount(account) => account.email.as_ref().map(Email::as_str),
            Self::Unassign => None,
        }
    }

    /// The email, the user map's key and the Cloud account of an assignment;
    /// `None` for an unassignment.
    fn assignment(&self) -> Option<(Option<&Email>, Option<&str>, Option<&AccountAssignee>)> {
        match self {
            Self::Assign { email, jira_user } => Some((email.as_ref(), jira_user.as_deref(), None)),
            Self::AssignAccount(account) => Some((
                account.email.as_ref(),
                Some(account.account_id.as_str()),
                Some(account),
            )),
            Self::Unassign => None,
        }
    }
}

/// What one change did, summed over organizations and groups.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// The organizations and groups reached, and the stale organizations.
    pub reach: Reach,
    /// Groups whose assignee was set or changed.
    pub assigned: usize,
    /// Groups whose assignee was removed.
    pub unassigned: usize,
    /// Groups where no matching user could be assigned.
    pub assignee_not_found: usize,
    /// Groups where the assignee had no email and no mapped user.
    pub missing_email: usize,
}

/// What became of one group.
enum GroupResult {
    Assigned(Assignee, Via),
    AlreadyAssigned(Assignee, Via),
    Unassigned,
    NothingToUnassign,
    NoCandidate(Vec<q::Rejected>),
    MissingEmail,
}

impl GroupResult {
    fn result(&self) -> AssigneeResult {
        match self {
            Self::Assigned(..) => AssigneeResult::Assigned,
            Self::AlreadyAssigned(..) | Self::NothingToUnassign => AssigneeResult::Unchanged,
            Self::Unassigned => AssigneeResult::Unassigned,
            Self::NoCandidate(_) => AssigneeResult::NoCandidate,
            Self::MissingEmail => AssigneeResult::MissingEmail,
        }
    }

    /// The group's part of the organization's decision.
    fn into_detail(self, group: LinkedGroup) -> AssigneeGroup {
        let result = self.result();
        let (chosen, rejected) = match self {
            Self::Assigned(user, via) | Self::AlreadyAssigned(user, via) => {
                let user = ChosenUser {
                    id: user.user_id,
                    username: user.username,
                    email: user.email,
                    team: user.team,
                };
                (Some(Chosen { user, via }), None)
            }
            Self::NoCandidate(rejected) => {
                let rejected = rejected.into_iter().map(|r| RejectedUser {
                    user_id: r.user_id,
                    username: r.username,
                    reason: r.reason,
                });
                (None, Some(rejected.collect()))
            }
            Self::Unassigned | Self::NothingToUnassign | Self::MissingEmail => (None, None),
        };
        AssigneeGroup {
            group_id: group.group_id,
            project: group.project_slug,
            result,
            chosen,
            rejected,
        }
    }
}

/// Applies `action` for `event`'s issue inside `tx` (the caller commits), noting
/// each organization's decision in `audit`.
pub async fn apply(
    tx: &Object,
    state: &mut State,
    event: IssueEvent<'_>,
    action: &Action,
    audit: &mut Audit,
) -> Result<Report, tokio_postgres::Error> {
    let mut report = Report::default();
    let integration_id = event.integration_id;
    let assignment = action.assignment();
    let sets = match assignment {
        Some((_, Some(jira_user), _)) => Some(echo::assignee_value(Some(jira_user))),
        Some((_, None, _)) => None,
        None => Some(echo::assignee_value(None)),
    };
    let noted = audit.len();
    let issues = guard::admitted(
        tx,
        state,
        Watermark::Assignee,
        event,
        sets.as_deref(),
        &mut report.reach,
        audit,
    )
    .await?;
    // The guard's own decisions about a Cloud account name it too.
    if let Some((_, _, Some(account))) = assignment {
        let cloud = CloudAssignee {
            account_id: account.account_id.clone(),
            email_source: account.email_source,
            sources_tried: None,
            fix: None,
        };
        audit.name_account_from(noted, &cloud);
    }
    // Looked up once, and only when a group has no candidate by email.
    let mut mapped: Option<Option<i64>> = None;
    for admitted in &issues {
        let issue = &admitted.issue;
        let mut results = Vec::new();
        for group in guard::groups_of(state, issue, &mut report.reach) {
            let result = match assignment {
                None => match state.unassign(&group, event.writer()) {
                    true => GroupResult::Unassigned,
                    false => GroupResult::NothingToUnassign,
                },
                Some((email, jira_user, _)) => {
                    let by_email = match email {
                        Some(email) => state.user(tx, issue.id, &group, email.as_str()).await?,
                        None => None,
                    };
                    let chosen = match by_email {
                        Some(user) => Ok((user, Via::Email)),
                        None => {
                            if mapped.is_none() {
                                mapped = Some(match jira_user {
                                    Some(user) => q::mapped_user(tx, integration_id, user).await?,
                                    None => None,
                                });
                            }
                            choose_mapped(tx, &group, email, mapped.flatten()).await?
                        }
                    };
                    match chosen {
                        Ok((user, via)) => {
                            let stored = user.email.clone();
                            match state.assign(&group, user.user_id, &stored, event.writer()) {
                                true => GroupResult::Assigned(user, via),
                                false => GroupResult::AlreadyAssigned(user, via),
                            }
                        }
                        Err(result) => result,
                    }
                }
            };
            match &result {
                GroupResult::Assigned(..) => report.assigned += 1,
                GroupResult::Unassigned => report.unassigned += 1,
                GroupResult::NoCandidate(_) => {
                    report.assignee_not_found += 1;
                    tracing::info!(group.id = group.group_id, "assignee-not-found");
                }
                GroupResult::MissingEmail => report.missing_email += 1,
                GroupResult::AlreadyAssigned(..) | GroupResult::NothingToUnassign => {}
            }
            results.push((group, result));
        }
        let asked = assignment.map(|(email, jira_user, _)| Asked {
            email: email.map(|email| email.as_str().to_owned()),
            jira_user: jira_user.map(str::to_owned),
        });
        let mut decided = Assignment {
            groups: results
                .into_iter()
                .map(|(group, result)| result.into_detail(group))
                .collect(),
            asked,
            cloud: None,
            clock: admitted.clock(),
        };
        if let Some((_, _, Some(account))) = assignment {
            let mapped = mapped.flatten().is_some();
            decided.cloud = Some(cloud_detail(account, &decided, mapped, integration_id));
        }
        audit.record(Some(issue.organization_id), Decision::Assignee(decided));
    }
    Ok(report)
}

/// What an assignee decision about a Cloud `account` says of it (docs/reference.md
/// §11.5): its accountId, where its email (or user) came from — `user_map` when
/// there was no email and the map named a user (`mapped`) — and, when nobody
/// could be assigned for want of an email, every source tried and the command
/// that would map the account.
fn cloud_detail(
    account: &AccountAssignee,
    decided: &Assignment,
    mapped: bool,
    integration_id: i64,
) -> CloudAssignee {
    let email_source = account
        .email_source
        .or(mapped.then_some(EmailSource::UserMap));
    let missing = decided.outcome() == AssigneeResult::MissingEmail;
    let tried = || {
        let mut tried = account.tried.clone();
        tried.push(SourceTried {
            source: EmailSource::UserMap,
            result: SourceResult::NoMapping,
        });
        tried
    };
    CloudAssignee {
        account_id: account.account_id.clone(),
        email_source,
        sources_tried: missing.then(tried),
        fix: missing.then(|| user_map_fix(integration_id, &account.account_id)),
    }
}

/// The command that maps a Cloud account to a user of this integration.
pub fn user_map_fix(integration_id: i64, account_id: &str) -> String {
    format!(
        "jirasync user-map set --integration {integration_id} --jira-user {account_id} --user USERNAME"
    )
}

/// The user the Jira user is mapped to, if the rules admit them for `group`; else
/// what the group's result is: no candidate (with who was turned away and why),
/// or no email to go by.
async fn choose_mapped(
    tx: &Object,
    group: &LinkedGroup,
    email: Option<&Email>,
    mapped: Option<i64>,
) -> Result<Result<(Assignee, Via), GroupResult>, tokio_postgres::Error> {
    let refused_mapping = match mapped {
        Some(user_id) => match q::eligible(tx, group, user_id).await? {
            Ok(user) => return Ok(Ok((user, Via::UserMap))),
            Err(refused) => Some(refused),
        },
        None => None,
    };
    // Why nobody could be assigned: asked only now, off the path that assigns.
    let mut rejected = match email {
        Some(email) => q::rejected_candidates(tx, group, email.as_str()).await?,
        None if refused_mapping.is_none() => return Ok(Err(GroupResult::MissingEmail)),
        None => Vec::new(),
    };
    rejected.extend(refused_mapping);
    Ok(Err(GroupResult::NoCandidate(rejected)))
}
