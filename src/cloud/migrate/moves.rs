//! Step 2 of a migration (docs/reference.md §11.7), in the caller's one
//! transaction: the user map's accounts written to the target; the source's
//! issue rows, locked in id order, re-pointed to the target or merged into its
//! row of the same key as §5.8 merges (`db::rekey::merge`), each with a
//! `sync_events` row (`key` / `migrated`); their organizations linked to the
//! target or given the source's flags; the status maps copied; the source
//! disabled when asked.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use serde_json::Value;

use super::store::{self, IssueRow};
use super::users::Resolved;
use super::{MigrateError, Report, Request, Unresolved};
use crate::db::rekey;
use crate::integration::{self, DISABLED};
use crate::secrets::Keyring;
use crate::sync::audit::detail::{Clock, Migrated};
use crate::sync::audit::{Decision, INSERT_SYNC_EVENT};
use crate::sync::clock;

/// Every this many rows, a line of progress.
const PROGRESS_EVERY: usize = 500;

/// Writes the migration in `tx` (the caller commits, or rolls a dry run back);
/// what it did.
pub async fn apply(
    tx: &Transaction<'_>,
    keys: &Keyring,
    request: &Request,
    resolved: &[Resolved],
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Report, MigrateError> {
    let (from, to) = (request.from, request.to);
    let mut report = Report {
        from,
        to,
        ..Report::default()
    };
    translate(tx, to, resolved, &mut report).await?;

    let projects: Vec<String> = request.projects.iter().map(|p| p.to_uppercase()).collect();
    let rows = store::lock_issues(tx, from, to, &projects).await?;
    // Taken once the rows are locked, as §5.8 takes it.
    let horizon = clock::horizon(request.max_event_skew);
    let sources: Vec<&IssueRow> = rows.iter().filter(|r| r.integration_id == from).collect();
    let total = sources.len();
    let mut organizations = BTreeSet::new();
    for (done, source) in sources.into_iter().enumerate() {
        let survivor = rows.iter().find(|row| {
            row.integration_id == to
                && row.organization_id == source.organization_id
                && row.key == source.key
        });
        match survivor {
            None => {
                report.links += store::move_issue(tx, source.id, from, to).await?;
                report.issues_moved += 1;
            }
            Some(survivor) => {
                store::hand_over_pending(tx, source.id, survivor.id, to).await?;
                let moved_at = latest(
                    clock::binding(source.key_synced_at, horizon),
                    clock::binding(survivor.key_synced_at, horizon),
                );
                let merged = rekey::merge(tx, source.id, survivor.id, horizon, moved_at).await?;
                report.links += merged.moved;
                report.duplicate_links_dropped += merged.dropped;
                report.issues_merged += 1;
            }
        }
        audit(tx, source, from, to).await?;
        organizations.insert(source.organization_id);
        if (done + 1) % PROGRESS_EVERY == 0 {
            progress(&format!("migrated {} of {total} issues", done + 1));
        }
    }

    for organization_id in organizations {
        link(tx, organization_id, from, to, &mut report).await?;
    }
    store::copy_status_maps(tx, from, to).await?;
    if request.disable_source && !request.dry_run {
        integration::set_status(tx, keys, from, DISABLED).await?;
        report.source_disabled = true;
    }
    Ok(report)
}

/// Writes the accounts found to the target's user map, unless it maps them
/// already.
async fn translate(
    tx: &Transaction<'_>,
    to: i64,
    resolved: &[Resolved],
    report: &mut Report,
) -> Result<(), MigrateError> {
    for Resolved { mapping, account } in resolved {
        match account {
            Ok(account_id) => {
                if store::map_account(tx, to, account_id, mapping.user_id).await? {
                    report.user_map.translated += 1;
                } else {
                    report.user_map.already_mapped += 1;
                }
            }
            Err(reason) => report.user_map.unresolved.push(Unresolved {
                jira_user: mapping.jira_user.clone(),
                user: mapping.username.clone(),
                reason: *reason,
            }),
        }
    }
    Ok(())
}

/// Records that `row` went from `from` to `to` (`explain` shows it after the
/// Data Center history, which stays as it is).
async fn audit(
    tx: &Transaction<'_>,
    row: &IssueRow,
    from: i64,
    to: i64,
) -> Result<(), tokio_postgres::Error> {
    let decision = Decision::Migrated(Migrated {
        from_integration: from,
        to_integration: to,
        clock: Clock::default(),
    });
    let statement = tx.prepare_cached(INSERT_SYNC_EVENT).await?;
    let none: Option<&str> = None;
    let no_time: Option<DateTime<Utc>> = None;
    tx.execute(
        &statement,
        &[
            &none,
            &to,
            &row.key,
            &no_time,
            &decision.kind(),
            &Some(row.organization_id),
            &decision.outcome(),
            &decision.detail(),
        ],
    )
    .await?;
    Ok(())
}

/// Gives `organization_id` a link to `to` like its link to `from`, or its link
/// to `to` the flags of the one to `from` it lacks.
async fn link(
    tx: &Transaction<'_>,
    organization_id: i64,
    from: i64,
    to: i64,
    report: &mut Report,
) -> Result<(), tokio_postgres::Error> {
    let Some(source) = store::org_link(tx, organization_id, from).await? else {
        return Ok(());
    };
    match store::org_link(tx, organization_id, to).await? {
        None => {
            store::link_org(tx, organization_id, to, &source.config, &source.status).await?;
            report.organizations_linked += 1;
        }
        Some(target) => {
            let config = gained(&target.config, &source.config);
            if config != target.config {
                store::set_config(tx, target.id, &config).await?;
                report.organizations_updated += 1;
            }
        }
    }
    Ok(())
}

/// `target`'s config with what `source` has that it lacks: a setting it does
/// not have, a flag it has off that `source` has on. Its own settings stay.
fn gained(target: &Value, source: &Value) -> Value {
    let (Some(own), Some(theirs)) = (target.as_object(), source.as_object()) else {
        return target.clone();
    };
    let mut config = own.clone();
    for (name, value) in theirs {
        let lacks = match own.get(name) {
            None => true,
            Some(mine) => *value == Value::Bool(true) && *mine != Value::Bool(true),
        };
        if lacks {
            config.insert(name.clone(), value.clone());
        }
    }
    Value::Object(config)
}

/// The later of two times, either unknown.
fn latest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    a.max(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_link_gains_the_flags_it_lacks_and_keeps_its_own() {
        let target = json!({"sync_reverse_assignment": false, "sync_status_forward": true, "x": 1});
        let source = json!({"sync_reverse_assignment": true, "sync_status_forward": false,
                            "sync_status_reverse": false, "x": 2});
        assert_eq!(
            gained(&target, &source),
            json!({"sync_reverse_assignment": true, "sync_status_forward": true,
                   "sync_status_reverse": false, "x": 1})
        );
        assert_eq!(gained(&target, &target), target);
    }
}
