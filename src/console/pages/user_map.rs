//! `/user-map` — the Jira user mappings, a form that does what `user-map set`
//! does (its errors shown, nothing stored on error) and a *Remove* per row.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::html;
use serde::Deserialize;

use super::{layout, unavailable};
use crate::console::Console;
use crate::console::guard::Caller;
use crate::db::user_map;

/// The set form's fields.
#[derive(Debug, Deserialize)]
pub struct SetForm {
    #[serde(default)]
    integration: String,
    #[serde(default)]
    jira_user: String,
    #[serde(default)]
    user: String,
}

/// The remove form's fields.
#[derive(Debug, Deserialize)]
pub struct RemoveForm {
    #[serde(default)]
    integration: String,
    #[serde(default)]
    jira_user: String,
}

/// The mappings.
pub async fn page(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
) -> Response {
    render(&console, caller.csrf(), StatusCode::OK, None, None).await
}

async fn render(
    console: &Console,
    csrf: &str,
    status: StatusCode,
    message: Option<String>,
    form: Option<&SetForm>,
) -> Response {
    let mappings = match console.pool.get().await {
        Ok(client) => user_map::list(&client, None)
            .await
            .map_err(anyhow::Error::from),
        Err(error) => Err(anyhow::Error::from(error)),
    };
    let mappings = match mappings {
        Ok(mappings) => mappings,
        Err(error) => return unavailable("User map", "/user-map", csrf, "The user map", &error),
    };
    let value = |f: fn(&SetForm) -> &str| form.map_or("", f).to_owned();
    let body = html! {
        @if let Some(message) = &message { p class="error" role="alert" { (message) } }
        @if mappings.is_empty() {
            p { "No Jira user is mapped." }
        } @else {
            table {
                thead { tr { th { "Integration" } th { "Jira user" } th { "User" } th { "Remove" } } }
                tbody {
                    @for mapping in &mappings {
                        tr {
                            td { (mapping.integration_id) }
                            td { (mapping.jira_user) }
                            td { (mapping.username) " (id " (mapping.user_id) ")" }
                            td {
                                form method="post" action="/user-map/remove" class="inline" {
                                    input type="hidden" name="csrf_token" value=(csrf);
                                    input type="hidden" name="integration" value=(mapping.integration_id);
                                    input type="hidden" name="jira_user" value=(mapping.jira_user);
                                    button type="submit" data-confirm="Remove this mapping?" { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Map a Jira user" }
        form method="post" action="/user-map" {
            input type="hidden" name="csrf_token" value=(csrf);
            label for="integration" { "Integration id" }
            input id="integration" name="integration" inputmode="numeric" required value=(value(|f| &f.integration));
            label for="jira_user" { "Jira user (name, else key)" }
            input id="jira_user" name="jira_user" required value=(value(|f| &f.jira_user));
            label for="user" { "Username" }
            input id="user" name="user" required value=(value(|f| &f.user));
            button type="submit" { "Save" }
        }
    };
    (status, layout("User map", "/user-map", csrf, body)).into_response()
}

fn integration_id(text: &str) -> Result<i64, String> {
    text.trim()
        .parse()
        .map_err(|_| "the integration must be an id (a whole number)".to_owned())
}

/// Maps a Jira user, as `user-map set`: `303` back, or the page with the error.
pub async fn set(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
    Form(form): Form<SetForm>,
) -> Response {
    let csrf = caller.csrf();
    let (jira_user, user) = (form.jira_user.trim(), form.user.trim());
    let checked = integration_id(&form.integration).and_then(|id| {
        if jira_user.is_empty() || user.is_empty() {
            Err("the Jira user and the username are both needed".to_owned())
        } else {
            Ok(id)
        }
    });
    let id = match checked {
        Ok(id) => id,
        Err(message) => {
            return render(
                &console,
                csrf,
                StatusCode::BAD_REQUEST,
                Some(message),
                Some(&form),
            )
            .await;
        }
    };
    let client = match console.pool.get().await {
        Ok(client) => client,
        Err(error) => {
            return unavailable("User map", "/user-map", csrf, "The user map", &error.into());
        }
    };
    match user_map::set(&client, id, jira_user, user).await {
        Ok(mapping) => {
            tracing::info!(
                integration.id = mapping.integration_id,
                user.id = mapping.user_id,
                "console mapped a Jira user"
            );
            Redirect::to("/user-map").into_response()
        }
        Err(user_map::SetError::Db(error)) => {
            unavailable("User map", "/user-map", csrf, "The user map", &error.into())
        }
        Err(refused) => {
            render(
                &console,
                csrf,
                StatusCode::BAD_REQUEST,
                Some(refused.to_string()),
                Some(&form),
            )
            .await
        }
    }
}

/// Removes a mapping, as `user-map remove`: `303` back.
pub async fn remove(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
    Form(form): Form<RemoveForm>,
) -> Response {
    let csrf = caller.csrf();
    let id = match integration_id(&form.integration) {
        Ok(id) => id,
        Err(message) => {
            return render(&console, csrf, StatusCode::BAD_REQUEST, Some(message), None).await;
        }
    };
    let removed = match console.pool.get().await {
        Ok(client) => user_map::remove(&client, id, &form.jira_user)
            .await
            .map_err(anyhow::Error::from),
        Err(error) => Err(error.into()),
    };
    match removed {
        Ok(removed) => {
            tracing::info!(
                integration.id = id,
                removed,
                "console removed a Jira user mapping"
            );
            Redirect::to("/user-map").into_response()
        }
        Err(error) => unavailable("User map", "/user-map", csrf, "The user map", &error),
    }
}
