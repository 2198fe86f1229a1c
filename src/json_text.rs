//! JSON text for PutEvents bodies, where each event's detail is JSON held in a JSON string. Written the naive way,
//! a detail is escaped once to make its text and that text escaped again into the body, and when the detail's
//! strings hold JSON themselves (CloudTrail's `requestParameters`) a quote to escape comes every few bytes: the
//! two passes took a sixth of the sink's CPU time. Here a detail is written once, straight in the form the body
//! holds it, by a table that gives each byte's escape at either depth.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};
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
    /// The quote around a string. Each arm writes a constant length, so that a quote is a store or two rather
    /// than a call to `memcpy` for one or two bytes, twice for each of a record's few dozen strings.
    fn write_quote(self, out: &mut impl Buffer) {
        match self {
            Self::Text => out.put_byte(b'"'),
            Self::InString => out.put(b"\\\""),
        }
    }

    /// The length of the quote `write_quote` writes.
    fn quote_len(self) -> usize {
        match self {
            Self::Text => 1,
            Self::InString => 2,
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

/// What JSON text is written into: a request body's `Vec`, or the block details are cut from (`write_quoted`).
trait Buffer: std::ops::Deref<Target = [u8]> {
    fn put(&mut self, bytes: &[u8]);
    fn put_byte(&mut self, byte: u8);
    fn reserve_for(&mut self, additional: usize);
    fn cut_to(&mut self, len: usize);
}

impl Buffer for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn put_byte(&mut self, byte: u8) {
        self.push(byte);
    }

    fn reserve_for(&mut self, additional: usize) {
        self.reserve(additional);
    }

    fn cut_to(&mut self, len: usize) {
        self.truncate(len);
    }
}

impl Buffer for BytesMut {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn put_byte(&mut self, byte: u8) {
        self.extend_from_slice(&[byte]);
    }

    fn reserve_for(&mut self, additional: usize) {
        self.reserve(additional);
    }

    fn cut_to(&mut self, len: usize) {
        self.truncate(len);
    }
}

/// The size of each block a thread cuts its details from: about ten CloudTrail details. A block is freed when the
/// last detail cut from it is, so it holds at most a few KiB more than its details while they are in flight.
const DETAIL_BLOCK: usize = 16 * 1024;

/// The most room a thread keeps in its block between details.
const MAX_KEPT_BLOCK: usize = 256 * 1024;

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

    /// Copies the text to memory of its own unless it has that already.
    pub(crate) fn hold_alone(&mut self) {
        if !self.quoted.is_unique() {
            self.quoted = Bytes::copy_from_slice(&self.quoted);
        }
    }
}

/// Writes compact JSON text inside a JSON string, piece by piece, counting the text's own length. Its pieces are
/// whole JSON tokens, so what it writes is valid only if they are put in a valid order.
pub(crate) struct QuotedWriter<'o> {
    out: &'o mut BytesMut,
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

    /// `bytes` as a JSON string, if they are UTF-8; else nothing is written. Checking while writing saves a pass
    /// over the common string that is all ASCII.
    pub(crate) fn utf8_string(&mut self, bytes: &[u8]) -> Result<(), std::str::Utf8Error> {
        let start = self.out.len();
        let written = write_string_bytes(self.out, bytes, Depth::InString);
        if !written.ascii {
            if let Err(error) = std::str::from_utf8(bytes) {
                self.out.cut_to(start);
                return Err(error);
            }
        }
        self.text_len += written.text_len;
        Ok(())
    }

    /// `value` as compact JSON text.
    pub(crate) fn value(&mut self, value: &Value) {
        self.text_len += write_value(self.out, value, Depth::InString);
    }
}

/// A place in what a `QuotedWriter` has written, to take back what came after it.
#[derive(Clone, Copy)]
pub(crate) struct Mark {
    at: usize,
    text_len: usize,
}

/// Text taken back from a writer, for its pieces to be written again in another order.
pub(crate) struct Taken {
    /// Where in the writer's output the bytes were.
    from: usize,
    bytes: Vec<u8>,
}

impl QuotedWriter<'_> {
    pub(crate) fn mark(&self) -> Mark {
        Mark {
            at: self.out.len(),
            text_len: self.text_len,
        }
    }

    /// What was written since `since`, as a piece to write again with `put_back` once taken back.
    pub(crate) fn piece_since(&self, since: Mark) -> Piece {
        Piece {
            from: since.at,
            to: self.out.len(),
            text_len: self.text_len - since.text_len,
        }
    }

    /// Takes back everything written since `since`.
    pub(crate) fn take_since(&mut self, since: Mark) -> Taken {
        self.text_len = since.text_len;
        // Copied rather than split off: a split would take the rest of the block's capacity with it.
        let bytes = self.out[since.at..].to_vec();
        self.out.cut_to(since.at);
        Taken { from: since.at, bytes }
    }

    /// Writes again a piece of what was taken back; the piece must lie within it.
    pub(crate) fn put_back(&mut self, taken: &Taken, piece: Piece) {
        let bytes = &taken.bytes[piece.from - taken.from..piece.to - taken.from];
        self.out.put(bytes);
        self.text_len += piece.text_len;
    }
}

/// Where a piece of text was written, and its length in the text itself.
#[derive(Clone, Copy)]
pub(crate) struct Piece {
    from: usize,
    to: usize,
    text_len: usize,
}

/// The JSON text that `write` writes, as a JSON string. An error from `write` is returned as it is.
pub(crate) fn write_quoted<E>(write: impl FnOnce(&mut QuotedWriter<'_>) -> Result<(), E>) -> Result<QuotedJson, E> {
    thread_local! {
        // Each detail is written at the end of the thread's block and cut from it, sharing it: no allocation and
        // no copy a detail, where copying each out of a scratch buffer at its own size was a twentieth of the
        // sink's CPU. A detail that does not fit moves, as it is being written, to a new block.
        static BLOCK: RefCell<BytesMut> = RefCell::new(BytesMut::new());
    }
    BLOCK.with_borrow_mut(|block| {
        // A block grown for a rare large detail (up to 1 MB, escaped) is not kept for the next ones.
        if block.capacity() == 0 || block.capacity() > MAX_KEPT_BLOCK {
            *block = BytesMut::with_capacity(DETAIL_BLOCK);
        }
        block.put_byte(b'"');
        let mut writer = QuotedWriter {
            out: block,
            text_len: 0,
        };
        let written = write(&mut writer);
        let text_len = writer.text_len;
        match written {
            Ok(()) => {
                block.put_byte(b'"');
                Ok(QuotedJson {
                    quoted: block.split().freeze(),
                    text_len,
                })
            }
            Err(error) => {
                block.clear();
                Err(error)
            }
        }
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
fn write_value(out: &mut BytesMut, value: &Value, depth: Depth) -> usize {
    match value {
        Value::Null => write_ascii(out, b"null"),
        Value::Bool(true) => write_ascii(out, b"true"),
        Value::Bool(false) => write_ascii(out, b"false"),
        Value::Number(number) => {
            let start = out.len();
            // Writing into a `BytesMut` cannot fail.
            let _ = std::fmt::Write::write_fmt(out, format_args!("{number}"));
            out.len() - start
        }
        Value::String(text) => write_string(out, text, depth),
        Value::Array(items) => {
            let mut len = write_ascii(out, b"[") + items.len().saturating_sub(1) + 1;
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.put_byte(b',');
                }
                len += write_value(out, item, depth);
            }
            out.put_byte(b']');
            len
        }
        Value::Object(fields) => {
            let mut len = write_ascii(out, b"{") + fields.len().saturating_sub(1) + fields.len() + 1;
            for (index, (key, item)) in fields.iter().enumerate() {
                if index > 0 {
                    out.put_byte(b',');
                }
                len += write_string(out, key, depth);
                out.put_byte(b':');
                len += write_value(out, item, depth);
            }
            out.put_byte(b'}');
            len
        }
    }
}

/// Bytes that need no escaping at any depth (JSON's literals, numbers and punctuation).
fn write_ascii(out: &mut impl Buffer, bytes: &[u8]) -> usize {
    out.put(bytes);
    bytes.len()
}

/// Writes `text` as a JSON string at `depth`; returns the string's length in the JSON text, quotes included.
fn write_string(out: &mut impl Buffer, text: &str, depth: Depth) -> usize {
    write_string_bytes(out, text.as_bytes(), depth).text_len
}

/// What writing a string's bytes found.
struct WrittenString {
    /// In the JSON text, quotes included.
    text_len: usize,
    /// Whether every byte was ASCII, and so the bytes UTF-8 without looking further.
    ascii: bool,
}

/// Writes `bytes` as a JSON string at `depth`, as `write_string` writes their text if they are UTF-8.
fn write_string_bytes(out: &mut impl Buffer, bytes: &[u8], depth: Depth) -> WrittenString {
    let escapes = depth.escapes();
    out.reserve_for(bytes.len() + 2 * depth.quote_len());
    depth.write_quote(out);
    let mut text_len = bytes.len() + 2;
    let mut high_bits = 0;
    // Most of a detail's text needs no escape: eight bytes at a time are checked and copied whole. A word with
    // something to escape is written byte by byte, each byte storing its whole escape array and moving on by its
    // length, which takes no branch and no copy of variable length.
    let (words, rest) = bytes.as_chunks::<WORD>();
    for word in words {
        let word_bits = u64::from_le_bytes(*word);
        high_bits |= word_bits;
        if needs_escape(word_bits) {
            text_len += write_escaped(out, word, escapes);
        } else {
            out.put(word);
        }
    }
    text_len += write_escaped(out, rest, escapes);
    depth.write_quote(out);
    WrittenString {
        text_len,
        ascii: high_bits & HIGHS == 0 && rest.is_ascii(),
    }
}

const WORD: usize = 8;
/// Each byte's high bit, which only bytes outside ASCII have.
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Whether any of a word's eight bytes is `"`, `\` or a control character, the bytes JSON escapes (the same at
/// either depth: a byte written as itself once is written as itself again).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    // A byte below `n` (at most 0x80) borrows into its high bit, which a byte of 0x80 or more already has set.
    let below = |n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS;
    let equal = |byte: u8| {
        let zeroed = word ^ (ONES * u64::from(byte));
        zeroed.wrapping_sub(ONES) & !zeroed & HIGHS
    };
    below(0x20) | equal(b'"') | equal(b'\\') != 0
}

/// Writes bytes one by one by their escapes; returns how much longer the text became than the bytes.
fn write_escaped(out: &mut impl Buffer, bytes: &[u8], escapes: &[Escape; 256]) -> usize {
    let mut longer = 0;
    for &byte in bytes {
        let escape = &escapes[usize::from(byte)];
        let at = out.len();
        out.put(&escape.bytes);
        out.cut_to(at + usize::from(escape.len));
        longer += usize::from(escape.text_len) - 1;
    }
    longer
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

    /// Strings written eight bytes at a time come out as serde_json writes them: each kind of escaped byte, at each
    /// place in a word and in the tail after the last whole word, next to multi-byte characters, at both depths.
    #[test]
    fn generated_strings_escape_like_serde_json() {
        const PIECES: [&str; 12] = [
            "a", "Z", " ", "\"", "\\", "\n", "\u{0}", "\u{1f}", "\u{7f}", "é", "日", "🎉",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        };
        for _ in 0..20_000 {
            let plain_run = next(12);
            let text: String = (0..next(40))
                .map(|_| {
                    if next(4) == 0 {
                        PIECES[next(PIECES.len())]
                    } else {
                        PIECES[next(plain_run.max(1)) % 3]
                    }
                })
                .collect();
            let mut ours = Vec::new();
            write_json_string(&mut ours, &text);
            assert_eq!(ours, serde_json::to_string(&text).unwrap().as_bytes(), "{text:?}");
            // The same bytes with some cut short or replaced, which may no longer be UTF-8: written only if they are.
            let mut bytes = text.clone().into_bytes();
            if !bytes.is_empty() && next(2) == 0 {
                let at = next(bytes.len());
                match next(3) {
                    0 => bytes.truncate(at),
                    1 => bytes[at] = 0xff,
                    _ => bytes.insert(at, 0xc3),
                }
            }
            let written = write_quoted(|writer| {
                writer.punctuation(b"[");
                let result = writer.utf8_string(&bytes);
                writer.punctuation(b"]");
                result
            });
            match std::str::from_utf8(&bytes) {
                Ok(valid) => assert_eq!(written, Ok(quoted_json(&json!([valid])))),
                Err(error) => assert_eq!(written, Err(error)),
            }
            assert_quoted_like_serde_json(&Value::String(text));
        }
    }

    /// The quoted form must be exactly what writing the text with serde_json and then quoting it gives, and its
    /// length the text's.
    /// Details cut from a thread's blocks stay as written while later ones are written, across blocks, around a
    /// detail larger than a block and a write that failed; one held alone keeps its text in memory of its own.
    #[test]
    fn details_cut_from_a_block_stay_as_written() {
        let fixture = include_str!("../tests/fixtures/cloudtrail/invictus_aws_dataset.jsonl");
        let mut values: Vec<Value> = fixture
            .lines()
            .take(100)
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        values.insert(50, json!({"large": "x\"".repeat(DETAIL_BLOCK)}));
        let mut written = Vec::new();
        for (index, value) in values.iter().enumerate() {
            written.push(quoted_json(value));
            if index % 10 == 0 {
                let failed = write_quoted(|writer| {
                    writer.punctuation(b"[");
                    writer.utf8_string(b"cut \xff")
                });
                assert!(failed.is_err());
            }
        }
        // A detail of a few KiB shares its block with the ones around it. The large one has a block of its own,
        // and so may the one before it, if the large one did not fit in what was left of that one's block.
        let alone = written.iter().filter(|detail| detail.quoted().is_unique()).count();
        assert!(
            alone <= 2,
            "{alone} of {} details have a block to themselves",
            written.len()
        );
        for (value, detail) in values.iter().zip(&mut written) {
            let text = serde_json::to_string(value).unwrap();
            let quoted = serde_json::to_string(&text).unwrap();
            assert_eq!(detail.quoted(), quoted.as_bytes());
            detail.hold_alone();
            assert!(detail.quoted().is_unique());
            assert_eq!(detail.quoted(), quoted.as_bytes());
            assert_eq!(detail.text_len(), text.len());
        }
    }

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
