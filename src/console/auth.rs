//! Who may use the console (docs/reference.md §12.3–§12.4): the password check
//! (constant time, or Argon2id), the server-side sessions with their CSRF tokens,
//! the bearer token of `/api/`, and the per-client limit on failed logins.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ConsoleAuth, PasswordCheck};

/// How long a session lasts after login.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Failed logins of one client within [`FAILURE_WINDOW`] that block it.
pub const MAX_FAILURES: usize = 5;
/// The window of [`MAX_FAILURES`], and how long the block lasts.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Clients with failures remembered at most (a flood of addresses cannot grow
/// the table without bound; the oldest entries go first).
const MAX_CLIENTS: usize = 100_000;

/// One logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token its POSTs carry.
    pub csrf: String,
    /// When it ends.
    pub expires_at: Instant,
}

/// Whether two secrets are equal, in time independent of where they differ
/// (their digests are compared, so their lengths do not show either).
pub fn same_secret(given: &str, expected: &str) -> bool {
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    given.ct_eq(&expected).into()
}

/// 256 random bits as 64 hexadecimal digits.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The console's logins: its secrets, sessions and failures.
pub struct Gate {
    auth: ConsoleAuth,
    /// Session id → session. A std lock: held for a map operation, never across an await.
    sessions: Mutex<HashMap<String, Session>>,
    /// Client → its recent failures and the end of its block. A std lock, as above.
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

#[derive(Debug, Default)]
struct Failures {
    recent: VecDeque<Instant>,
    blocked_until: Option<Instant>,
}

impl Gate {
    /// A gate for `auth`, with no session.
    pub fn new(auth: ConsoleAuth) -> Self {
        Self {
            auth,
            sessions: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    /// Whether `password` logs in (Argon2id runs on a blocking thread).
    pub async fn password_matches(&self, password: &str) -> bool {
        match &self.auth.password {
            PasswordCheck::Plain(expected) | PasswordCheck::Generated(expected) => {
                same_secret(password, expected)
            }
            PasswordCheck::Hash(hash) => {
                let (hash, password) = (hash.clone(), password.to_owned());
                tokio::task::spawn_blocking(move || {
                    PasswordHash::new(&hash).is_ok_and(|parsed| {
                        argon2::Argon2::default()
                            .verify_password(password.as_bytes(), &parsed)
                            .is_ok()
                    })
                })
                .await
                .unwrap_or(false)
            }
        }
    }

    /// Whether `token` is the API's bearer token (never, when none is set).
    pub fn token_matches(&self, token: &str) -> bool {
        self.auth
            .api_token
            .as_deref()
            .is_some_and(|expected| same_secret(token, expected))
    }

    /// Starts a session: its id and CSRF token.
    pub fn open_session(&self) -> (String, Session) {
        let id = random_token();
        let session = Session {
            csrf: random_token(),
            expires_at: Instant::now() + SESSION_LIFETIME,
        };
        if let Ok(mut sessions) = self.sessions.lock() {
            let now = Instant::now();
            sessions.retain(|_, session| session.expires_at > now);
            sessions.insert(id.clone(), session.clone());
        }
        (id, session)
    }

    /// The session of `id`, while it lasts.
    pub fn session(&self, id: &str) -> Option<Session> {
        let sessions = self.sessions.lock().ok()?;
        sessions
            .get(id)
            .filter(|session| session.expires_at > Instant::now())
            .cloned()
    }

    /// Ends the session of `id`.
    pub fn close_session(&self, id: &str) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.remove(id);
        }
    }

    /// How long `client` stays blocked, when it is.
    pub fn blocked(&self, client: IpAddr) -> Option<Duration> {
        let failures = self.failures.lock().ok()?;
        let until = failures.get(&client)?.blocked_until?;
        until.checked_duration_since(Instant::now())
    }

    /// Counts a failed login (or bearer token) of `client`.
    pub fn failed(&self, client: IpAddr) {
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        let now = Instant::now();
        if failures.len() >= MAX_CLIENTS && !failures.contains_key(&client) {
            failures.retain(|_, f| {
                f.blocked_until.is_some_and(|until| until > now)
                    || f.recent.back().is_some_and(|at| now - *at < FAILURE_WINDOW)
            });
            if failures.len() >= MAX_CLIENTS {
                return;
            }
        }
        let entry = failures.entry(client).or_default();
        while entry
            .recent
            .front()
            .is_some_and(|at| now - *at >= FAILURE_WINDOW)
        {
            entry.recent.pop_front();
        }
        entry.recent.push_back(now);
        if entry.recent.len() >= MAX_FAILURES {
            entry.recent.clear();
            entry.blocked_until = Some(now + FAILURE_WINDOW);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(password: &str) -> Gate {
        Gate::new(ConsoleAuth {
            password: PasswordCheck::Plain(password.to_owned()),
            api_token: Some("t".repeat(32)),
        })
    }

    #[tokio::test]
    async fn the_fifth_failure_blocks_that_client_only() {
        let gate = gate("the-right-password");
        let (one, other): (IpAddr, IpAddr) = (
            "10.0.0.1".parse().expect("ip"),
            "10.0.0.2".parse().expect("ip"),
        );
        for _ in 0..4 {
            gate.failed(one);
        }
        assert_eq!(gate.blocked(one), None);
        gate.failed(one);
        let left = gate.blocked(one).expect("blocked");
        assert!(left > FAILURE_WINDOW - Duration::from_secs(5), "{left:?}");
        assert_eq!(gate.blocked(other), None);
        assert!(gate.password_matches("the-right-password").await);
        assert!(!gate.password_matches("the-right-passwor").await);
        assert!(gate.token_matches(&"t".repeat(32)));
        assert!(!gate.token_matches("t"));
    }

    #[test]
    fn a_closed_session_opens_nothing() {
        let gate = gate("the-right-password");
        let (id, session) = gate.open_session();
        assert_eq!(id.len(), 64);
        assert_ne!(id, session.csrf);
        assert!(gate.session(&id).is_some());
        gate.close_session(&id);
        assert!(gate.session(&id).is_none());
    }

    #[tokio::test]
    async fn an_argon2id_hash_checks_the_password() {
        use argon2::password_hash::PasswordHasher;
        let hash = argon2::Argon2::default()
            .hash_password(b"the-right-password")
            .expect("hashes")
            .to_string();
        let gate = Gate::new(ConsoleAuth {
            password: PasswordCheck::Hash(hash),
            api_token: None,
        });
        assert!(gate.password_matches("the-right-password").await);
        assert!(!gate.password_matches("wrong-password").await);
        assert!(!gate.token_matches(""));
    }
}
