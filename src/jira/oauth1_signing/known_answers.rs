//! Known-answer tests: base strings and RSA-SHA1 signatures computed by an
//! independent implementation, Python's oauthlib, for fixed nonces and timestamps.
//!
//! How the expected values were computed (once; `cargo test` needs no Python):
//! `tests/fixtures/oauthlib_known_answers.py` signs each case below with
//! `oauthlib.oauth1.Client(consumer_key, signature_method=SIGNATURE_RSA,
//! rsa_key=<tests/fixtures/jira_test_key.pem>, nonce=…, timestamp=…, …).sign(uri,
//! http_method, body, headers)`, rebuilds the base string with oauthlib's
//! `signature.collect_parameters` / `normalize_parameters` / `base_string_uri` /
//! `signature_base_string`, checks with `cryptography` that the signature verifies
//! against that base string and the public key, and prints both. Run with oauthlib
//! 4.0.1, cryptography 50.0.2, PyJWT 2.15.1:
//!
//! ```text
//! python3 -m venv /tmp/oauthvenv
//! /tmp/oauthvenv/bin/pip install oauthlib cryptography pyjwt
//! /tmp/oauthvenv/bin/python tests/fixtures/oauthlib_known_answers.py
//! ```
//!
//! oauthlib sends `oauth_version="1.0"`, as we do. RSA PKCS#1 v1.5 signatures
//! are deterministic, so the signatures are fixed values.

use reqwest::{Method, Url};

use super::{OAuthParams, Signer, base_string, percent_encode};

const KEY_PKCS1: &str = include_str!("../../../tests/fixtures/jira_test_key.pem");
const KEY_PKCS8: &str = include_str!("../../../tests/fixtures/jira_test_key_pkcs8.pem");
const CONSUMER_KEY: &str = "jirasync-consumer";

struct Case<'a> {
    name: &'a str,
    method: Method,
    url: &'a str,
    form: &'a [(&'a str, &'a str)],
    params: OAuthParams<'a>,
    base_string: &'a str,
    /// As it appears in the header: base64, then percent-encoded.
    signature: &'a str,
}

fn cases() -> Vec<Case<'static>> {
    vec![
        Case {
            name: "request-token POST with oauth_callback",
            method: Method::POST,
            url: "https://jira.example.com/plugins/servlet/oauth/request-token",
            form: &[],
            params: OAuthParams {
                callback: Some("http://127.0.0.1:8080/extensions/jira-server/oauth/callback"),
                nonce: Some("4572616e48616d6d65724c61686176"),
                timestamp: Some(1_700_000_000),
                ..OAuthParams::default()
            },
            base_string: "POST&https%3A%2F%2Fjira.example.com%2Fplugins%2Fservlet%2Foauth%2Freques\
                t-token&oauth_callback%3Dhttp%253A%252F%252F127.0.0.1%253A8080%252Fexten\
                sions%252Fjira-server%252Foauth%252Fcallback%26oauth_consumer_key%3Djira\
                sync-consumer%26oauth_nonce%3D4572616e48616d6d65724c61686176%26oauth_sig\
                nature_method%3DRSA-SHA1%26oauth_timestamp%3D1700000000%26oauth_version%\
                3D1.0",
            signature: "N%2BYzAryFrFKAdNAEOJS3BvXhXjo0STKGz6uwsGhiDLzSfsFvkkJV35H6Cve6xzXpbd3WwN\
                lyHM5P%2BxQ5cYvLLkbUR7VGthnsczvBE77rg45kYi7rcPms3AkqYqAvnjSYwCSZsRyDnrK0\
                yJdn3qWRYr2KYYF%2FLgGiscijKfu%2FQsSOavVtmZL3XHIJRNQAzcQqQHlDeeMOTnZer2di\
                hNo0wJkqmrM5TabCKGnGBACr6JvHKTQwrlZ8CJuzgpnKJIZTpxjOJDtjxnY9RSJqpVBNrq%2\
                B3heGnBAf6QfWY70XEU1UVKcD6NEFWaQTy%2F0vBX8JaJzOK%2BKVC%2FD2kJ2r1ei2a3w%3\
                D%3D",
        },
        Case {
            name: "GET with query parameters, uppercase host and default port",
            method: Method::GET,
            url: "HTTPS://Jira.Example.COM:443/rest/api/2/user?username=j%C3%B6rg+o%27neil\
                  &expand=groups,applicationRoles&a=b%20c&a=a&z=",
            form: &[],
            params: OAuthParams {
                token: Some("access-token-123"),
                nonce: Some("kllo9940pd9333jh"),
                timestamp: Some(1_191_242_096),
                ..OAuthParams::default()
            },
            base_string: "GET&https%3A%2F%2Fjira.example.com%2Frest%2Fapi%2F2%2Fuser&a%3Da%26a%3Db\
                %2520c%26expand%3Dgroups%252CapplicationRoles%26oauth_consumer_key%3Djir\
                async-consumer%26oauth_nonce%3Dkllo9940pd9333jh%26oauth_signature_method\
                %3DRSA-SHA1%26oauth_timestamp%3D1191242096%26oauth_token%3Daccess-token-\
                123%26oauth_version%3D1.0%26username%3Dj%25C3%25B6rg%2520o%2527neil%26z%\
                3D",
            signature: "O7ZV3QGwTs%2FclJwzZIGVYT3wxj%2FHJm65ydmG%2Fm1nYGW4F23%2BK0U1UbjEW4B5%2F7\
                TTSkZlzChIg7QXAa1tCRJPUVIJqtKX3w3bfOvHte0u4JxVo93wb4hncK6761RGeXOrFWHhMf\
                HsogxfRIydK0Y%2FZEJ1yEsfG7%2BT5eAPNmiwc3jJ%2FWhsA8YLsLxQOTgOcQ69QYe8k%2F\
                OeB9TkmOCstxW%2F9tbsX2GAqcsbp6AJbnmnd%2FMH%2BwNU7aG%2F8G5MCKq0dxD83D6thj\
                I8MISkgazZO%2BlAiZyplxYrTNLQaVMUPDrJAwAh7bjJXJaCnUr5YcOmlIkBa2eXyIXh0f7C\
                b7fBzIGSpg%3D%3D",
        },
        Case {
            name: "access-token POST with oauth_token and oauth_verifier",
            method: Method::POST,
            url: "http://jira.local:8080/jira/plugins/servlet/oauth/access-token",
            form: &[],
            params: OAuthParams {
                token: Some("hh5s93j4hdidpola"),
                verifier: Some("hfdp7dh39dks9884"),
                nonce: Some("wIjqoS"),
                timestamp: Some(137_131_200),
                ..OAuthParams::default()
            },
            base_string: "POST&http%3A%2F%2Fjira.local%3A8080%2Fjira%2Fplugins%2Fservlet%2Foauth%2\
                Faccess-token&oauth_consumer_key%3Djirasync-consumer%26oauth_nonce%3DwIj\
                qoS%26oauth_signature_method%3DRSA-SHA1%26oauth_timestamp%3D137131200%26\
                oauth_token%3Dhh5s93j4hdidpola%26oauth_verifier%3Dhfdp7dh39dks9884%26oau\
                th_version%3D1.0",
            signature: "INs9diHxFxY5%2F2FMLaDSDhEcSpO9LT58rmZCO7PL%2BR3kmW%2FoA6QriSfFxCE5kWgclE\
                GJ2DuEpOLlcrYKPdNSA0bK%2BgtWoeBsf1VguRLUTlauV1QjmibSsEYKHyCubXD%2BBJkIIe\
                R%2BHurghzcK1HWZXUS%2Fc0LwXkdU2Yb%2FT6QtCQghMAws68K6S1v1bZmiP%2FDklsUwFy\
                a%2FB7%2BdFOBNk8BFt9mbsai%2BOScCALb575UDvlXoQDaC%2FV4kSgGUUY8kDb5KcwHdYp\
                %2BSjc4kfMxWR0XtJXWIxCgN4EJ5Itsmt6jpDHz5anE5aKhyythhIMDRFzhm7Kz4QrZxk4Kg\
                Xajp5mkd%2FQ%3D%3D",
        },
        Case {
            // RFC 5849 §3.4.1's example; form body `c2&a3=2+q`, decoded.
            name: "RFC 5849 example with query and form body",
            method: Method::POST,
            url: "http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b",
            form: &[("c2", ""), ("a3", "2 q")],
            params: OAuthParams {
                token: Some("kkk9d7dh3k39sjv7"),
                nonce: Some("7d8f3e4a"),
                timestamp: Some(137_131_201),
                ..OAuthParams::default()
            },
            base_string: "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3\
                %3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_key%3Djira\
                sync-consumer%26oauth_nonce%3D7d8f3e4a%26oauth_signature_method%3DRSA-SH\
                A1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7%26oaut\
                h_version%3D1.0",
            signature: "MlYLobvgdLGMa%2FH7ctEg0zISnJYqUhnXySnwjftYSeCeXFAz4pHYyA1uX%2FPQZZjJ8rbQ\
                t49In364d%2BRXvzK0B4Y4uMKZPnxAGub5iEqwO2V1RswMgjy45U84D38u2d9dhbxwfnimaN\
                stcUQb1ztIVxJ%2FRGy%2BNx5MU%2Be143%2BXmba6ZJEhcXwErJOH3v4p%2F%2BsPmpba19\
                MXlREUR2RjbE8Jd1Pwlc1yTUWVKJphaTjhfBl9RiNTNOZC5RX17v2MXaKOIsn8MvciTe413f\
                RvrX5cf99Rp%2F0b21FnBtCzzSbwkA0sno95efaYYdxaETNTWOVqq0HGuFkbGwuHJd1c9dNx\
                pQ%3D%3D",
        },
    ]
}

#[test]
fn base_strings_match_oauthlib() {
    let signer = Signer::from_pem(CONSUMER_KEY, KEY_PKCS1).expect("test key loads");
    for case in cases() {
        let url = Url::parse(case.url).expect("case URL parses");
        let protocol = signer.protocol_parameters(&case.params);
        let base = base_string(&case.method, &url, case.form, &protocol).expect("base string");
        assert_eq!(base, case.base_string, "case {}", case.name);
    }
}

#[test]
fn signatures_match_oauthlib_for_pkcs1_and_pkcs8_keys() {
    for pem in [KEY_PKCS1, KEY_PKCS8] {
        let signer = Signer::from_pem(CONSUMER_KEY, pem).expect("test key loads");
        for case in cases() {
            let url = Url::parse(case.url).expect("case URL parses");
            let header = signer
                .authorization_header(&case.method, &url, case.form, &case.params)
                .expect("signs");
            let expected = format!("oauth_signature=\"{}\"", case.signature);
            assert!(header.contains(&expected), "case {}: {header}", case.name);
        }
    }
}

#[test]
fn header_carries_every_protocol_parameter_encoded_and_sorted() {
    let signer = Signer::from_pem(CONSUMER_KEY, KEY_PKCS1).expect("test key loads");
    let case = cases().remove(0);
    let url = Url::parse(case.url).expect("case URL parses");
    let header = signer
        .authorization_header(&case.method, &url, case.form, &case.params)
        .expect("signs");
    let expected = format!(
        "OAuth oauth_callback=\"{}\", oauth_consumer_key=\"jirasync-consumer\", \
         oauth_nonce=\"4572616e48616d6d65724c61686176\", oauth_signature=\"{}\", \
         oauth_signature_method=\"RSA-SHA1\", oauth_timestamp=\"1700000000\", \
         oauth_version=\"1.0\"",
        percent_encode("http://127.0.0.1:8080/extensions/jira-server/oauth/callback"),
        case.signature,
    );
    assert_eq!(header, expected);
}

#[test]
fn each_signing_call_draws_a_fresh_nonce() {
    let signer = Signer::from_pem(CONSUMER_KEY, KEY_PKCS1).expect("test key loads");
    let url = Url::parse("https://jira.example.com/rest/api/2/myself").expect("URL parses");
    let nonce = |header: &str| {
        let start = header.find("oauth_nonce=\"").expect("has a nonce") + 13;
        header[start..start + 32].to_owned()
    };
    let params = OAuthParams::default();
    let first = signer
        .authorization_header(&Method::GET, &url, &[], &params)
        .expect("signs");
    let second = signer
        .authorization_header(&Method::GET, &url, &[], &params)
        .expect("signs");
    assert_ne!(nonce(&first), nonce(&second));
    assert!(nonce(&first).chars().all(|c| c.is_ascii_alphanumeric()));
}

#[test]
fn debug_output_redacts_key_and_tokens() {
    let signer = Signer::from_pem(CONSUMER_KEY, KEY_PKCS1).expect("test key loads");
    let debug = format!("{signer:?}");
    assert!(
        debug.contains("jirasync-consumer") && debug.contains("[redacted]"),
        "{debug}"
    );
    assert!(
        !debug.contains("SigningKey") && !debug.contains("BoxedUint"),
        "{debug}"
    );
    let params = OAuthParams {
        token: Some("secret-token"),
        verifier: Some("secret-verifier"),
        ..OAuthParams::default()
    };
    let debug = format!("{params:?}");
    assert!(!debug.contains("secret-"), "{debug}");
}
