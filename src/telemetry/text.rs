//! The fields of text logs (`JIRASYNC_LOG_FORMAT=text`), every control
//! character escaped (docs/reference.md §4): ESC as `\x1b`, a newline as `\x0a`,
//! C1 controls as `\u{9b}`. A message type, a Jira error or an issue key from
//! outside can then neither forge a log line nor drive the reader's terminal.
//! JSON logs need nothing of this: JSON escapes them already. Used by
//! [`super::init_tracing`] for events and span fields alike.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// Formats fields as tracing-subscriber's default does (`message`, then
/// `name=value` separated by blanks, strings quoted), control characters escaped.
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = Visitor {
            writer,
            empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// `text` with every control character escaped, and no other change.
pub fn escape_control(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    // Writing to a String cannot fail.
    let _ = Escaping(&mut escaped).write_str(text);
    escaped
}

/// A writer that escapes the control characters written through it.
struct Escaping<W>(W);

impl<W: fmt::Write> fmt::Write for Escaping<W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        // Runs of plain characters go through in one write.
        let mut plain = 0;
        for (at, c) in text.char_indices() {
            if c.is_control() {
                self.0.write_str(&text[plain..at])?;
                write_escaped(&mut self.0, c)?;
                plain = at + c.len_utf8();
            }
        }
        self.0.write_str(&text[plain..])
    }
}

/// `c`, a control character: `\xNN` for C0 and DEL, `\u{NN}` for C1.
fn write_escaped(writer: &mut impl fmt::Write, c: char) -> fmt::Result {
    let code = u32::from(c);
    if code < 0x80 {
        write!(writer, "\\x{code:02x}")
    } else {
        write!(writer, "\\u{{{code:x}}}")
    }
}

struct Visitor<'writer> {
    writer: Writer<'writer>,
    empty: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    /// Writes one field (`message` bare, others as `name=`) with `value`.
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        let name = field.name();
        // The log crate's metadata, which the line shows already (as the default does).
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        self.result = (|| {
            if !self.empty {
                self.writer.write_char(' ')?;
            }
            self.empty = false;
            if name != "message" {
                self.writer
                    .write_str(name.strip_prefix("r#").unwrap_or(name))?;
                self.writer.write_char('=')?;
            }
            value(&mut self.writer)
        })();
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            return self.field(field, |writer| Escaping(writer).write_str(value));
        }
        // Quoted, as the default quotes strings, with `"` and `\` escaped.
        self.field(field, |writer| {
            writer.write_char('"')?;
            let mut escaping = Escaping(&mut *writer);
            for c in value.chars() {
                match c {
                    '"' => escaping.write_str("\\\"")?,
                    '\\' => escaping.write_str("\\\\")?,
                    c => escaping.write_char(c)?,
                }
            }
            writer.write_char('"')
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.field(field, |writer| {
            let mut escaping = Escaping(writer);
            write!(escaping, "{value}")?;
            let mut source = value.source();
            while let Some(error) = source {
                write!(escaping, ": {error}")?;
                source = error.source();
            }
            Ok(())
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |writer| write!(Escaping(writer), "{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// A log destination the test reads back. std Mutex: held only to append.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    fn logged(log: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .fmt_fields(EscapedFields)
            .with_writer(buffer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let bytes = buffer.0.lock().expect("buffer").clone();
        String::from_utf8(bytes).expect("UTF-8")
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer\x1b[31m")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner\nforged")]
    struct Inner;

    #[test]
    fn control_characters_of_messages_and_fields_are_escaped() {
        let evil = "a\x1b[2Jb\r\nINFO forged=1\u{9b}c\x07";
        let error = Outer(Inner);
        let text = logged(|| {
            tracing::info_span!("message", message.type = %evil).in_scope(|| {
                tracing::warn!(
                    display = %evil,
                    debug = ?evil,
                    string = evil,
                    error = &error as &(dyn std::error::Error + 'static),
                    "message {evil}"
                );
            });
        });
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.trim_end().chars().any(char::is_control), "{text:?}");
        let escaped = r"a\x1b[2Jb\x0d\x0aINFO forged=1\u{9b}c\x07";
        assert!(text.contains(&format!("message.type={escaped}")), "{text}");
        assert!(text.contains(&format!("message {escaped}")), "{text}");
        assert!(text.contains(&format!("display={escaped}")), "{text}");
        assert!(text.contains(&format!("string=\"{escaped}\"")), "{text}");
        assert!(
            text.contains(r"error=outer\x1b[31m: inner\x0aforged"),
            "{text}"
        );
        // Debug formatting escapes on its own, then no control character is left.
        assert!(text.contains(r#"debug="a\u{1b}[2Jb\r\nINFO"#), "{text}");
    }

    #[test]
    fn plain_text_and_quotes_read_as_before() {
        let text = logged(|| tracing::info!(count = 3, name = "say \"hi\"\\", "plain é ✓"));
        assert!(
            text.trim_end()
                .ends_with(r#"plain é ✓ count=3 name="say \"hi\"\\""#),
            "{text}"
        );
        assert_eq!(escape_control("tab\there"), r"tab\x09here");
    }
}
