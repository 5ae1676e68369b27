//! A [`Decision`] as `jirasync explain` tells it: one sentence, as a Jira admin
//! would ask it, with what the bounded clock did (docs/reference.md §5.6). The
//! sentence names the issue and the organization, which the row holds beside the
//! decision: [`Decision::sentence`] takes them as a [`Place`].

use std::fmt::{self, Display, Formatter};

use chrono::{DateTime, SecondsFormat, Utc};

use super::decision::Decision;
use super::detail::{
    AssigneeGroup, AssigneeResult, Assignment, JiraUserVia, NotSyncedReason, PushChange, PushKind,
    PushOutcome, Pushed, StatusResult, Via,
};

/// Where a decision was made: the issue key it was recorded under, and the
/// organization reached (its slug when known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place<'a> {
    /// The issue key.
    pub issue_key: &'a str,
    /// The organization, if one was reached.
    pub organization_id: Option<i64>,
    /// Its slug.
    pub organization: Option<&'a str>,
}

/// A decision's sentence (its `Display`).
#[derive(Debug, Clone, Copy)]
pub struct Sentence<'a> {
    decision: &'a Decision,
    place: Place<'a>,
}

impl Decision {
    /// The sentence that tells this decision, made at `place`.
    pub fn sentence<'a>(&'a self, place: Place<'a>) -> Sentence<'a> {
        Sentence {
            decision: self,
            place,
        }
    }
}

impl Display for Sentence<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let org = match (self.place.organization, self.place.organization_id) {
            (Some(slug), _) => format!(" in {slug}"),
            (None, Some(id)) => format!(" in organization {id}"),
            (None, None) => String::new(),
        };
        let key = self.place.issue_key;
        match self.decision {
            Decision::AssigneeStale(stale) | Decision::StatusStale(stale) => write!(
                f,
                "skipped{org}: a later change of {key} (Jira time {}) was applied there already; \
                 this one is from {}",
                time(&stale.applied_up_to),
                time(&stale.event_time)
            )?,
            Decision::NotLinked(not_linked) => write!(
                f,
                "changed nothing: no organization with {} on has {key} linked to a group",
                not_linked.sync_flag.as_str()
            )?,
            Decision::Assignee(assignment) => assignee(f, assignment, &org)?,
            Decision::StatusNotSynced(not_synced) => f.write_str(match not_synced.reason {
                NotSyncedReason::NoAccessToken => {
                    "left the status alone: the integration has no access token to read Jira's \
                     statuses (connect it with OAuth or a PAT)"
                }
                NotSyncedReason::NoOrganizationSyncsStatuses => {
                    "left the status alone: no organization syncs statuses back \
                     (sync_status_reverse) for this issue"
                }
            })?,
            Decision::NoDoneBoundary(_) => write!(
                f,
                "left the status alone{org}: the change does not move into or out of Jira's \
                 done category"
            )?,
            Decision::Status(change) => match change.outcome() {
                StatusResult::Unchanged => write!(
                    f,
                    "left the status alone{org}: the linked groups are {} already, or ignored",
                    change.to.as_str()
                )?,
                moved => {
                    let groups = change.groups.iter().filter(|g| g.result == moved);
                    let ids: Vec<i64> = groups.map(|g| g.group_id).collect();
                    let way = match moved {
                        StatusResult::Resolved => "into",
                        _ => "out of",
                    };
                    write!(
                        f,
                        "{} {}{org}: the Jira status moved {way} the done category",
                        moved.as_str(),
                        plural_groups(&ids)
                    )?;
                }
            },
            Decision::KeyStale(stale) => write!(
                f,
                "left {} as it is{org}: a later move (Jira time {}) was applied there already; \
                 this move to {} is from {}",
                stale.from,
                time(&stale.applied_up_to),
                stale.to,
                time(&stale.event_time)
            )?,
            Decision::Rekeyed(rekeyed) => {
                write!(
                    f,
                    "re-keyed {} to {}{org}: the issue moved to another project",
                    rekeyed.from, rekeyed.to
                )?;
                if let Some(merged) = &rekeyed.merged {
                    write!(
                        f,
                        "; merged into the existing {} ({} links moved, {} duplicates dropped)",
                        rekeyed.to, merged.links_moved, merged.duplicate_links_dropped
                    )?;
                }
            }
            Decision::NothingToRekey(nothing) => write!(
                f,
                "move of {} to {}: nothing to re-key (no organization with a sync flag on had \
                 the old key; moved already?)",
                nothing.from, nothing.to
            )?,
            Decision::Migrated(migrated) => write!(
                f,
                "moved {key}{org} from Data Center integration {} to Jira Cloud integration {} \
                 (jirasync integration migrate): its links go on syncing through Cloud",
                migrated.from_integration, migrated.to_integration
            )?,
            Decision::Echo(echo) => {
                let value = match (echo.kind, echo.echo_of.as_str()) {
                    (PushKind::Assignee, "") => "no assignee".to_owned(),
                    (PushKind::Assignee, name) => format!("assignee {name}"),
                    (PushKind::Status, id) => format!("status {id}"),
                };
                write!(
                    f,
                    "changed nothing{org}: the echo of jirasync's own push of {value} to {key} \
                     at {}",
                    time(&echo.written_at)
                )?;
            }
            Decision::Outbound(pushed) => outbound(f, pushed, key, &org)?,
            Decision::Duplicate(duplicate) => write!(
                f,
                "changed nothing: Jira Cloud sent delivery {} of {key} again; message {} \
                 handled it already",
                duplicate.webhook_identifier, duplicate.first_message_id
            )?,
            Decision::Unknown(row) => write!(f, "{}: {}{org}", row.kind, row.outcome)?,
        }
        let (clamped, reset) = match (self.decision.clock(), self.decision) {
            (Some(clock), _) => (
                clock.event_time_clamped_from.as_ref().map(time),
                clock.watermark_reset_from.as_ref().map(time),
            ),
            // As stored, whatever the row holds there.
            (None, Decision::Unknown(row)) => (
                row.detail["event_time_clamped_from"]
                    .as_str()
                    .map(str::to_owned),
                row.detail["watermark_reset_from"]
                    .as_str()
                    .map(str::to_owned),
            ),
            (None, _) => (None, None),
        };
        if let Some(jira) = clamped {
            write!(
                f,
                "; Jira's event time {jira} lay beyond the time jirasync received the change plus \
                 JIRASYNC_MAX_EVENT_SKEW, so the receive time was used"
            )?;
        }
        if let Some(reset) = reset {
            write!(
                f,
                "; the watermark there, {reset}, lay beyond any receive time (set before event \
                 times were bounded) and was replaced"
            )?;
        }
        Ok(())
    }
}

/// The sentence of an outbound decision (docs/reference.md §10.9): what was
/// pushed to `key`, or why nothing was.
fn outbound(f: &mut Formatter<'_>, pushed: &Pushed, key: &str, org: &str) -> fmt::Result {
    let group = pushed.group_id;
    let target = match (pushed.change, &pushed.user, &pushed.team) {
        (PushChange::Unassign, _, _) => "no assignee".to_owned(),
        (_, Some(user), _) => user.username.clone(),
        (_, None, Some(team)) => format!("team {team}"),
        (PushChange::Resolve, ..) => "resolved".to_owned(),
        (PushChange::Unresolve, ..) => "unresolved".to_owned(),
        (PushChange::Assign, None, None) => "an assignee".to_owned(),
    };
    let to = pushed.to.as_deref().unwrap_or("?");
    let jira = |f: &mut Formatter<'_>| -> fmt::Result {
        match (pushed.status, &pushed.jira_message) {
            (Some(status), Some(message)) => write!(f, ": Jira answered {status}: {message}"),
            (Some(status), None) => write!(f, ": Jira answered {status}"),
            (None, Some(message)) => write!(f, ": {message}"),
            (None, None) => Ok(()),
        }
    };
    let what = match pushed.kind {
        PushKind::Assignee => "assignee",
        PushKind::Status => "status",
    };
    match pushed.outcome {
        PushOutcome::Pushed => {
            match pushed.kind {
                PushKind::Assignee if pushed.change == PushChange::Unassign => {
                    write!(
                        f,
                        "unassigned {key} in Jira{org}: group {group} has no assignee"
                    )?;
                }
                PushKind::Assignee => {
                    let via = match pushed.via {
                        Some(JiraUserVia::UserMap) => "the user map",
                        Some(JiraUserVia::Email) => "a verified email",
                        None => "?",
                    };
                    write!(
                        f,
                        "pushed assignee {target} to {key}{org} as Jira user {} (found by {via}): \
                         group {group} is assigned to them",
                        pushed.jira_user.as_deref().unwrap_or("?")
                    )?;
                }
                PushKind::Status => {
                    write!(
                        f,
                        "transitioned {key} to {to}{org}: group {group} is {target}"
                    )?;
                    if let Some(transition) = &pushed.transition {
                        write!(f, " (transition {transition})")?;
                    }
                }
            }
            if let Some(from) = &pushed.from {
                write!(f, "; Jira had {from}")?;
            }
            Ok(())
        }
        PushOutcome::Unchanged if pushed.change == PushChange::Unassign => write!(
            f,
            "left {key} as it is{org}: it has no assignee in Jira already (group {group})"
        ),
        PushOutcome::Unchanged => write!(
            f,
            "left {key} as it is{org}: Jira's {what} is {to} already (group {group})"
        ),
        PushOutcome::SameOrigin => write!(
            f,
            "did not push the {what} of group {group} to {key}{org}: the change came from this \
             integration's own sync of Jira"
        ),
        PushOutcome::TeamAssignee => write!(
            f,
            "did not push the assignee of group {group} to {key}{org}: it is assigned to \
             {target}, and only users are sent to Jira"
        ),
        PushOutcome::NoJiraUser => {
            write!(
                f,
                "did not push assignee {target} to {key}{org}: no Jira user found"
            )?;
            if let Some(entry) = &pushed.user_map {
                write!(f, "; the user map names {entry}, whom Jira does not know")?;
            }
            match pushed.emails_tried.as_deref() {
                Some([]) | None => write!(f, "; they have no verified email")?,
                Some(emails) => write!(
                    f,
                    "; no assignable Jira user has the verified email {}",
                    emails.join(", ")
                )?,
            }
            f.write_str(" (map them with `jirasync user-map set`)")
        }
        PushOutcome::NotMapped => write!(
            f,
            "did not push the status of group {group} ({target}) to {key}{org}: no status is \
             mapped for its Jira project (`jirasync status-map set`)"
        ),
        PushOutcome::NoTransition => {
            write!(
                f,
                "did not transition {key} to {to}{org}: no transition leads there from {}",
                pushed.from.as_deref().unwrap_or("its status")
            )?;
            if let Some(offered) = &pushed.transition {
                write!(f, " (offered: {offered})")?;
            }
            Ok(())
        }
        PushOutcome::Refused => {
            match pushed.kind {
                PushKind::Assignee => write!(f, "did not assign {target} to {key}{org}")?,
                PushKind::Status => write!(f, "did not transition {key} to {to}{org}")?,
            }
            jira(f)
        }
        PushOutcome::Held => write!(
            f,
            "held the {what} of group {group} for {key}{org}: the integration cannot call Jira \
             until it is connected again"
        ),
        PushOutcome::Failed => {
            write!(
                f,
                "gave up pushing the {what} of group {group} to {key}{org}"
            )?;
            jira(f)
        }
    }
}

/// The sentence of an assignee decision in one organization.
fn assignee(f: &mut Formatter<'_>, assignment: &Assignment, org: &str) -> fmt::Result {
    let groups = &assignment.groups;
    if groups.is_empty() {
        return write!(
            f,
            "changed nothing{org}: no group there is linked to the issue"
        );
    }
    let asked = assignment.asked.as_ref();
    let email = asked.and_then(|asked| asked.email.as_deref());
    let jira_user = asked.and_then(|asked| asked.jira_user.as_deref());
    let outcome = assignment.outcome();
    let with = |result| groups_with(groups, result);
    match outcome {
        AssigneeResult::Assigned | AssigneeResult::Unchanged => {
            let shown = with(outcome);
            let Some((first, chosen)) = groups
                .iter()
                .find_map(|group| group.chosen.as_ref().map(|chosen| (group, chosen)))
            else {
                return write!(
                    f,
                    "changed nothing{org}: the Jira issue has no assignee and {shown} had none"
                );
            };
            let user = &chosen.user;
            let (verb, already) = match outcome {
                AssigneeResult::Assigned => ("assigned", ""),
                _ => ("kept", " (already assigned)"),
            };
            write!(
                f,
                "{verb} {} (user {}){already} to {shown}{org}: ",
                user.username, user.id
            )?;
            match chosen.via {
                Via::UserMap => write!(
                    f,
                    "Jira user {} is mapped to them (jirasync user-map)",
                    jira_user.unwrap_or("?")
                )?,
                Via::Email => write!(
                    f,
                    "the Jira assignee's email {} is their verified email",
                    email.unwrap_or("?")
                )?,
            }
            write!(
                f,
                ", and they are on team {}, which has project {}",
                user.team, first.project
            )
        }
        AssigneeResult::Unassigned => write!(
            f,
            "unassigned {}{org}: the Jira issue has no assignee now",
            with(AssigneeResult::Unassigned)
        ),
        AssigneeResult::NoCandidate => {
            let rejected: Vec<String> = groups
                .iter()
                .flat_map(|group| group.rejected.iter().flatten())
                .map(|r| format!("{} (user {}): {}", r.username, r.user_id, r.reason))
                .collect();
            let by = match email {
                Some(email) => format!("the Jira assignee's email {email}"),
                None => format!("Jira user {}", jira_user.unwrap_or("?")),
            };
            let why = if rejected.is_empty() {
                "no user has that email verified, and no user-map entry names the Jira user"
                    .to_owned()
            } else {
                format!("turned away {}", rejected.join("; "))
            };
            write!(
                f,
                "assigned nobody to {}{org}: nobody eligible has {by}; {why}",
                with(AssigneeResult::NoCandidate)
            )
        }
        AssigneeResult::MissingEmail if assignment.cloud.is_some() => {
            cloud_missing_email(f, assignment, org)
        }
        AssigneeResult::MissingEmail => write!(
            f,
            "assigned nobody{org}: Jira did not give the assignee's email (hidden by its privacy \
             settings, or no access token to ask) and Jira user {} is not mapped (`jirasync \
             user-map set`)",
            jira_user.unwrap_or("(unnamed)")
        ),
    }
}

/// The sentence of a Jira Cloud assignee nobody could be assigned for want of an
/// email (docs/reference.md §11.5): the accountId, each source tried and what it
/// gave, and the command that would map the account.
fn cloud_missing_email(f: &mut Formatter<'_>, assignment: &Assignment, org: &str) -> fmt::Result {
    let Some(cloud) = &assignment.cloud else {
        return Ok(());
    };
    let tried: Vec<String> = cloud
        .sources_tried
        .iter()
        .flatten()
        .map(|tried| format!("{}: {}", tried.source.as_str(), tried.result.as_str()))
        .collect();
    write!(
        f,
        "assigned nobody{org}: Jira Cloud account {} has no email jirasync could read ({}) \
         and is not mapped to a user",
        cloud.account_id,
        tried.join(", ")
    )?;
    if let Some(fix) = &cloud.fix {
        write!(f, "; map it with `{fix}`")?;
    }
    Ok(())
}

/// `group 5` or `groups 5, 6`: the groups whose result is `result`.
fn groups_with(groups: &[AssigneeGroup], result: AssigneeResult) -> String {
    let ids: Vec<i64> = groups
        .iter()
        .filter(|group| group.result == result)
        .map(|group| group.group_id)
        .collect();
    plural_groups(&ids)
}

/// `group 5` or `groups 5, 6`.
fn plural_groups(ids: &[i64]) -> String {
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    match list.as_slice() {
        [one] => format!("group {one}"),
        _ => format!("groups {}", list.join(", ")),
    }
}

/// A time as the detail holds it (chrono's serde form: RFC 3339, `Z`, as many
/// fraction digits as it needs).
fn time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests;
