//! The status mapping (docs/reference.md §10.6): per organization, integration
//! and Jira project, the Jira status a resolved group's issue moves to, the one an
//! unresolved group's moves to, and the resolution to fill
//! (`integration_external_projects`, Sentry's `IntegrationExternalProject`).

use serde::Serialize;

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
}

/// Whether the Jira status `id` / `name` is the mapped `status`: its id, or its
/// name ignoring case.
pub fn is_status(status: &str, id: &str, name: &str) -> bool {
    status == id
        || status.eq_ignore_ascii_case(name)
        || status.to_lowercase() == name.to_lowercase()
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
}
