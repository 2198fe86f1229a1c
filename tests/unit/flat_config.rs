//! Kafka Connect's flat form of a connector configuration: every example connector, and generated documents, go
//! nested → flat → nested to the same settings, and the flat form reads back to itself.

use crate::random;

use std::path::Path;

use ebconnect::connectors::{load_connector, ConnectorConfig};
use random::Random;
use serde_json::{json, Value};

/// What a connector runs with: its typed settings, errors policy and transform chain.
fn behaviour(connector: &ConnectorConfig) -> (Value, Value, String) {
    (
        serde_json::to_value(&connector.settings).unwrap(),
        serde_json::to_value(&connector.errors).unwrap(),
        format!("{:?}", connector.transforms),
    )
}

fn write(dir: &Path, file: &str, document: &Value) -> std::path::PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, serde_norway::to_string(document).unwrap()).unwrap();
    path
}

/// Writes the connector's flat form as a file and reads it back.
fn through_flat(dir: &Path, connector: &ConnectorConfig) -> ConnectorConfig {
    let mut config = connector.written.clone();
    config.remove("name");
    let path = write(dir, "flat.yaml", &json!({"name": connector.name, "config": config}));
    load_connector(&path, None).unwrap_or_else(|error| panic!("{error}\nflat form: {config:#?}"))
}

fn assert_round_trip(dir: &Path, nested: &ConnectorConfig) {
    let flat = through_flat(dir, nested);
    assert_eq!(behaviour(&flat), behaviour(nested), "flat form: {:#?}", nested.written);
    assert_eq!(flat.written, nested.written, "the flat form reads back to itself");
    assert_eq!(flat.kind, nested.kind);
}

#[test]
fn every_example_connector_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = 0;
    // The files the worker loads: connectors/tests holds their test files.
    for path in ebconnect::connectors::connector_files(&["connectors".into()]).unwrap() {
        let nested = load_connector(&path, None).unwrap();
        assert_round_trip(dir.path(), &nested);
        seen += 1;
    }
    assert!(seen >= 4, "found {seen} example connectors");
}

/// A valid sink document with a random selection of its settings, transforms and errors policy.
fn random_sink(random: &mut Random, index: usize) -> Value {
    let mut config = serde_json::Map::new();
    config.insert(
        "event_bus".into(),
        json!(random.pick(&[
            "default",
            "audit-bus",
            "arn:aws:events:us-east-1:123456789012:event-bus/b"
        ])),
    );
    if random.chance(50) {
        let topics: Vec<String> = (0..=random.below(3)).map(|n| format!("topic.{n}-x_{index}")).collect();
        config.insert("topics".into(), json!(topics));
    } else {
        config.insert(
            "topics_regex".into(),
            json!(random.pick(&["audit\\..*", "^a,b$", "[a-z]+"])),
        );
    }
    let optional: [(&str, Value); 16] = [
        ("group_id", json!("group-1")),
        ("auto_offset_reset", json!("latest")),
        (
            "consumer_override",
            json!({"session.timeout.ms": "6000", "sasl.password": "${env:HOME}"}),
        ),
        ("key", json!({"format": "json"})),
        ("value", json!({"format": random.pick(&["json", "string", "bytes"])})),
        ("source", json!("my.source")),
        ("detail", json!("value")),
        (
            "detail_type",
            random
                .pick(&[
                    json!("t-${topic}"),
                    json!({"json_path": "$.eventName", "by_topic": {"a.b": "X"}, "default": "d"}),
                ])
                .clone(),
        ),
        (
            "resources",
            random
                .pick(&[
                    json!(["arn:aws:s3:::a", "arn:aws:s3:::b"]),
                    json!([{"json_path": "$.resources[*].ARN"}, "arn:x"]),
                ])
                .clone(),
        ),
        (
            "time",
            random
                .pick(&[
                    json!("none"),
                    json!("record_timestamp"),
                    json!({"json_path": "$.eventTime"}),
                ])
                .clone(),
        ),
        ("trace_header", json!("X-Amzn-Trace-Id")),
        ("batch", json!({"max_entries": 1 + random.below(10), "linger": "5ms"})),
        (
            "request",
            json!({"max_in_flight": 1 + random.below(64), "timeout": "3s"}),
        ),
        (
            "retry",
            json!({"max_attempts": 1 + random.below(20), "initial_backoff": "50ms"}),
        ),
        ("max_buffered_records", json!(100 + random.below(10_000))),
        ("commit_interval", json!("1s")),
    ];
    for (key, value) in optional {
        if random.chance(50) {
            config.insert(key.into(), value);
        }
    }
    let transforms = [
        json!({"filter": {"pattern": {"detail": {"eventName": ["GetObject", "a,b"], "n": [{"numeric": [">", 1]}]}}, "negate": random.chance(50)}}),
        json!({"mask": {"paths": ["$.userIdentity.arn", "$.sourceIPAddress"]}}),
        json!({"insert_field": {"path": "$.ebconnect.topic", "from": "topic"}}),
        json!({"insert_field": {"path": "$.fixed", "value": "10"}}),
        json!({"drop_fields": {"paths": ["$.a"]}}),
        json!({"rename_fields": {"renames": {"$.userIdentity.arn": "principalArn"}}}),
        json!({"set_key": {"path": "$.id"}}),
    ];
    let chain: Vec<Value> = (0..random.below(4)).map(|_| random.pick(&transforms).clone()).collect();
    let mut document = json!({"name": format!("generated-{index}"), "type": "eventbridge-sink", "config": config});
    if !chain.is_empty() {
        document["transforms"] = json!(chain);
    }
    if random.chance(50) {
        document["errors"] = json!({"tolerance": "all", "deadletterqueue": {"topic": "dlq", "context_headers": random.chance(50)}, "log": {"enable": true}});
    }
    document
}

#[test]
fn generated_sink_documents_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut random = Random(0x0f1a_7c0f);
    for index in 0..300 {
        let document = random_sink(&mut random, index);
        let path = write(dir.path(), "nested.yaml", &document);
        let nested = load_connector(&path, None).unwrap_or_else(|error| panic!("{error}\n{document:#}"));
        assert_round_trip(dir.path(), &nested);
    }
}

#[test]
fn connect_spellings_read_as_the_nested_settings() {
    let dir = tempfile::tempdir().unwrap();
    let flat = write(
        dir.path(),
        "flat.yaml",
        &json!({"name": "s", "config": {
            "connector.class": "dev.ebconnect.EventBridgeSinkConnector",
            "tasks.max": "1",
            "topics.regex": "audit.*",
            "event_bus": "b",
            "batch.max_entries": "5",
            "consumer.override.session.timeout.ms": "6000",
            "errors.tolerance": "all",
            "errors.deadletterqueue.topic.name": "dlq",
            "transforms": "drop",
            "transforms.drop.type": "drop_fields",
            "transforms.drop.paths": "$.a,$.b",
        }}),
    );
    let nested = write(
        dir.path(),
        "nested.yaml",
        &json!({"name": "s", "type": "eventbridge-sink",
            "config": {"topics_regex": "audit.*", "event_bus": "b", "batch": {"max_entries": 5},
                       "consumer_override": {"session.timeout.ms": "6000"}},
            "transforms": [{"drop_fields": {"paths": ["$.a", "$.b"]}}],
            "errors": {"tolerance": "all", "deadletterqueue": {"topic": "dlq"}}}),
    );
    let flat = load_connector(&flat, None).unwrap();
    assert_eq!(behaviour(&flat), behaviour(&load_connector(&nested, None).unwrap()));
    assert_eq!(
        flat.written.get("tasks.max").map(String::as_str),
        Some("1"),
        "kept as written"
    );
}

#[test]
fn a_flat_mistake_names_the_flat_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            json!({"batch.max_entries": "ten"}),
            "batch.max_entries: `ten` is not a whole number",
        ),
        (
            json!({"batch.max_entries": "11"}),
            "batch.max_entries: 11 is outside 1..=10",
        ),
        (json!({"batch.max_entris": "1"}), "batch: unknown field `max_entris`"),
        (
            json!({"consumer.override.": "1"}),
            "consumer.override.: names no client setting",
        ),
        (
            json!({"errors.retry.timeout": "1"}),
            "errors.retry.timeout: not a setting",
        ),
        (
            json!({"transforms": "a", "transforms.a.type": "mask", "transforms.a.pathz": "$.a"}),
            "transforms.a: unknown field `pathz`",
        ),
        (
            json!({"transforms.b.type": "mask"}),
            "transforms.b.type: `b` is not in `transforms`",
        ),
        (json!({"batch": "1", "batch.max_entries": "1"}), "conflicts with"),
        (
            json!({"tasks.max": "0"}),
            "tasks.max: `0` is not a whole number of at least 1",
        ),
        (
            json!({"connector.class": "software.amazon.other.EventBridgeSinkConnector"}),
            "connector.class: no connector",
        ),
    ];
    for (extra, expected) in cases {
        let mut config = json!({"connector.class": "eventbridge-sink", "topics": "t", "event_bus": "b"});
        for (key, value) in extra.as_object().unwrap() {
            config[key] = value.clone();
        }
        let path = write(dir.path(), "bad.yaml", &json!({"name": "bad", "config": config}));
        let message = load_connector(&path, None).unwrap_err().message;
        assert!(
            message.contains(expected),
            "{config}\n  gave: {message}\n  expected: {expected}"
        );
    }
}

/// A nested file may name settings by the reference's dotted keys (`batch.max_entries`) and Kafka Connect's
/// spellings, beside nested ones.
#[test]
fn nested_files_take_the_dotted_keys_of_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let dotted = dir.path().join("dotted.yaml");
    std::fs::write(
        &dotted,
        "name: d\ntype: eventbridge-sink\nconfig:\n  topics.regex: audit.*\n  event_bus: b\n  value.format: string\n  \
         batch.max_entries: 5\n  batch:\n    linger: 5ms\n  consumer.override.client.id: c\n",
    )
    .unwrap();
    let nested = write(
        dir.path(),
        "nested.yaml",
        &json!({"name": "d", "type": "eventbridge-sink", "config": {
            "topics_regex": "audit.*", "event_bus": "b", "value": {"format": "string"},
            "batch": {"max_entries": 5, "linger": "5ms"}, "consumer_override": {"client.id": "c"}}}),
    );
    let dotted_loaded = load_connector(&dotted, None).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        behaviour(&dotted_loaded),
        behaviour(&load_connector(&nested, None).unwrap())
    );
    assert_eq!(
        dotted_loaded.written.get("batch.max_entries").map(String::as_str),
        Some("5")
    );

    let conflicting = write(
        dir.path(),
        "conflict.yaml",
        &json!({"name": "d", "type": "eventbridge-sink", "config": {
            "topics": ["t"], "event_bus": "b", "batch": {"max_entries": 5}, "batch.max_entries": 6}}),
    );
    let message = load_connector(&conflicting, None).unwrap_err().message;
    assert!(message.contains("config.batch.max_entries: conflicts"), "{message}");
}
