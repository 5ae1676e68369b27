//! The Jira client against a Jira that answers too much (docs/reference.md §7):
//! an answer over the size cap is refused without being buffered, and a search
//! whose pages do not advance, or never end, stops with an error instead of
//! looping. The Jira is a wiremock server; the client is the real one.

use jirasync::jira::search::MAX_ISSUES;
use jirasync::jira::{Auth, ClientOptions, JiraClient, JiraError, UserRef};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn client(server: &MockServer) -> JiraClient {
    let auth = Auth::Bearer("token".into());
    JiraClient::new(&server.uri(), auth, &ClientOptions::default()).expect("client")
}

#[tokio::test]
async fn an_answer_over_the_size_cap_is_refused() {
    let server = MockServer::start().await;
    let huge = "x".repeat(jirasync::jira::client::MAX_ANSWER_BYTES + 1);
    Mock::given(method("GET"))
        .and(path("/rest/api/2/user"))
        .respond_with(ResponseTemplate::new(200).set_body_string(huge))
        .mount(&server)
        .await;
    let error = client(&server)
        .get_user(UserRef::Username("u"))
        .await
        .expect_err("too large");
    assert!(
        matches!(&error, JiraError::InvalidResponse { reason } if reason.contains("larger than")),
        "{error}"
    );
    assert!(!error.is_transient(), "retrying would read it again");
}

/// Pages of one issue each, whose `startAt` is 0 (`stuck`) or the one asked for.
struct Pages {
    stuck: bool,
}

impl Respond for Pages {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let asked: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let start_at = if self.stuck {
            0
        } else {
            asked["startAt"].as_u64().unwrap_or(0)
        };
        let issues: Vec<_> = (0..100)
            .map(|n| json!({"key": format!("P-{}", start_at + n), "fields": {}}))
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({
            "startAt": start_at, "maxResults": 100, "total": 1_000_000, "issues": issues
        }))
    }
}

#[tokio::test]
async fn a_search_that_does_not_advance_or_never_ends_stops_with_an_error() {
    for (stuck, expected, requests) in [
        (true, "did not advance", 2),
        (false, "more than", MAX_ISSUES / 100 + 1),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/rest/api/2/search"))
            .respond_with(Pages { stuck })
            .mount(&server)
            .await;
        let error = client(&server)
            .search_all("key in (P-1)")
            .await
            .expect_err("no endless loop");
        assert!(error.to_string().contains(expected), "{error}");
        let made = server.received_requests().await.unwrap_or_default().len();
        assert_eq!(made, requests, "stuck: {stuck}");
    }
}
