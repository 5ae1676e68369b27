//! The status push (docs/reference.md §10.5): a resolved or unresolved group
//! moves its Jira issue to the status mapped for the issue's project
//! (`mapping`), through the first workflow transition that leads there, with
//! the mapped resolution when the transition asks for one. No mapping, Jira
//! there already, or no transition leading there: recorded, nothing sent. A
//! transition that asks for a field jirasync cannot fill is refused. Called by
//! the push's handler (`worker::jobs::outbound`).

use deadpool_postgres::GenericClient;

use super::mapping::{self, is_status};
use super::plan::{Plan, PlanError, Target, Write};
use crate::jira::issue::{Named, Transition};
use crate::jira::{JiraClient, JiraError};
use crate::sync::audit::detail::{PushChange, PushKind, PushOutcome, Pushed};

/// `$1` group: its status, no row when it is gone.
pub const CURRENT: &str = "SELECT status FROM groups WHERE id = $1";

/// Whether the group is resolved now (`Some(true)`) or unresolved
/// (`Some(false)`); `None` when it is in another status (ignored, being
/// deleted) or gone: nothing to push.
pub async fn current(
    db: &impl GenericClient,
    group_id: i64,
) -> Result<Option<bool>, tokio_postgres::Error> {
    let status: Option<String> = db
        .query_opt(&db.prepare_cached(CURRENT).await?, &[&group_id])
        .await?
        .map(|row| row.get(0));
    Ok(match status.as_deref() {
        Some("resolved") => Some(true),
        Some("unresolved") => Some(false),
        _ => None,
    })
}

/// Reads the issue from Jira and plans the push of the group's status
/// (`resolved` or not) through the project's mapping (§10.5).
pub async fn plan_status(
    db: &impl GenericClient,
    jira: &JiraClient,
    target: &Target<'_>,
    resolved: bool,
) -> Result<Plan, PlanError> {
    let mut pushed = Pushed {
        kind: PushKind::Status,
        group_id: target.group_id,
        change: if resolved {
            PushChange::Resolve
        } else {
            PushChange::Unresolve
        },
        ..Pushed::default()
    };
    let issue = jira
        .get_issue(target.issue_key)
        .await
        .map_err(|error| PlanError::jira(error, &pushed))?;
    let updated = issue.updated();
    let now = issue.fields.status.unwrap_or_default();
    pushed.from = Some(now.name.clone()).filter(|name| !name.is_empty());
    let project = issue.fields.project.unwrap_or_default();
    let mapping = mapping::find(
        db,
        target.organization_id,
        target.integration_id,
        &project.key,
        &project.id,
    )
    .await?;
    let Some((mapping, status)) = mapping.as_ref().and_then(|mapping| {
        mapping
            .target(resolved)
            .filter(|status| !status.is_empty())
            .map(|status| (mapping, status.to_owned()))
    }) else {
        pushed.outcome = PushOutcome::NotMapped;
        return Ok(Plan::Decided(pushed, updated));
    };
    if is(&status, &now) {
        pushed.outcome = PushOutcome::Unchanged;
        pushed.to = Some(now.name);
        return Ok(Plan::Decided(pushed, updated));
    }
    pushed.to = Some(status.clone());
    let transitions = jira
        .transitions(target.issue_key)
        .await
        .map_err(|error| PlanError::jira(error, &pushed))?;
    let Some((transition, to)) = transitions.iter().find_map(|transition| {
        let to = transition.to.as_ref()?;
        is(&status, to).then_some((transition, to))
    }) else {
        pushed.outcome = PushOutcome::NoTransition;
        pushed.transition = Some(offered(&transitions));
        return Ok(Plan::Decided(pushed, updated));
    };
    if !to.name.is_empty() {
        pushed.to = Some(to.name.clone());
    }
    pushed.transition = Some(transition.name.clone());
    let resolution = fill(transition, mapping.resolution.as_deref())
        .map_err(|error| PlanError::jira(error, &pushed))?;
    Ok(Plan::Write(Write::transition(
        target.issue_key,
        transition.id.clone(),
        to.id.clone(),
        resolution,
        pushed,
    )))
}

/// Whether Jira's status `named` is the mapped `status`.
fn is(status: &str, named: &Named) -> bool {
    is_status(status, &named.id, &named.name)
}

/// The resolution to send with `transition`: the mapped `resolution` when its
/// screen has a resolution field. An error when it requires a field jirasync
/// cannot fill: one without a default, other than a resolution it has.
fn fill(transition: &Transition, resolution: Option<&str>) -> Result<Option<String>, JiraError> {
    let resolution = resolution
        .filter(|_| transition.fields.contains_key("resolution"))
        .map(str::to_owned);
    let missing: Vec<String> = transition
        .fields
        .iter()
        .filter(|(id, field)| {
            field.required
                && !field.has_default_value
                && !(id.as_str() == "resolution" && resolution.is_some())
        })
        .map(|(id, field)| match field.name.as_str() {
            "" => id.clone(),
            name => format!("{name} ({id})"),
        })
        .collect();
    if missing.is_empty() {
        Ok(resolution)
    } else {
        Err(JiraError::fields_required(
            &transition.label(),
            &missing.join(", "),
        ))
    }
}

/// The transitions offered, for a `no_transition` detail: `name → status`, or `none`.
fn offered(transitions: &[Transition]) -> String {
    if transitions.is_empty() {
        return "none".to_owned();
    }
    transitions
        .iter()
        .map(|transition| {
            let to = transition.to.as_ref().map_or("?", |to| to.name.as_str());
            format!("{} → {to}", transition.name)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jira::issue::TransitionField;

    fn transition(fields: &[(&str, bool, bool)]) -> Transition {
        Transition {
            id: "5".into(),
            name: "Resolve Issue".into(),
            to: Some(Named {
                id: "10001".into(),
                name: "Done".into(),
            }),
            fields: fields
                .iter()
                .map(|&(id, required, has_default_value)| {
                    let name = if id == "resolution" { "Resolution" } else { "" };
                    let field = TransitionField {
                        required,
                        name: name.into(),
                        has_default_value,
                    };
                    (id.to_owned(), field)
                })
                .collect(),
        }
    }

    #[test]
    fn the_resolution_is_sent_only_when_mapped_and_on_the_screen() {
        let cases = [
            (
                "on the screen, mapped",
                &[("resolution", false, false)][..],
                Some("Fixed"),
                Ok(Some("Fixed")),
            ),
            (
                "required, mapped",
                &[("resolution", true, false)],
                Some("Fixed"),
                Ok(Some("Fixed")),
            ),
            ("not on the screen", &[], Some("Fixed"), Ok(None)),
            (
                "on the screen, not mapped",
                &[("resolution", false, false)],
                None,
                Ok(None),
            ),
            (
                "required with a default",
                &[("resolution", true, true)],
                None,
                Ok(None),
            ),
            (
                "required, not mapped",
                &[("resolution", true, false)],
                None,
                Err("Resolution (resolution)"),
            ),
            (
                "another required field",
                &[("resolution", true, false), ("customfield_1", true, false)],
                Some("Fixed"),
                Err("customfield_1"),
            ),
            (
                "another field, optional",
                &[("customfield_1", false, false)],
                None,
                Ok(None),
            ),
        ];
        for (case, fields, resolution, expected) in cases {
            let filled = fill(&transition(fields), resolution);
            match (filled, expected) {
                (Ok(sent), Ok(expected)) => assert_eq!(sent.as_deref(), expected, "{case}"),
                (Err(error), Err(named)) => {
                    assert!(error.is_refusal(), "{case}");
                    let message = error.jira_message().unwrap_or_default();
                    assert!(message.contains(named), "{case}: {message}");
                    assert!(message.contains("Resolve Issue (5)"), "{case}: {message}");
                }
                (filled, expected) => panic!("{case}: {filled:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn the_transitions_offered_are_named_with_their_targets() {
        let mut other = transition(&[]);
        other.name = "Start Progress".into();
        other.to = None;
        assert_eq!(
            offered(&[transition(&[]), other]),
            "Resolve Issue → Done, Start Progress → ?"
        );
        assert_eq!(offered(&[]), "none");
    }
}
