//! How `dlq list` prints dead letters: a table, or one JSON object per line.
//! Whoever can publish chooses a message's fields: their control characters are
//! printed escaped (ESC as `\x1b`), so a dead letter cannot drive the terminal.

use std::borrow::Cow;
use std::time::SystemTime;

use anyhow::Context;

use super::DeadLetter;
use crate::queue::message;

/// Prints `letters` as a table, or one JSON object per line.
pub fn print(letters: &[DeadLetter], json: bool, queue: &str) -> anyhow::Result<()> {
    if json {
        for letter in letters {
            let line = serde_json::to_string(letter).context("failed to encode JSON")?;
            // JSON escapes U+0000–U+001F itself; DEL and the C1 controls (U+009B
            // is a CSI to some terminals) only appear inside strings, as `\u00XX`.
            println!("{}", escaped(&line, |c| format!("\\u{:04x}", u32::from(c))));
        }
        return Ok(());
    }
    if letters.is_empty() {
        println!("{queue} is empty: no dead letters.");
        return Ok(());
    }
    let now = message::millis(SystemTime::now());
    println!(
        "{:<36}  {:<32}  {:>8}  {:>10}  {:>10}  error",
        "id", "type", "attempts", "received", "dead"
    );
    for l in letters {
        println!(
            "{:<36}  {:<32}  {:>8}  {:>10}  {:>10}  {}",
            text(&l.id),
            text(&l.r#type),
            l.attempts,
            age(now, l.received_at_ms),
            age(now, l.dead_lettered_at_ms),
            text(&l.error)
        );
    }
    Ok(())
}

/// A field for the text table: control characters as `\x1b`, `\x9b` (every
/// control character is below U+00A0).
fn text(field: &str) -> Cow<'_, str> {
    escaped(field, |c| format!("\\x{:02x}", u32::from(c)))
}

/// `line` with each control character (Unicode's `Cc`: U+0000–U+001F,
/// U+007F–U+009F) replaced by `escape` of it.
fn escaped(line: &str, escape: impl Fn(char) -> String) -> Cow<'_, str> {
    if !line.chars().any(char::is_control) {
        return Cow::Borrowed(line);
    }
    Cow::Owned(
        line.chars()
            .map(|c| {
                if c.is_control() {
                    escape(c)
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// `3m ago`-style age of a timestamp.
fn age(now_ms: i64, at_ms: Option<i64>) -> String {
    let Some(at) = at_ms else { return "-".into() };
    let secs = (now_ms - at).max(0) / 1000;
    let text = match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    };
    format!("{text} ago")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_use_the_largest_sensible_unit() {
        let now = 10_000_000_000;
        for (ago_ms, text) in [
            (5_000, "5s ago"),
            (600_000, "10m ago"),
            (10_800_000, "3h ago"),
            (432_000_000, "5d ago"),
        ] {
            assert_eq!(age(now, Some(now - ago_ms)), text);
        }
        assert_eq!(age(now, None), "-");
    }

    #[test]
    fn control_characters_are_escaped_in_the_table_and_in_json() {
        assert_eq!(text("plain"), "plain");
        assert_eq!(
            text("a\u{1b}[31mb\u{7}\r\n\u{7f}\u{9b}"),
            "a\\x1b[31mb\\x07\\x0d\\x0a\\x7f\\x9b"
        );
        let letter = DeadLetter {
            id: "\u{1b}]0;title\u{7}".into(),
            r#type: "\u{9b}2J".into(),
            error: "boom\u{7f}".into(),
            attempts: 1,
            source_queue: "P.webhooks".into(),
            received_at_ms: None,
            dead_lettered_at_ms: None,
            integration_id: Some(3),
            issue_key: Some("\u{1b}[2JABC-1".into()),
            token_external_id: Some("jira:secretless".into()),
        };
        let line = serde_json::to_string(&letter).expect("json");
        let line = escaped(&line, |c| format!("\\u{:04x}", u32::from(c)));
        assert!(!line.chars().any(char::is_control), "{line}");
        let back: serde_json::Value = serde_json::from_str(&line).expect("still JSON");
        assert_eq!(back["id"], "\u{1b}]0;title\u{7}");
        assert_eq!(back["type"], "\u{9b}2J");
        assert_eq!(back["error"], "boom\u{7f}");
        assert_eq!(back["integration_id"], 3);
        assert_eq!(back["issue_key"], "\u{1b}[2JABC-1");
        assert!(back.get("token_external_id").is_none(), "{line}");
    }
}
