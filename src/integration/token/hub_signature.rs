//! The body's signature (docs/reference.md §5.2): `X-Hub-Signature: sha256=<hex>`,
//! HMAC-SHA256 of the raw body with the integration's `webhook_hmac_secret` (or,
//! until a rotation's overlap ends, its previous one), compared in constant time.
//! Checked by the worker after the token.

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::super::metadata::Metadata;
use super::Rejected;

/// When the integration has a `webhook_hmac_secret`, requires `signature` to be
/// `sha256=<hex>` of HMAC-SHA256 over `body` with it (or, until the rotation's
/// overlap ends, with the previous one), compared in constant time.
pub fn check_hmac(
    metadata: &Metadata,
    signature: Option<&str>,
    body: &[u8],
) -> Result<(), Rejected> {
    check_hmac_at(metadata, signature, body, Utc::now())
}

/// As [`check_hmac`], the overlap judged at `now`.
pub fn check_hmac_at(
    metadata: &Metadata,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), Rejected> {
    let Some(secret) = metadata.webhook_hmac_secret.as_deref() else {
        return Ok(());
    };
    let given = signature
        .and_then(|s| s.strip_prefix("sha256="))
        .and_then(decode_hex)
        .ok_or(Rejected::BadHmac)?;
    let previous = metadata.previous_at(now).and_then(|(_, previous)| previous);
    let signed_with = |secret: &str| {
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).is_ok_and(|mut mac| {
            mac.update(body);
            bool::from(mac.finalize().into_bytes().as_slice().ct_eq(&given))
        })
    };
    if signed_with(secret) || previous.is_some_and(signed_with) {
        Ok(())
    } else {
        Err(Rejected::BadHmac)
    }
}

/// `sha256=<hex>` of HMAC-SHA256 over `body` with `secret`: the
/// `X-Hub-Signature` Jira sends (what [`check_hmac`] accepts), for the tests and
/// the benchmark that sign deliveries as Jira does.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let hex: String = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map(|mut mac| {
            mac.update(body);
            mac.finalize().into_bytes().to_vec()
        })
        .unwrap_or_default()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    // Digits only: `from_str_radix` alone also takes a sign ("+7").
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{metadata, rotated_at};
    use super::*;
    use serde_json::json;

    fn hmac_hex(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("key");
        mac.update(body);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn the_hmac_is_required_only_when_configured_and_must_match() {
        let body = b"{\"a\":1}";
        let hex = hmac_hex(b"k", body);
        let good = format!("sha256={hex}");
        let with = metadata(json!({"webhook_hmac_secret": "k"}));
        let without = metadata(json!({}));
        assert_eq!(check_hmac(&without, None, body), Ok(()));
        assert_eq!(check_hmac(&with, Some(&good), body), Ok(()));
        assert_eq!(check_hmac(&with, None, body), Err(Rejected::BadHmac));
        assert_eq!(
            check_hmac(&with, Some(&good), b"{\"a\":2}"),
            Err(Rejected::BadHmac)
        );
        assert_eq!(
            check_hmac(&with, Some(&hex), body),
            Err(Rejected::BadHmac),
            "prefix required"
        );
        assert_eq!(
            check_hmac(&with, Some("sha256=zz"), body),
            Err(Rejected::BadHmac)
        );
    }

    #[test]
    fn a_plus_sign_is_not_a_hex_digit_in_the_hmac() {
        // `u8::from_str_radix` takes "+7" as 7, so an HMAC byte 07 written "+7"
        // passed; fuzz/fuzz_targets/token.rs checks this too.
        let with = metadata(json!({"webhook_hmac_secret": "k"}));
        let (body, hex, zero) = (0..)
            .find_map(|i| {
                let body = format!("{{\"a\":{i}}}");
                let hex = hmac_hex(b"k", body.as_bytes());
                // A byte below 0x10: a '0' at an even position.
                let zero = (0..hex.len())
                    .step_by(2)
                    .find(|&j| hex.as_bytes()[j] == b'0')?;
                Some((body, hex, zero))
            })
            .expect("some body's HMAC has a byte below 0x10");
        let good = format!("sha256={hex}");
        let plus = format!("sha256={}+{}", &hex[..zero], &hex[zero + 1..]);
        assert_eq!(check_hmac(&with, Some(&good), body.as_bytes()), Ok(()));
        assert_eq!(
            check_hmac(&with, Some(&plus), body.as_bytes()),
            Err(Rejected::BadHmac),
            "{plus}"
        );
    }

    #[test]
    fn previous_hmac_secrets_pass_until_the_overlap_ends_and_not_after() {
        let now = chrono::Utc::now();
        let (rotated, until) = rotated_at(now);
        let body = b"{}";
        let signed = |secret: &[u8]| format!("sha256={}", hmac_hex(secret, body));
        let after = until + chrono::TimeDelta::seconds(1);
        for (case, at, secret, ok) in [
            (
                "new HMAC during the overlap",
                now,
                b"new-hmac".as_slice(),
                true,
            ),
            ("old HMAC during the overlap", now, b"old-hmac", true),
            ("other HMAC during the overlap", now, b"other", false),
            ("new HMAC after it", after, b"new-hmac", true),
            ("old HMAC after it", after, b"old-hmac", false),
        ] {
            let signature = signed(secret);
            assert_eq!(
                check_hmac_at(&rotated, Some(&signature), body, at).is_ok(),
                ok,
                "{case}"
            );
        }
    }
}
