//! The console's pages (docs/reference.md §12.7), rendered on the server with
//! maud (escaped by construction): the layout every page shares — navigation to
//! the others, a logout button, the CSRF token in a `<meta>` — and the helpers
//! for times and links; one file per page.

pub mod dead_letters;
pub mod history;
pub mod overview;
pub mod user_map;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

/// The pages, as the navigation lists them.
const NAVIGATION: [(&str, &str); 5] = [
    ("/", "Overview"),
    ("/issues", "Issue history"),
    ("/events", "Sync events"),
    ("/dead-letters", "Dead letters"),
    ("/user-map", "User map"),
];

/// A whole page: `title`, the navigation (`current` marked), `body`.
pub fn layout(title: &str, current: &str, csrf: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf-token" content=(csrf);
                title { (title) " — jirasync console" }
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body {
                header {
                    nav aria-label="Console" {
                        @for (path, name) in NAVIGATION {
                            @if path == current {
                                a href=(path) aria-current="page" { (name) }
                            } @else {
                                a href=(path) { (name) }
                            }
                        }
                    }
                    form method="post" action="/logout" class="logout" {
                        input type="hidden" name="csrf_token" value=(csrf);
                        button type="submit" { "Log out" }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A time as `<time datetime="RFC 3339 UTC">`, its text relative to now; `-` for none.
pub fn time(at: Option<DateTime<Utc>>) -> Markup {
    match at {
        None => html! { "-" },
        Some(at) => html! {
            time datetime=(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                title=(at.format("%Y-%m-%d %H:%M:%S UTC").to_string()) {
                (relative(at, Utc::now()))
            }
        },
    }
}

/// A time from milliseconds since the epoch.
pub fn time_ms(ms: Option<i64>) -> Markup {
    time(ms.and_then(DateTime::from_timestamp_millis))
}

/// "5 min ago", "in 2 h".
fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (at - now).num_seconds();
    let magnitude = seconds.unsigned_abs();
    let amount = match magnitude {
        0..60 => format!("{magnitude} s"),
        60..3600 => format!("{} min", magnitude / 60),
        3600..172_800 => format!("{} h", magnitude / 3600),
        _ => format!("{} days", magnitude / 86_400),
    };
    if seconds <= 0 {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    }
}

/// The history page of `key` (the key percent-encoded).
pub fn issue_link(key: &str) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("key", key)
        .finish();
    format!("/issues?{query}")
}

/// A page that could not read what it shows: `503`, the page saying so.
pub fn unavailable(
    title: &str,
    current: &str,
    csrf: &str,
    what: &str,
    error: &anyhow::Error,
) -> Response {
    tracing::warn!(error = format!("{error:#}"), "console: {what} unavailable");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        layout(
            title,
            current,
            csrf,
            html! { p class="error" role="alert" { (what) " could not be read; see the log." } },
        ),
    )
        .into_response()
}

/// `/static/console.css`.
pub async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("../static/console.css"),
    )
        .into_response()
}

/// `/static/console.js`.
pub async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("../static/console.js"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_from_jira_is_escaped_and_times_are_utc() {
        let page = layout(
            "<script>alert(1)</script>",
            "/",
            "\"><img src=x>",
            time(DateTime::from_timestamp(1_700_000_000, 0)),
        )
        .into_string();
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(!page.contains("<img src=x>"), "{page}");
        assert!(page.contains("datetime=\"2023-11-14T22:13:20Z\""), "{page}");
        assert_eq!(issue_link("A&B <1>"), "/issues?key=A%26B+%3C1%3E");
    }
}
