//! `/issues?key=KEY` — one issue's decisions, as `jirasync explain` tells them —
//! and `/events` — the newest sync events of all issues, filtered.

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{issue_link, layout, time, unavailable};
use crate::console::Console;
use crate::console::data::{self, EventFilter, number};
use crate::console::guard::Caller;
use crate::sync::audit::{RETENTION_DAYS, SyncEvent};

/// Decisions shown at most.
const LIMIT: i64 = 100;

/// `?key=&integration=`.
#[derive(Debug, Deserialize)]
pub struct IssueQuery {
    key: Option<String>,
    integration: Option<String>,
}

fn table(events: &[SyncEvent], link_keys: bool) -> Markup {
    html! {
        table {
            thead { tr {
                th { "Time" } th { "Issue" } th { "Organization" } th { "Kind" } th { "Outcome" } th { "What happened" }
            } }
            tbody {
                @for event in events {
                    tr {
                        td { (time(Some(event.at))) }
                        td {
                            @if link_keys { a href=(issue_link(&event.issue_key)) { (event.issue_key) } }
                            @else { (event.issue_key) }
                        }
                        td { (event.organization.as_deref().unwrap_or("-")) }
                        td { (event.decision.kind()) }
                        td { (event.decision.outcome()) }
                        td { (event.sentence().to_string()) }
                    }
                }
            }
        }
    }
}

/// An issue's history.
pub async fn issue(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<IssueQuery>,
) -> Response {
    let csrf = caller.csrf();
    let key = query
        .key
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let integration = number(query.integration.as_ref(), "integration");
    let form = html! {
        form method="get" action="/issues" {
            label for="key" { "Issue key" }
            input id="key" name="key" value=(key.unwrap_or("")) required;
            label for="integration" { "Integration id" }
            input id="integration" name="integration" inputmode="numeric"
                value=(query.integration.as_deref().unwrap_or(""));
            button type="submit" { "Show history" }
        }
    };
    let integration = match integration {
        Ok(integration) => integration,
        Err(message) => {
            let body = html! { (form) p class="error" role="alert" { (message) } };
            return (
                StatusCode::BAD_REQUEST,
                layout("Issue history", "/issues", csrf, body),
            )
                .into_response();
        }
    };
    let Some(key) = key else {
        return layout("Issue history", "/issues", csrf, form).into_response();
    };
    let events = match data::issue_events(&console, key, integration, LIMIT).await {
        Ok(events) => events,
        Err(error) => {
            return unavailable("Issue history", "/issues", csrf, "The sync history", &error);
        }
    };
    let body = html! {
        (form)
        h2 { "History of " (key) }
        @if events.is_empty() {
            p { "Nothing is recorded for " (key) " in the last " (RETENTION_DAYS) " days: check that \
                the issue is linked to a group of an organization with sync on, that Jira sends \
                webhooks to jirasync, and the dead letters." }
        } @else {
            (table(&events, false))
        }
    };
    layout("Issue history", "/issues", csrf, body).into_response()
}

/// The newest sync events.
pub async fn events(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
    Query(filter): Query<EventFilter>,
) -> Response {
    let csrf = caller.csrf();
    let form = html! {
        form method="get" action="/events" {
            label for="outcome" { "Outcome" }
            input id="outcome" name="outcome" value=(filter.outcome().unwrap_or("")) placeholder="assigned";
            label for="kind" { "Kind" }
            input id="kind" name="kind" value=(filter.kind().unwrap_or("")) placeholder="assignee";
            label for="integration" { "Integration id" }
            input id="integration" name="integration" inputmode="numeric"
                value=(filter.integration.as_deref().unwrap_or(""));
            button type="submit" { "Filter" }
        }
    };
    let integration = match filter.integration() {
        Ok(integration) => integration,
        Err(message) => {
            let body = html! { (form) p class="error" role="alert" { (message) } };
            return (
                StatusCode::BAD_REQUEST,
                layout("Sync events", "/events", csrf, body),
            )
                .into_response();
        }
    };
    let events = match data::events(
        &console,
        filter.outcome(),
        filter.kind(),
        integration,
        LIMIT,
    )
    .await
    {
        Ok(events) => events,
        Err(error) => {
            return unavailable("Sync events", "/events", csrf, "The sync events", &error);
        }
    };
    let body = html! {
        (form)
        @if events.is_empty() {
            p { "No sync event matches." }
        } @else {
            (table(&events, true))
        }
    };
    layout("Sync events", "/events", csrf, body).into_response()
}
