//! `/` — the overview: every integration with its health, the queue depths (the
//! page still shows the integrations when the broker is down), and the issue
//! search.

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::{layout, time, unavailable};
use crate::console::Console;
use crate::console::data;
use crate::console::guard::Caller;

/// The overview.
pub async fn page(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let csrf = caller.csrf();
    let integrations = match data::integrations(&console).await {
        Ok(rows) => rows,
        Err(error) => return unavailable("Overview", "/", csrf, "The integrations", &error),
    };
    let queues = data::queues(&console).await;
    let outbound = data::outbound(&console).await;
    if let Err(error) = &queues {
        tracing::warn!(
            error = format!("{error:#}"),
            "console: the broker is unavailable"
        );
    }
    let body = html! {
        section {
            h2 { "Integrations" }
            @if integrations.is_empty() {
                p { "No integration yet: connect one with " code { "jirasync oauth start" } "." }
            } @else {
                table {
                    thead { tr {
                        th { "Integration" } th { "Provider" } th { "Method" } th { "State" }
                        th { "Token expires" } th { "Webhook" } th { "Last webhook" }
                        th { "Last reconciled" } th { "Applied 24h" } th { "Dead-lettered 24h" }
                    } }
                    tbody {
                        @for row in &integrations {
                            tr {
                                td {
                                    (row.name) " (id " (row.id) ")" br;
                                    small { (row.external_id) }
                                    @if let Some(site) = &row.site { br; small { (site) } }
                                }
                                td { (row.provider) }
                                td { (row.auth_method.as_deref().unwrap_or("none")) }
                                td { (row.state) }
                                td { (time(row.access_token_expires_at)) }
                                td {
                                    @match &row.webhook {
                                        Some(webhook) => {
                                            (webhook.path.as_deref().unwrap_or("-"))
                                            @if let Some(id) = &webhook.id { " (id " (id) ")" }
                                            @if webhook.hmac_signed { ", HMAC-signed" } @else { ", not signed" }
                                            @if let Some(expires) = webhook.expires_at { ", expires " (time(Some(expires))) }
                                        }
                                        None => { "none registered by jirasync" }
                                    }
                                }
                                td { (time(row.last_webhook_at)) }
                                td { (time(row.last_reconciled_at)) }
                                td { (row.applied_24h) }
                                td { (row.dead_lettered_24h) }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Queues" }
            @match &queues {
                Ok(queues) => {
                    table {
                        thead { tr { th { "Queue" } th { "Messages ready" } } }
                        tbody {
                            @for queue in queues {
                                tr { td { (queue.name) } td { (queue.messages) } }
                            }
                        }
                    }
                }
                Err(_) => {
                    p class="error" role="alert" { "RabbitMQ cannot be reached: the queue depths are unknown." }
                }
            }
        }
        section {
            h2 { "Outbound sync" }
            @match &outbound {
                Ok(outbound) if outbound.backlog == 0 => {
                    p { "Nothing is waiting to be pushed to Jira." }
                }
                Ok(outbound) => {
                    p {
                        (outbound.backlog) " change(s) waiting to be pushed to Jira; the oldest committed "
                        (time(outbound.oldest_at)) "."
                    }
                }
                Err(_) => { p class="error" role="alert" { "The outbound backlog could not be read." } }
            }
        }
        section {
            h2 { "Issue search" }
            form method="get" action="/issues" {
                label for="key" { "Issue key" }
                input id="key" name="key" placeholder="DEMO-12" required;
                button type="submit" { "Show history" }
            }
        }
    };
    layout("Overview", "/", csrf, body).into_response()
}
