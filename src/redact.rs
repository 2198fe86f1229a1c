//! Values that must never be shown, and their removal from text meant for a person.
//!
//! Every value a `${env:}` or `${file:}` placeholder resolved to, and every secret written literally, is recorded
//! here when the configuration is read. Text that may echo a configured value (a client library's error such as
//! librdkafka's `Invalid value "…" for configuration property "…"`, a parser's message) passes through [`scrub`]
//! before it becomes a status trace, a REST answer or a log line, so the value is shown as `[hidden]` there.
//! Values shorter than [`MIN_LENGTH`] characters are not recorded: scrubbing them would blank out ordinary words
//! and numbers, and a secret that short protects nothing.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::RwLock;

/// What is shown in place of a recorded value.
pub const HIDDEN: &str = "[hidden]";

/// The shortest value recorded.
pub(crate) const MIN_LENGTH: usize = 4;

/// At most this many values are kept; past it the shortest go first. Hot reloads only ever add values, so this
/// bounds what a long-running worker holds.
const CAPACITY: usize = 4096;

/// Longest first, so that a value containing another is replaced whole.
static VALUES: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Records `value` as one never to show.
pub(crate) fn record(value: &str) {
    if value.chars().count() < MIN_LENGTH {
        return;
    }
    let mut values = VALUES.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    let escaped = serde_json::to_string(value).unwrap_or_default();
    // A JSON log line or answer holds the value escaped.
    let escaped = escaped.trim_matches('"');
    let mut added = false;
    for form in [value, escaped] {
        if !values.iter().any(|known| known == form) {
            if values.len() >= CAPACITY {
                values.pop();
            }
            values.push(form.to_owned());
            added = true;
        }
    }
    // Hot reloads record the same values again and again; only a new one changes the order.
    if added {
        values.sort_by_key(|known| std::cmp::Reverse(known.len()));
    }
}

/// The environment variables the AWS SDK reads credentials from. Their values are recorded at start, so that an
/// SDK or client library logging at debug level shows none of them.
const CREDENTIAL_VARIABLES: [&str; 3] = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];

/// Records the AWS credentials found in the environment.
pub fn record_environment_credentials() {
    for name in CREDENTIAL_VARIABLES {
        if let Ok(value) = std::env::var(name) {
            record(&value);
        }
    }
}

/// `text` with every recorded value replaced by [`HIDDEN`].
pub fn scrub(text: &str) -> Cow<'_, str> {
    let values = VALUES.read().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut text = Cow::Borrowed(text);
    for value in values.iter() {
        if text.contains(value.as_str()) {
            text = Cow::Owned(text.replace(value.as_str(), HIDDEN));
        }
    }
    text
}

/// Standard error with every recorded value scrubbed, for the log. tracing's formatter writes each event with one
/// `write_all`, so a value is never split across two calls.
pub struct ScrubbedStderr;

impl Write for ScrubbedStderr {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buffer);
        io::stderr().write_all(scrub(&text).as_bytes())?;
        Ok(buffer.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_are_hidden_short_ones_are_not() {
        record("s3cr3t-value-for-redact-test");
        record("x\"quoted-redact-test");
        record("abc");
        let echoed = r#"Invalid value "s3cr3t-value-for-redact-test" for configuration property "session.timeout.ms""#;
        assert_eq!(
            scrub(echoed),
            r#"Invalid value "[hidden]" for configuration property "session.timeout.ms""#
        );
        assert_eq!(
            scrub(r#"{"message":"x\"quoted-redact-test"}"#),
            r#"{"message":"[hidden]"}"#
        );
        assert_eq!(scrub("abc stays"), "abc stays");
    }
}
