//! The status mapping (docs/reference.md §10.6): per organization, integration
//! and Jira project, the Jira status a resolved group's issue moves to, the one an
//! unresolved group's moves to, and the resolution to fill
//! (`integration_external_projects`, Sentry's `IntegrationExternalProject`).
//! `jirasync status-map` writes and lists it; a status push [`find`]s it.

use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::{Error, Row};

/// One project's mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mapping {
    /// A Jira project key or id.
    pub project: String,
    /// The status (id or name) of a resolved group's issue.
    pub resolved_status: Option<String>,
    /// The status (id or name) of an unresolved group's issue.
    pub unresolved_status: Option<String>,
    /// The resolution (name) filled when the transition asks for one.
    pub resolution: Option<String>,
}

impl Mapping {
    /// The status a group's issue moves to: resolved or not.
    pub fn target(&self, resolved: bool) -> Option<&str> {
        if resolved {
            self.resolved_status.as_deref()
        } else {
            self.unresolved_status.as_deref()
        }
    }

    /// The mapping `project, resolved, unresolved, resolution` of `row`, from `at`.
    fn read(row: &Row, at: usize) -> Self {
        Self {
            project: row.get(at),
            resolved_status: row.get(at + 1),
            unresolved_status: row.get(at + 2),
            resolution: row.get(at + 3),
        }
    }
}

/// Whether the Jira status `id` / `name` is the mapped `status`: its id, or its
/// name ignoring case.
pub fn is_status(status: &str, id: &str, name: &str) -> bool {
    status == id || status.to_lowercase() == name.to_lowercase()
}

/// A mapping with the integration and organization it belongs to: what
/// `status-map set` and `status-map list --json` print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The integration.
    pub integration_id: i64,
    /// The organization's slug.
    pub organization: String,
    /// The project and its statuses.
    #[serde(flatten)]
    pub mapping: Mapping,
}

/// An organization's link to an integration (`organization_integrations`):
/// where mappings are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The `organization_integrations` row.
    pub id: i64,
    /// The integration.
    pub integration_id: i64,
    /// The organization.
    pub organization_id: i64,
    /// Its slug.
    pub organization: String,
}

/// Why an organization's mappings for an integration cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// No organization has this slug.
    #[error("no organization has slug {0:?}")]
    NoOrganization(String),
    /// The organization does not use the integration.
    #[error(
        "organization {organization:?} is not linked to integration {integration_id} \
         (no organization_integrations row): link it first"
    )]
    NotLinked {
        /// The organization's slug.
        organization: String,
        /// The integration.
        integration_id: i64,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] Error),
}

/// The link of the organization with slug `organization` to `integration_id`.
pub async fn link(
    client: &impl GenericClient,
    integration_id: i64,
    organization: &str,
) -> Result<Link, LinkError> {
    let row = client
        .query_opt(
            "SELECT o.id, oi.id FROM organizations o
               LEFT JOIN organization_integrations oi
                      ON oi.organization_id = o.id AND oi.integration_id = $2
              WHERE o.slug = $1",
            &[&organization, &integration_id],
        )
        .await?
        .ok_or_else(|| LinkError::NoOrganization(organization.to_owned()))?;
    let id: Option<i64> = row.get(1);
    let id = id.ok_or_else(|| LinkError::NotLinked {
        organization: organization.to_owned(),
        integration_id,
    })?;
    Ok(Link {
        id,
        integration_id,
        organization_id: row.get(0),
        organization: organization.to_owned(),
    })
}

/// Stores `mapping` for its project under `link`, replacing the project's row
/// (also one written with the key in another case: keys are compared ignoring
/// case); what was stored.
pub async fn set(
    client: &impl GenericClient,
    link: &Link,
    mapping: &Mapping,
) -> Result<Entry, Error> {
    // One statement: the other-case row goes in the same snapshot as the upsert.
    client
        .execute(
            "WITH other_case AS (
                 DELETE FROM integration_external_projects
                  WHERE organization_integration_id = $1
                    AND upper(external_id) = upper($2) AND external_id <> $2
             )
             INSERT INTO integration_external_projects
                    (organization_integration_id, external_id, resolved_status, unresolved_status, resolution)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (organization_integration_id, external_id) DO UPDATE
                SET resolved_status = EXCLUDED.resolved_status,
                    unresolved_status = EXCLUDED.unresolved_status,
                    resolution = EXCLUDED.resolution",
            &[
                &link.id,
                &mapping.project,
                &mapping.resolved_status,
                &mapping.unresolved_status,
                &mapping.resolution,
            ],
        )
        .await?;
    Ok(Entry {
        integration_id: link.integration_id,
        organization: link.organization.clone(),
        mapping: mapping.clone(),
    })
}

/// Removes the mapping of `project` (its key in any case, or its id) of the
/// organization with slug `organization` and `integration_id`; whether there
/// was one.
pub async fn remove(
    client: &impl GenericClient,
    integration_id: i64,
    organization: &str,
    project: &str,
) -> Result<bool, Error> {
    let removed = client
        .execute(
            "DELETE FROM integration_external_projects p
               USING organization_integrations oi, organizations o
              WHERE p.organization_integration_id = oi.id AND oi.organization_id = o.id
                AND oi.integration_id = $1 AND o.slug = $2
                AND upper(p.external_id) = upper($3)",
            &[&integration_id, &organization, &project],
        )
        .await?;
    Ok(removed > 0)
}

/// Every mapping (of `integration_id`, of the organization with slug
/// `organization`, when given), by integration, organization and project.
pub async fn list(
    client: &impl GenericClient,
    integration_id: Option<i64>,
    organization: Option<&str>,
) -> Result<Vec<Entry>, Error> {
    let rows = client
        .query(
            "SELECT oi.integration_id, o.slug,
                    p.external_id, p.resolved_status, p.unresolved_status, p.resolution
               FROM integration_external_projects p
               JOIN organization_integrations oi ON oi.id = p.organization_integration_id
               JOIN organizations o ON o.id = oi.organization_id
              WHERE ($1::bigint IS NULL OR oi.integration_id = $1)
                AND ($2::text IS NULL OR o.slug = $2)
              ORDER BY oi.integration_id, o.slug, p.external_id",
            &[&integration_id, &organization],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| Entry {
            integration_id: row.get(0),
            organization: row.get(1),
            mapping: Mapping::read(row, 2),
        })
        .collect())
}

/// The mapping of the Jira project with key `project_key` and id `project_id`
/// for `organization_id` and `integration_id`: the row of its key (in any case)
/// when there is one, else the row of its id (as Sentry keys them). An empty
/// key or id matches nothing.
pub async fn find(
    client: &impl GenericClient,
    organization_id: i64,
    integration_id: i64,
    project_key: &str,
    project_id: &str,
) -> Result<Option<Mapping>, Error> {
    // Per status push: prepared once per connection.
    let statement = client
        .prepare_cached(
            "SELECT p.external_id, p.resolved_status, p.unresolved_status, p.resolution
               FROM integration_external_projects p
               JOIN organization_integrations oi ON oi.id = p.organization_integration_id
              WHERE oi.organization_id = $1 AND oi.integration_id = $2 AND p.external_id <> ''
                AND (upper(p.external_id) = upper($3) OR p.external_id = $4)
              ORDER BY upper(p.external_id) = upper($3) DESC, p.external_id = $3 DESC
              LIMIT 1",
        )
        .await?;
    let row = client
        .query_opt(
            &statement,
            &[&organization_id, &integration_id, &project_key, &project_id],
        )
        .await?;
    Ok(row.map(|row| Mapping::read(&row, 0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_is_its_id_or_its_name_in_any_case() {
        assert!(is_status("10001", "10001", "Done"));
        assert!(is_status("done", "10001", "Done"));
        assert!(is_status("ÉTÉ", "3", "été"));
        assert!(!is_status("Don", "10001", "Done"));
        assert!(!is_status("1000", "10001", "Done"));
    }

    #[test]
    fn an_entry_prints_flat_with_its_organization() {
        let entry = Entry {
            integration_id: 3,
            organization: "acme".to_owned(),
            mapping: Mapping {
                project: "ACC".to_owned(),
                resolved_status: Some("Done".to_owned()),
                unresolved_status: None,
                resolution: Some("Fixed".to_owned()),
            },
        };
        assert_eq!(
            serde_json::to_value(&entry).expect("JSON"),
            serde_json::json!({"integration_id": 3, "organization": "acme", "project": "ACC",
                "resolved_status": "Done", "unresolved_status": null, "resolution": "Fixed"})
        );
        assert_eq!(entry.mapping.target(true), Some("Done"));
        assert_eq!(entry.mapping.target(false), None);
    }
}
