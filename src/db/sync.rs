//! Queries of inbound sync (docs/reference.md §5.6) that a change makes alone,
//! off the path of a batch's set-based statements (`db::batch`): pushes moving
//! watermarks, the user map, and why nobody could be assigned. Each takes the
//! caller's transaction. The types of rows both share.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::{Error, Statement};

use super::batch::Watermarks;

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

/// `$1` issue rows, `$2` assignee watermarks, `$3` status watermarks (NULL:
/// unchanged): see [`mark_synced_all`].
pub const MARK_SYNCED_ALL: &str = "UPDATE external_issues ei
    SET assignee_synced_at = GREATEST(ei.assignee_synced_at, w.assignee_at),
        status_synced_at = GREATEST(ei.status_synced_at, w.status_at)
   FROM unnest($1::bigint[], $2::timestamptz[], $3::timestamptz[])
     AS w(id, assignee_at, status_at)
  WHERE ei.id = w.id";

/// Moves each row's watermarks forward to the times given (never back: unlike
/// the batch of webhooks' `db::batch::set_watermarks`, which holds the rows'
/// locks and knows their watermarks, pushes only know Jira's `updated`). One
/// row per issue: an issue pushed for both kinds carries both. `statement` is
/// [`MARK_SYNCED_ALL`] prepared: sent when first polled.
pub async fn mark_synced_all(
    client: &impl GenericClient,
    statement: &Statement,
    rows: &[(i64, Watermarks)],
) -> Result<(), Error> {
    let (ids, assignee, status) = Watermarks::columns(rows);
    client
        .execute(statement, &[&ids, &assignee, &status])
        .await?;
    Ok(())
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
