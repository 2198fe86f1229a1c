//! Property tests with a fixed budget, for the parsers that take input from outside the process: the receiver's
//! body reader and batch reader, the Avro decoder, the connector-document loader and the pattern compiler. Each is
//! fed mutations of valid inputs (bytes replaced, inserted, deleted, runs repeated, brackets nested) from a fixed
//! seed, so a failure reproduces, and must answer every one, with a value or an error, without panicking and within
//! a bounded time. These tests need no running service.
//!
//! `EBCONNECT_FUZZ_CASES` sets the cases per target (default 5,000), `EBCONNECT_FUZZ_SEED` the seed.

use std::time::{Duration, Instant};

use crate::random;

use ebconnect::connectors::receiver::body::RecordReader;
use ebconnect::connectors::receiver::wire::{self, ApiError};
use ebconnect::pattern::Pattern;
use futures::stream;
use random::Random;
use serde_json::json;

/// The longest any one input may take, in a debug build on a busy machine; the inputs are at most a few KB.
const PER_INPUT: Duration = Duration::from_secs(2);

fn cases() -> usize {
    std::env::var("EBCONNECT_FUZZ_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(5_000)
}

fn random() -> Random {
    let seed = std::env::var("EBCONNECT_FUZZ_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(0x00f0_22ed);
    Random(seed)
}

/// Bytes that are often meaningful to one of the parsers.
const INTERESTING: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b":",
    b",",
    b"null",
    b"-1",
    b"1e400",
    b"0.0",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"${env:HOME}",
    b"${file:/dev/zero}",
    b"$${",
    b"\n",
    b"  ",
    b"- ",
    b"&a",
    b"*a",
    b"!!binary",
    b"#",
];

/// One random mutation of `input`, a few times over.
fn mutate(random: &mut Random, input: &[u8]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..1 + random.below(4) {
        let at = random.below(bytes.len() + 1);
        match random.below(6) {
            0 if !bytes.is_empty() => {
                let at = at.min(bytes.len() - 1);
                bytes[at] = random.next() as u8;
            }
            1 => {
                let piece = INTERESTING[random.below(INTERESTING.len())];
                bytes.splice(at..at, piece.iter().copied());
            }
            2 if !bytes.is_empty() => {
                let end = (at + 1 + random.below(16)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            3 => {
                let end = (at + 1 + random.below(32)).min(bytes.len());
                let run = bytes[at.min(end)..end].to_vec();
                for _ in 0..1 + random.below(8) {
                    bytes.splice(at..at, run.iter().copied());
                }
            }
            4 => {
                let depth = 1 + random.below(200);
                let (open, close) = if random.below(2) == 0 {
                    (b'[', b']')
                } else {
                    (b'{', b'}')
                };
                bytes.splice(at..at, std::iter::repeat_n(open, depth));
                let end = (at + depth + random.below(8)).min(bytes.len());
                bytes.splice(end..end, std::iter::repeat_n(close, depth));
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

/// Runs `check` on `cases()` mutations of the seeds, failing on the first input that panics or takes too long.
/// `check` answers whether the input was accepted; both answers must occur, or the mutations miss the parser.
fn run(target: &str, seeds: &[Vec<u8>], mut check: impl FnMut(&[u8]) -> bool) {
    let mut random = random();
    let mut accepted = 0;
    for case in 0..cases() {
        let seed = &seeds[random.below(seeds.len())];
        let input = mutate(&mut random, seed);
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&input)));
        let took = started.elapsed();
        let shown = String::from_utf8_lossy(&input[..input.len().min(300)]).into_owned();
        match outcome {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(_) => panic!("{target}: case {case} panicked on {shown:?}"),
        }
        assert!(took < PER_INPUT, "{target}: case {case} took {took:?} on {shown:?}");
    }
    assert!(
        accepted > 0 && accepted < cases(),
        "{target}: {accepted} of {} inputs accepted",
        cases()
    );
}

#[test]
fn the_pattern_compiler_answers_every_input() {
    let seeds: Vec<Vec<u8>> = [
        r#"{"source": ["aws.s3"], "detail": {"eventName": [{"prefix": "Get"}, {"anything-but": ["a", "b"]}]}}"#,
        r#"{"detail": {"sourceIPAddress": [{"cidr": "10.0.0.0/8"}], "errorCode": [{"exists": false}]}}"#,
        r#"{"$or": [{"a": [{"numeric": [">", 0, "<=", 5]}]}, {"b.c": [{"wildcard": "x*y"}]}]}"#,
        r#"{"a": [{"equals-ignore-case": "ǅß"}, {"suffix": {"equals-ignore-case": "Z"}}, null, true, 1e3]}"#,
    ]
    .iter()
    .map(|text| text.as_bytes().to_vec())
    .collect();
    let event = json!({"source": "aws.s3", "detail": {"eventName": "GetObject", "sourceIPAddress": "10.1.2.3"},
        "a": [1, "x", {"b": null}], "b": {"c": "xay"}});
    run("pattern", &seeds, |input| {
        match Pattern::parse(&String::from_utf8_lossy(input)) {
            Ok(pattern) => {
                pattern.matches(&event);
                true
            }
            Err(_) => false,
        }
    });
}

#[test]
fn the_connector_loader_answers_every_input() {
    let seeds: Vec<Vec<u8>> = [
        "name: s\ntype: eventbridge-sink\nconfig:\n  topics: [t]\n  event_bus: b\n  detail_type: {json_path: $.kind, default: x}\n  consumer_override: {session.timeout.ms: '6000'}\ntransforms:\n  - {type: filter, pattern: {source: [a]}}\nerrors: {tolerance: all, deadletterqueue: {topic: d}}\n",
        "name: r\ntype: rest-produce-receiver\nconfig:\n  listen: 127.0.0.1:8082\n  topics: [t]\n  max_in_flight: 5\n",
        "name: q\ntype: eventbridge-source\nconfig:\n  queue_url: http://q\n  topic: t\n",
        "{\"name\": \"j\", \"type\": \"eventbridge-sink\", \"config\": {\"topics\": [\"t\"], \"event_bus\": \"b\", \"batch\": {\"max_entries\": 5}}}",
    ]
    .iter()
    .map(|text| text.as_bytes().to_vec())
    .collect();
    run("connector document", &seeds, |input| {
        ebconnect::connectors::check_document(&String::from_utf8_lossy(input), None).is_ok()
    });
}

#[test]
fn the_receivers_readers_answer_every_input() {
    let seeds: Vec<Vec<u8>> = [
        r#"{"value": {"type": "JSON", "data": {"a": [1, 2]}}}{"key": {"type": "STRING", "data": "k"}, "value": {"type": "BINARY", "data": "AAE="}}"#,
        r#"{"entries": [{"id": "1", "value": {"type": "JSON", "data": 1}}, {"id": "2", "headers": [{"name": "h", "value": "dg=="}]}]}"#,
    ]
    .iter()
    .map(|text| text.as_bytes().to_vec())
    .collect();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut random = random();
    run("receiver body", &seeds, |input| {
        // In random chunks, as a client's packets arrive.
        let mut chunks = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let size = 1 + random.below(rest.len().min(64));
            chunks.push(Ok::<_, ApiError>(axum::body::Bytes::copy_from_slice(&rest[..size])));
            rest = &rest[size..];
        }
        let records_accepted = runtime.block_on(async {
            let mut reader = RecordReader::new(stream::iter(chunks), 4096);
            let mut all_accepted = true;
            while let Some(record) = reader.next().await {
                all_accepted &= record.and_then(wire::parse_record).is_ok();
            }
            all_accepted
        });
        let batch_accepted = wire::batch_entries(input, 16).is_ok();
        records_accepted || batch_accepted
    });
}

#[test]
fn the_avro_decoder_answers_every_input() {
    let schema = apache_avro::Schema::parse_str(
        r#"{"type": "record", "name": "R", "fields": [
            {"name": "id", "type": "long"},
            {"name": "name", "type": "string"},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "attrs", "type": {"type": "map", "values": "long"}},
            {"name": "maybe", "type": ["null", "string"]},
            {"name": "score", "type": "double"},
            {"name": "next", "type": ["null", "R"]}
        ]}"#,
    )
    .unwrap();
    let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
        .build()
        .unwrap();
    let datum = |value: serde_json::Value| {
        let value = json_to_avro(value).resolve(&schema).unwrap();
        writer.write_value_to_vec(value).unwrap()
    };
    let leaf = json!({"id": 7, "name": "leaf", "tags": [], "attrs": {}, "maybe": null, "score": 0.5, "next": null});
    let seeds = vec![
        datum(leaf.clone()),
        datum(
            json!({"id": -3, "name": "root", "tags": ["a", "bb"], "attrs": {"x": 1, "y": 2}, "maybe": "m",
            "score": 1e300, "next": leaf}),
        ),
    ];
    run("avro", &seeds, |input| {
        ebconnect::schema::avro::decode_to_json(input, &schema, Default::default()).is_ok()
    });
}

/// A JSON value as an Avro value to resolve against a schema: objects as maps, which resolve to records.
fn json_to_avro(value: serde_json::Value) -> apache_avro::types::Value {
    use apache_avro::types::Value as Avro;
    match value {
        serde_json::Value::Null => Avro::Null,
        serde_json::Value::Bool(flag) => Avro::Boolean(flag),
        serde_json::Value::Number(number) => match number.as_i64() {
            Some(integer) => Avro::Long(integer),
            None => Avro::Double(number.as_f64().unwrap_or_default()),
        },
        serde_json::Value::String(text) => Avro::String(text),
        serde_json::Value::Array(items) => Avro::Array(items.into_iter().map(json_to_avro).collect()),
        serde_json::Value::Object(map) => {
            Avro::Map(map.into_iter().map(|(key, value)| (key, json_to_avro(value))).collect())
        }
    }
}
