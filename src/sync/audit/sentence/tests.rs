//! The sentence of each decision, from its row as the rules write it: the text
//! `jirasync explain` printed before the decision was typed, word for word.

use serde_json::{Value, json};

use super::*;

const T1: &str = "2024-01-01T10:00:00.123Z";
const T2: &str = "2024-01-01T11:00:00.654321Z";
const FAR: &str = "9999-12-31T23:59:59Z";

const ACME: Place<'static> = Place {
    issue_key: "OPS-7",
    organization_id: Some(3),
    organization: Some("acme"),
};
const ORGANIZATION_3: Place<'static> = Place {
    organization: None,
    ..ACME
};
const NOWHERE: Place<'static> = Place {
    organization_id: None,
    organization: None,
    ..ACME
};

fn jane(result: &str, via: &str) -> Value {
    json!({"group_id": 5, "project": "p", "result": result, "via": via,
           "user": {"id": 12, "username": "jane", "email": "jane@acme.io", "team": "t"}})
}

fn group(group_id: i64, result: &str) -> Value {
    json!({"group_id": group_id, "project": "p", "result": result})
}

/// (case, kind, outcome, detail, where, sentence): rows as the rules write them,
/// and two this version does not.
fn rows() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    Value,
    Place<'static>,
    String,
)> {
    let unknown =
        json!({"event_time_clamped_from": "someday", "watermark_reset_from": "yesterday"});
    let merged = json!({"from": "OPS-7", "to": "DEMO-1", "merged_into": 9, "links_moved": 2,
                        "duplicate_links_dropped": 1});
    let turned_away = json!([{"user_id": 3, "username": "bob", "reason": "inactive"},
                             {"user_id": 4, "username": "carol", "reason": "email not verified"}]);
    let rows = [
        (
            "a stale assignee change",
            "assignee",
            "stale",
            json!({"event_time": T1, "applied_up_to": T2}),
            ACME,
            "skipped in acme: a later change of OPS-7 (Jira time 2024-01-01T11:00:00.654321Z) was \
          applied there already; this one is from 2024-01-01T10:00:00.123Z",
        ),
        (
            "a stale status change",
            "status",
            "stale",
            json!({"event_time": T1, "applied_up_to": T2}),
            ORGANIZATION_3,
            "skipped in organization 3: a later change of OPS-7 (Jira time \
          2024-01-01T11:00:00.654321Z) was applied there already; this one is from \
          2024-01-01T10:00:00.123Z",
        ),
        (
            "an unlinked assignee change",
            "assignee",
            "not_linked",
            json!({"reason": "not_linked", "sync_flag": "sync_reverse_assignment"}),
            NOWHERE,
            "changed nothing: no organization with sync_reverse_assignment on has OPS-7 linked to \
          a group",
        ),
        (
            "an unlinked status change",
            "status",
            "not_linked",
            json!({"reason": "not_linked", "sync_flag": "sync_status_reverse"}),
            NOWHERE,
            "changed nothing: no organization with sync_status_reverse on has OPS-7 linked to a \
          group",
        ),
        (
            "an assignment by email",
            "assignee",
            "assigned",
            json!({"groups": [jane("assigned", "email"), group(6, "unchanged")],
                "email": "Jane@Acme.io", "jira_user": "jane"}),
            ACME,
            "assigned jane (user 12) to group 5 in acme: the Jira assignee's email Jane@Acme.io is \
          their verified email, and they are on team t, which has project p",
        ),
        (
            "an assignee kept, by the user map",
            "assignee",
            "unchanged",
            json!({"groups": [jane("unchanged", "user_map")], "email": null, "jira_user": "jdoe"}),
            ACME,
            "kept jane (user 12) (already assigned) to group 5 in acme: Jira user jdoe is mapped to \
          them (jirasync user-map), and they are on team t, which has project p",
        ),
        (
            "nobody to unassign",
            "assignee",
            "unchanged",
            json!({"groups": [group(5, "unchanged"), group(6, "unchanged")]}),
            ACME,
            "changed nothing in acme: the Jira issue has no assignee and groups 5, 6 had none",
        ),
        (
            "an unassignment",
            "assignee",
            "unassigned",
            json!({"groups": [group(5, "unassigned"), group(6, "unchanged")]}),
            ACME,
            "unassigned group 5 in acme: the Jira issue has no assignee now",
        ),
        (
            "no candidate",
            "assignee",
            "no_candidate",
            json!({"groups": [{"group_id": 5, "project": "p", "result": "no_candidate",
                            "rejected": turned_away}],
                "email": "bob@acme.io", "jira_user": null}),
            ACME,
            "assigned nobody to group 5 in acme: nobody eligible has the Jira assignee's email \
          bob@acme.io; turned away bob (user 3): inactive; carol (user 4): email not verified",
        ),
        (
            "no candidate, nobody turned away",
            "assignee",
            "no_candidate",
            json!({"groups": [{"group_id": 5, "project": "p", "result": "no_candidate",
                            "rejected": []}],
                "email": null, "jira_user": "jdoe"}),
            ACME,
            "assigned nobody to group 5 in acme: nobody eligible has Jira user jdoe; no user has \
          that email verified, and no user-map entry names the Jira user",
        ),
        (
            "a missing email",
            "assignee",
            "missing_email",
            json!({"groups": [group(5, "missing_email")], "email": null, "jira_user": "hidden"}),
            ACME,
            "assigned nobody in acme: Jira did not give the assignee's email (hidden by its \
          privacy settings, or no access token to ask) and Jira user hidden is not mapped \
          (`jirasync user-map set`)",
        ),
        (
            "a missing email of a Cloud account",
            "assignee",
            "missing_email",
            json!({"groups": [group(5, "missing_email")], "email": null, "jira_user": "5b10ac8d",
                   "account_id": "5b10ac8d", "email_source": null,
                   "sources_tried": [{"source": "payload", "result": "hidden"},
                                     {"source": "lookup", "result": "hidden"},
                                     {"source": "user_map", "result": "no_mapping"}],
                   "fix": "jirasync user-map set --integration 3 --jira-user 5b10ac8d --user USERNAME"}),
            ACME,
            "assigned nobody in acme: Jira Cloud account 5b10ac8d has no email jirasync could \
          read (payload: hidden, lookup: hidden, user_map: no_mapping) and is not mapped to a \
          user; map it with `jirasync user-map set --integration 3 --jira-user 5b10ac8d --user \
          USERNAME`",
        ),
        (
            "a duplicate Cloud delivery",
            "delivery",
            "duplicate",
            json!({"webhook_identifier": "1234-abcd", "first_message_id": "m-1"}),
            NOWHERE,
            "changed nothing: Jira Cloud sent delivery 1234-abcd of OPS-7 again; message m-1 \
          handled it already",
        ),
        (
            "a missing email of an unnamed user",
            "assignee",
            "missing_email",
            json!({"groups": [group(5, "missing_email")], "email": null, "jira_user": null}),
            ACME,
            "assigned nobody in acme: Jira did not give the assignee's email (hidden by its \
          privacy settings, or no access token to ask) and Jira user (unnamed) is not mapped \
          (`jirasync user-map set`)",
        ),
        (
            "no linked group, the clock noted",
            "assignee",
            "unchanged",
            json!({"groups": [], "event_time_clamped_from": FAR, "watermark_reset_from": T2}),
            ACME,
            "changed nothing in acme: no group there is linked to the issue; Jira's event time \
          9999-12-31T23:59:59Z lay beyond the time jirasync received the change plus \
          JIRASYNC_MAX_EVENT_SKEW, so the receive time was used; the watermark there, \
          2024-01-01T11:00:00.654321Z, lay beyond any receive time (set before event times \
          were bounded) and was replaced",
        ),
        (
            "no access token",
            "status",
            "not_synced",
            json!({"reason": "no_access_token"}),
            NOWHERE,
            "left the status alone: the integration has no access token to read Jira's statuses \
          (connect it with OAuth or a PAT)",
        ),
        (
            "no organization syncs statuses",
            "status",
            "not_synced",
            json!({"reason": "no_organization_syncs_statuses"}),
            NOWHERE,
            "left the status alone: no organization syncs statuses back (sync_status_reverse) for \
          this issue",
        ),
        (
            "no done boundary",
            "status",
            "unchanged",
            json!({"reason": "no_done_boundary"}),
            ACME,
            "left the status alone in acme: the change does not move into or out of Jira's done \
          category",
        ),
        (
            "a resolution",
            "status",
            "resolved",
            json!({"from": "unresolved", "to": "resolved", "groups": [group(5, "resolved"),
                group(6, "resolved"), group(7, "unchanged")]}),
            ACME,
            "resolved groups 5, 6 in acme: the Jira status moved into the done category",
        ),
        (
            "an unresolution",
            "status",
            "unresolved",
            json!({"from": "resolved", "to": "unresolved", "groups": [group(5, "unresolved")]}),
            ACME,
            "unresolved group 5 in acme: the Jira status moved out of the done category",
        ),
        (
            "groups resolved already",
            "status",
            "unchanged",
            json!({"from": "unresolved", "to": "resolved", "groups": [group(5, "unchanged")]}),
            ACME,
            "left the status alone in acme: the linked groups are resolved already, or ignored",
        ),
        (
            "a stale move",
            "key",
            "stale",
            json!({"from": "OPS-7", "to": "DEMO-1", "event_time": T1, "applied_up_to": T2}),
            ACME,
            "left OPS-7 as it is in acme: a later move (Jira time 2024-01-01T11:00:00.654321Z) was \
          applied there already; this move to DEMO-1 is from 2024-01-01T10:00:00.123Z",
        ),
        (
            "a move",
            "key",
            "rekeyed",
            json!({"from": "OPS-7", "to": "DEMO-1"}),
            ACME,
            "re-keyed OPS-7 to DEMO-1 in acme: the issue moved to another project",
        ),
        (
            "a merge",
            "key",
            "rekeyed",
            merged,
            ACME,
            "re-keyed OPS-7 to DEMO-1 in acme: the issue moved to another project; merged into \
          the existing DEMO-1 (2 links moved, 1 duplicates dropped)",
        ),
        (
            "nothing to re-key",
            "key",
            "unchanged",
            json!({"from": "OPS-7", "to": "DEMO-1", "reason": "no_issue_with_old_key"}),
            NOWHERE,
            "move of OPS-7 to DEMO-1: nothing to re-key (no organization with a sync flag on had \
          the old key; moved already?)",
        ),
        (
            "an unknown row",
            "label",
            "added",
            json!({}),
            ACME,
            "label: added in acme",
        ),
        (
            "the echo of a push",
            "assignee",
            "echo",
            json!({"echo_of": "amy", "written_at": T1, "jira_updated": T2}),
            ACME,
            "changed nothing in acme: the echo of jirasync's own push of assignee amy to OPS-7 at \
          2024-01-01T10:00:00.123Z",
        ),
        (
            "an assignee pushed",
            "assignee_outbound",
            "pushed",
            json!({"group_id": 7, "change": "assign", "user": {"id": 12, "username": "amy.jones"},
                   "jira_user": "amy", "via": "email", "to": "amy"}),
            ACME,
            "pushed assignee amy.jones to OPS-7 in acme as Jira user amy (found by a verified \
          email): group 7 is assigned to them",
        ),
        (
            "an unassignment Jira had already",
            "assignee_outbound",
            "unchanged",
            json!({"group_id": 7, "change": "unassign"}),
            ACME,
            "left OPS-7 as it is in acme: it has no assignee in Jira already (group 7)",
        ),
        (
            "a transition Jira refused",
            "status_outbound",
            "refused",
            json!({"group_id": 7, "change": "resolve", "to": "Done", "status": 400,
                   "jira_message": "Root cause is required"}),
            ACME,
            "did not transition OPS-7 to Done in acme: Jira answered 400: Root cause is required",
        ),
        (
            "no Jira user for the assignee",
            "assignee_outbound",
            "no_jira_user",
            json!({"group_id": 7, "change": "assign", "user": {"id": 12, "username": "amy.jones"},
                   "user_map": "ajones", "emails_tried": ["amy@acme.io"]}),
            ACME,
            "did not push assignee amy.jones to OPS-7 in acme: no Jira user found; the user map \
          names ajones, whom Jira does not know; no assignable Jira user has the verified email \
          amy@acme.io (map them with `jirasync user-map set`)",
        ),
        (
            "a row integration migrate moved to Cloud",
            "key",
            "migrated",
            json!({"from_integration": 1, "to_integration": 2}),
            ACME,
            "moved OPS-7 in acme from Data Center integration 1 to Jira Cloud integration 2 \
          (jirasync integration migrate): its links go on syncing through Cloud",
        ),
        (
            "an unknown row, the clock noted",
            "assignee",
            "teleported",
            unknown,
            NOWHERE,
            "assignee: teleported; Jira's event time someday lay beyond the time jirasync \
          received the change plus JIRASYNC_MAX_EVENT_SKEW, so the receive time was used; the \
          watermark there, yesterday, lay beyond any receive time (set before event times \
          were bounded) and was replaced",
        ),
    ];
    rows.into_iter()
        .map(|(case, kind, outcome, detail, place, text)| {
            (case, kind, outcome, detail, place, text.to_owned())
        })
        .collect()
}

#[test]
fn each_decision_reads_as_the_sentence_explain_prints() {
    for (case, kind, outcome, detail, place, text) in rows() {
        let decision = Decision::from_row(kind, outcome, detail);
        let known = !case.starts_with("an unknown row");
        assert_eq!(decision.labels().is_some(), known, "{case}: {decision:?}");
        assert_eq!(decision.sentence(place).to_string(), text, "{case}");
    }
}

#[test]
fn a_time_is_told_as_the_detail_holds_it() {
    for text in [
        T1,
        T2,
        FAR,
        "2024-01-01T10:00:00Z",
        "2024-01-01T10:00:00.123456789Z",
    ] {
        let at: DateTime<Utc> = text.parse().expect("a time");
        assert_eq!((json!(at), time(&at)), (json!(text), text.to_owned()));
    }
}
