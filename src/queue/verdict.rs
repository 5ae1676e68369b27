//! A verdict on a webhook token (docs/reference.md §4): a worker's word that the
//! token in a webhook's URL was accepted or rejected, published to `P.verdicts`
//! by the worker (`worker::verdicts`) and read by every ingress
//! (`ingress::verdicts`). One type for both sides. The token itself never
//! travels: only its SHA-256.

use std::fmt;

use lapin::BasicProperties;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The message `type` of a verdict.
pub const VERDICT: &str = "verdict";

/// The SHA-256 of a token: what the ingress remembers and the worker publishes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The digest of `token`.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Lower-case hex, 64 digits.
    pub fn hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// The digest `hex` spells (64 hex digits), if it spells one.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks(2)) {
            *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        }
        Some(Self(bytes))
    }
}

impl fmt::Debug for TokenDigest {
    /// The first 8 hex digits: enough to tell two apart in a test's output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({}…)", &self.hex()[..8])
    }
}

/// What a worker found of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Judgement {
    /// It verified (docs/reference.md §5.1).
    Accepted,
    /// It did not: malformed, another algorithm, no integration with its `id`, a
    /// bad signature.
    Rejected,
}

/// One verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The token judged.
    pub token: TokenDigest,
    /// How.
    pub judgement: Judgement,
}

/// The body as JSON: `{"token_sha256":"<64 hex digits>","verdict":"accepted"}`.
#[derive(Serialize, Deserialize)]
struct Wire {
    token_sha256: String,
    verdict: Judgement,
}

impl Verdict {
    /// The message body.
    pub fn to_body(&self) -> Vec<u8> {
        let wire = Wire {
            token_sha256: self.token.hex(),
            verdict: self.judgement,
        };
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// The verdict a body carries, if it is one.
    pub fn from_body(body: &[u8]) -> Option<Self> {
        let wire: Wire = serde_json::from_slice(body).ok()?;
        Some(Self {
            token: TokenDigest::from_hex(&wire.token_sha256)?,
            judgement: wire.verdict,
        })
    }

    /// The properties of every verdict message: transient (a lost one only
    /// delays a refusal), JSON, `type` [`VERDICT`].
    pub fn properties() -> BasicProperties {
        BasicProperties::default()
            .with_delivery_mode(1)
            .with_type(VERDICT.into())
            .with_content_type("application/json".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_reads_back_as_written_and_carries_no_token() {
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJpZCI6ImppcmE6a2V5In0.c2lnbmF0dXJl";
        for judgement in [Judgement::Accepted, Judgement::Rejected] {
            let verdict = Verdict {
                token: TokenDigest::of(token),
                judgement,
            };
            let body = verdict.to_body();
            let text = String::from_utf8(body.clone()).expect("JSON is UTF-8");
            assert!(!text.contains(token), "{text}");
            assert!(!text.contains("eyJ"), "{text}");
            assert_eq!(Verdict::from_body(&body), Some(verdict), "{text}");
        }
        let body = Verdict {
            token: TokenDigest::of("a"),
            judgement: Judgement::Rejected,
        }
        .to_body();
        assert_eq!(
            String::from_utf8(body).expect("UTF-8"),
            r#"{"token_sha256":"ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb","verdict":"rejected"}"#
        );
    }

    #[test]
    fn anything_else_is_no_verdict() {
        for body in [
            &b""[..],
            b"{}",
            b"not json",
            br#"{"token_sha256":"ab","verdict":"rejected"}"#,
            br#"{"token_sha256":"zz978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb","verdict":"rejected"}"#,
            br#"{"token_sha256":"ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb","verdict":"maybe"}"#,
        ] {
            assert_eq!(
                Verdict::from_body(body),
                None,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
