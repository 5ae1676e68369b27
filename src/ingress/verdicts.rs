//! What the ingress does with the workers' verdicts on webhook tokens
//! (docs/reference.md §3 "Verdicts"): it has no database and no secret, so it
//! cannot tell a genuine token from a forged one; the workers can, and tell every
//! ingress through `P.verdicts` (`queue::fanout`). A rejected token is refused
//! with `429` from every client for 10 minutes; a client whose posts drew
//! `JIRASYNC_CLIENT_MAX_REJECTS` rejections within a minute is suspect for 10
//! minutes, and its posts with a token that is neither verified nor rejected are
//! refused, but for one every 10 s. A token accepted within 7 days is never
//! refused here. The webhook route asks [`Verdicts::admit`] before it reads a
//! body; [`listen`] feeds the verdicts in.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::client::Client;
use super::expiring::Expiring;
use crate::queue::verdict::{Judgement, TokenDigest, Verdict};
use crate::shutdown::Shutdown;

/// How long an accepted token stays verified.
pub const VERIFIED_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a rejected token is refused.
pub const REJECTED_FOR: Duration = Duration::from_secs(600);
/// The window rejections are counted in.
pub const REJECTS_WITHIN: Duration = Duration::from_secs(60);
/// How long a client stays suspect.
pub const SUSPECT_FOR: Duration = Duration::from_secs(600);
/// A suspect client gets one post with an unjudged token through this often.
pub const LET_THROUGH_EVERY: Duration = Duration::from_secs(10);
/// How long a post waits for its token's verdict (longer than any backlog the
/// workers should have; a verdict after it counts against no client).
const AWAITED_FOR: Duration = Duration::from_secs(600);
/// Rejected tokens remembered at most (the contract's bound), and as many of
/// each other kind.
pub const MAX_TOKENS: usize = 100_000;
/// Clients remembered at most per awaited token: a token posted by more is
/// refused once rejected anyway.
const MAX_POSTERS: usize = 8;

/// Why a post is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A worker rejected its token (`rejected_token`).
    RejectedToken,
    /// Its client is suspect and its token unjudged (`suspect_client`).
    SuspectClient,
}

impl Refusal {
    /// The `jirasync_http_shed_total` reason.
    pub fn reason(self) -> &'static str {
        match self {
            Self::RejectedToken => "rejected_token",
            Self::SuspectClient => "suspect_client",
        }
    }
}

impl IntoResponse for Refusal {
    /// `429` with `Retry-After` (until the refusal ends, at most) and a safe message.
    fn into_response(self) -> Response {
        metrics::counter!("jirasync_http_shed_total", "reason" => self.reason()).increment(1);
        let (retry_after, message) = match self {
            Self::RejectedToken => (
                "600",
                "a worker rejected the token in the URL; it is refused for 10 minutes \
                 (check the webhook URL: `jirasync integration webhook-url`)",
            ),
            Self::SuspectClient => (
                "10",
                "too many rejected tokens from this client; tokens not yet verified are refused \
                 for 10 minutes, but for one request every 10 s",
            ),
        };
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({ "error": message })),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static(retry_after));
        response
    }
}

/// The verdicts heard and the clients they count against.
pub struct Verdicts {
    /// A std lock: held for a few map operations, never across an await; every
    /// webhook takes it once, so it must be short.
    state: Mutex<State>,
    /// `JIRASYNC_CLIENT_MAX_REJECTS`.
    max_rejects: usize,
}

struct State {
    /// Tokens accepted within [`VERIFIED_FOR`].
    verified: Expiring<TokenDigest, ()>,
    /// Tokens rejected within [`REJECTED_FOR`].
    rejected: Expiring<TokenDigest, ()>,
    /// Tokens posted and published without a verdict yet, with who posted them
    /// and how often.
    awaited: Expiring<TokenDigest, Vec<(Client, u32)>>,
    /// Clients with rejections counted lately.
    clients: Expiring<Client, Conduct>,
}

/// A client's recent rejections.
#[derive(Default)]
struct Conduct {
    /// When each of its last rejections (at most `max_rejects`) was heard.
    rejections: VecDeque<Instant>,
    /// Suspect until then.
    suspect_until: Option<Instant>,
    /// When a post of it was last let through while suspect.
    let_through: Option<Instant>,
}

impl Verdicts {
    /// No verdict heard yet (so nothing is refused), `max_rejects` rejections a
    /// minute make a client suspect.
    pub fn new(max_rejects: u32) -> Self {
        Self {
            state: Mutex::new(State {
                verified: Expiring::new(VERIFIED_FOR, MAX_TOKENS),
                rejected: Expiring::new(REJECTED_FOR, MAX_TOKENS),
                awaited: Expiring::new(AWAITED_FOR, MAX_TOKENS),
                clients: Expiring::new(SUSPECT_FOR, MAX_TOKENS),
            }),
            max_rejects: usize::try_from(max_rejects).unwrap_or(usize::MAX).max(1),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding it leaves maps that are still maps.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `client` may post the token of digest `token` now; when it may and it is not
    /// verified, the post is remembered so that a rejection counts against it.
    pub fn admit(&self, token: TokenDigest, client: Client) -> Result<(), Refusal> {
        self.admit_at(token, client, Instant::now())
    }

    fn admit_at(&self, token: TokenDigest, client: Client, now: Instant) -> Result<(), Refusal> {
        let mut state = self.state();
        if state.verified.contains(&token, now) {
            return Ok(());
        }
        if state.rejected.contains(&token, now) {
            return Err(Refusal::RejectedToken);
        }
        if let Some(conduct) = state.clients.get_mut(&client, now)
            && conduct.suspect_until.is_some_and(|until| now < until)
        {
            let recently = conduct
                .let_through
                .is_some_and(|at| now.saturating_duration_since(at) < LET_THROUGH_EVERY);
            if recently {
                return Err(Refusal::SuspectClient);
            }
            conduct.let_through = Some(now);
        }
        let posters = state.awaited.refresh(token, now, Vec::new);
        if let Some((_, posts)) = posters.iter_mut().find(|(poster, _)| *poster == client) {
            *posts = posts.saturating_add(1);
        } else if posters.len() < MAX_POSTERS {
            posters.push((client, 1));
        }
        Ok(())
    }

    /// Takes in a verdict message's body (anything else is ignored).
    pub fn hear(&self, body: &[u8]) {
        match Verdict::from_body(body) {
            Some(verdict) => self.hear_at(verdict, Instant::now()),
            None => tracing::debug!("a message on the verdicts exchange is not a verdict"),
        }
    }

    fn hear_at(&self, verdict: Verdict, now: Instant) {
        let mut state = self.state();
        let token = verdict.token;
        let posters = state.awaited.remove(&token);
        match verdict.judgement {
            Judgement::Accepted => {
                state.rejected.remove(&token);
                state.verified.insert(token, (), now);
            }
            Judgement::Rejected => {
                // Also a token verified until now: after a webhook secret's
                // rotation its old tokens are rejected from then on.
                state.verified.remove(&token);
                state.rejected.insert(token, (), now);
                for (client, posts) in posters.into_iter().flatten() {
                    self.count(&mut state, client, posts, now);
                }
            }
        }
    }

    /// Counts `posts` rejections against `client`; `max_rejects` within a minute
    /// make it suspect.
    fn count(&self, state: &mut State, client: Client, posts: u32, now: Instant) {
        let conduct = state.clients.refresh(client, now, Conduct::default);
        let posts = usize::try_from(posts).unwrap_or(usize::MAX);
        for _ in 0..posts.min(self.max_rejects) {
            conduct.rejections.push_back(now);
        }
        while conduct.rejections.len() > self.max_rejects
            || conduct
                .rejections
                .front()
                .is_some_and(|at| now.saturating_duration_since(*at) >= REJECTS_WITHIN)
        {
            conduct.rejections.pop_front();
        }
        if conduct.rejections.len() >= self.max_rejects {
            if conduct.suspect_until.is_none_or(|until| until <= now) {
                tracing::warn!(client = %client.0, "client suspect: too many rejected webhook tokens");
            }
            conduct.suspect_until = Some(now + SUSPECT_FOR);
        }
    }
}

/// Listens to `P.verdicts` on `url` until `shutdown` (reconnecting, with a fresh
/// queue each time), feeding `verdicts`. The ingress spawns and awaits it.
pub async fn listen(url: String, exchange: String, verdicts: Arc<Verdicts>, shutdown: Shutdown) {
    crate::queue::fanout::listen(url, exchange, "verdict-listener", shutdown, move |body| {
        verdicts.hear(body);
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn client(last: u8) -> Client {
        Client(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
    }

    fn token(name: &str) -> TokenDigest {
        TokenDigest::of(name)
    }

    fn verdict(name: &str, judgement: Judgement) -> Verdict {
        Verdict {
            token: token(name),
            judgement,
        }
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn with_no_verdict_heard_nothing_is_refused() {
        let verdicts = Verdicts::new(1);
        let now = Instant::now();
        for i in 0..100 {
            assert_eq!(
                verdicts.admit_at(token(&format!("t{i}")), client(1), now),
                Ok(())
            );
        }
    }

    #[test]
    fn a_rejected_token_is_refused_from_every_client_for_ten_minutes() {
        let verdicts = Verdicts::new(20);
        let t0 = Instant::now();
        assert_eq!(verdicts.admit_at(token("forged"), client(1), t0), Ok(()));
        verdicts.hear_at(verdict("forged", Judgement::Rejected), t0);
        for c in [1, 2, 3] {
            assert_eq!(
                verdicts.admit_at(token("forged"), client(c), t0 + S),
                Err(Refusal::RejectedToken)
            );
        }
        assert_eq!(
            verdicts.admit_at(token("forged"), client(2), t0 + REJECTED_FOR - S),
            Err(Refusal::RejectedToken)
        );
        assert_eq!(
            verdicts.admit_at(token("forged"), client(2), t0 + REJECTED_FOR),
            Ok(())
        );
    }

    #[test]
    fn a_client_whose_posts_draw_max_rejects_in_a_minute_is_suspect_for_ten_minutes() {
        let verdicts = Verdicts::new(3);
        let t0 = Instant::now();
        for i in 0..3 {
            let name = format!("forged{i}");
            assert_eq!(verdicts.admit_at(token(&name), client(1), t0), Ok(()));
            verdicts.hear_at(verdict(&name, Judgement::Rejected), t0 + S);
        }
        verdicts.hear_at(verdict("genuine", Judgement::Accepted), t0);
        let t1 = t0 + 2 * S;
        // One unjudged token let through, then refused for 10 s.
        assert_eq!(verdicts.admit_at(token("new1"), client(1), t1), Ok(()));
        assert_eq!(
            verdicts.admit_at(token("new2"), client(1), t1 + S),
            Err(Refusal::SuspectClient)
        );
        assert_eq!(
            verdicts.admit_at(token("new1"), client(1), t1 + S),
            Err(Refusal::SuspectClient)
        );
        assert_eq!(
            verdicts.admit_at(token("new3"), client(1), t1 + LET_THROUGH_EVERY),
            Ok(())
        );
        // Verified tokens never; other clients not at all.
        for at in [t1, t1 + S, t1 + 2 * S] {
            assert_eq!(verdicts.admit_at(token("genuine"), client(1), at), Ok(()));
            assert_eq!(verdicts.admit_at(token("new4"), client(2), at), Ok(()));
        }
        // A rejected one is refused as rejected.
        assert_eq!(
            verdicts.admit_at(token("forged0"), client(1), t1),
            Err(Refusal::RejectedToken)
        );
        // Suspect until 10 minutes after the rejection that made it so.
        let end = t0 + S + SUSPECT_FOR;
        assert_eq!(verdicts.admit_at(token("new5"), client(1), end - S), Ok(()));
        assert_eq!(
            verdicts.admit_at(token("new6"), client(1), end - S + S / 2),
            Err(Refusal::SuspectClient)
        );
        assert_eq!(verdicts.admit_at(token("new7"), client(1), end), Ok(()));
        assert_eq!(verdicts.admit_at(token("new8"), client(1), end), Ok(()));
    }

    #[test]
    fn rejections_spread_over_more_than_a_minute_make_no_suspect() {
        let verdicts = Verdicts::new(3);
        let t0 = Instant::now();
        for i in 0..10u32 {
            let name = format!("forged{i}");
            let at = t0 + 31 * S * i;
            assert_eq!(verdicts.admit_at(token(&name), client(1), at), Ok(()));
            verdicts.hear_at(verdict(&name, Judgement::Rejected), at);
        }
        let later = t0 + 31 * S * 10;
        assert_eq!(verdicts.admit_at(token("a"), client(1), later), Ok(()));
        assert_eq!(verdicts.admit_at(token("b"), client(1), later), Ok(()));
    }

    #[test]
    fn each_post_before_the_verdict_counts_once_against_its_poster() {
        let verdicts = Verdicts::new(5);
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(verdicts.admit_at(token("forged"), client(1), t0), Ok(()));
        }
        assert_eq!(verdicts.admit_at(token("forged"), client(2), t0), Ok(()));
        // One verdict per post published: the first counts them all.
        for _ in 0..6 {
            verdicts.hear_at(verdict("forged", Judgement::Rejected), t0 + S);
        }
        let t1 = t0 + 2 * S;
        assert_eq!(verdicts.admit_at(token("x"), client(1), t1), Ok(()));
        assert_eq!(
            verdicts.admit_at(token("y"), client(1), t1),
            Err(Refusal::SuspectClient)
        );
        assert_eq!(verdicts.admit_at(token("x"), client(2), t1), Ok(()));
        assert_eq!(verdicts.admit_at(token("y"), client(2), t1), Ok(()));
    }

    #[test]
    fn a_verified_token_is_never_refused_until_a_rejection_clears_the_mark() {
        let verdicts = Verdicts::new(1);
        let t0 = Instant::now();
        assert_eq!(verdicts.admit_at(token("genuine"), client(1), t0), Ok(()));
        verdicts.hear_at(verdict("genuine", Judgement::Accepted), t0);
        // The client turns suspect; its verified token still passes, uncounted.
        assert_eq!(verdicts.admit_at(token("forged"), client(1), t0), Ok(()));
        verdicts.hear_at(verdict("forged", Judgement::Rejected), t0);
        for i in 0..50 {
            assert_eq!(
                verdicts.admit_at(token("genuine"), client(1), t0 + S * i),
                Ok(())
            );
        }
        assert_eq!(
            verdicts.admit_at(token("genuine"), client(1), t0 + VERIFIED_FOR - S),
            Ok(())
        );
        // After a rotation's overlap the worker rejects it: refused from then on.
        verdicts.hear_at(verdict("genuine", Judgement::Rejected), t0 + 60 * S);
        assert_eq!(
            verdicts.admit_at(token("genuine"), client(2), t0 + 61 * S),
            Err(Refusal::RejectedToken)
        );
    }

    #[test]
    fn an_acceptance_lifts_a_rejection_and_counts_nothing() {
        let verdicts = Verdicts::new(1);
        let t0 = Instant::now();
        assert_eq!(verdicts.admit_at(token("t"), client(1), t0), Ok(()));
        verdicts.hear_at(verdict("t", Judgement::Accepted), t0);
        assert_eq!(verdicts.admit_at(token("u"), client(1), t0), Ok(()));
        assert_eq!(verdicts.admit_at(token("v"), client(1), t0), Ok(()));
        verdicts.hear_at(verdict("v", Judgement::Rejected), t0);
        verdicts.hear_at(verdict("v", Judgement::Accepted), t0 + S);
        assert_eq!(verdicts.admit_at(token("v"), client(2), t0 + S), Ok(()));
    }

    #[test]
    fn at_most_the_bound_of_rejected_tokens_is_kept_oldest_dropped_first() {
        let verdicts = Verdicts::new(u32::MAX);
        let t0 = Instant::now();
        for i in 0..MAX_TOKENS + 10 {
            verdicts.hear_at(
                Verdict {
                    token: token(&i.to_string()),
                    judgement: Judgement::Rejected,
                },
                t0,
            );
        }
        let state = verdicts.state();
        assert_eq!(state.rejected.len(), MAX_TOKENS);
        assert!(!state.rejected.contains(&token("0"), t0));
        assert!(!state.rejected.contains(&token("9"), t0));
        assert!(state.rejected.contains(&token("10"), t0));
        assert!(
            state
                .rejected
                .contains(&token(&(MAX_TOKENS + 9).to_string()), t0)
        );
    }

    #[test]
    fn refusals_are_429_with_retry_after() {
        for (refusal, retry_after) in [
            (Refusal::RejectedToken, "600"),
            (Refusal::SuspectClient, "10"),
        ] {
            let response = refusal.into_response();
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(response.headers()[header::RETRY_AFTER], retry_after);
        }
    }
}
