//! The operator console's settings (docs/reference.md §12.2): where it listens
//! (`off`: not in `jirasync run`), the password or its Argon2id hash, the API's
//! bearer token. The secrets are checked by [`ConsoleSettings::auth`] at start, so
//! a refusal names the setting and never echoes the value (clap would print it).

use std::net::SocketAddr;
use std::str::FromStr;

use clap::Args;

/// A password shorter than this is refused.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// An API token shorter than this is refused.
pub const MIN_API_TOKEN_CHARS: usize = 32;

/// `JIRASYNC_CONSOLE_LISTEN`: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleListen {
    /// No console (in `jirasync run`).
    Off,
    /// The console's address.
    At(SocketAddr),
}

impl FromStr for ConsoleListen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        s.parse()
            .map(Self::At)
            .map_err(|_| format!("{s:?} is neither an address (127.0.0.1:8081) nor `off`"))
    }
}

impl std::fmt::Display for ConsoleListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::At(address) => write!(f, "{address}"),
        }
    }
}

/// The console's settings. `Debug` elides the password, hash and token.
#[derive(Clone, Args)]
#[command(next_help_heading = "Console")]
pub struct ConsoleSettings {
    /// The operator console's address; `off`: no console in `jirasync run`.
    #[arg(
        id = "console_listen",
        long = "console-listen",
        value_name = "ADDRESS|off",
        env = "JIRASYNC_CONSOLE_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    pub listen: ConsoleListen,

    /// The password that logs in to the console (at least 12 characters).
    #[arg(
        id = "console_password",
        long = "console-password",
        value_name = "PASSWORD",
        env = "JIRASYNC_CONSOLE_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,

    /// Instead of the password, its Argon2id hash in PHC form (`jirasync console
    /// --hash-password` prints one).
    #[arg(
        id = "console_password_hash",
        long = "console-password-hash",
        value_name = "PHC",
        env = "JIRASYNC_CONSOLE_PASSWORD_HASH",
        hide_env_values = true
    )]
    pub password_hash: Option<String>,

    /// A bearer token for the console's JSON API under /api/ (at least 32
    /// characters); unset: the API takes only a session.
    #[arg(
        id = "console_api_token",
        long = "console-api-token",
        value_name = "TOKEN",
        env = "JIRASYNC_CONSOLE_API_TOKEN",
        hide_env_values = true
    )]
    pub api_token: Option<String>,
}

impl std::fmt::Debug for ConsoleSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let elided = |set: &Option<String>| set.as_ref().map(|_| "***");
        f.debug_struct("ConsoleSettings")
            .field("listen", &self.listen)
            .field("password", &elided(&self.password))
            .field("password_hash", &elided(&self.password_hash))
            .field("api_token", &elided(&self.api_token))
            .finish()
    }
}

/// How the console checks a password: checked at start, never shown.
#[derive(Clone)]
pub enum PasswordCheck {
    /// `JIRASYNC_CONSOLE_PASSWORD`.
    Plain(String),
    /// `JIRASYNC_CONSOLE_PASSWORD_HASH`, parsed.
    Hash(String),
    /// None set, on a loopback address: made up for the life of the process.
    Generated(String),
}

impl std::fmt::Debug for PasswordCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Plain(_) => "Plain(***)",
            Self::Hash(_) => "Hash(***)",
            Self::Generated(_) => "Generated(***)",
        })
    }
}

/// What logs in: the password check and the API token.
#[derive(Clone)]
pub struct ConsoleAuth {
    /// How a password is checked.
    pub password: PasswordCheck,
    /// The bearer token of `/api/`, when set.
    pub api_token: Option<String>,
}

impl std::fmt::Debug for ConsoleAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleAuth")
            .field("password", &self.password)
            .field("api_token", &self.api_token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Why the console refuses to start; each names the setting, none the value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConsoleRefusal {
    /// Both password settings.
    #[error("set one of JIRASYNC_CONSOLE_PASSWORD and JIRASYNC_CONSOLE_PASSWORD_HASH, not both")]
    BothPasswords,
    /// A password under [`MIN_PASSWORD_CHARS`].
    #[error("JIRASYNC_CONSOLE_PASSWORD is shorter than {MIN_PASSWORD_CHARS} characters")]
    ShortPassword,
    /// A hash that is not an Argon2id PHC string.
    #[error(
        "JIRASYNC_CONSOLE_PASSWORD_HASH is not an Argon2id hash in PHC form \
         ($argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>; make one with `jirasync console --hash-password`)"
    )]
    BadHash,
    /// An API token under [`MIN_API_TOKEN_CHARS`].
    #[error("JIRASYNC_CONSOLE_API_TOKEN is shorter than {MIN_API_TOKEN_CHARS} characters")]
    ShortToken,
    /// No password on an address other than loopback.
    #[error(
        "the console listens on {0}, which is not a loopback address: set JIRASYNC_CONSOLE_PASSWORD \
         (or JIRASYNC_CONSOLE_PASSWORD_HASH)"
    )]
    NoPassword(SocketAddr),
    /// Two listeners on one address.
    #[error("JIRASYNC_CONSOLE_LISTEN and {0} are the same address ({1}): give each its own")]
    SameAddress(&'static str, SocketAddr),
    /// `jirasync console` with `off`.
    #[error("JIRASYNC_CONSOLE_LISTEN is off: `jirasync console` has nothing to serve")]
    Off,
}

impl ConsoleSettings {
    /// The password check and token, or why the console may not start on
    /// `address`. Makes up a password when none is set on a loopback address.
    pub fn auth(&self, address: SocketAddr) -> Result<ConsoleAuth, ConsoleRefusal> {
        let password = match (&self.password, &self.password_hash) {
            (Some(_), Some(_)) => return Err(ConsoleRefusal::BothPasswords),
            (Some(password), None) => {
                if password.chars().count() < MIN_PASSWORD_CHARS {
                    return Err(ConsoleRefusal::ShortPassword);
                }
                PasswordCheck::Plain(password.clone())
            }
            (None, Some(hash)) => {
                let parsed = argon2::password_hash::phc::PasswordHash::new(hash.trim())
                    .map_err(|_| ConsoleRefusal::BadHash)?;
                if parsed.algorithm.as_str() != "argon2id" || parsed.hash.is_none() {
                    return Err(ConsoleRefusal::BadHash);
                }
                PasswordCheck::Hash(hash.trim().to_owned())
            }
            (None, None) if address.ip().is_loopback() => PasswordCheck::Generated(generated()),
            (None, None) => return Err(ConsoleRefusal::NoPassword(address)),
        };
        if let Some(token) = &self.api_token
            && token.chars().count() < MIN_API_TOKEN_CHARS
        {
            return Err(ConsoleRefusal::ShortToken);
        }
        Ok(ConsoleAuth {
            password,
            api_token: self.api_token.clone(),
        })
    }

    /// The address, or a refusal when another listener of the process has it.
    pub fn distinct_from(
        &self,
        others: &[(&'static str, Option<SocketAddr>)],
    ) -> Result<(), ConsoleRefusal> {
        let ConsoleListen::At(address) = self.listen else {
            return Ok(());
        };
        for (setting, other) in others {
            if *other == Some(address) {
                return Err(ConsoleRefusal::SameAddress(setting, address));
            }
        }
        Ok(())
    }

    /// The settings as `jirasync config` shows them: secrets elided.
    pub fn redacted_json(&self) -> serde_json::Value {
        let elided = |set: &Option<String>| set.as_ref().map(|_| "***");
        serde_json::json!({
            "console_listen": self.listen.to_string(),
            "console_password": elided(&self.password),
            "console_password_hash": elided(&self.password_hash),
            "console_api_token": elided(&self.api_token),
        })
    }
}

/// A random password of 128 bits, as 32 hexadecimal digits.
fn generated() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(
        password: Option<&str>,
        hash: Option<&str>,
        token: Option<&str>,
    ) -> ConsoleSettings {
        ConsoleSettings {
            listen: ConsoleListen::At("127.0.0.1:8081".parse().expect("address")),
            password: password.map(str::to_owned),
            password_hash: hash.map(str::to_owned),
            api_token: token.map(str::to_owned),
        }
    }

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$2Gb4jDfRSRA+tG2Za6PFNxexJ3OJXjDQHBfkvZ1AWDk";

    #[test]
    fn refusals_name_the_setting_and_never_the_value() {
        let loopback: SocketAddr = "127.0.0.1:8081".parse().expect("address");
        let public: SocketAddr = "0.0.0.0:8081".parse().expect("address");
        for (case, settings, address, refusal) in [
            (
                "both",
                settings(Some("long-enough-pw"), Some(HASH), None),
                loopback,
                ConsoleRefusal::BothPasswords,
            ),
            (
                "short",
                settings(Some("short-pw"), None, None),
                loopback,
                ConsoleRefusal::ShortPassword,
            ),
            (
                "bad hash",
                settings(None, Some("$2b$10$notargon"), None),
                loopback,
                ConsoleRefusal::BadHash,
            ),
            (
                "short token",
                settings(Some("long-enough-pw"), None, Some("tok")),
                loopback,
                ConsoleRefusal::ShortToken,
            ),
            (
                "public without password",
                settings(None, None, None),
                public,
                ConsoleRefusal::NoPassword(public),
            ),
        ] {
            assert_eq!(settings.auth(address).expect_err(case), refusal, "{case}");
            let text = refusal.to_string();
            assert!(text.contains("JIRASYNC_CONSOLE_"), "{case}: {text}");
            for secret in ["long-enough-pw", "short-pw", "notargon", "tok\""] {
                assert!(!text.contains(secret), "{case}: {text}");
            }
        }
        assert!(settings(None, Some(HASH), None).auth(loopback).is_ok());
        let generated = settings(None, None, None)
            .auth(loopback)
            .expect("generated");
        assert!(
            matches!(&generated.password, PasswordCheck::Generated(p) if p.len() == 32),
            "{generated:?}"
        );
    }

    #[test]
    fn debug_and_config_elide_every_secret() {
        let settings = settings(Some("long-enough-pw"), Some(HASH), Some("a-token"));
        let shown = format!("{settings:?} {}", settings.redacted_json());
        for secret in ["long-enough-pw", "argon2id", "a-token"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert_eq!("off".parse::<ConsoleListen>(), Ok(ConsoleListen::Off));
    }
}
