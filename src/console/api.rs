//! The JSON API under `/api/` (docs/reference.md §12.8): the pages' data for
//! scripts, times RFC 3339 or `null`; and `/readyz`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::data::{self, EventFilter, event_json, number};
use super::records::ReplayOne;
use super::{Console, ReplayAsked};
use crate::db::user_map;

/// Events answered at most.
const MAX_EVENTS: i64 = 1000;

/// A failure of what the API reads: `503`, the chain logged, an opaque body.
fn unavailable(what: &str, error: &anyhow::Error) -> Response {
    tracing::warn!(
        error = format!("{error:#}"),
        "console API: {what} unavailable"
    );
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": format!("{what} could not be read; see the log")})),
    )
        .into_response()
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": message}))).into_response()
}

/// `GET /api/integrations`.
pub async fn integrations(State(console): State<Console>) -> Response {
    match data::integrations(&console).await {
        Ok(rows) => Json(rows).into_response(),
        Err(error) => unavailable("the integrations", &error),
    }
}

/// `GET /api/queues`.
pub async fn queues(State(console): State<Console>) -> Response {
    match data::queues(&console).await {
        Ok(queues) => Json(queues).into_response(),
        Err(error) => unavailable("the queues", &error),
    }
}

/// `GET /api/outbound`.
pub async fn outbound(State(console): State<Console>) -> Response {
    match data::outbound(&console).await {
        Ok(outbound) => Json(outbound).into_response(),
        Err(error) => unavailable("the outbound backlog", &error),
    }
}

/// `?integration=&limit=` of an issue's events.
#[derive(Debug, Deserialize)]
pub struct IssueQuery {
    integration: Option<String>,
    limit: Option<String>,
}

/// `GET /api/issues/{key}/events`.
pub async fn issue_events(
    State(console): State<Console>,
    Path(key): Path<String>,
    Query(query): Query<IssueQuery>,
) -> Response {
    let integration = match number(query.integration.as_ref(), "integration") {
        Ok(integration) => integration,
        Err(message) => return bad_request(&message),
    };
    let limit = match number(query.limit.as_ref(), "limit") {
        Ok(limit) => limit.map_or(100, |n| n.clamp(1, MAX_EVENTS)),
        Err(message) => return bad_request(&message),
    };
    match data::issue_events(&console, &key, integration, limit).await {
        Ok(events) => Json(events.iter().map(event_json).collect::<Vec<_>>()).into_response(),
        Err(error) => unavailable("the sync history", &error),
    }
}

/// `GET /api/events`.
pub async fn events(State(console): State<Console>, Query(filter): Query<EventFilter>) -> Response {
    let (integration, limit) = match (filter.integration(), filter.limit(MAX_EVENTS)) {
        (Ok(integration), Ok(limit)) => (integration, limit),
        (Err(message), _) | (_, Err(message)) => return bad_request(&message),
    };
    match data::events(
        &console,
        filter.outcome(),
        filter.kind(),
        integration,
        limit,
    )
    .await
    {
        Ok(events) => Json(events.iter().map(event_json).collect::<Vec<_>>()).into_response(),
        Err(error) => unavailable("the sync events", &error),
    }
}

/// `?limit=` of the dead letters.
#[derive(Debug, Deserialize)]
pub struct LimitQuery {
    limit: Option<String>,
}

/// `GET /api/dead-letters`.
pub async fn dead_letters(
    State(console): State<Console>,
    Query(query): Query<LimitQuery>,
) -> Response {
    let limit = match number(query.limit.as_ref(), "limit") {
        Ok(limit) => limit.map_or(200, |n| n.clamp(1, 10_000)),
        Err(message) => return bad_request(&message),
    };
    match data::dead_letters(&console, usize::try_from(limit).unwrap_or(200)).await {
        Ok(letters) => Json(letters).into_response(),
        Err(error) => unavailable("the dead-letter queue", &error),
    }
}

/// `POST /api/dead-letters/replay` with `{"id":…}` or `{"all":true}`.
pub async fn replay(State(console): State<Console>, body: axum::body::Bytes) -> Response {
    let asked: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let asked = match (&asked["all"], &asked["id"]) {
        (Value::Bool(true), _) => ReplayAsked::All,
        (_, Value::String(id)) if !id.trim().is_empty() => ReplayAsked::Id(id.trim().to_owned()),
        _ => return bad_request("send {\"id\":\"<message id>\"} or {\"all\":true}"),
    };
    match console.replay(&asked).await {
        Ok(ReplayOne::Moved(replayed)) => Json(json!({"replayed": replayed})).into_response(),
        Ok(ReplayOne::NotFound { looked_at }) => (
            StatusCode::NOT_FOUND,
            Json(json!({
                "error": format!("no dead letter has that id among the {looked_at} looked at"),
                "replayed": 0,
            })),
        )
            .into_response(),
        Err(error) => unavailable("the replay", &error),
    }
}

/// `GET /api/user-map`.
pub async fn user_map(State(console): State<Console>) -> Response {
    let mappings = match console.pool.get().await {
        Ok(client) => user_map::list(&client, None)
            .await
            .map_err(anyhow::Error::from),
        Err(error) => Err(error.into()),
    };
    match mappings {
        Ok(mappings) => Json(mappings).into_response(),
        Err(error) => unavailable("the user map", &error),
    }
}

/// `GET /readyz`: `200` when Postgres and RabbitMQ answer, else `503`.
pub async fn readyz(State(console): State<Console>) -> Response {
    if data::ready(&console).await {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "database or broker unavailable\n",
        )
            .into_response()
    }
}
