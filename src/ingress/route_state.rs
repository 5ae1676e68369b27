//! What the webhook route keeps between requests: its publish metrics, and the
//! tokens it checked lately ([`KnownTokens`]).

use std::sync::{Arc, Mutex, OnceLock};

use crate::integration::token::could_be_ours;
use crate::queue::verdict::TokenDigest;

/// The publish metrics of the webhook route, registered at the first webhook (as
/// the macros would) and kept.
#[derive(Default)]
pub struct PublishMetrics {
    /// `jirasync_publishes_in_flight`.
    in_flight: OnceLock<metrics::Gauge>,
    /// `jirasync_publish_duration_seconds`.
    duration: OnceLock<metrics::Histogram>,
}

impl PublishMetrics {
    pub(super) fn in_flight(&self) -> &metrics::Gauge {
        self.in_flight
            .get_or_init(|| metrics::gauge!("jirasync_publishes_in_flight"))
    }

    pub(super) fn duration(&self) -> &metrics::Histogram {
        self.duration
            .get_or_init(|| metrics::histogram!("jirasync_publish_duration_seconds"))
    }
}

/// Tokens lately found to be [`could_be_ours`], at most this many.
const KNOWN_TOKENS: usize = 16;

/// The last tokens that passed [`could_be_ours`], with their digests. A Jira
/// sends every webhook of an integration with the same token, so decoding its
/// header and claims and hashing it for the verdicts (`verdicts.rs`) once spares
/// that work on the requests after; both depend on the token alone, so a
/// remembered answer is the one they would give again. A refused token is not
/// remembered.
#[derive(Default)]
pub struct KnownTokens {
    /// The slot the next token goes to, and the slots. A std lock: held for a
    /// 16-entry compare, never across an await.
    slots: Mutex<(usize, [Option<Known>; KNOWN_TOKENS])>,
}

/// A remembered token and its digest.
type Known = (Arc<str>, TokenDigest);

impl KnownTokens {
    /// The digest of `token` when it passed [`could_be_ours`] lately (and so
    /// [`is_jwt_shaped`]).
    pub fn known(&self, token: &str) -> Option<TokenDigest> {
        let slots = self.slots.lock().ok()?;
        known(&slots.1, token)
    }

    /// [`could_be_ours`] of a token not [`known`](Self::known): its digest when it
    /// could be, and then it is remembered.
    pub fn could_be_ours(&self, token: &str) -> Option<TokenDigest> {
        if !could_be_ours(token) {
            return None;
        }
        let digest = TokenDigest::of(token);
        if let Ok(mut slots) = self.slots.lock()
            && known(&slots.1, token).is_none()
        {
            let next = slots.0;
            slots.1[next] = Some((Arc::from(token), digest));
            slots.0 = (next + 1) % KNOWN_TOKENS;
        }
        Some(digest)
    }
}

fn known(slots: &[Option<Known>], token: &str) -> Option<TokenDigest> {
    slots
        .iter()
        .flatten()
        .find(|(known, _)| **known == *token)
        .map(|(_, digest)| *digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_token_is_still_judged_as_could_be_ours_judges_it_with_its_digest() {
        let tokens = KnownTokens::default();
        let ours = crate::integration::token::mint("jira.example:1", "secret").expect("mints");
        let alg_none = "eyJhbGciOiJub25lIn0.eyJpZCI6IngifQ.";
        assert_eq!(tokens.known(&ours), None);
        for _ in 0..2 {
            assert_eq!(tokens.could_be_ours(&ours), Some(TokenDigest::of(&ours)));
            assert_eq!(tokens.could_be_ours(alg_none), None);
        }
        assert_eq!(tokens.known(&ours), Some(TokenDigest::of(&ours)));
        assert_eq!(tokens.known(alg_none), None);
    }

    #[test]
    fn more_tokens_than_slots_evict_the_oldest_and_stay_correct() {
        let tokens = KnownTokens::default();
        let minted: Vec<String> = (0..KNOWN_TOKENS + 3)
            .map(|i| {
                crate::integration::token::mint(&format!("jira.example:{i}"), "s").expect("mints")
            })
            .collect();
        for token in minted.iter().chain(minted.iter()) {
            let digest = tokens.known(token).or_else(|| tokens.could_be_ours(token));
            assert_eq!(digest, Some(TokenDigest::of(token)));
        }
        let slots = tokens.slots.lock().expect("not poisoned");
        assert_eq!(slots.1.iter().flatten().count(), KNOWN_TOKENS);
    }
}
