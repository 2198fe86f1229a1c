//! JSON text for PutEvents bodies, where each event's detail is JSON held in a JSON string. Written the naive way,
//! a detail is escaped once to make its text and that text escaped again into the body, and when the detail's
//! strings hold JSON themselves (CloudTrail's `requestParameters`) a quote to escape comes every few bytes: the
//! two passes took a sixth of the sink's CPU time. Here a detail is written once, straight in the form the body
//! holds it, by a table that gives each byte's escape at either depth.

use std::cell::RefCell;
use std::io::Write;

use bytes::Bytes;
use serde_json::Value;

/// How one byte is written: the first `len` of `bytes` (at most 7; the eighth pads the array to one store).
/// `text_len` is its length in the JSON text itself, which differs from `len` when the text is written inside a
/// JSON string.
#[derive(Clone, Copy)]
struct Escape {
    bytes: [u8; 8],
    len: u8,
    text_len: u8,
}

/// Room for the 8 bytes that writing one escape stores.
const SLACK: usize = 8;

/// A byte inside a JSON string, as serde_json escapes it.
const fn escape_once(byte: u8) -> ([u8; 6], u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match byte {
        b'"' | b'\\' => ([b'\\', byte, 0, 0, 0, 0], 2),
        b'\n' => ([b'\\', b'n', 0, 0, 0, 0], 2),
        b'\r' => ([b'\\', b'r', 0, 0, 0, 0], 2),
        b'\t' => ([b'\\', b't', 0, 0, 0, 0], 2),
        0x08 => ([b'\\', b'b', 0, 0, 0, 0], 2),
        0x0c => ([b'\\', b'f', 0, 0, 0, 0], 2),
        0x00..0x20 => (
            [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(byte >> 4) as usize],
                HEX[(byte & 0xf) as usize],
            ],
            6,
        ),
        _ => ([byte, 0, 0, 0, 0, 0], 1),
    }
}

/// Each byte's escape inside a JSON string (`twice` false), or inside a JSON string whose text is itself written
/// inside a JSON string (`twice` true: the once-escaped bytes escaped again).
const fn escape_table(twice: bool) -> [Escape; 256] {
    let mut table = [Escape {
        bytes: [0; 8],
        len: 0,
        text_len: 0,
    }; 256];
    let mut byte = 0;
    while byte < 256 {
        let (once, once_len) = escape_once(byte as u8);
        let mut escape = Escape {
            bytes: [0; 8],
            len: 0,
            text_len: once_len,
        };
        let mut index = 0;
        while index < once_len as usize {
            let (again, again_len) = if twice {
                escape_once(once[index])
            } else {
                ([once[index], 0, 0, 0, 0, 0], 1)
            };
            let mut copied = 0;
            while copied < again_len as usize {
                escape.bytes[escape.len as usize] = again[copied];
                escape.len += 1;
                copied += 1;
            }
            index += 1;
        }
        table[byte] = escape;
        byte += 1;
    }
    table
}

static IN_STRING: [Escape; 256] = escape_table(false);
static IN_STRING_TWICE: [Escape; 256] = escape_table(true);

/// Where JSON text is written: as text, or as the content of a JSON string.
#[derive(Clone, Copy)]
enum Depth {
    Text,
    InString,
}

impl Depth {
    fn quote(self) -> &'static [u8] {
        match self {
            Self::Text => b"\"",
            Self::InString => b"\\\"",
        }
    }

    fn escapes(self) -> &'static [Escape; 256] {
        match self {
            Self::Text => &IN_STRING,
            Self::InString => &IN_STRING_TWICE,
        }
    }
}

/// Writes `text` as a JSON string: `"`, `\` and control characters escaped as serde_json escapes them.
pub(crate) fn write_json_string(out: &mut Vec<u8>, text: &str) {
    write_string(out, text, Depth::Text);
}

/// What a thread keeps of its scratch buffer between details: typical details are a few KiB.
const MAX_KEPT_SCRATCH: usize = 256 * 1024;

/// JSON text kept as the JSON string that holds it, quotes included, with the length of the text itself. A request
/// body can share the bytes rather than copy them (`eventbridge::request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QuotedJson {
    /// UTF-8: the strings written came from `str`s, and escapes are ASCII.
    quoted: Bytes,
    text_len: usize,
}

impl QuotedJson {
    /// The JSON string holding the text, quotes included, as UTF-8.
    pub(crate) fn quoted(&self) -> &Bytes {
        &self.quoted
    }

    /// The UTF-8 length of the text itself.
    pub(crate) fn text_len(&self) -> usize {
        self.text_len
    }
}

/// Writes compact JSON text inside a JSON string, piece by piece, counting the text's own length. Its pieces are
/// whole JSON tokens, so what it writes is valid only if they are put in a valid order.
pub(crate) struct QuotedWriter<'o> {
    out: &'o mut Vec<u8>,
    text_len: usize,
}

impl QuotedWriter<'_> {
    /// JSON punctuation (`{`, `:`, `,` ...): ASCII that needs no escaping at any depth.
    pub(crate) fn punctuation(&mut self, bytes: &'static [u8]) {
        self.text_len += write_ascii(self.out, bytes);
    }

    /// `text` as a JSON string.
    pub(crate) fn string(&mut self, text: &str) {
        self.text_len += write_string(self.out, text, Depth::InString);
    }

    /// `value` as compact JSON text.
    pub(crate) fn value(&mut self, value: &Value) {
        self.text_len += write_value(self.out, value, Depth::InString);
    }
}

/// The JSON text that `write` writes, as a JSON string. An error from `write` is returned as it is.
pub(crate) fn write_quoted<E>(write: impl FnOnce(&mut QuotedWriter<'_>) -> Result<(), E>) -> Result<QuotedJson, E> {
    thread_local! {
        // Written here first and then copied out at its exact size, so that the many details waiting in a sink's
        // buffer hold no spare capacity, and writing grows no buffer.
        static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.clear();
        scratch.push(b'"');
        let mut writer = QuotedWriter {
            out: scratch,
            text_len: 0,
        };
        let written = write(&mut writer);
        let text_len = writer.text_len;
        scratch.push(b'"');
        let quoted = written.map(|()| Bytes::copy_from_slice(scratch));
        // A rare large detail (up to 1 MB, escaped) need not stay allocated on every thread that wrote one.
        if scratch.capacity() > MAX_KEPT_SCRATCH {
            *scratch = Vec::new();
        }
        quoted.map(|quoted| QuotedJson { quoted, text_len })
    })
}

/// `value`'s compact JSON text (byte for byte what `serde_json::to_string` gives) as a JSON string.
pub(crate) fn quoted_json(value: &Value) -> QuotedJson {
    match write_quoted(|writer| {
        writer.value(value);
        Ok::<(), std::convert::Infallible>(())
    }) {
        Ok(quoted) => quoted,
        Err(never) => match never {},
    }
}

/// Writes `value` as compact JSON text at `depth`; returns the length of the text.
fn write_value(out: &mut Vec<u8>, value: &Value, depth: Depth) -> usize {
    match value {
        Value::Null => write_ascii(out, b"null"),
        Value::Bool(true) => write_ascii(out, b"true"),
        Value::Bool(false) => write_ascii(out, b"false"),
        Value::Number(number) => {
            let start = out.len();
            // Writing into a `Vec` cannot fail.
            let _ = write!(out, "{number}");
            out.len() - start
        }
        Value::String(text) => write_string(out, text, depth),
        Value::Array(items) => {
            let mut len = write_ascii(out, b"[") + items.len().saturating_sub(1) + 1;
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                len += write_value(out, item, depth);
            }
            out.push(b']');
            len
        }
        Value::Object(fields) => {
            let mut len = write_ascii(out, b"{") + fields.len().saturating_sub(1) + fields.len() + 1;
            for (index, (key, item)) in fields.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                len += write_string(out, key, depth);
                out.push(b':');
                len += write_value(out, item, depth);
            }
            out.push(b'}');
            len
        }
    }
}

/// Bytes that need no escaping at any depth (JSON's literals, numbers and punctuation).
fn write_ascii(out: &mut Vec<u8>, bytes: &[u8]) -> usize {
    out.extend_from_slice(bytes);
    bytes.len()
}

/// Writes `text` as a JSON string at `depth`; returns the string's length in the JSON text, quotes included.
fn write_string(out: &mut Vec<u8>, text: &str, depth: Depth) -> usize {
    let escapes = depth.escapes();
    let bytes = text.as_bytes();
    // Sized first, so that the bytes are then written into place by index: each byte stores its whole escape
    // array and moves on by its length, which takes no branch and no copy of variable length.
    let (written, text_len) = bytes.iter().fold((0, 0), |(written, text_len), &byte| {
        let escape = &escapes[usize::from(byte)];
        (
            written + usize::from(escape.len),
            text_len + usize::from(escape.text_len),
        )
    });
    let quote = depth.quote();
    out.extend_from_slice(quote);
    if written == bytes.len() {
        out.extend_from_slice(bytes);
    } else {
        let start = out.len();
        out.resize(start + written + SLACK, 0);
        let mut at = start;
        for &byte in bytes {
            let escape = &escapes[usize::from(byte)];
            out[at..at + SLACK].copy_from_slice(&escape.bytes);
            at += usize::from(escape.len);
        }
        out.truncate(at);
    }
    out.extend_from_slice(quote);
    text_len + 2
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// Strings that take every kind of escape, or none, for tests of JSON text.
    pub(crate) const AWKWARD: [&str; 9] = [
        "",
        "plain",
        r#"{"a":"b\"c","d":[1,2]}"#,
        "line\nbreak\ttab\r\u{1}\u{8}\u{c}\u{1f}\u{7f} é \\ \"",
        "\"\"\\\\",
        "ends with a quote\"",
        "\u{0}",
        "ü 日本 🎉",
        "arn:aws:iam::123456789012:user/alice",
    ];

    #[test]
    fn escapes_like_serde_json() {
        for text in AWKWARD {
            let mut ours = Vec::new();
            write_json_string(&mut ours, text);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(text).unwrap(),
                "{text:?}"
            );
        }
    }

    /// The quoted form must be exactly what writing the text with serde_json and then quoting it gives, and its
    /// length the text's.
    fn assert_quoted_like_serde_json(value: &Value) {
        let text = serde_json::to_string(value).unwrap();
        let quoted = quoted_json(value);
        assert_eq!(
            quoted.quoted(),
            serde_json::to_string(&text).unwrap().as_bytes(),
            "{value}"
        );
        assert_eq!(quoted.text_len(), text.len(), "{value}");
    }

    #[test]
    fn quotes_values_like_serde_json_twice() {
        let fixture = include_str!("../tests/fixtures/cloudtrail/invictus_aws_dataset.jsonl");
        for line in fixture.lines().take(200) {
            let mut event: Value = serde_json::from_str(line).unwrap();
            assert_quoted_like_serde_json(&event);
            // As CloudTrail-like Avro records carry them: nested objects as JSON text inside strings.
            if let Some(object) = event.as_object_mut() {
                for value in object.values_mut() {
                    if value.is_object() {
                        *value = Value::String(value.to_string());
                    }
                }
            }
            assert_quoted_like_serde_json(&event);
        }
        assert_quoted_like_serde_json(
            &json!({"n": [0, -1, 1.5, 1e300, -0.0, 18446744073709551615u64], "b": [true, false, null], "e": {}, "a": []}),
        );
        assert_quoted_like_serde_json(&json!(AWKWARD));
        assert_quoted_like_serde_json(&json!({AWKWARD[3]: AWKWARD[2], "k": {AWKWARD[4]: [AWKWARD[6]]}}));
        assert_quoted_like_serde_json(&json!("top-level string"));
    }
}
