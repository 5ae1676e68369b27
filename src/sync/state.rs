//! What a unit of work reads once for all its changes, and writes once
//! (docs/reference.md §5.12). Before the first change is applied, one statement
//! locks the rows of every issue key of the batch (by integration, then row
//! id: the order every transaction locks in), and four more, sent together,
//! read for all of them the linked groups, their assignees (locked), the writes
//! of pushes (for the echo check) and the users the emails name (`db::batch`).
//! The changes are then decided in memory, in order, each seeing what the ones
//! before did: the watermarks they moved, the assignees they set. What they
//! decided is written
//! at the end, one statement per table: the watermarks, the assignments (one
//! per integration, so that each names its origin), the unassignments, the
//! activities in the order they were decided. A key the batch did not read
//! (after a move) is read when first asked for, the same way.
//!
//! A move renames rows: before one is applied, what is pending is written and
//! what was read is forgotten.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;
use futures_util::future::{BoxFuture, join_all};
use serde_json::json;

use super::audit::detail::{Clock, Echo, PushKind};
use super::change::Change;
use crate::db::batch::{self as q, Activity, Held, IssueRow, PushWrite, Watermarks};
use crate::db::pipelined::root_cause;
use crate::db::sync::{Assignee, ExternalIssue, LinkedGroup, Watermark, Writer};

/// A key a batch reads: its integration, the key, and the email its change
/// names the assignee by.
type Key<'a> = (i64, &'a str, Option<&'a str>);

/// The users the emails of `wanted` (issue row, email) name, by (project,
/// email); none asked, no statement.
async fn users(
    tx: &Object,
    wanted: &[(i64, &str)],
) -> Result<HashMap<(i64, String), Assignee>, tokio_postgres::Error> {
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    q::find_assignees(tx, wanted).await
}

/// A statement of [`State::write`], sent with the others.
type Write<'a> = BoxFuture<'a, Result<(), tokio_postgres::Error>>;

/// The rows a batch read, and its writes not yet made.
#[derive(Default)]
pub struct State {
    /// Rows of each (integration, key) read, in lock order; empty when none.
    issues: HashMap<(i64, String), Vec<IssueRow>>,
    /// Groups of each issue row read.
    groups: HashMap<i64, Vec<LinkedGroup>>,
    /// The assignee of each group read, as the batch has left it so far.
    held: HashMap<i64, Held>,
    /// Writes of pushes, by issue row.
    pushes: HashMap<i64, Vec<PushWrite>>,
    /// The user each (project, email as given) names; `None`: nobody.
    users: HashMap<(i64, String), Option<Assignee>>,
    /// Watermarks moved, by issue row.
    watermarks: BTreeMap<i64, Watermarks>,
    /// Groups whose assignee changed: as read, and who wrote last.
    assigned: BTreeMap<i64, Assignment>,
    /// Activities to write, in order.
    activities: Vec<Activity>,
}

/// A group whose assignee the batch changed.
struct Assignment {
    /// Its project.
    project_id: i64,
    /// Its assignee when read.
    before: Held,
    /// The integration whose change set it last (the origin of the write).
    integration_id: i64,
}

impl State {
    /// Locks and reads the rows every change of `changes` needs (both keys of a move).
    pub async fn read(tx: &Object, changes: &[&Change]) -> Result<Self, tokio_postgres::Error> {
        let mut state = Self::default();
        let mut keys: Vec<Key<'_>> = Vec::new();
        for change in changes {
            let email = change.assignee.as_ref().and_then(|a| a.email());
            keys.push((change.integration_id, change.key.as_str(), email));
            if let Some(from) = &change.moved_from {
                keys.push((change.integration_id, from.as_str(), None));
            }
        }
        state.read_keys(tx, &keys).await?;
        Ok(state)
    }

    /// Reads the rows of `keys` not read yet, and with them the users the
    /// emails name in the projects of their groups.
    async fn read_keys(
        &mut self,
        tx: &Object,
        keys: &[Key<'_>],
    ) -> Result<(), tokio_postgres::Error> {
        let mut seen = HashSet::new();
        let unread: Vec<(i64, &str)> = keys
            .iter()
            .map(|&(integration_id, key, _)| (integration_id, key))
            .filter(|&(i, k)| !self.issues.contains_key(&(i, k.to_owned())) && seen.insert((i, k)))
            .collect();
        if unread.is_empty() {
            return Ok(());
        }
        let rows = q::lock_issues(tx, &unread).await?;
        for &(integration_id, key) in &unread {
            self.issues
                .insert((integration_id, key.to_owned()), Vec::new());
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut wanted: Vec<(i64, &str)> = Vec::new();
        for row in &rows {
            ids.push((row.id, row.organization_id));
            for &(integration_id, key, email) in keys {
                if let Some(email) = email
                    && integration_id == row.integration_id
                    && key == row.key
                {
                    wanted.push((row.id, email));
                }
            }
        }
        let mut seen = HashSet::new();
        wanted.retain(|pair| seen.insert(*pair));
        for row in rows {
            let key = (row.integration_id, row.key.clone());
            self.issues.entry(key).or_default().push(row);
        }
        if ids.is_empty() {
            return Ok(());
        }
        let only_ids: Vec<i64> = ids.iter().map(|(id, _)| *id).collect();
        let (groups, held, pushes, users) = crate::statements!(
            groups = q::linked_groups(tx, &ids),
            held = q::lock_assignees(tx, &only_ids),
            pushes = q::push_writes(tx, &only_ids),
            users = self::users(tx, &wanted),
        );
        for (issue_id, group) in groups {
            let before = held.get(&group.group_id).copied().unwrap_or_default();
            self.held.entry(group.group_id).or_insert(before);
            self.groups.entry(issue_id).or_default().push(group);
        }
        self.pushes.extend(pushes);
        self.found(&wanted, &users);
        Ok(())
    }

    /// Notes the users `found` for the (issue row, email) pairs `wanted`: for
    /// each group of the row, the user the email names in its project, or nobody.
    fn found(&mut self, wanted: &[(i64, &str)], found: &HashMap<(i64, String), Assignee>) {
        for &(issue_id, email) in wanted {
            for group in self.groups.get(&issue_id).into_iter().flatten() {
                let key = (group.project_id, email.to_owned());
                let user = found.get(&key).cloned();
                self.users.entry(key).or_insert(user);
            }
        }
    }

    /// The issue's rows in organizations that sync `watermark`'s kind back, as
    /// the batch has left them; read (and locked) now if they were not.
    pub async fn issues(
        &mut self,
        tx: &Object,
        watermark: Watermark,
        integration_id: i64,
        key: &str,
    ) -> Result<Vec<ExternalIssue>, tokio_postgres::Error> {
        self.read_keys(tx, &[(integration_id, key, None)]).await?;
        let rows = self.issues.get(&(integration_id, key.to_owned()));
        Ok(rows
            .into_iter()
            .flatten()
            .filter(|row| match watermark {
                Watermark::Assignee => row.syncs_assignee,
                Watermark::Status => row.syncs_status,
            })
            .map(|row| ExternalIssue {
                id: row.id,
                organization_id: row.organization_id,
                synced_at: match watermark {
                    Watermark::Assignee => row.assignee_synced_at,
                    Watermark::Status => row.status_synced_at,
                },
            })
            .collect())
    }

    /// The push whose echo a change setting `value` of `kind` on row `issue` at
    /// Jira's time `at` is, if it is one (`sync::echo`).
    pub fn echo(
        &self,
        issue: i64,
        kind: PushKind,
        value: &str,
        at: Option<DateTime<Utc>>,
    ) -> Option<Echo> {
        let writes = self.pushes.get(&issue)?;
        let write = writes.iter().find(|w| {
            w.kind == kind.as_str()
                && w.value == value
                && match (at, w.jira_updated) {
                    (Some(at), Some(updated)) => at <= updated,
                    (_, None) => w.in_flight,
                    (None, Some(_)) => false,
                }
        })?;
        Some(Echo {
            kind,
            echo_of: value.to_owned(),
            written_at: write.written_at,
            jira_updated: write.jira_updated,
            clock: Clock::default(),
        })
    }

    /// Moves row `issue`'s `watermark` forward to `at` (never back), or to `at`
    /// whatever it was when `reset`.
    pub fn set_watermark(
        &mut self,
        issue: i64,
        watermark: Watermark,
        at: DateTime<Utc>,
        reset: bool,
    ) {
        let Some(row) = self
            .issues
            .values_mut()
            .flatten()
            .find(|row| row.id == issue)
        else {
            return;
        };
        let pending = self.watermarks.entry(issue).or_default();
        let (held, pending) = match watermark {
            Watermark::Assignee => (&mut row.assignee_synced_at, &mut pending.assignee),
            Watermark::Status => (&mut row.status_synced_at, &mut pending.status),
        };
        let next = match *held {
            Some(now) if !reset => now.max(at),
            _ => at,
        };
        *held = Some(next);
        *pending = Some(next);
    }

    /// The groups linked to row `issue` (read with it).
    pub fn groups(&self, issue: i64) -> Vec<LinkedGroup> {
        self.groups.get(&issue).cloned().unwrap_or_default()
    }

    /// The user `email` names for `group`'s project (a group of row `issue`):
    /// read with the batch, or now.
    pub async fn user(
        &mut self,
        tx: &Object,
        issue: i64,
        group: &LinkedGroup,
        email: &str,
    ) -> Result<Option<Assignee>, tokio_postgres::Error> {
        let key = (group.project_id, email.to_owned());
        if !self.users.contains_key(&key) {
            let wanted = [(issue, email)];
            let found = users(tx, &wanted).await?;
            self.found(&wanted, &found);
        }
        Ok(self.users.get(&key).cloned().flatten())
    }

    /// Assigns `user_id` to `group` unless it is assigned already; the
    /// `assigned` activity only when something changed. Whether it changed.
    pub fn assign(
        &mut self,
        group: &LinkedGroup,
        user_id: i64,
        stored_email: &str,
        by: Writer,
    ) -> bool {
        let held = self.held.entry(group.group_id).or_default();
        if held.user_id == Some(user_id) && held.team_id.is_none() {
            return false;
        }
        let before = *held;
        *held = Held {
            user_id: Some(user_id),
            team_id: None,
        };
        self.changed(group, before, by);
        let data = json!({
            "assignee": user_id.to_string(),
            "assigneeEmail": stored_email,
            "assigneeType": "user",
            "integration": by.provider.key,
            "integration_id": by.integration_id,
        });
        self.activity(group, "assigned", data);
        true
    }

    /// Removes `group`'s assignee; the `unassigned` activity only if there was
    /// one. Whether there was.
    pub fn unassign(&mut self, group: &LinkedGroup, by: Writer) -> bool {
        let held = self.held.entry(group.group_id).or_default();
        if !held.any() {
            return false;
        }
        let before = std::mem::take(held);
        self.changed(group, before, by);
        let data = json!({ "integration": by.provider.key, "integration_id": by.integration_id });
        self.activity(group, "unassigned", data);
        true
    }

    /// Notes that `by` changed `group`'s assignee from `before`.
    fn changed(&mut self, group: &LinkedGroup, before: Held, by: Writer) {
        let assignment = self.assigned.entry(group.group_id).or_insert(Assignment {
            project_id: group.project_id,
            before,
            integration_id: by.integration_id,
        });
        assignment.integration_id = by.integration_id;
    }

    /// An activity of `group` to write with the batch, after those before it.
    pub fn activity(&mut self, group: &LinkedGroup, kind: &'static str, data: serde_json::Value) {
        self.activities.push(Activity {
            group_id: group.group_id,
            project_id: group.project_id,
            kind,
            data,
        });
    }

    /// Writes what is pending: watermarks, assignments, unassignments,
    /// activities — their statements sent together, executed in that order.
    pub async fn write(&mut self, tx: &Object) -> Result<(), tokio_postgres::Error> {
        let watermarks: Vec<_> = std::mem::take(&mut self.watermarks).into_iter().collect();
        // Per integration: the origin its writes name.
        let mut assign: BTreeMap<i64, Vec<(i64, i64, i64)>> = BTreeMap::new();
        let mut unassign: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for (group_id, assignment) in std::mem::take(&mut self.assigned) {
            let after = self.held.get(&group_id).copied().unwrap_or_default();
            if after == assignment.before {
                continue;
            }
            let by = assignment.integration_id;
            match after.user_id {
                Some(user_id) => {
                    let row = (group_id, assignment.project_id, user_id);
                    assign.entry(by).or_default().push(row);
                }
                None => unassign.entry(by).or_default().push(group_id),
            }
        }
        let activities = std::mem::take(&mut self.activities);
        let mut writes: Vec<Write<'_>> = Vec::new();
        if !watermarks.is_empty() {
            writes.push(Box::pin(q::set_watermarks(tx, &watermarks)));
        }
        for (integration_id, rows) in &assign {
            writes.push(Box::pin(q::assign(tx, *integration_id, rows)));
        }
        for (integration_id, groups) in &unassign {
            writes.push(Box::pin(q::unassign(tx, *integration_id, groups)));
        }
        if !activities.is_empty() {
            writes.push(Box::pin(q::insert_activities(tx, &activities)));
        }
        root_cause(join_all(writes).await)
    }

    /// Writes what is pending and forgets what was read (before a move renames rows).
    pub async fn write_and_forget(&mut self, tx: &Object) -> Result<(), tokio_postgres::Error> {
        self.write(tx).await?;
        let users = std::mem::take(&mut self.users);
        *self = Self {
            users,
            ..Self::default()
        };
        Ok(())
    }
}
