//! `GET /login`, `POST /login` and `POST /logout` (docs/reference.md §12.3): one
//! password, a server-side session in an HttpOnly, SameSite=Strict cookie, and
//! the per-client limit on failures.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use super::Console;
use super::guard::{Caller, SESSION_COOKIE, too_many};
use crate::ingress::client::Client;

/// `?next=` of the login form.
#[derive(Debug, Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// The login form's fields.
#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// `next` when it is a local path (`/…`, not `//…`), else `/`.
fn local(next: Option<&str>) -> &str {
    match next {
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && !next.starts_with("/\\")
                && next.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            next
        }
        _ => "/",
    }
}

fn login_page(next: &str, message: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Log in — jirasync console" }
                link rel="stylesheet" href="/static/console.css";
            }
            body {
                main class="login" {
                    h1 { "jirasync console" }
                    @if let Some(message) = message {
                        p class="error" role="alert" { (message) }
                    }
                    form method="post" action="/login" {
                        input type="hidden" name="next" value=(next);
                        label for="password" { "Password" }
                        input id="password" type="password" name="password" autocomplete="current-password" required autofocus;
                        button type="submit" { "Log in" }
                    }
                }
            }
        }
    }
}

/// The login form.
pub async fn form(Query(query): Query<Next>) -> Markup {
    login_page(local(query.next.as_deref()), None)
}

/// Checks the password: `303` to `next` with a session cookie, `401` with the
/// form again, or `429` for a client with too many failures.
pub async fn submit(
    State(console): State<Console>,
    jar: CookieJar,
    client: ClientOf,
    Form(form): Form<LoginForm>,
) -> Response {
    let client = client.0;
    if let Some(left) = console.gate.blocked(client) {
        tracing::info!(client.address = %client, "console login refused: too many failures");
        return too_many(left);
    }
    let next = local(form.next.as_deref()).to_owned();
    if !console.gate.password_matches(&form.password).await {
        console.gate.failed(client);
        tracing::info!(client.address = %client, "console login failed");
        return (
            StatusCode::UNAUTHORIZED,
            login_page(&next, Some("Wrong password.")),
        )
            .into_response();
    }
    let (id, _) = console.gate.open_session();
    tracing::info!(client.address = %client, "console login");
    let cookie = Cookie::build((SESSION_COOKIE, id))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .secure(console.secure_cookies)
        .build();
    (jar.add(cookie), Redirect::to(&next)).into_response()
}

/// Ends the session: `303` to the login form, the cookie removed.
pub async fn logout(
    State(console): State<Console>,
    jar: CookieJar,
    Extension(caller): Extension<Caller>,
) -> Response {
    if let Caller::Session { id, .. } = &caller {
        console.gate.close_session(id);
    }
    tracing::info!("console logout");
    let removal = Cookie::build((SESSION_COOKIE, "")).path("/").build();
    (jar.remove(removal), Redirect::to("/login")).into_response()
}

/// The request's client, as an extractor.
#[derive(Debug, Clone, Copy)]
pub struct ClientOf(pub std::net::IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientOf {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let client =
            parts
                .extensions
                .get::<Client>()
                .copied()
                .unwrap_or(Client(std::net::IpAddr::V4(
                    std::net::Ipv4Addr::UNSPECIFIED,
                )));
        Ok(Self(client.0))
    }
}
