//! The set-based statements of a unit of work (docs/reference.md §5.12): each
//! reads or writes the rows of every change of a batch at once, from arrays
//! (`unnest`), so that a batch of 32 webhooks costs a handful of statements
//! instead of seven per webhook. `sync::state` decides in memory between the
//! reads and the writes; the statements are public constants, prepared once per
//! connection, whose plans `tests/suite/query_plans.rs` checks.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

use super::sync::{Assignee, LinkedGroup};

/// An `external_issues` row of a key a batch touches, in an active organization
/// whose integration link is active, with both watermarks and whether the
/// organization syncs each kind back.
#[derive(Debug, Clone)]
pub struct IssueRow {
    /// Its integration.
    pub integration_id: i64,
    /// Its key.
    pub key: String,
    /// Row id.
    pub id: i64,
    /// Its organization.
    pub organization_id: i64,
    /// `assignee_synced_at`.
    pub assignee_synced_at: Option<DateTime<Utc>>,
    /// `status_synced_at`.
    pub status_synced_at: Option<DateTime<Utc>>,
    /// `sync_reverse_assignment` is on.
    pub syncs_assignee: bool,
    /// `sync_status_reverse` is on.
    pub syncs_status: bool,
}

/// `$1` integrations, `$2` keys (pairs): see [`lock_issues`].
pub const LOCK_ISSUES: &str = "SELECT ei.integration_id, ei.key, ei.id, ei.organization_id,
        ei.assignee_synced_at, ei.status_synced_at,
        COALESCE(oi.config->>'sync_reverse_assignment' = 'true', false) AS syncs_assignee,
        COALESCE(oi.config->>'sync_status_reverse' = 'true', false) AS syncs_status
   FROM unnest($1::bigint[], $2::text[]) AS want(integration_id, key)
   JOIN external_issues ei ON ei.integration_id = want.integration_id AND ei.key = want.key
   JOIN organization_integrations oi
     ON oi.organization_id = ei.organization_id AND oi.integration_id = ei.integration_id
   JOIN organizations o ON o.id = ei.organization_id
  WHERE oi.status = 'active' AND o.status = 'active'
  ORDER BY ei.integration_id, ei.id
    FOR UPDATE OF ei";

/// The rows of every (integration, key) pair in `keys`, in organizations that
/// are active with an active link, locked in the order every change locks in:
/// by integration, then by row id.
pub async fn lock_issues(
    client: &impl GenericClient,
    keys: &[(i64, &str)],
) -> Result<Vec<IssueRow>, Error> {
    let (integrations, keys): (Vec<i64>, Vec<&str>) = keys.iter().copied().unzip();
    let statement = client.prepare_cached(LOCK_ISSUES).await?;
    let rows = client.query(&statement, &[&integrations, &keys]).await?;
    Ok(rows
        .iter()
        .map(|row| IssueRow {
            integration_id: row.get(0),
            key: row.get(1),
            id: row.get(2),
            organization_id: row.get(3),
            assignee_synced_at: row.get(4),
            status_synced_at: row.get(5),
            syncs_assignee: row.get(6),
            syncs_status: row.get(7),
        })
        .collect())
}

/// `$1` issue rows, `$2` their organizations: see [`linked_groups`].
pub const LINKED_GROUPS: &str = "SELECT issue.id AS issue_id, g.id, g.project_id, p.slug
   FROM unnest($1::bigint[], $2::bigint[]) AS issue(id, organization_id)
   JOIN group_links gl ON gl.linked_type = 'issue' AND gl.linked_id = issue.id
   JOIN groups g ON g.id = gl.group_id
   JOIN projects p ON p.id = g.project_id AND p.organization_id = issue.organization_id
  WHERE g.status NOT IN ('pending_deletion', 'deletion_in_progress')
  ORDER BY issue.id, g.id";

/// A group's assignee as stored: a user, a team, or nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Held {
    /// `group_assignees.user_id`.
    pub user_id: Option<i64>,
    /// `group_assignees.team_id`.
    pub team_id: Option<i64>,
}

impl Held {
    /// Whether the group has an assignee (a row).
    pub fn any(self) -> bool {
        self.user_id.is_some() || self.team_id.is_some()
    }
}

/// The groups linked to each issue row of `issues` (row id, organization), in a
/// project of the row's organization and not being deleted, in group id order,
/// by issue row.
pub async fn linked_groups(
    client: &impl GenericClient,
    issues: &[(i64, i64)],
) -> Result<Vec<(i64, LinkedGroup)>, Error> {
    let (ids, organizations): (Vec<i64>, Vec<i64>) = issues.iter().copied().unzip();
    let statement = client.prepare_cached(LINKED_GROUPS).await?;
    let rows = client.query(&statement, &[&ids, &organizations]).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let group = LinkedGroup {
                group_id: row.get(1),
                project_id: row.get(2),
                project_slug: row.get(3),
            };
            (row.get(0), group)
        })
        .collect())
}

/// `$1` issue rows: see [`lock_assignees`].
pub const LOCK_ASSIGNEES: &str = "SELECT ga.group_id, ga.user_id, ga.team_id
   FROM group_assignees ga
  WHERE ga.group_id IN (SELECT gl.group_id FROM group_links gl
                         WHERE gl.linked_type = 'issue' AND gl.linked_id = ANY($1))
  ORDER BY ga.group_id
    FOR UPDATE OF ga";

/// The assignee rows of the groups linked to the issue rows `issues`, by group,
/// locked in group id order until the commit, so that what a batch decides
/// from them still holds when it writes. A group without one has none.
pub async fn lock_assignees(
    client: &impl GenericClient,
    issues: &[i64],
) -> Result<HashMap<i64, Held>, Error> {
    let statement = client.prepare_cached(LOCK_ASSIGNEES).await?;
    let rows = client.query(&statement, &[&issues]).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let held = Held {
                user_id: row.get(1),
                team_id: row.get(2),
            };
            (row.get(0), held)
        })
        .collect())
}

/// `$1` issue rows, `$2` emails (pairs): see [`find_assignees`].
pub const FIND_ASSIGNEES: &str = "SELECT DISTINCT ON (g.project_id, want.email)
        g.project_id, want.email AS wanted, u.id, ue.email, u.username, t.slug
   FROM unnest($1::bigint[], $2::text[]) AS want(issue_id, email)
   JOIN group_links gl ON gl.linked_type = 'issue' AND gl.linked_id = want.issue_id
   JOIN groups g ON g.id = gl.group_id
   JOIN user_emails ue ON lower(ue.email) = lower(want.email) AND ue.is_verified
   JOIN users u ON u.id = ue.user_id AND u.is_active
   JOIN organization_members om ON om.user_id = u.id
   JOIN team_members tm ON tm.organization_member_id = om.id AND tm.is_active
   JOIN teams t ON t.id = tm.team_id AND t.status = 'active'
               AND t.organization_id = om.organization_id
   JOIN project_teams pt ON pt.team_id = t.id AND pt.project_id = g.project_id
  ORDER BY g.project_id, want.email, u.id, ue.id, t.id";

/// For each (issue row, email) pair of `wanted`, by (project, email) for the
/// projects of the groups linked to the row: the user to assign to a group of
/// the project — among active users with a verified email equal to the email
/// ignoring case, the lowest id who is an active member of an active team that
/// has the project, with the email as stored and that team. Pairs without one
/// are absent.
pub async fn find_assignees(
    client: &impl GenericClient,
    wanted: &[(i64, &str)],
) -> Result<HashMap<(i64, String), Assignee>, Error> {
    let (issues, emails): (Vec<i64>, Vec<&str>) = wanted.iter().copied().unzip();
    let statement = client.prepare_cached(FIND_ASSIGNEES).await?;
    let rows = client.query(&statement, &[&issues, &emails]).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let assignee = Assignee {
                user_id: row.get(2),
                email: row.get(3),
                username: row.get(4),
                team: row.get(5),
            };
            ((row.get(0), row.get(1)), assignee)
        })
        .collect())
}

/// A write a push recorded (`outbound_writes`), as the echo check reads it.
#[derive(Debug, Clone)]
pub struct PushWrite {
    /// `assignee` or `status`.
    pub kind: String,
    /// The value written.
    pub value: String,
    /// When the push wrote it.
    pub written_at: DateTime<Utc>,
    /// Jira's `updated` read back after the write, once answered.
    pub jira_updated: Option<DateTime<Utc>>,
    /// Written within `sync::echo::IN_FLIGHT` of the transaction's start.
    pub in_flight: bool,
}

/// `$1` issue rows: see [`push_writes`].
pub const PUSH_WRITES: &str = concat!(
    "SELECT external_issue_id, kind, value, written_at, jira_updated,
        written_at > now() - interval '",
    "10 minutes",
    "' FROM outbound_writes WHERE external_issue_id = ANY($1)"
);

/// The writes pushes recorded on the rows `issues`, by row.
pub async fn push_writes(
    client: &impl GenericClient,
    issues: &[i64],
) -> Result<HashMap<i64, Vec<PushWrite>>, Error> {
    let statement = client.prepare_cached(PUSH_WRITES).await?;
    let rows = client.query(&statement, &[&issues]).await?;
    let mut writes: HashMap<i64, Vec<PushWrite>> = HashMap::new();
    for row in rows {
        let write = PushWrite {
            kind: row.get(1),
            value: row.get(2),
            written_at: row.get(3),
            jira_updated: row.get(4),
            in_flight: row.get(5),
        };
        writes.entry(row.get(0)).or_default().push(write);
    }
    Ok(writes)
}

/// `$1` issue rows, `$2` assignee watermarks, `$3` status watermarks (NULL:
/// unchanged): see [`set_watermarks`].
pub const SET_WATERMARKS: &str = "UPDATE external_issues ei
    SET assignee_synced_at = COALESCE(w.assignee_at, ei.assignee_synced_at),
        status_synced_at = COALESCE(w.status_at, ei.status_synced_at)
   FROM unnest($1::bigint[], $2::timestamptz[], $3::timestamptz[])
     AS w(id, assignee_at, status_at)
  WHERE ei.id = w.id";

/// An issue row's watermarks as a batch left them: `None` where unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct Watermarks {
    /// `assignee_synced_at`.
    pub assignee: Option<DateTime<Utc>>,
    /// `status_synced_at`.
    pub status: Option<DateTime<Utc>>,
}

/// The rows' ids, assignee and status watermarks as arrays: `$1`–`$3` of
/// [`SET_WATERMARKS`] and of `db::sync::MARK_SYNCED_ALL`.
pub type WatermarkColumns = (
    Vec<i64>,
    Vec<Option<DateTime<Utc>>>,
    Vec<Option<DateTime<Utc>>>,
);

impl Watermarks {
    /// `rows` (id, watermarks) as [`WatermarkColumns`].
    pub fn columns(rows: &[(i64, Watermarks)]) -> WatermarkColumns {
        let ids = rows.iter().map(|(id, _)| *id).collect();
        let assignee = rows.iter().map(|(_, w)| w.assignee).collect();
        let status = rows.iter().map(|(_, w)| w.status).collect();
        (ids, assignee, status)
    }
}

/// Gives each row (by id) its watermarks as the batch left them (rows locked by it).
pub async fn set_watermarks(
    client: &impl GenericClient,
    rows: &[(i64, Watermarks)],
) -> Result<(), Error> {
    let (ids, assignee, status) = Watermarks::columns(rows);
    let statement = client.prepare_cached(SET_WATERMARKS).await?;
    client
        .execute(&statement, &[&ids, &assignee, &status])
        .await?;
    Ok(())
}

/// `$1` groups, `$2` their projects, `$3` users, `$4` the integration writing
/// them: see [`assign`]. A row that holds the user already is not written
/// (the capture triggers of `migrations/V7__outbound.sql` see no change).
pub const ASSIGN_ALL: &str = concat!(
    "INSERT INTO group_assignees (group_id, project_id, user_id, team_id)
 SELECT a.group_id, a.project_id, a.user_id, NULL
   FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS a(group_id, project_id, user_id), ",
    tagged_origin!("4"),
    "
  WHERE tagged.origin IS NOT NULL
 ON CONFLICT (group_id) DO UPDATE
    SET user_id = EXCLUDED.user_id, team_id = NULL,
        project_id = EXCLUDED.project_id, date_added = now()
  WHERE group_assignees.user_id IS DISTINCT FROM EXCLUDED.user_id
     OR group_assignees.team_id IS NOT NULL"
);

/// Gives each group (group, project, user) its user, written by `integration_id`.
pub async fn assign(
    client: &impl GenericClient,
    integration_id: i64,
    rows: &[(i64, i64, i64)],
) -> Result<(), Error> {
    let groups: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let projects: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let users: Vec<i64> = rows.iter().map(|r| r.2).collect();
    let statement = client.prepare_cached(ASSIGN_ALL).await?;
    client
        .execute(&statement, &[&groups, &projects, &users, &integration_id])
        .await?;
    Ok(())
}

/// `$1` groups, `$2` the integration writing it: see [`unassign`].
pub const UNASSIGN_ALL: &str = concat!(
    "DELETE FROM group_assignees USING ",
    tagged_origin!("2"),
    " WHERE group_id = ANY($1) AND tagged.origin IS NOT NULL"
);

/// Removes the assignee of each of `groups`, written by `integration_id`.
pub async fn unassign(
    client: &impl GenericClient,
    integration_id: i64,
    groups: &[i64],
) -> Result<(), Error> {
    let statement = client.prepare_cached(UNASSIGN_ALL).await?;
    client
        .execute(&statement, &[&groups, &integration_id])
        .await?;
    Ok(())
}

/// One `activities` row written by an integration (`user_id` NULL).
#[derive(Debug, Clone)]
pub struct Activity {
    /// The group.
    pub group_id: i64,
    /// Its project.
    pub project_id: i64,
    /// `assigned`, `unassigned`, `set_resolved`, …
    pub kind: &'static str,
    /// Its data.
    pub data: serde_json::Value,
}

/// `$1` groups, `$2` projects, `$3` types, `$4` data: see [`insert_activities`].
pub const INSERT_ACTIVITIES: &str =
    "INSERT INTO activities (group_id, project_id, type, user_id, data)
 SELECT a.group_id, a.project_id, a.type, NULL, a.data
   FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::jsonb[])
   WITH ORDINALITY AS a(group_id, project_id, type, data, n)
  ORDER BY a.n";

/// Writes `activities`, in their order.
pub async fn insert_activities(
    client: &impl GenericClient,
    activities: &[Activity],
) -> Result<(), Error> {
    let groups: Vec<i64> = activities.iter().map(|a| a.group_id).collect();
    let projects: Vec<i64> = activities.iter().map(|a| a.project_id).collect();
    let kinds: Vec<&str> = activities.iter().map(|a| a.kind).collect();
    let data: Vec<&serde_json::Value> = activities.iter().map(|a| &a.data).collect();
    let statement = client.prepare_cached(INSERT_ACTIVITIES).await?;
    client
        .execute(&statement, &[&groups, &projects, &kinds, &data])
        .await?;
    Ok(())
}
