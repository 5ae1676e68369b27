//! Any string as the URL token, any secret, any body and `x-hub-signature`: the
//! worker's token functions (`external_id`, `verify`, `check_hmac`) classify them
//! without panicking; tokens signed with the secret, and correct HMACs, pass.

#![no_main]

use hmac::{Hmac, KeyInit, Mac};
use jirasync::integration::Metadata;
use jirasync::integration::token::{self, MAX_TOKEN_LEN, Rejected};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use sha2::Sha256;

/// One input, as lines: token, webhook secret, HMAC secret, id, signature (the
/// line absent: no header), then the body (any bytes, newlines included). Lines
/// make the seeds readable: `seeds/token/` holds real tokens.
struct Input<'a> {
    token: &'a str,
    secret: &'a str,
    hmac_secret: &'a str,
    id: &'a str,
    signature: Option<&'a str>,
    body: &'a [u8],
}

impl<'a> Input<'a> {
    fn read(data: &'a [u8]) -> Option<Self> {
        let mut parts = data.splitn(6, |&b| b == b'\n');
        let mut line = || parts.next().map(std::str::from_utf8).transpose().ok();
        let (token, secret, hmac_secret, id) = (line()?, line()?, line()?, line()?);
        let signature = line()?;
        let body = parts.next().unwrap_or_default();
        Some(Self {
            token: token.unwrap_or_default(),
            secret: secret.unwrap_or_default(),
            hmac_secret: hmac_secret.unwrap_or_default(),
            id: id.unwrap_or_default(),
            signature,
            body,
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::read(data) else {
        return;
    };
    // Read as the worker reads a row: an empty secret counts as none.
    let integration: Metadata = serde_json::from_value(
        json!({"webhook_secret": input.secret, "webhook_hmac_secret": input.hmac_secret}),
    )
    .expect("any JSON reads as metadata");

    // Any string: a classification, never a panic.
    let id = token::external_id(input.token);
    let verified = token::verify(input.token, &integration);
    if verified.is_ok() {
        assert!(
            matches!(id, Ok(_) | Err(Rejected::NoId)),
            "verified but its claims cannot be read: {id:?}"
        );
    }
    if input.secret.is_empty() {
        assert_eq!(verified, Err(Rejected::NoSecret));
    }
    let long = format!("{}{}", input.token, "a".repeat(MAX_TOKEN_LEN + 1));
    assert_eq!(token::external_id(&long), Err(Rejected::TooLong));
    assert_eq!(token::verify(&long, &integration), Err(Rejected::TooLong));

    // A token signed with the webhook secret names its integration and passes.
    if !input.secret.is_empty() {
        let signed = sign(Algorithm::HS256, json!({"id": input.id}), input.secret);
        if signed.len() <= MAX_TOKEN_LEN {
            assert_eq!(token::external_id(&signed).as_deref(), Ok(input.id));
            assert_eq!(token::verify(&signed, &integration), Ok(()));
        }
        let other = format!("{}x", input.secret);
        let forged = sign(Algorithm::HS256, json!({"id": input.id}), &other);
        assert!(
            token::verify(&forged, &integration).is_err(),
            "wrong secret"
        );
        let hs512 = sign(Algorithm::HS512, json!({"id": input.id}), input.secret);
        assert!(token::verify(&hs512, &integration).is_err(), "HS512");
    }

    // HMAC: required only when configured; the right one passes, a fuzzed one is classified.
    let given = token::check_hmac(&integration, input.signature, input.body);
    if input.hmac_secret.is_empty() {
        assert_eq!(given, Ok(()));
        return;
    }
    let hex = hmac_hex(input.hmac_secret, input.body);
    if given.is_ok() {
        // Only `sha256=` and the HMAC's hex digits, in either case.
        let sent = input.signature.and_then(|s| s.strip_prefix("sha256="));
        assert_eq!(
            sent.map(str::to_lowercase).as_deref(),
            Some(hex.as_str()),
            "accepted a signature that is not the body's HMAC in hex"
        );
    }
    for good in [
        format!("sha256={hex}"),
        format!("sha256={}", hex.to_uppercase()),
    ] {
        assert_eq!(
            token::check_hmac(&integration, Some(&good), input.body),
            Ok(())
        );
    }
    let mut longer = input.body.to_vec();
    longer.push(0);
    assert_eq!(
        token::check_hmac(&integration, Some(&format!("sha256={hex}")), &longer),
        Err(Rejected::BadHmac),
        "another body"
    );
    assert_eq!(
        token::check_hmac(&integration, Some(&hex), input.body),
        Err(Rejected::BadHmac),
        "prefix required"
    );
});

fn sign(alg: Algorithm, claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HMAC tokens always encode")
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
