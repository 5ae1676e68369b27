//! `jirasync integration migrate --from DC --to CLOUD` (docs/reference.md §11.7):
//! Atlassian's migration assistant keeps issue keys, so a Data Center
//! integration's issues, links, sync flags, status maps and user map move to a
//! Cloud one by key. First the user map is translated by asking Cloud for each
//! mapped user's verified emails ([`users`], reads only: a failure changes
//! nothing); then everything is written in one transaction ([`moves`]), rolled
//! back for a dry run. Called by `commands::integration_migrate`.

mod moves;
mod store;
mod users;

use std::time::Duration;

use serde::Serialize;

use crate::db::{DbPool, StoreError};
use crate::integration::{self, AccessError, Integration, Provider};
pub use users::Reason;

/// What to migrate.
#[derive(Debug, Clone)]
pub struct Request {
    /// The `jira_server` integration.
    pub from: i64,
    /// The active `jira_cloud` integration.
    pub to: i64,
    /// Only the issues of these Jira projects (keys `KEY-…`); empty: all.
    pub projects: Vec<String>,
    /// Set the source's status to `disabled` once moved.
    pub disable_source: bool,
    /// Compute everything, change nothing.
    pub dry_run: bool,
    /// `JIRASYNC_MAX_EVENT_SKEW`: which stored watermarks bind when two rows merge
    /// (`sync::clock::horizon`).
    pub max_event_skew: Duration,
}

/// What the migration did (or, dry, would do): `--json` prints exactly this.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The Data Center integration.
    pub from: i64,
    /// The Cloud integration.
    pub to: i64,
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Source rows re-pointed to the target.
    pub issues_moved: u64,
    /// Source rows merged into the target's row of their key.
    pub issues_merged: u64,
    /// Group links that reach the target through the moved or merged rows.
    pub links: u64,
    /// Links dropped in merges: the group was linked to both rows.
    pub duplicate_links_dropped: u64,
    /// Organizations that got a link to the target.
    pub organizations_linked: u64,
    /// Organizations whose link to the target gained the source's flags.
    pub organizations_updated: u64,
    /// The user map's translation.
    pub user_map: UserMap,
    /// Whether the source was disabled.
    pub source_disabled: bool,
}

/// The user map's translation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UserMap {
    /// Mappings written to the target.
    pub translated: u64,
    /// Cloud accounts the target maps already (kept as they are).
    pub already_mapped: u64,
    /// Source mappings no Cloud account was found for.
    pub unresolved: Vec<Unresolved>,
}

/// A source mapping no Cloud account was found for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unresolved {
    /// The Data Center user (`name` or `key`).
    pub jira_user: String,
    /// The username it maps to.
    pub user: String,
    /// Why.
    pub reason: Reason,
}

/// Why a migration did not run; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// `--from` is no Data Center integration.
    #[error(
        "--from {0}: no jira_server integration has this id; list them with `jirasync integration list`; nothing was changed"
    )]
    NoSource(i64),
    /// `--to` is no Cloud integration.
    #[error(
        "--to {0}: no jira_cloud integration has this id; connect the site with `jirasync integration add --cloud`; nothing was changed"
    )]
    NoTarget(i64),
    /// `--to` is not active.
    #[error(
        "--to {id}: the jira_cloud integration is {status}, not active; enable it with `jirasync integration enable {id}`; nothing was changed"
    )]
    TargetInactive {
        /// The integration.
        id: i64,
        /// Its status.
        status: String,
    },
    /// The target has no credentials that can call Jira.
    #[error(
        "--to {0}: the jira_cloud integration has no credentials to search Cloud's users; connect it again with `jirasync integration add --cloud`; nothing was changed"
    )]
    CannotCall(i64),
    /// A Cloud call failed.
    #[error(
        "failed to search the users of Jira Cloud at {base_url}: {source}; run the command again once it answers; nothing was changed"
    )]
    Cloud {
        /// Where the call went.
        base_url: String,
        /// Why it failed.
        #[source]
        source: AccessError,
    },
    /// An integration could not be read.
    #[error("failed to read the integrations; nothing was changed")]
    Store(#[from] StoreError),
    /// No database connection could be had.
    #[error("failed to get a database connection; nothing was changed")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The database failed.
    #[error("failed to migrate the rows; nothing was changed")]
    Db(#[from] tokio_postgres::Error),
}

/// Runs the migration `request` asks for; `progress` hears about long steps
/// (for stderr). On an error nothing was changed.
pub async fn run(
    pool: &DbPool,
    request: &Request,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Report, MigrateError> {
    let target = {
        let client = pool.get().await?;
        checked(&client, pool, request).await?
    };
    let mappings = {
        let client = pool.get().await?;
        store::source_mappings(&client, request.from).await?
    };
    let resolved = users::resolve(pool, &target, &mappings, progress).await?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let mut report = moves::apply(&tx, pool.keys(), request, &resolved, progress).await?;
    if request.dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    report.dry_run = request.dry_run;
    Ok(report)
}

/// The target, once `--from` is known to be a Data Center integration and `--to`
/// an active Cloud one.
async fn checked(
    client: &deadpool_postgres::Object,
    pool: &DbPool,
    request: &Request,
) -> Result<Integration, MigrateError> {
    let source = integration::by_id(client, pool.keys(), request.from).await?;
    if !source.is_some_and(|source| source.provider == Provider::Server) {
        return Err(MigrateError::NoSource(request.from));
    }
    let target = integration::by_id(client, pool.keys(), request.to)
        .await?
        .filter(|target| target.provider == Provider::Cloud)
        .ok_or(MigrateError::NoTarget(request.to))?;
    if target.status != integration::ACTIVE {
        return Err(MigrateError::TargetInactive {
            id: target.id,
            status: target.status,
        });
    }
    Ok(target)
}
