//! Hostile input: the payload parser and the token functions classify anything —
//! any bytes, any string, deep nesting, huge strings, invalid UTF-8, numbers where
//! strings belong — and never panic; an over-limit chunked body gets 413 at the
//! ingress and nothing is published.

use crate::common;

use std::time::Duration;

use jirasync::integration::{Metadata, token};
use jirasync::jira::payload::{self, MalformedWebhook};
use proptest::prelude::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn integration() -> Metadata {
    serde_json::from_value(json!({"webhook_secret": "s3cret"})).expect("metadata reads")
}

/// Any JSON value, nested a few levels, scalars of every type.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        Just(Value::from("assignee")),
        Just(Value::from("2024-01-01T10:00:00.000+0200")),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_are_classified_by_the_payload_parser(body in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = payload::parse(&body);
    }

    #[test]
    fn webhook_shaped_bodies_with_any_value_in_any_field_are_classified(
        key in any_json(),
        fields in any_json(),
        assignee in any_json(),
        email in any_json(),
        updated in any_json(),
        timestamp in any_json(),
        items in any_json(),
        field in any_json(),
    ) {
        let assignee_object = json!({"emailAddress": email, "other": assignee});
        for assignee in [assignee_object, assignee.clone()] {
            let body = json!({
                "timestamp": timestamp,
                "issue": {"key": key, "fields": {"assignee": assignee, "updated": updated}},
                "changelog": {"items": [{"field": field}, {"field": "assignee"}, items]},
            });
            let _ = payload::parse(body.to_string().as_bytes());
            let body = json!({"issue": {"key": key, "fields": fields}, "changelog": {"items": [{"field": "assignee"}]}});
            let _ = payload::parse(body.to_string().as_bytes());
        }
    }

    #[test]
    fn any_string_is_classified_by_the_token_functions(token in ".*") {
        let _ = token::external_id(&token);
        let _ = token::verify(&token, &integration());
    }

    #[test]
    fn three_part_tokens_of_any_base64url_are_classified(
        header in "[A-Za-z0-9_-]{0,64}",
        claims in "[A-Za-z0-9_-]{0,64}",
        signature in "[A-Za-z0-9_=+/-]{0,64}",
    ) {
        let token = format!("{header}.{claims}.{signature}");
        let _ = token::external_id(&token);
        let _ = token::verify(&token, &integration());
    }

    #[test]
    fn tokens_whose_parts_decode_to_any_json_are_classified(header in any_json(), claims in any_json()) {
        use base64::Engine;
        let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let token = format!("{}.{}.c2ln", b64(&header), b64(&claims));
        let _ = token::external_id(&token);
        let _ = token::verify(&token, &integration());
    }
}

#[test]
fn deeply_nested_json_is_refused_without_overflowing_the_stack() {
    let depth = 100_000;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("arrays", "[".repeat(depth).into_bytes()),
        (
            "closed arrays",
            format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes(),
        ),
        (
            "objects",
            format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth)).into_bytes(),
        ),
        (
            "inside the changelog",
            format!(
                r#"{{"changelog":{{"items":{}{}}}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            )
            .into_bytes(),
        ),
    ];
    for (case, body) in cases {
        // Run on a 2 MiB stack, a tokio worker thread's default: serde_json's recursion
        // limit (128) must stop it long before the stack runs out.
        let result = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || payload::parse(&body))
            .expect("spawn")
            .join()
            .unwrap_or_else(|_| panic!("{case}: the parser panicked"));
        assert!(
            matches!(&result, Err(MalformedWebhook::NotJson(e)) if e.contains("recursion limit")),
            "{case}: {result:?}"
        );
    }
    let deep_token_claims = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let token = format!(
        "eyJhbGciOiJIUzI1NiJ9.{}.c2ln",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            deep_token_claims
        )
    );
    assert!(token::external_id(&token).is_err(), "deep claims");
    assert!(
        token::verify(&token, &integration()).is_err(),
        "deep claims"
    );
}

#[test]
fn huge_strings_invalid_utf8_and_numbers_where_strings_belong_are_classified() {
    let huge = "x".repeat(8 * 1024 * 1024);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "an 8 MB issue key",
            json!({"issue": {"key": huge, "fields": {"assignee": null}}, "changelog": {"items": [{"field": "assignee"}]}})
                .to_string()
                .into_bytes(),
            "ok",
        ),
        (
            "an 8 MB email",
            json!({"issue": {"key": "A-1", "fields": {"assignee": {"emailAddress": huge}}}, "changelog": {"items": [{"field": "assignee"}]}})
                .to_string()
                .into_bytes(),
            "ok",
        ),
        (
            "invalid UTF-8 in a string",
            b"{\"issue\": {\"key\": \"\xff\xfe\"}}".to_vec(),
            "malformed",
        ),
        ("a lone surrogate escape", br#"{"a": "\ud800"}"#.to_vec(), "malformed"),
        (
            "a number as the issue key",
            br#"{"issue": {"key": 12, "fields": {}}, "changelog": {"items": [{"field": "assignee"}]}}"#.to_vec(),
            "malformed",
        ),
        (
            "a number as the email",
            br#"{"issue": {"key": "A-1", "fields": {"assignee": {"emailAddress": 7}}}, "changelog": {"items": [{"field": "assignee"}]}}"#.to_vec(),
            "ok",
        ),
        (
            "a number as the field name",
            br#"{"changelog": {"items": [{"field": 1}]}}"#.to_vec(),
            "ok",
        ),
        (
            "a huge number as the timestamp",
            br#"{"timestamp": 1e308, "issue": {"key": "A-1", "fields": {"updated": 5}}, "changelog": {"items": [{"field": "assignee"}]}}"#.to_vec(),
            "ok",
        ),
        (
            "an out-of-range epoch",
            br#"{"timestamp": 9223372036854775807, "issue": {"key": "A-1", "fields": {}}, "changelog": {"items": [{"field": "assignee"}]}}"#.to_vec(),
            "ok",
        ),
        ("a NUL byte", b"{\"a\":\0}".to_vec(), "malformed"),
    ];
    for (case, body, expected) in cases {
        let result = payload::parse(&body);
        let got = if result.is_ok() { "ok" } else { "malformed" };
        assert_eq!(got, expected, "{case}: {result:?}");
    }
    let huge_token = format!("{huge}.{huge}.{huge}");
    assert_eq!(
        token::external_id(&huge_token),
        Err(token::Rejected::TooLong)
    );
    assert_eq!(
        token::verify(&huge_token, &integration()),
        Err(token::Rejected::TooLong)
    );
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_gets_413_and_nothing_is_published() {
    let mut settings = common::settings();
    settings.http.max_body_bytes = 1024;
    common::declare_topology(&settings)
        .await
        .expect("declare topology");
    let ingress = common::spawn_ingress(&settings, true).await;
    let mut stream = tokio::net::TcpStream::connect(ingress.address)
        .await
        .expect("connect");
    let head = format!(
        "POST /extensions/jira-server/issue-updated/eyJhbGciOiJIUzI1NiJ9.eyJpZCI6ImppcmE6a2V5In0.c2lnbmF0dXJl/ HTTP/1.1\r\n\
         Host: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        ingress.address
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    // 64 chunks of 512 bytes: 32 KiB, no content-length; the server may answer
    // and close before it has read them all, so write errors are expected.
    let chunk = format!("200\r\n{}\r\n", "x".repeat(512));
    for _ in 0..64 {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 413"),
        "response: {}",
        response.lines().next().unwrap_or_default()
    );
    let (_connection, channel) = common::amqp().await;
    assert_eq!(
        common::depth(&channel, &common::names(&settings).webhooks()).await,
        0,
        "nothing published"
    );
    ingress.stop().await;
}
