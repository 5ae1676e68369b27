//! The values of settings that need more than `FromStr`: durations, retry tiers,
//! the queue prefix, the public URL and body limits, each refused with a message
//! naming what is wrong; and `redact_url` for everything that shows a URL.

use std::str::FromStr;
use std::time::Duration;

use clap::ValueEnum;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The delay tiers of broker-level retries, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryDelays(pub Vec<Duration>);

impl FromStr for RetryDelays {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() || s == "none" {
            return Ok(Self(Vec::new()));
        }
        let mut delays = Vec::new();
        for part in s.split(',') {
            let delay = parse_duration(part)?;
            if delay.is_zero() {
                return Err(format!("retry delay {part:?} must be greater than zero"));
            }
            // x-message-ttl is an unsigned 32-bit count of milliseconds.
            if delay.as_millis() > u128::from(u32::MAX) {
                return Err(format!(
                    "retry delay {part:?} is longer than RabbitMQ's TTL limit (about 49 days)"
                ));
            }
            if delays.contains(&delay) {
                return Err(format!("retry delay {part:?} appears twice"));
            }
            delays.push(delay);
        }
        if delays.len() > 20 {
            return Err("at most 20 retry delay tiers are supported".into());
        }
        Ok(Self(delays))
    }
}

/// Parses `500ms`, `5s`, `2m`, `1h`, `1d` or `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("duration {s:?} needs a unit: ms, s, m, h or d (e.g. 30s)"))?;
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("duration {s:?} must start with a whole number (e.g. 30s)"))?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => {
            return Err(format!(
                "duration {s:?} has unknown unit {unit:?}; use ms, s, m, h or d"
            ));
        }
    }
    .ok_or_else(|| format!("duration {s:?} is too long"))?;
    Ok(Duration::from_millis(ms))
}

/// Formats a duration the short way used in retry queue names (`30s`, `2m`, `1h`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0".into(),
        ms if ms % 86_400_000 == 0 => format!("{}d", ms / 86_400_000),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

pub(super) fn parse_queue_prefix(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 200
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "queue prefix {s:?} must be 1-200 characters of letters, digits, '_', '-', '.' or ':'"
        ))
    }
}

pub(super) fn parse_public_url(s: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(s).map_err(|e| format!("public URL {s:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "public URL {s:?} must be an http:// or https:// URL with a host"
        ));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

pub(super) fn parse_on_off(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(format!("{s:?} is neither on nor off")),
    }
}

/// `1` (or `on`, `true`) unlocks; empty, `0`, `off`, `false` do not.
pub(super) fn parse_unlock(s: &str) -> Result<bool, String> {
    if s.trim().is_empty() {
        return Ok(false);
    }
    parse_on_off(s).map_err(|_| format!("{s:?} is neither 1 nor 0"))
}

pub(super) fn parse_body_limit(s: &str) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("body limit {s:?} must be a whole number of bytes"))?;
    if n == 0 {
        return Err("body limit must be at least 1 byte".into());
    }
    Ok(n)
}

/// `url` for error messages and logs, every secret in it replaced with `***`:
/// the password of `user:pass@`, a query parameter whose name holds `pass`,
/// `secret` or `token` (`?password=`, `sslpassword=`), the same keys of a libpq
/// key-value string (`host=db password=…`), and each of several comma-separated URLs.
pub fn redact_url(url: &str) -> String {
    if url.contains("://") && url.contains(',') {
        return url.split(',').map(redact_url).collect::<Vec<_>>().join(",");
    }
    if !url.contains("://") {
        return redact_key_values(url);
    }
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            if parsed.query().is_some() {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(key, value)| {
                        let value = if is_secret_key(&key) {
                            "***".into()
                        } else {
                            value.into_owned()
                        };
                        (key.into_owned(), value)
                    })
                    .collect();
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            parsed.to_string()
        }
        // Unparsable: keep the scheme and what follows the last `@`, and nothing
        // of the query.
        Err(_) => {
            let scheme_end = url.find("://").map_or(0, |at| at + 3);
            let rest = match url.rfind('@') {
                Some(at) if at > scheme_end => format!("***{}", &url[at..]),
                _ => url[scheme_end..].to_owned(),
            };
            let rest = rest
                .split_once('?')
                .map_or(rest.clone(), |(before, _)| format!("{before}?***"));
            format!("{}{rest}", &url[..scheme_end])
        }
    }
}

/// Whether a parameter named `key` holds a secret.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["pass", "secret", "token"]
        .iter()
        .any(|word| key.contains(word))
}

/// A libpq key-value string (`host=db user=app password='a b'`) with the values
/// of secret keys replaced; quoted values may hold spaces and `\'`.
fn redact_key_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq]
            .trim_end()
            .rsplit(char::is_whitespace)
            .next()
            .unwrap_or_default();
        out.push_str(&rest[..=eq]);
        rest = &rest[eq + 1..];
        let value_len = value_length(rest);
        if is_secret_key(key) {
            out.push_str("***");
        } else {
            out.push_str(&rest[..value_len]);
        }
        rest = &rest[value_len..];
    }
    out.push_str(rest);
    out
}

/// The length of the value at the start of `text`: up to the closing quote of a
/// quoted one, else up to the next blank.
fn value_length(text: &str) -> usize {
    let trimmed = text.trim_start();
    let lead = text.len() - trimmed.len();
    if !trimmed.starts_with('\'') {
        return lead + trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
    }
    let mut escaped = false;
    for (at, c) in trimmed.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '\'' => return lead + at + 1,
            _ => {}
        }
    }
    text.len()
}

/// `url` without its query parameters named in `keys`, and those parameters
/// (name, `%XX`-decoded value) in their order.
pub fn take_query_params(url: &str, keys: &[&str]) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), Vec::new());
    };
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if keys.contains(&key) {
            taken.push((key.to_owned(), percent_decode(value)));
        } else {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, taken)
}

/// `%XX` decoded (an invalid escape is kept as it is).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_every_unit() {
        for (input, ms) in [
            ("0", 0),
            ("250ms", 250),
            ("5s", 5_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("1d", 86_400_000),
        ] {
            assert_eq!(
                parse_duration(input),
                Ok(Duration::from_millis(ms)),
                "{input}"
            );
        }
    }

    #[test]
    fn durations_without_unit_or_number_are_refused_with_a_reason() {
        for input in ["5", "s", "5x", "-1s", "", "1.5s"] {
            let err = parse_duration(input).expect_err(input);
            assert!(err.contains("duration"), "{input}: {err}");
        }
    }

    #[test]
    fn retry_delays_keep_their_order_and_refuse_zero_and_repeats() {
        let delays: RetryDelays = "5s,30s,2m".parse().expect("valid");
        assert_eq!(
            delays.0,
            vec![
                Duration::from_secs(5),
                Duration::from_secs(30),
                Duration::from_secs(120)
            ]
        );
        assert!("5s,0".parse::<RetryDelays>().is_err());
        assert!("5s,5s".parse::<RetryDelays>().is_err());
        assert_eq!("".parse::<RetryDelays>(), Ok(RetryDelays(vec![])));
    }

    #[test]
    fn durations_format_to_their_shortest_unit() {
        for (ms, text) in [
            (5_000, "5s"),
            (120_000, "2m"),
            (1_500, "1500ms"),
            (3_600_000, "1h"),
        ] {
            assert_eq!(format_duration(Duration::from_millis(ms)), text);
        }
    }

    #[test]
    fn redacting_a_url_hides_only_the_password() {
        assert_eq!(
            redact_url("amqp://guest:secret@host:5672/%2f"),
            "amqp://guest:***@host:5672/%2f"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/db"),
            "postgres://postgres@127.0.0.1:5432/db"
        );
    }

    #[test]
    fn every_form_of_password_is_redacted() {
        for (url, secret, kept) in [
            (
                "postgres://app:s3cret@db:5432/x",
                "s3cret",
                "app:***@db:5432/x",
            ),
            (
                "postgres://app@db/x?sslmode=require&password=s3cret",
                "s3cret",
                "sslmode=require&password=***",
            ),
            (
                "postgres://db/x?SSLPassword=s3cret",
                "s3cret",
                "SSLPassword=***",
            ),
            (
                "host=db user=app password=s3cret dbname=x",
                "s3cret",
                "host=db user=app password=*** dbname=x",
            ),
            (
                "host=db password = 'a s3cret \\' b' dbname=x",
                "s3cret",
                "host=db password =*** dbname=x",
            ),
            (
                "amqp://u:s3cret@a:5672/%2f,amqp://u:s3cret@b:5672/%2f",
                "s3cret",
                "amqp://u:***@a:5672/%2f,amqp://u:***@b:5672/%2f",
            ),
            (
                "amqp://u:s3cret@[bad/x?password=s3cret",
                "s3cret",
                "***@[bad/x?***",
            ),
        ] {
            let redacted = redact_url(url);
            assert!(!redacted.contains(secret), "{url} → {redacted}");
            assert!(redacted.contains(kept), "{url} → {redacted}");
        }
    }
}
