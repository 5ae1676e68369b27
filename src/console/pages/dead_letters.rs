//! `/dead-letters` — what `dlq list` lists, never removing one, with *Replay*
//! per message id and *Replay all*, as `dlq replay` does.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{Markup, html};
use serde::Deserialize;

use super::{issue_link, layout, time_ms, unavailable};
use crate::console::data;
use crate::console::guard::Caller;
use crate::console::records::ReplayOne;
use crate::console::{Console, ReplayAsked};

/// Dead letters listed at most.
pub const LIMIT: usize = 200;

/// `?replayed=N` after a replay.
#[derive(Debug, Deserialize)]
pub struct Shown {
    replayed: Option<usize>,
}

/// The replay form's fields.
#[derive(Debug, Deserialize)]
pub struct ReplayForm {
    id: Option<String>,
    all: Option<String>,
}

/// The dead letters.
pub async fn page(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
    Query(shown): Query<Shown>,
) -> Response {
    let notice = shown
        .replayed
        .map(|n| html! { p class="notice" role="status" { "Replayed " (n) " message(s) to their source queues." } });
    render(&console, caller.csrf(), StatusCode::OK, notice).await
}

async fn render(
    console: &Console,
    csrf: &str,
    status: StatusCode,
    notice: Option<Markup>,
) -> Response {
    let letters = match data::dead_letters(console, LIMIT).await {
        Ok(letters) => letters,
        Err(error) => {
            return unavailable(
                "Dead letters",
                "/dead-letters",
                csrf,
                "The dead-letter queue",
                &error,
            );
        }
    };
    let body = html! {
        @if let Some(notice) = notice { (notice) }
        @if letters.is_empty() {
            p { "No message is dead-lettered." }
        } @else {
            form method="post" action="/dead-letters/replay" {
                input type="hidden" name="csrf_token" value=(csrf);
                input type="hidden" name="all" value="true";
                button type="submit" data-confirm="Replay every dead letter to its source queue?" { "Replay all" }
            }
            table {
                thead { tr {
                    th { "Message id" } th { "Type" } th { "Reason" } th { "Attempts" } th { "Source queue" }
                    th { "Dead-lettered" } th { "Integration" } th { "Issue" } th { "Replay" }
                } }
                tbody {
                    @for letter in &letters {
                        tr {
                            td { code { (letter.id) } }
                            td { (letter.r#type) }
                            td { (letter.error) }
                            td { (letter.attempts) }
                            td { (letter.source_queue) }
                            td { (time_ms(letter.dead_lettered_at_ms)) }
                            td { @match letter.integration_id { Some(id) => { (id) }, None => { "-" } } }
                            td {
                                @match &letter.issue_key {
                                    Some(key) => { a href=(issue_link(key)) { (key) } }
                                    None => { "-" }
                                }
                            }
                            td {
                                form method="post" action="/dead-letters/replay" class="inline" {
                                    input type="hidden" name="csrf_token" value=(csrf);
                                    input type="hidden" name="id" value=(letter.id);
                                    button type="submit" { "Replay" }
                                }
                            }
                        }
                    }
                }
            }
            @if letters.len() == LIMIT { p { "Showing the first " (LIMIT) "." } }
        }
    };
    (status, layout("Dead letters", "/dead-letters", csrf, body)).into_response()
}

/// Replays one message id or all: `303` back saying how many moved, `404` when
/// the id is not there.
pub async fn replay(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
    Form(form): Form<ReplayForm>,
) -> Response {
    let csrf = caller.csrf();
    let asked = match (form.all.as_deref(), form.id.as_deref().map(str::trim)) {
        (Some("true"), _) => ReplayAsked::All,
        (_, Some(id)) if !id.is_empty() => ReplayAsked::Id(id.to_owned()),
        _ => {
            let notice = html! { p class="error" role="alert" { "Say which message to replay (id) or all." } };
            return render(&console, csrf, StatusCode::BAD_REQUEST, Some(notice)).await;
        }
    };
    match console.replay(&asked).await {
        Ok(ReplayOne::Moved(moved)) => {
            Redirect::to(&format!("/dead-letters?replayed={moved}")).into_response()
        }
        Ok(ReplayOne::NotFound { looked_at }) => {
            let notice = html! { p class="error" role="alert" {
                "No dead letter has that message id among the " (looked_at) " looked at: nothing was replayed."
            } };
            render(&console, csrf, StatusCode::NOT_FOUND, Some(notice)).await
        }
        Err(error) => unavailable("Dead letters", "/dead-letters", csrf, "The replay", &error),
    }
}
