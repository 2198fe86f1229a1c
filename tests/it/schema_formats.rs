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
    let output = support::stack_python("produce_formats.py", &[format, topic]).await;
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

/// Reads `count` records of `topic` with `tests/support/consume_formats.py` (`format`: `protobuf:FILE:MESSAGE` or
/// `json_schema`).
async fn consume(format: &str, topic: &str, count: usize) -> Vec<Value> {
    let output = support::stack_python("consume_formats.py", &[format, topic, &count.to_string()]).await;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Every number as a float: protobuf's `Struct` holds only doubles.
fn numbers_as_floats(value: &Value) -> Value {
    match value {
        Value::Number(number) => json!(number.as_f64().unwrap()),
        Value::Array(items) => Value::Array(items.iter().map(numbers_as_floats).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| (key.clone(), numbers_as_floats(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// eventbridge-source writing Protobuf and JSON Schema (each with a schema file) from a bus through moto's SQS, read
/// back by confluent-kafka's deserializers.
#[tokio::test(flavor = "multi_thread")]
async fn the_source_writes_protobuf_and_json_schema() {
    let config = support::aws_config().await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let bus = unique("formats-bus");
    events.create_event_bus().name(&bus).send().await.unwrap();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut connectors = Vec::new();
    let mut topics = Vec::new();
    for (format, schema_file) in [
        ("protobuf", format!("{fixtures}/protobuf/event.proto")),
        ("json_schema", format!("{fixtures}/jsonschema/event.json")),
    ] {
        let topic = unique(&format!("formats-source-{format}"));
        support::create_topic(&topic, 1).await;
        let name = unique(&format!("formats-source-{}", format.replace('_', "-")));
        connectors.push((
            format!("{name}.yaml"),
            format!(
                "name: {name}\ntype: eventbridge-source\nconfig:\n  provision:\n    event_bus: {bus}\n    event_pattern: {{source: [aws.s3]}}\n  topic: {topic}\n  value:\n    format: {format}\n    schema_file: {schema_file}\n  wait_time: 1s\n"
            ),
        ));
        topics.push((format, topic, name));
    }
    let files: Vec<(&str, &str)> = connectors
        .iter()
        .map(|(file, text)| (file.as_str(), text.as_str()))
        .collect();
    let worker = RunningWorker::start(&support::worker_yaml(""), &files);
    for (_, _, name) in &topics {
        crate::source::provisioned(&events, &bus, name).await;
    }
    let mut details = std::collections::BTreeMap::new();
    for n in 0..3 {
        let detail = crate::source::cloudtrail_event(n, "s3.amazonaws.com", &format!("AIDA{n}"));
        let id = crate::source::put(&events, &bus, "aws.s3", &detail).await;
        details.insert(id, detail);
    }
    for (format, topic, _) in &topics {
        let reader = match *format {
            "protobuf" => format!("protobuf:{fixtures}/protobuf/event.proto:ebconnect.test.Event"),
            other => other.to_owned(),
        };
        let records = consume(&reader, topic, 3).await;
        for record in &records {
            let value = &record["value"];
            let id = value["id"].as_str().unwrap();
            assert_eq!(value["source"], "aws.s3", "{format}: {value}");
            assert_eq!(value["detail-type"], "AWS API Call via CloudTrail", "{format}: {value}");
            assert_eq!(
                numbers_as_floats(&value["detail"]),
                numbers_as_floats(&details[id]),
                "{format}"
            );
        }
    }
    worker.stop().await;
}

/// rest-produce-receiver's `"type": "PROTOBUF"` and `"JSONSCHEMA"` with the schema in the request, read back by
/// confluent-kafka's deserializers; a value that does not fit its schema is refused with 422.
#[tokio::test(flavor = "multi_thread")]
async fn the_receiver_writes_protobuf_and_json_schema() {
    let proto = "syntax = \"proto3\";\npackage ebconnect.test;\nmessage Call {\n  string event_name = 1;\n  int64 bytes = 2;\n  repeated string resources = 3;\n}\n";
    let dir = tempfile::tempdir().unwrap();
    let proto_file = dir.path().join("call.proto");
    std::fs::write(&proto_file, proto).unwrap();
    let json_schema =
        json!({"type": "object", "properties": {"eventName": {"type": "string"}}, "required": ["eventName"]});
    let protobuf_topic = unique("formats-receiver-protobuf");
    let json_topic = unique("formats-receiver-json");
    support::create_topic(&protobuf_topic, 1).await;
    support::create_topic(&json_topic, 1).await;
    let address = support::rest_address();
    let connector = format!(
        "name: {}\ntype: rest-produce-receiver\nconfig:\n  listen: {address}\n  topics: [{protobuf_topic}, {json_topic}]\n",
        unique("formats-receiver")
    );
    let worker = RunningWorker::start(&support::worker_yaml(""), &[("receiver.yaml", &connector)]);
    support::wait_for("the receiver to listen", Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(address).await.ok()
    })
    .await;
    let client = reqwest::Client::new();
    let post = |topic: &str, body: Value| {
        client
            .post(format!(
                "http://{address}/kafka/v3/clusters/ebconnect/topics/{topic}/records"
            ))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let call = json!({"eventName": "GetObject", "bytes": "1099511627779", "resources": ["arn:aws:s3:::b"]});
    let answer = post(
        &protobuf_topic,
        json!({"value": {"type": "PROTOBUF", "schema": proto, "data": call}}),
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    let misfit = json!({"value": {"type": "PROTOBUF", "schema": proto, "data": {"eventName": 7, "nope": 1}}});
    let answer = post(&protobuf_topic, misfit).await.unwrap();
    assert_eq!(answer.status(), 422);
    let answer = post(&json_topic, json!({"value": {"type": "JSONSCHEMA", "schema": json_schema.to_string(), "data": {"eventName": "ListBuckets", "n": 1}}}))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    let answer = post(
        &json_topic,
        json!({"value": {"type": "JSONSCHEMA", "schema": json_schema.to_string(), "data": {"n": 1}}}),
    )
    .await
    .unwrap();
    let refusal = answer.text().await.unwrap();
    assert!(refusal.contains("eventName"), "{refusal}");

    let written = consume(
        &format!("protobuf:{}:ebconnect.test.Call", proto_file.display()),
        &protobuf_topic,
        1,
    )
    .await;
    assert_eq!(written[0]["value"], call);
    let written = consume("json_schema", &json_topic, 1).await;
    assert_eq!(written[0]["value"], json!({"eventName": "ListBuckets", "n": 1}));
    worker.stop().await;
}

/// AWS Glue Schema Registry records written by aws-glue-schema-registry (PyPI) against moto's Glue: Avro and JSON,
/// compressed and not, and Protobuf as Glue's serializer lays it out (three messages of one file, nested among them);
/// a record without Glue's header is a record error, or read by `secondary`; an unknown schema version is a record
/// error.
#[tokio::test(flavor = "multi_thread")]
async fn glue_records_are_read_by_their_schema_version() {
    let topic = unique("formats-glue");
    support::create_topic(&topic, 1).await;
    let registry = unique("formats-glue-registry");
    let output = support::stack_python("produce_glue.py", &[&registry, &topic]).await;
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let expected: Vec<Value> = lines.iter().filter_map(|line| line.get("expected").cloned()).collect();
    let plain: Vec<Value> = lines.iter().filter_map(|line| line.get("plain").cloned()).collect();
    assert_eq!((expected.len(), plain.len()), (7, 1));
    sink_and_compare(
        "{format: glue}",
        &topic,
        &expected,
        &[
            "not AWS Glue Schema Registry data: the first byte is 0x7b, not the header version 3",
            "Glue has no such schema version",
        ],
    )
    .await;
    let with_plain: Vec<Value> = expected.iter().chain(&plain).cloned().collect();
    sink_and_compare(
        "{format: glue, secondary: json}",
        &topic,
        &with_plain,
        &["Glue has no such schema version"],
    )
    .await;
}
