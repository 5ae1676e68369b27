//! Each decision's row — `kind`, `outcome`, `detail` — exactly as the rules wrote
//! it with `json!` before the decision was typed, and read back as itself.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::*;
use crate::sync::audit::detail::*;

fn at(rfc3339: &str) -> DateTime<Utc> {
    rfc3339.parse().expect("an RFC 3339 time")
}

/// Jira's clock, as a webhook's time (milliseconds) and as a watermark (micro).
const T1: &str = "2024-01-01T10:00:00.123Z";
const T2: &str = "2024-01-01T11:00:00.654321Z";
const FAR: &str = "9999-12-31T23:59:59Z";

fn clock(clamped: bool, reset: bool) -> Clock {
    Clock {
        event_time_clamped_from: clamped.then(|| at(FAR)),
        watermark_reset_from: reset.then(|| at(T2)),
    }
}

fn jane(via: Via) -> Option<Chosen> {
    let user = ChosenUser {
        id: 12,
        username: "jane".to_owned(),
        email: "jane@acme.io".to_owned(),
        team: "t".to_owned(),
    };
    Some(Chosen { user, via })
}

fn group(group_id: i64, result: AssigneeResult) -> AssigneeGroup {
    AssigneeGroup {
        group_id,
        project: "p".to_owned(),
        result,
        chosen: None,
        rejected: None,
    }
}

fn asked(email: Option<&str>, jira_user: Option<&str>) -> Option<Asked> {
    Some(Asked {
        email: email.map(str::to_owned),
        jira_user: jira_user.map(str::to_owned),
    })
}

fn status_group(group_id: i64, result: StatusResult) -> StatusGroup {
    StatusGroup {
        group_id,
        project: "p".to_owned(),
        result,
    }
}

/// (case, decision, kind, outcome, detail as the rules wrote it).
fn cases() -> Vec<(&'static str, Decision, &'static str, &'static str, Value)> {
    use AssigneeResult as A;
    let stale = Stale {
        event_time: at(T1),
        applied_up_to: at(T2),
        cloud: None,
        clock: clock(true, false),
    };
    let assigned = AssigneeGroup {
        chosen: jane(Via::Email),
        ..group(5, A::Assigned)
    };
    let kept = AssigneeGroup {
        chosen: jane(Via::UserMap),
        ..group(5, A::Unchanged)
    };
    let turned_away = AssigneeGroup {
        rejected: Some(vec![RejectedUser {
            user_id: 3,
            username: "bob".to_owned(),
            reason: "inactive".to_owned(),
        }]),
        ..group(5, A::NoCandidate)
    };
    vec![
        (
            "a stale assignee change",
            Decision::AssigneeStale(stale.clone()),
            "assignee",
            "stale",
            json!({"event_time": T1, "applied_up_to": T2, "event_time_clamped_from": FAR}),
        ),
        (
            "a stale status change",
            Decision::StatusStale(Stale {
                clock: Clock::default(),
                ..stale
            }),
            "status",
            "stale",
            json!({"event_time": T1, "applied_up_to": T2}),
        ),
        (
            "an assignee change no organization links",
            Decision::NotLinked(NotLinked {
                sync_flag: SyncFlag::SyncReverseAssignment,
                cloud: None,
                clock: Clock::default(),
            }),
            "assignee",
            "not_linked",
            json!({"reason": "not_linked", "sync_flag": "sync_reverse_assignment"}),
        ),
        (
            "a status change no organization links",
            Decision::NotLinked(NotLinked {
                sync_flag: SyncFlag::SyncStatusReverse,
                cloud: None,
                clock: clock(true, false),
            }),
            "status",
            "not_linked",
            json!({"reason": "not_linked", "sync_flag": "sync_status_reverse",
                   "event_time_clamped_from": FAR}),
        ),
        (
            "an assignment by email",
            Decision::Assignee(Assignment {
                groups: vec![assigned, group(6, A::Unchanged)],
                asked: asked(Some("Jane@Acme.io"), Some("jane")),
                cloud: None,
                clock: clock(true, true),
            }),
            "assignee",
            "assigned",
            json!({
                "groups": [
                    {"group_id": 5, "project": "p", "result": "assigned", "via": "email",
                     "user": {"id": 12, "username": "jane", "email": "jane@acme.io", "team": "t"}},
                    {"group_id": 6, "project": "p", "result": "unchanged"}
                ],
                "email": "Jane@Acme.io",
                "jira_user": "jane",
                "event_time_clamped_from": FAR,
                "watermark_reset_from": T2
            }),
        ),
        (
            "an assignee kept, by the user map",
            Decision::Assignee(Assignment {
                groups: vec![kept],
                asked: asked(None, Some("jdoe")),
                cloud: None,
                clock: Clock::default(),
            }),
            "assignee",
            "unchanged",
            json!({
                "groups": [
                    {"group_id": 5, "project": "p", "result": "unchanged", "via": "user_map",
                     "user": {"id": 12, "username": "jane", "email": "jane@acme.io", "team": "t"}}
                ],
                "email": null,
                "jira_user": "jdoe"
            }),
        ),
        (
            "an unassignment",
            Decision::Assignee(Assignment {
                groups: vec![group(5, A::Unassigned), group(6, A::Unchanged)],
                asked: None,
                cloud: None,
                clock: Clock::default(),
            }),
            "assignee",
            "unassigned",
            json!({"groups": [
                {"group_id": 5, "project": "p", "result": "unassigned"},
                {"group_id": 6, "project": "p", "result": "unchanged"}
            ]}),
        ),
        (
            "nobody to unassign",
            Decision::Assignee(Assignment {
                groups: vec![group(5, A::Unchanged)],
                asked: None,
                cloud: None,
                clock: Clock::default(),
            }),
            "assignee",
            "unchanged",
            json!({"groups": [{"group_id": 5, "project": "p", "result": "unchanged"}]}),
        ),
        (
            "no candidate",
            Decision::Assignee(Assignment {
                groups: vec![turned_away],
                asked: asked(Some("bob@acme.io"), None),
                cloud: None,
                clock: Clock::default(),
            }),
            "assignee",
            "no_candidate",
            json!({
                "groups": [{"group_id": 5, "project": "p", "result": "no_candidate",
                            "rejected": [{"user_id": 3, "username": "bob", "reason": "inactive"}]}],
                "email": "bob@acme.io",
                "jira_user": null
            }),
        ),
        (
            "no candidate, and nobody turned away",
            Decision::Assignee(Assignment {
                groups: vec![AssigneeGroup {
                    rejected: Some(Vec::new()),
                    ..group(5, A::NoCandidate)
                }],
                asked: asked(None, Some("jdoe")),
                cloud: None,
                clock: Clock::default(),
            }),
            "assignee",
            "no_candidate",
            json!({
                "groups": [{"group_id": 5, "project": "p", "result": "no_candidate", "rejected": []}],
                "email": null,
                "jira_user": "jdoe"
            }),
        ),
        (
            "a missing email",
            Decision::Assignee(Assignment {
                groups: vec![group(5, A::MissingEmail)],
                asked: asked(None, Some("hidden")),
                cloud: None,
                clock: Clock::default(),
            }),
            "assignee",
            "missing_email",
            json!({
                "groups": [{"group_id": 5, "project": "p", "result": "missing_email"}],
                "email": null,
                "jira_user": "hidden"
            }),
        ),
        (
            "an organization without linked groups",
            Decision::Assignee(Assignment {
                groups: Vec::new(),
                asked: asked(Some("jane@acme.io"), None),
                cloud: None,
                clock: Clock::default(),
            }),
            "assignee",
            "unchanged",
            json!({"groups": [], "email": "jane@acme.io", "jira_user": null}),
        ),
        (
            "a status nobody syncs",
            Decision::StatusNotSynced(NotSynced {
                reason: NotSyncedReason::NoOrganizationSyncsStatuses,
                clock: Clock::default(),
            }),
            "status",
            "not_synced",
            json!({"reason": "no_organization_syncs_statuses"}),
        ),
        (
            "a status without an access token",
            Decision::StatusNotSynced(NotSynced {
                reason: NotSyncedReason::NoAccessToken,
                clock: clock(true, false),
            }),
            "status",
            "not_synced",
            json!({"reason": "no_access_token", "event_time_clamped_from": FAR}),
        ),
        (
            "a status change that crosses no boundary",
            Decision::NoDoneBoundary(NoDoneBoundary {
                clock: clock(false, true),
            }),
            "status",
            "unchanged",
            json!({"reason": "no_done_boundary", "watermark_reset_from": T2}),
        ),
        (
            "a resolution",
            Decision::Status(StatusChange {
                from: GroupStatus::Unresolved,
                to: GroupStatus::Resolved,
                groups: vec![
                    status_group(5, StatusResult::Resolved),
                    status_group(6, StatusResult::Unchanged),
                ],
                clock: clock(true, true),
            }),
            "status",
            "resolved",
            json!({
                "from": "unresolved",
                "to": "resolved",
                "groups": [
                    {"group_id": 5, "project": "p", "result": "resolved"},
                    {"group_id": 6, "project": "p", "result": "unchanged"}
                ],
                "event_time_clamped_from": FAR,
                "watermark_reset_from": T2
            }),
        ),
        (
            "an unresolution",
            Decision::Status(StatusChange {
                from: GroupStatus::Resolved,
                to: GroupStatus::Unresolved,
                groups: vec![status_group(5, StatusResult::Unresolved)],
                clock: Clock::default(),
            }),
            "status",
            "unresolved",
            json!({"from": "resolved", "to": "unresolved",
                   "groups": [{"group_id": 5, "project": "p", "result": "unresolved"}]}),
        ),
        (
            "groups resolved already",
            Decision::Status(StatusChange {
                from: GroupStatus::Unresolved,
                to: GroupStatus::Resolved,
                groups: vec![status_group(5, StatusResult::Unchanged)],
                clock: Clock::default(),
            }),
            "status",
            "unchanged",
            json!({"from": "unresolved", "to": "resolved",
                   "groups": [{"group_id": 5, "project": "p", "result": "unchanged"}]}),
        ),
        (
            "a stale move",
            Decision::KeyStale(KeyStale {
                from: "OPS-7".to_owned(),
                to: "DEMO-1".to_owned(),
                event_time: at(T1),
                applied_up_to: at(T2),
                clock: Clock::default(),
            }),
            "key",
            "stale",
            json!({"from": "OPS-7", "to": "DEMO-1", "event_time": T1, "applied_up_to": T2}),
        ),
        (
            "a move",
            Decision::Rekeyed(Rekeyed {
                from: "OPS-7".to_owned(),
                to: "DEMO-1".to_owned(),
                merged: None,
                clock: Clock::default(),
            }),
            "key",
            "rekeyed",
            json!({"from": "OPS-7", "to": "DEMO-1"}),
        ),
        (
            "a move merged into the new key's row",
            Decision::Rekeyed(Rekeyed {
                from: "OPS-7".to_owned(),
                to: "DEMO-1".to_owned(),
                merged: Some(Merged {
                    merged_into: 9,
                    links_moved: 2,
                    duplicate_links_dropped: 1,
                }),
                clock: clock(true, true),
            }),
            "key",
            "rekeyed",
            json!({"from": "OPS-7", "to": "DEMO-1", "merged_into": 9, "links_moved": 2,
                   "duplicate_links_dropped": 1, "event_time_clamped_from": FAR,
                   "watermark_reset_from": T2}),
        ),
        (
            "a row integration migrate moved to Cloud",
            Decision::Migrated(Migrated {
                from_integration: 1,
                to_integration: 2,
                clock: Clock::default(),
            }),
            "key",
            "migrated",
            json!({"from_integration": 1, "to_integration": 2}),
        ),
        (
            "a move with nothing to re-key",
            Decision::NothingToRekey(NothingToRekey {
                from: "OPS-7".to_owned(),
                to: "DEMO-1".to_owned(),
                clock: Clock::default(),
            }),
            "key",
            "unchanged",
            json!({"from": "OPS-7", "to": "DEMO-1", "reason": "no_issue_with_old_key"}),
        ),
        (
            "the echo of a pushed assignee",
            Decision::Echo(Echo {
                kind: PushKind::Assignee,
                echo_of: "amy".to_owned(),
                written_at: at(T1),
                jira_updated: Some(at(T2)),
                clock: Clock::default(),
            }),
            "assignee",
            "echo",
            json!({"echo_of": "amy", "written_at": T1, "jira_updated": T2}),
        ),
        (
            "the echo of a pushed status, its write unanswered yet",
            Decision::Echo(Echo {
                kind: PushKind::Status,
                echo_of: "10001".to_owned(),
                written_at: at(T1),
                jira_updated: None,
                clock: Clock::default(),
            }),
            "status",
            "echo",
            json!({"echo_of": "10001", "written_at": T1}),
        ),
        (
            "an assignee pushed",
            Decision::Outbound(Pushed {
                kind: PushKind::Assignee,
                outcome: PushOutcome::Pushed,
                group_id: 7,
                change: PushChange::Assign,
                user: Some(PushUser {
                    id: 12,
                    username: "jane".to_owned(),
                }),
                jira_user: Some("jane.doe".to_owned()),
                via: Some(JiraUserVia::UserMap),
                from: Some("bob".to_owned()),
                to: Some("jane.doe".to_owned()),
                ..Pushed::default()
            }),
            "assignee_outbound",
            "pushed",
            json!({"group_id": 7, "change": "assign", "user": {"id": 12, "username": "jane"},
                   "jira_user": "jane.doe", "via": "user_map", "from": "bob", "to": "jane.doe"}),
        ),
        (
            "a transition Jira refused",
            Decision::Outbound(Pushed {
                kind: PushKind::Status,
                outcome: PushOutcome::Refused,
                group_id: 7,
                change: PushChange::Resolve,
                to: Some("Done".to_owned()),
                transition: Some("31".to_owned()),
                status: Some(400),
                jira_message: Some("Root cause is required".to_owned()),
                ..Pushed::default()
            }),
            "status_outbound",
            "refused",
            json!({"group_id": 7, "change": "resolve", "to": "Done", "transition": "31",
                   "status": 400, "jira_message": "Root cause is required"}),
        ),
        (
            "a push of a change from the integration itself",
            Decision::Outbound(Pushed {
                kind: PushKind::Assignee,
                outcome: PushOutcome::SameOrigin,
                group_id: 7,
                change: PushChange::Unassign,
                origin_integration_id: Some(3),
                ..Pushed::default()
            }),
            "assignee_outbound",
            "same_origin",
            json!({"group_id": 7, "change": "unassign", "origin_integration_id": 3}),
        ),
        (
            "a Cloud assignee found by the lookup",
            Decision::Assignee(Assignment {
                groups: vec![group(6, A::Unchanged)],
                asked: asked(Some("mia@acme.io"), Some("5b10ac8d")),
                cloud: Some(CloudAssignee {
                    account_id: "5b10ac8d".to_owned(),
                    email_source: Some(EmailSource::Lookup),
                    sources_tried: None,
                    fix: None,
                }),
                clock: Clock::default(),
            }),
            "assignee",
            "unchanged",
            json!({
                "groups": [{"group_id": 6, "project": "p", "result": "unchanged"}],
                "email": "mia@acme.io", "jira_user": "5b10ac8d",
                "account_id": "5b10ac8d", "email_source": "lookup"
            }),
        ),
        (
            "a Cloud assignee without an email anywhere",
            Decision::Assignee(Assignment {
                groups: vec![group(6, A::MissingEmail)],
                asked: asked(None, Some("5b10ac8d")),
                cloud: Some(CloudAssignee {
                    account_id: "5b10ac8d".to_owned(),
                    email_source: None,
                    sources_tried: Some(vec![
                        SourceTried {
                            source: EmailSource::Payload,
                            result: SourceResult::Hidden,
                        },
                        SourceTried {
                            source: EmailSource::Lookup,
                            result: SourceResult::NotFound,
                        },
                        SourceTried {
                            source: EmailSource::UserMap,
                            result: SourceResult::NoMapping,
                        },
                    ]),
                    fix: Some(
                        "jirasync user-map set --integration 3 --jira-user 5b10ac8d --user USERNAME"
                            .to_owned(),
                    ),
                }),
                clock: Clock::default(),
            }),
            "assignee",
            "missing_email",
            json!({
                "groups": [{"group_id": 6, "project": "p", "result": "missing_email"}],
                "email": null, "jira_user": "5b10ac8d",
                "account_id": "5b10ac8d", "email_source": null,
                "sources_tried": [
                    {"source": "payload", "result": "hidden"},
                    {"source": "lookup", "result": "not_found"},
                    {"source": "user_map", "result": "no_mapping"}
                ],
                "fix": "jirasync user-map set --integration 3 --jira-user 5b10ac8d --user USERNAME"
            }),
        ),
        (
            "a stale change of a Cloud assignee",
            Decision::AssigneeStale(Stale {
                event_time: at(T1),
                applied_up_to: at(T2),
                cloud: Some(CloudAssignee {
                    account_id: "5b10ac8d".to_owned(),
                    email_source: Some(EmailSource::Payload),
                    sources_tried: None,
                    fix: None,
                }),
                clock: Clock::default(),
            }),
            "assignee",
            "stale",
            json!({"event_time": T1, "applied_up_to": T2,
                   "account_id": "5b10ac8d", "email_source": "payload"}),
        ),
        (
            "a duplicate Cloud delivery",
            Decision::Duplicate(DuplicateDelivery {
                webhook_identifier: "1234-abcd".to_owned(),
                first_message_id: "m-1".to_owned(),
                clock: Clock::default(),
            }),
            "delivery",
            "duplicate",
            json!({"webhook_identifier": "1234-abcd", "first_message_id": "m-1"}),
        ),
    ]
}

#[test]
fn each_decision_writes_the_row_the_rules_wrote() {
    for (case, decision, kind, outcome, detail) in cases() {
        assert_eq!(
            (decision.kind(), decision.outcome(), decision.detail()),
            (kind, outcome, detail),
            "{case}"
        );
        assert_eq!(decision.labels(), Some((kind, outcome)), "{case}");
    }
}

#[test]
fn each_row_reads_back_as_its_decision() {
    for (case, decision, kind, outcome, detail) in cases() {
        assert_eq!(
            Decision::from_row(kind, outcome, detail),
            decision,
            "{case}"
        );
    }
}

#[test]
fn a_decision_serializes_as_its_row_and_back() {
    for (case, decision, kind, outcome, detail) in cases() {
        let row = json!({"kind": kind, "outcome": outcome, "detail": detail});
        assert_eq!(json!(decision), row, "{case}");
        let read: Decision = serde_json::from_value(row).expect("a row");
        assert_eq!(read, decision, "{case}");
    }
}

#[test]
fn a_row_this_version_does_not_write_reads_as_it_is_stored() {
    let assigned = json!({"groups": [{"group_id": 5, "project": "p", "result": "assigned"}]});
    let rows = [
        ("an unknown kind", "label", "added", json!({"label": "x"})),
        (
            "an unknown outcome",
            "assignee",
            "teleported",
            json!({"groups": []}),
        ),
        (
            "a detail of another shape",
            "status",
            "resolved",
            json!({"groups": "none"}),
        ),
        (
            "an outcome its groups contradict",
            "assignee",
            "unchanged",
            assigned,
        ),
        (
            "an extra key",
            "key",
            "rekeyed",
            json!({"from": "A-1", "to": "B-1", "by": "x"}),
        ),
        (
            "a reason of another decision",
            "key",
            "unchanged",
            json!({"from": "A-1", "to": "B-1",
            "reason": "not_linked"}),
        ),
        (
            "a time not as chrono writes it",
            "status",
            "stale",
            json!({
            "event_time": "2024-01-01T10:00:00+00:00", "applied_up_to": T2}),
        ),
        ("not an object", "status", "not_synced", json!(null)),
    ];
    for (case, kind, outcome, detail) in rows {
        let row = Row {
            kind: kind.to_owned(),
            outcome: outcome.to_owned(),
            detail: detail.clone(),
        };
        let read = Decision::from_row(kind, outcome, detail.clone());
        assert_eq!(read, Decision::Unknown(row), "{case}");
        assert_eq!(
            (read.kind(), read.outcome(), read.detail()),
            (kind, outcome, detail)
        );
        assert_eq!((read.labels(), read.clock()), (None, None), "{case}");
    }
}
