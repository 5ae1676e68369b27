//! Webhook URL tokens that verified (docs/reference.md §5.1), kept so that the
//! next webhook with the same token — every webhook of an integration carries
//! the same one — skips decoding its claims, checking its HS256 signature and
//! hashing it for the verdict: together about a tenth of the worker's
//! instructions per webhook (docs/performance.md, "Worker CPU profile").
//!
//! Only a token that verified under its integration's current secret and carries
//! no time claims (`exp`, `nbf`) is kept: then its verdict can change only with
//! the integration or the secret, and both are compared at each use (a rotation
//! or another integration under the external id verifies it afresh). A token that
//! did not verify is never kept: anyone can post one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::integration::Integration;
use crate::integration::token::{self, Claims, Rejected, Secret};
use crate::queue::verdict::TokenDigest;

/// Tokens kept at most; then they are forgotten all at once (each integration
/// has one token per secret, so this is room for hundreds of integrations).
const MAX_TOKENS: usize = 1_024;

/// The tokens that verified, by token.
#[derive(Default)]
pub struct Tokens {
    /// A std lock: held for one map operation, never across an await.
    verified: Mutex<HashMap<String, Arc<Verified>>>,
}

/// A token that verified, and what it verified for.
pub struct Verified {
    /// Its `id` claim.
    external_id: String,
    /// Its digest, what its verdict names.
    digest: TokenDigest,
    /// The integration it verified for.
    integration_id: i64,
    /// The `webhook_secret` it verified under. Kept in memory beside the
    /// integration's own copy; never logged (no `Debug`).
    secret: String,
}

/// A webhook's token before its integration is known.
pub enum Token {
    /// It verified before: for this integration, under this secret.
    Known(Arc<Verified>),
    /// Not kept: its claims, read without verification.
    Read(Claims),
}

impl Token {
    /// The `id` claim: the external id of the integration it names.
    pub fn external_id(&self) -> &str {
        match self {
            Self::Known(verified) => &verified.external_id,
            Self::Read(claims) => &claims.id,
        }
    }
}

impl Tokens {
    /// What is known of `token`: kept since it verified, or its claims read now.
    pub fn read(&self, token: &str) -> Result<Token, Rejected> {
        let kept = self
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned();
        match kept {
            Some(verified) => Ok(Token::Known(verified)),
            None => token::claims(token).map(Token::Read),
        }
    }

    /// Verifies `token` (as [`Tokens::read`] read it) for `integration`, as
    /// [`token::verify`] does, and gives its digest: without checking it again
    /// when it verified for this integration under its current secret before.
    pub fn verify(
        &self,
        token: &str,
        read: &Token,
        integration: &Integration,
    ) -> Result<TokenDigest, Rejected> {
        let current = integration.metadata.webhook_secret.as_deref();
        if let Token::Known(verified) = read
            && verified.integration_id == integration.id
            && current == Some(verified.secret.as_str())
        {
            return Ok(verified.digest);
        }
        let verdict = token::verify_at(token, &integration.metadata, chrono::Utc::now());
        let mut kept = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        let secret = match verdict {
            Err(reason) => {
                kept.remove(token);
                return Err(reason);
            }
            Ok(Secret::Previous) => None,
            Ok(Secret::Current) => current,
        };
        let digest = TokenDigest::of(token);
        let timeless = match read {
            Token::Known(_) => true,
            Token::Read(claims) => claims.timeless,
        };
        if let Some(secret) = secret.filter(|_| timeless) {
            if kept.len() >= MAX_TOKENS {
                kept.clear();
            }
            let verified = Verified {
                external_id: read.external_id().to_owned(),
                digest,
                integration_id: integration.id,
                secret: secret.to_owned(),
            };
            kept.insert(token.to_owned(), Arc::new(verified));
        } else {
            kept.remove(token);
        }
        Ok(digest)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::integration::Provider;

    fn integration(id: i64, metadata: serde_json::Value) -> Integration {
        Integration {
            id,
            provider: Provider::Server,
            external_id: "jira:ck".into(),
            status: "active".into(),
            metadata: serde_json::from_value(metadata).expect("metadata reads"),
        }
    }

    fn sign(claims: serde_json::Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("encode")
    }

    fn known(tokens: &Tokens, token: &str) -> bool {
        matches!(tokens.read(token), Ok(Token::Known(_)))
    }

    #[test]
    fn a_token_is_kept_once_it_verified_under_the_current_secret() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let tokens = Tokens::default();
        let token = token::mint("jira:ck", "s3cret").expect("signs");
        let first = integration(1, json!({"webhook_secret": "s3cret"}));
        let read = tokens.read(&token).expect("reads");
        assert!(matches!(&read, Token::Read(_)));
        assert_eq!(read.external_id(), "jira:ck");
        let digest = tokens.verify(&token, &read, &first).expect("verifies");
        assert_eq!(digest, TokenDigest::of(&token));
        assert!(known(&tokens, &token), "kept");
        let read = tokens.read(&token).expect("reads");
        assert_eq!(read.external_id(), "jira:ck");
        assert_eq!(tokens.verify(&token, &read, &first), Ok(digest));
    }

    #[test]
    fn a_kept_token_is_checked_again_for_another_secret_or_integration() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let tokens = Tokens::default();
        let token = token::mint("jira:ck", "s3cret").expect("signs");
        let read = tokens.read(&token).expect("reads");
        let first = integration(1, json!({"webhook_secret": "s3cret"}));
        tokens.verify(&token, &read, &first).expect("verifies");
        // Another integration under the same external id and secret: verified afresh.
        let read = tokens.read(&token).expect("reads");
        let second = integration(2, json!({"webhook_secret": "s3cret"}));
        assert!(tokens.verify(&token, &read, &second).is_ok());
        // The secret rotated, the overlap over: rejected, and forgotten.
        let read = tokens.read(&token).expect("reads");
        let rotated = integration(2, json!({"webhook_secret": "new"}));
        assert!(matches!(
            tokens.verify(&token, &read, &rotated),
            Err(Rejected::Invalid(_))
        ));
        assert!(!known(&tokens, &token), "forgotten");
    }

    #[test]
    fn only_timeless_tokens_under_the_current_secret_are_kept() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let until = chrono::Utc::now() + chrono::TimeDelta::seconds(60);
        let rotating = integration(
            1,
            json!({"webhook_secret": "new", "previous_webhook_secret": "old",
                   "previous_valid_until": until.to_rfc3339()}),
        );
        let far = jsonwebtoken::get_current_timestamp() + 600;
        let not_kept = [
            (
                "under the previous secret",
                sign(json!({"id": "jira:ck"}), "old"),
            ),
            (
                "with an exp",
                sign(json!({"id": "jira:ck", "exp": far}), "new"),
            ),
            (
                "with an nbf",
                sign(json!({"id": "jira:ck", "nbf": 1}), "new"),
            ),
        ];
        let tokens = Tokens::default();
        for (case, token) in not_kept {
            let read = tokens.read(&token).expect("reads");
            assert!(tokens.verify(&token, &read, &rotating).is_ok(), "{case}");
            assert!(!known(&tokens, &token), "{case}");
        }
        let wrong = sign(json!({"id": "jira:ck"}), "guess");
        let read = tokens.read(&wrong).expect("reads");
        assert!(tokens.verify(&wrong, &read, &rotating).is_err());
        assert!(!known(&tokens, &wrong), "a rejected token");
    }
}
