//! `format: protobuf` and `format: json_schema` against records written by confluent-kafka's own ProtobufSerializer
//! and JSONSerializer through the stack's registry (`tests/support/produce_formats.py`): nested messages, a `oneof`,
//! maps, repeated fields, enums, 64-bit integers, bytes, well-known types, an imported schema (a reference), a
//! message two deep in the file (indexes `[1, 0]`). The detail on the bus must equal protobuf's own JSON mapping of
//! each message (`json_format.MessageToDict`), or the JSON Schema value as written; the poison records (not framed,
//! an unknown schema id, a message index the file lacks, a value against its schema) go to the dead-letter topic,
//! each with its reason.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{self, unique, BusCapture, RunningWorker};

/// Writes the records; returns what each good one should become, and what is wrong with each poison one.
async fn produce(format: &str, topic: &str) -> (Vec<Value>, Vec<String>) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/produce_formats.py");
    let (format, topic) = (format.to_owned(), topic.to_owned());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(support::stack("EBCONNECT_STACK_PYTHON"))
            .args([script, &format, &topic])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let mut expected = Vec::new();
    let mut poison = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let line: Value = serde_json::from_str(line).unwrap();
        match (line.get("expected"), line.get("poison")) {
            (Some(value), _) => expected.push(value.clone()),
            (_, Some(what)) => poison.push(what.as_str().unwrap().to_owned()),
            _ => panic!("unexpected line {line}"),
        }
    }
    (expected, poison)
}

/// The JSON text with every object's keys sorted: a map's or `Struct`'s entries come in no set order.
fn canonical(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(fields) => {
                let sorted: std::collections::BTreeMap<&String, Value> =
                    fields.iter().map(|(key, value)| (key, sorted(value))).collect();
                serde_json::to_value(sorted).unwrap()
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// Sinks `topic` with `value_format` to a bus; checks each detail against `expected` and that the dead-letter topic
/// holds one record per poison record, whose reasons contain `reasons`, in order.
async fn sink_and_compare(value_format: &str, topic: &str, expected: &[Value], reasons: &[&str]) {
    let capture = BusCapture::new("formats", &json!({"source": ["ebconnect.test.formats"]})).await;
    let dlq = unique("formats-dlq");
    let connector = support::sink_yaml(
        &unique("formats"),
        topic,
        &capture.bus,
        &format!("source: ebconnect.test.formats\ndetail: value\nvalue: {value_format}"),
        &format!("errors:\n  tolerance: all\n  deadletterqueue: {{topic: {dlq}}}\n"),
    );
    let worker = RunningWorker::start(&support::worker_yaml(""), &[("sink.yaml", &connector)]);
    let events = capture.receive(expected.len(), Duration::from_secs(60)).await;
    capture.assert_no_more(Duration::from_secs(1)).await;
    let dead = support::consume_all(&dlq, reasons.len(), Duration::from_secs(30));
    worker.stop().await;
    let mut details: Vec<String> = events.iter().map(|event| canonical(&event["detail"])).collect();
    let mut wanted: Vec<String> = expected.iter().map(canonical).collect();
    details.sort();
    wanted.sort();
    assert_eq!(details, wanted);
    assert_eq!(dead.len(), reasons.len());
    for (record, reason) in dead.iter().zip(reasons) {
        let message = &record.headers["__connect.errors.exception.message"];
        assert!(message.contains(reason), "`{reason}` not in `{message}`");
        assert_eq!(record.headers["__connect.errors.stage"], "VALUE_CONVERTER");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn protobuf_from_confluents_serializer_becomes_its_canonical_json() {
    let topic = unique("formats-protobuf");
    support::create_topic(&topic, 1).await;
    let (expected, poison) = produce("protobuf", &topic).await;
    assert_eq!(expected.len(), 3);
    assert_eq!(poison, ["not framed", "unknown schema id", "message index 5"]);
    // The serializer's JSON mapping: 64-bit integers as strings, enums by name, bytes in base64, well-known types.
    assert_eq!(expected[0]["bytesTransferred"], "1099511627779");
    assert_eq!(expected[0]["userIdentity"]["type"], "IAM_USER");
    assert_eq!(expected[0]["eventTime"], "2023-07-10T11:42:44.123Z");
    sink_and_compare(
        "{format: protobuf}",
        &topic,
        &expected,
        &[
            "not Confluent Schema Registry Protobuf: the first byte is 0x47",
            "schema id 999999",
            "message index [5] does not exist: audit.proto has 2 messages",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn json_schema_records_are_taken_as_written_and_checked_when_asked() {
    let topic = unique("formats-json-schema");
    support::create_topic(&topic, 1).await;
    let (expected, poison) = produce("json_schema", &topic).await;
    assert_eq!(
        poison,
        ["not framed", "unknown schema id", "not valid against the schema"]
    );
    sink_and_compare(
        "{format: json_schema, validate: true}",
        &topic,
        &expected,
        &[
            "not Confluent Schema Registry JSON Schema: the first byte is 0x47",
            "schema id 999999",
            "at /calls",
        ],
    )
    .await;
    // Without `validate`, the value that does not conform is taken as it is.
    let mut as_written = expected.clone();
    as_written.push(json!({"eventName": "GetObject", "calls": "twelve"}));
    sink_and_compare(
        "{format: json_schema}",
        &topic,
        &as_written,
        &["not Confluent Schema Registry JSON Schema", "schema id 999999"],
    )
    .await;
}
