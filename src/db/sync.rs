//! Queries of inbound sync (docs/reference.md §5.6): locking an issue's rows,
//! moving their watermarks, the linked groups, the assignee and the writes. Each
//! takes the caller's transaction; `sync::assignee` and `sync::status` own the
//! order and the commit. The hot statements are public constants, prepared once
//! per connection, so that `bench/assign.sql` (pgbench, the database's limit in
//! docs/performance.md) is checked against them by `tests/bench_script.rs`.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::json;
use tokio_postgres::Error;

/// An `external_issues` row of the issue in one organization that syncs the
/// change's kind back.
#[derive(Debug, Clone)]
pub struct ExternalIssue {
    /// Row id (the `linked_id` of its group links).
    pub id: i64,
    /// Its organization.
    pub organization_id: i64,
    /// When a change of this kind was last applied (its [`Watermark`]).
    pub synced_at: Option<DateTime<Utc>>,
}

/// A group reached through an issue link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedGroup {
    /// Group id.
    pub group_id: i64,
    /// Its project.
    pub project_id: i64,
    /// The project's slug (for the audit trail).
    pub project_slug: String,
}

/// The user a group gets, and why they are eligible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignee {
    /// User id.
    pub user_id: i64,
    /// Their user name.
    pub username: String,
    /// The email that matched, as stored (a mapped user's first verified one, or empty).
    pub email: String,
    /// The slug of the active team, with the group's project, they are on.
    pub team: String,
}

/// Which kind of change an `external_issues` watermark orders, and which
/// `organization_integrations.config` flag turns its sync on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watermark {
    /// `assignee_synced_at`, synced where `sync_reverse_assignment` is on.
    Assignee,
    /// `status_synced_at`, synced where `sync_status_reverse` is on.
    Status,
}

impl Watermark {
    /// The statement of `assignee`, `status` that is this watermark's.
    const fn pick(self, assignee: &'static str, status: &'static str) -> &'static str {
        match self {
            Self::Assignee => assignee,
            Self::Status => status,
        }
    }
}

/// `$1` integration id, `$2` issue key: see [`lock_external_issues`].
pub const LOCK_EXTERNAL_ISSUES: &str = concat!(
    "SELECT ei.id, ei.organization_id, ei.assignee_synced_at",
    syncing_issues!("sync_reverse_assignment"),
    " AND ei.key = $2 ORDER BY ei.id FOR UPDATE OF ei"
);

/// As [`LOCK_EXTERNAL_ISSUES`], for statuses.
pub const LOCK_STATUS_ISSUES: &str = concat!(
    "SELECT ei.id, ei.organization_id, ei.status_synced_at",
    syncing_issues!("sync_status_reverse"),
    " AND ei.key = $2 ORDER BY ei.id FOR UPDATE OF ei"
);

/// The issue's rows in organizations that sync `watermark`'s kind back, locked
/// for this transaction so webhooks of one issue apply one at a time.
pub async fn lock_external_issues(
    client: &impl GenericClient,
    watermark: Watermark,
    integration_id: i64,
    key: &str,
) -> Result<Vec<ExternalIssue>, Error> {
    let sql = watermark.pick(LOCK_EXTERNAL_ISSUES, LOCK_STATUS_ISSUES);
    let statement = client.prepare_cached(sql).await?;
    let rows = client.query(&statement, &[&integration_id, &key]).await?;
    Ok(rows
        .iter()
        .map(|row| ExternalIssue {
            id: row.get(0),
            organization_id: row.get(1),
            synced_at: row.get(2),
        })
        .collect())
}

/// `$1` external issue id, `$2` event time: see [`mark_synced`].
pub const MARK_ASSIGNEE_SYNCED: &str = "UPDATE external_issues
    SET assignee_synced_at = GREATEST(COALESCE(assignee_synced_at, $2), $2)
  WHERE id = $1";

/// As [`MARK_ASSIGNEE_SYNCED`], for statuses.
pub const MARK_STATUS_SYNCED: &str = "UPDATE external_issues
    SET status_synced_at = GREATEST(COALESCE(status_synced_at, $2), $2)
  WHERE id = $1";

/// Moves the watermark forward to `at` (never back).
pub async fn mark_synced(
    client: &impl GenericClient,
    external_issue_id: i64,
    watermark: Watermark,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    let sql = watermark.pick(MARK_ASSIGNEE_SYNCED, MARK_STATUS_SYNCED);
    let statement = client.prepare_cached(sql).await?;
    client
        .execute(&statement, &[&external_issue_id, &at])
        .await?;
    Ok(())
}

/// `$1` external issue id, `$2` event time: see [`reset_synced`].
pub const RESET_ASSIGNEE_SYNCED: &str =
    "UPDATE external_issues SET assignee_synced_at = $2 WHERE id = $1";

/// As [`RESET_ASSIGNEE_SYNCED`], for statuses.
pub const RESET_STATUS_SYNCED: &str =
    "UPDATE external_issues SET status_synced_at = $2 WHERE id = $1";

/// Sets the watermark to `at`, also back: for one that binds nothing (later than
/// `sync::clock::horizon`, left by a version that did not bound event times).
/// Rare, so not prepared.
pub async fn reset_synced(
    client: &impl GenericClient,
    external_issue_id: i64,
    watermark: Watermark,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    let sql = watermark.pick(RESET_ASSIGNEE_SYNCED, RESET_STATUS_SYNCED);
    client.execute(sql, &[&external_issue_id, &at]).await?;
    Ok(())
}

/// `$1` external issue id, `$2` its organization: see [`linked_groups`].
pub const LINKED_GROUPS: &str = "SELECT g.id, g.project_id, p.slug
   FROM group_links gl
   JOIN groups g ON g.id = gl.group_id
   JOIN projects p ON p.id = g.project_id
  WHERE gl.linked_type = 'issue'
    AND gl.linked_id = $1
    AND p.organization_id = $2
    AND g.status NOT IN ('pending_deletion', 'deletion_in_progress')
  ORDER BY g.id";

/// Groups linked to the issue row as `issue`, in a project of its organization,
/// and not being deleted.
pub async fn linked_groups(
    client: &impl GenericClient,
    issue: &ExternalIssue,
) -> Result<Vec<LinkedGroup>, Error> {
    let statement = client.prepare_cached(LINKED_GROUPS).await?;
    let rows = client
        .query(&statement, &[&issue.id, &issue.organization_id])
        .await?;
    Ok(rows
        .iter()
        .map(|row| LinkedGroup {
            group_id: row.get(0),
            project_id: row.get(1),
            project_slug: row.get(2),
        })
        .collect())
}

/// `$1` the group's project, `$2` the email: see [`find_assignee`].
pub const FIND_ASSIGNEE: &str = "SELECT u.id, ue.email, u.username, t.slug
   FROM user_emails ue
   JOIN users u ON u.id = ue.user_id AND u.is_active
   JOIN organization_members om ON om.user_id = u.id
   JOIN team_members tm ON tm.organization_member_id = om.id AND tm.is_active
   JOIN teams t ON t.id = tm.team_id AND t.status = 'active'
               AND t.organization_id = om.organization_id
   JOIN project_teams pt ON pt.team_id = t.id AND pt.project_id = $1
  WHERE lower(ue.email) = lower($2)
    AND ue.is_verified
  ORDER BY u.id, ue.id, t.id
  LIMIT 1";

/// The user to assign to `group`: among active users with a verified email equal to
/// `email` ignoring case, the lowest id who is an active member of an active team
/// that has the group's project, with the email as stored and that team.
pub async fn find_assignee(
    client: &impl GenericClient,
    group: &LinkedGroup,
    email: &str,
) -> Result<Option<Assignee>, Error> {
    let statement = client.prepare_cached(FIND_ASSIGNEE).await?;
    let row = client
        .query_opt(&statement, &[&group.project_id, &email])
        .await?;
    Ok(row.map(|row| Assignee {
        user_id: row.get(0),
        email: row.get(1),
        username: row.get(2),
        team: row.get(3),
    }))
}

/// A user the rules turned away, and why (`email not verified`, `inactive`,
/// `not on an active team of project <slug>`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejected {
    /// User id.
    pub user_id: i64,
    /// Their user name.
    pub username: String,
    /// Why they were not assigned.
    pub reason: String,
}

/// `$1` the group's project, `$2` the email: see [`rejected_candidates`].
pub const REJECTED_CANDIDATES: &str =
    "SELECT u.id, u.username, bool_or(ue.is_verified), u.is_active, EXISTS (
                    SELECT 1 FROM organization_members om
                      JOIN team_members tm ON tm.organization_member_id = om.id AND tm.is_active
                      JOIN teams t ON t.id = tm.team_id AND t.status = 'active'
                                  AND t.organization_id = om.organization_id
                      JOIN project_teams pt ON pt.team_id = t.id AND pt.project_id = $1
                     WHERE om.user_id = u.id)
               FROM user_emails ue JOIN users u ON u.id = ue.user_id
              WHERE lower(ue.email) = lower($2)
              GROUP BY u.id ORDER BY u.id LIMIT 10";

/// Why nobody with `email` (ignoring case) could be assigned to `group`: each
/// user holding it, lowest id first (at most 10), with the first rule they fail.
/// Only asked when [`find_assignee`] found no one: off the hot path.
pub async fn rejected_candidates(
    client: &impl GenericClient,
    group: &LinkedGroup,
    email: &str,
) -> Result<Vec<Rejected>, Error> {
    let rows = client
        .query(REJECTED_CANDIDATES, &[&group.project_id, &email])
        .await?;
    Ok(rows
        .iter()
        .map(|row| Rejected {
            user_id: row.get(0),
            username: row.get(1),
            reason: rejection(group, row.get(2), row.get(3), row.get(4)),
        })
        .collect())
}

/// The first rule of §5.6 a user fails.
fn rejection(group: &LinkedGroup, verified: bool, active: bool, on_team: bool) -> String {
    if !verified {
        "email not verified".to_owned()
    } else if !active {
        "inactive".to_owned()
    } else if !on_team {
        format!("not on an active team of project {}", group.project_slug)
    } else {
        "eligible".to_owned()
    }
}

/// `$1` integration, `$2` Jira user: see [`mapped_user`].
pub const MAPPED_USER: &str =
    "SELECT user_id FROM jira_user_mappings WHERE integration_id = $1 AND jira_user = $2";

/// The user `jira_user` (a Jira `name` or `key`) is mapped to in `integration_id`.
pub async fn mapped_user(
    client: &impl GenericClient,
    integration_id: i64,
    jira_user: &str,
) -> Result<Option<i64>, Error> {
    let row = client
        .query_opt(MAPPED_USER, &[&integration_id, &jira_user])
        .await?;
    Ok(row.map(|row| row.get(0)))
}

/// `$1` user, `$2` the group's project: see [`eligible`].
pub const ELIGIBLE: &str = "SELECT u.username, u.is_active, (
                    SELECT t.slug FROM organization_members om
                      JOIN team_members tm ON tm.organization_member_id = om.id AND tm.is_active
                      JOIN teams t ON t.id = tm.team_id AND t.status = 'active'
                                  AND t.organization_id = om.organization_id
                      JOIN project_teams pt ON pt.team_id = t.id AND pt.project_id = $2
                     WHERE om.user_id = u.id ORDER BY t.id LIMIT 1), (
                    SELECT ue.email FROM user_emails ue
                     WHERE ue.user_id = u.id AND ue.is_verified ORDER BY ue.id LIMIT 1)
               FROM users u WHERE u.id = $1";

/// `user_id` as the assignee of `group` if the rules of §5.6 admit them (active,
/// an active member of an active team with the group's project); else why not.
pub async fn eligible(
    client: &impl GenericClient,
    group: &LinkedGroup,
    user_id: i64,
) -> Result<Result<Assignee, Rejected>, Error> {
    let row = client
        .query_one(ELIGIBLE, &[&user_id, &group.project_id])
        .await?;
    let (username, active, team, email): (String, bool, Option<String>, Option<String>) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    Ok(match team {
        Some(team) if active => Ok(Assignee {
            user_id,
            username,
            email: email.unwrap_or_default(),
            team,
        }),
        team => Err(Rejected {
            user_id,
            reason: rejection(group, true, active, team.is_some()),
            username,
        }),
    })
}

/// `$1` group, `$2` its project, `$3` user, `$4` the integration writing it: see
/// [`assign`].
pub const ASSIGN: &str = concat!(
    "INSERT INTO group_assignees (group_id, project_id, user_id, team_id)
 SELECT $1, $2, $3, NULL
   FROM ",
    tagged_origin!("4"),
    "
  WHERE tagged.origin IS NOT NULL
 ON CONFLICT (group_id) DO UPDATE
    SET user_id = EXCLUDED.user_id, team_id = NULL,
        project_id = EXCLUDED.project_id, date_added = now()
  WHERE group_assignees.user_id IS DISTINCT FROM EXCLUDED.user_id
     OR group_assignees.team_id IS NOT NULL
 RETURNING id"
);

/// A provider as the `activities` rows name it (the integration module says
/// which: `integration::ACTIVITY_PROVIDER`).
#[derive(Debug, PartialEq, Eq)]
pub struct Provider {
    /// `integrations.provider`.
    pub key: &'static str,
    /// Its name for people.
    pub name: &'static str,
}

/// Who writes a change: an integration of a provider, as its activity rows say.
#[derive(Debug, Clone, Copy)]
pub struct Writer {
    /// The provider.
    pub provider: &'static Provider,
    /// The integration.
    pub integration_id: i64,
}

/// Assigns `user_id` to the group unless already assigned; writes the `assigned`
/// activity only when something changed. Returns whether it changed.
pub async fn assign(
    client: &impl GenericClient,
    group: &LinkedGroup,
    user_id: i64,
    stored_email: &str,
    by: Writer,
) -> Result<bool, Error> {
    // Only a row that differs is written: assigning the current user writes nothing.
    let statement = client.prepare_cached(ASSIGN).await?;
    let changed = client
        .query_opt(
            &statement,
            &[
                &group.group_id,
                &group.project_id,
                &user_id,
                &by.integration_id,
            ],
        )
        .await?
        .is_some();
    if changed {
        let data = json!({
            "assignee": user_id.to_string(),
            "assigneeEmail": stored_email,
            "assigneeType": "user",
            "integration": by.provider.key,
            "integration_id": by.integration_id,
        });
        insert_activity(client, group, "assigned", &data).await?;
    }
    Ok(changed)
}

/// `$1` group, `$2` the integration writing it: see [`unassign`].
pub const UNASSIGN: &str = concat!(
    "DELETE FROM group_assignees USING ",
    tagged_origin!("2"),
    " WHERE group_id = $1 AND tagged.origin IS NOT NULL RETURNING id"
);

/// Removes the group's assignee; writes the `unassigned` activity only if there was one.
pub async fn unassign(
    client: &impl GenericClient,
    group: &LinkedGroup,
    by: Writer,
) -> Result<bool, Error> {
    let removed = client
        .query_opt(UNASSIGN, &[&group.group_id, &by.integration_id])
        .await?
        .is_some();
    if removed {
        let data = json!({ "integration": by.provider.key, "integration_id": by.integration_id });
        insert_activity(client, group, "unassigned", &data).await?;
    }
    Ok(removed)
}

/// `$1` group, `$2` its project, `$3` type, `$4` data: see [`insert_activity`].
pub const INSERT_ACTIVITY: &str =
    "INSERT INTO activities (group_id, project_id, type, user_id, data)
 VALUES ($1, $2, $3, NULL, $4)";

/// Writes one `activities` row of `group` by the integration (`user_id` NULL).
pub async fn insert_activity(
    client: &impl GenericClient,
    group: &LinkedGroup,
    kind: &str,
    data: &serde_json::Value,
) -> Result<(), Error> {
    let statement = client.prepare_cached(INSERT_ACTIVITY).await?;
    client
        .execute(
            &statement,
            &[&group.group_id, &group.project_id, &kind, data],
        )
        .await?;
    Ok(())
}
