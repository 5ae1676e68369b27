//! Loads the RSA private key of a Jira application link from PEM: PKCS#1
//! (`BEGIN RSA PRIVATE KEY`) or unencrypted PKCS#8 (`BEGIN PRIVATE KEY`).
//! Errors name the PEM label at most, never key material.

use rsa::PrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::Signer as _;
use sha1::Sha1;

/// The formats accepted, as written in every error about them.
const EXPECTED: &str = "expected an unencrypted RSA private key in PEM: PKCS#1 \
     (-----BEGIN RSA PRIVATE KEY-----) or PKCS#8 (-----BEGIN PRIVATE KEY-----)";

/// Why a private key could not be used. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The text is not a PEM block of an accepted kind.
    #[error("unsupported private key format ({found}); {EXPECTED}")]
    UnsupportedFormat {
        /// What was found instead: the PEM label, or a short description.
        found: String,
    },
    /// The PEM block has an accepted label but its content is not a usable RSA key.
    #[error("malformed {format} private key: {reason}; {EXPECTED}")]
    Malformed {
        /// `PKCS#1` or `PKCS#8`.
        format: &'static str,
        /// The decoder's reason (structural, without key material).
        reason: String,
    },
    /// The key decodes but cannot produce an RSA-SHA1 signature (e.g. too small).
    #[error("the RSA private key cannot sign with RSA-SHA1: {0}")]
    Unusable(String),
}

/// Parses `pem` into a PKCS#1 v1.5 / SHA-1 signing key and checks that it signs.
pub(super) fn signing_key_from_pem(pem: &str) -> Result<SigningKey<Sha1>, KeyError> {
    // Keys pasted through forms and env files often carry CRLF or stray blanks.
    let pem = pem.trim().replace("\r\n", "\n");
    let key = match pem_label(&pem) {
        Some("RSA PRIVATE KEY") => {
            PrivateKey::from_pkcs1_pem(&pem).map_err(|error| KeyError::Malformed {
                format: "PKCS#1",
                reason: error.to_string(),
            })?
        }
        Some("PRIVATE KEY") => {
            PrivateKey::from_pkcs8_pem(&pem).map_err(|error| KeyError::Malformed {
                format: "PKCS#8",
                reason: error.to_string(),
            })?
        }
        Some(other) => {
            return Err(KeyError::UnsupportedFormat {
                found: format!("PEM block \"{other}\""),
            });
        }
        None => {
            return Err(KeyError::UnsupportedFormat {
                found: "no PEM header".to_owned(),
            });
        }
    };
    let signing_key = SigningKey::<Sha1>::new(key);
    // One signature now, so a key that cannot sign fails at load time rather
    // than in the middle of an OAuth flow.
    signing_key
        .try_sign(b"jirasync key check")
        .map_err(|error| KeyError::Unusable(error.to_string()))?;
    Ok(signing_key)
}

/// The label of the first `-----BEGIN <label>-----` line, if the text starts with one.
fn pem_label(pem: &str) -> Option<&str> {
    let first = pem.lines().next()?.trim();
    first.strip_prefix("-----BEGIN ")?.strip_suffix("-----")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PKCS1: &str = include_str!("../../../tests/fixtures/jira_test_key.pem");
    const PKCS8: &str = include_str!("../../../tests/fixtures/jira_test_key_pkcs8.pem");
    const PUBLIC: &str = include_str!("../../../tests/fixtures/jira_test_key.pub.pem");

    #[test]
    fn pkcs1_and_pkcs8_pem_load_to_the_same_key() {
        let pkcs1 = signing_key_from_pem(PKCS1).expect("PKCS#1 loads");
        let pkcs8 = signing_key_from_pem(PKCS8).expect("PKCS#8 loads");
        assert!(pkcs1 == pkcs8);
    }

    #[test]
    fn crlf_and_surrounding_blanks_are_tolerated() {
        let messy = format!("\n  {}\n\n", PKCS1.replace('\n', "\r\n"));
        assert!(signing_key_from_pem(&messy).is_ok());
    }

    #[test]
    fn other_inputs_are_refused_naming_the_expected_formats() {
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----";
        let truncated =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAK\n-----END RSA PRIVATE KEY-----";
        let cases = [
            ("public key", PUBLIC, "PUBLIC KEY"),
            ("encrypted", encrypted, "ENCRYPTED PRIVATE KEY"),
            ("garbage", "not a key", "no PEM header"),
            ("empty", "", "no PEM header"),
            ("truncated", truncated, "malformed PKCS#1"),
        ];
        for (name, pem, mentions) in cases {
            let error = signing_key_from_pem(pem).expect_err(name).to_string();
            assert!(error.contains(mentions), "{name}: {error}");
            assert!(error.contains("BEGIN RSA PRIVATE KEY"), "{name}: {error}");
            assert!(error.contains("BEGIN PRIVATE KEY"), "{name}: {error}");
            assert!(!error.contains("MIIB"), "{name} leaks key text: {error}");
        }
    }
}
