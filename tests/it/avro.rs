//! Schema Registry Avro through the sink: records written by confluent-kafka's AvroSerializer (an independent
//! implementation of the Confluent wire format) via the real registry, read back from the emulator's bus.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::{sink_yaml, unique, worker_yaml, BusCapture, RunningWorker};
use base64::Engine;
use serde_json::{json, Value};

/// Runs an Avro sink over `topic` and returns the details that arrived, by record key order of arrival.
async fn sink_avro(topic: &str, expected: usize, tail: &str) -> Vec<Value> {
    let source = unique("ebconnect.test.avro");
    let capture = BusCapture::new("avro", &json!({"source": [source]})).await;
    let name = unique("avro");
    let connector = sink_yaml(
        &name,
        topic,
        &capture.bus,
        &format!("source: {source}\ndetail: value\nvalue:\n  format: avro\ntime:\n  json_path: $.eventTime"),
        tail,
    );
    let worker = RunningWorker::start(&worker_yaml(""), &[("sink.yaml", &connector)]);
    let events = capture.receive(expected, Duration::from_secs(60)).await;
    worker.stop().await;
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logical_types_nested_records_arrays_and_maps_become_readable_json() {
    let topic = unique("avro-logical");
    support::create_topic(&topic, 1).await;
    support::produce_avro("logical", &topic, 2).await;
    let events = sink_avro(&topic, 2, "").await;
    let mut details: Vec<Value> = events.iter().map(|event| event["detail"].clone()).collect();
    details.sort_by_key(|detail| detail["note"].is_null());
    let first = json!({
        "id": "6f1f3d4e-9d0c-4c59-9a0e-3f3b5f0a6c11",
        "day": "2024-03-01",
        "at": "12:34:56.789",
        "created": "2024-03-01T12:00:00.123Z",
        "settled": "2024-03-01T12:00:01.123456Z",
        "amount": "-1234.50",
        "fee": "0.0125",
        "note": "first",
        "status": "SETTLED",
        "payer": {"name": "Alice", "tags": ["vip", "eu"], "limits": {"card": 2000, "daily": 500}},
        "history": [{"name": "Bob", "tags": [], "limits": {}}],
        "payload": "AAH+/w==",
    });
    assert_eq!(details[0], first);
    let mut second = first;
    second["note"] = Value::Null;
    second["status"] = json!("PENDING");
    second["history"] = json!([]);
    assert_eq!(details[1], second);
    // Record fields keep the schema's order in the detail.
    let keys: Vec<&String> = details[0].as_object().unwrap().keys().collect();
    assert_eq!(keys[..3], ["id", "day", "at"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_avro_interop_datum_decodes_to_its_values() {
    let topic = unique("avro-interop");
    support::create_topic(&topic, 1).await;
    support::produce_avro("interop", &topic, 1).await;
    let events = sink_avro(&topic, 1, "").await;
    let fixture: Value = serde_json::from_str(include_str!("../fixtures/avro/interop_datum_py.json")).unwrap();
    let mut expected = fixture["datum"].clone();
    for field in ["bytesField", "fixedField"] {
        let ascii = expected[field].as_str().unwrap().as_bytes().to_vec();
        expected[field] = json!(base64::engine::general_purpose::STANDARD.encode(ascii));
    }
    assert_eq!(events[0]["detail"], expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_cloudtrail_records_arrive_with_exactly_their_fields() {
    const COUNT: usize = 100;
    let topic = unique("avro-cloudtrail");
    support::create_topic(&topic, 2).await;
    support::produce_avro("cloudtrail", &topic, COUNT).await;
    let events = sink_avro(&topic, COUNT, "").await;
    let originals: BTreeMap<String, Value> = include_str!("../fixtures/cloudtrail/invictus_aws_dataset.jsonl")
        .lines()
        .take(COUNT)
        .map(|line| {
            let event: Value = serde_json::from_str(line).unwrap();
            (event["eventID"].as_str().unwrap().to_owned(), event)
        })
        .collect();
    assert_eq!(events.len(), COUNT);
    for event in &events {
        let detail = &event["detail"];
        let original = &originals[detail["eventID"].as_str().unwrap()];
        let identity = &original["userIdentity"];
        let resources = original.get("resources").map(|resources| {
            resources
                .as_array()
                .unwrap()
                .iter()
                .map(|resource| json!({"ARN": resource["ARN"], "type": resource["type"]}))
                .collect::<Vec<_>>()
        });
        let event_time = original["eventTime"].as_str().unwrap();
        let expected = json!({
            "eventVersion": original["eventVersion"],
            "userIdentity": {
                "type": identity["type"],
                "principalId": identity["principalId"],
                "arn": identity["arn"],
                "accountId": identity["accountId"],
            },
            "eventTime": event_time.replace('Z', ".000Z"),
            "eventSource": original["eventSource"],
            "eventName": original["eventName"],
            "awsRegion": original["awsRegion"],
            "sourceIPAddress": original["sourceIPAddress"],
            "errorCode": original["errorCode"],
            "readOnly": original["readOnly"],
            "requestParameters": detail["requestParameters"],
            "resources": resources,
            "eventID": original["eventID"],
        });
        assert_eq!(detail, &expected);
        // requestParameters travels as JSON text; it must be the original object.
        let request = match detail["requestParameters"].as_str() {
            Some(text) => serde_json::from_str(text).unwrap(),
            None => Value::Null,
        };
        assert_eq!(&request, original.get("requestParameters").unwrap_or(&Value::Null));
        assert_eq!(
            event["time"],
            json!(event_time),
            "the event time comes from the Avro timestamp"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_avro_is_dead_lettered_with_the_reason() {
    let topic = unique("avro-poison");
    let dlq = unique("avro-poison-dlq");
    support::create_topic(&topic, 1).await;
    let schema_id = support::produce_avro("logical", &topic, 2).await;
    let producer = support::producer();
    let mut truncated = vec![0];
    truncated.extend(schema_id.to_be_bytes());
    truncated.extend([0x48, b'6']); // a 36-character uuid string that stops after one character
    let mut unknown_id = vec![0];
    unknown_id.extend(987_654_321u32.to_be_bytes());
    unknown_id.extend([0x02, b'x']);
    let poison: [(&str, Vec<u8>, &str); 4] = [
        (
            "bad-magic",
            b"\x07garbage".to_vec(),
            "the first byte is 0x07, not the magic byte 0x00",
        ),
        ("short", vec![0, 0, 1], "3 bytes are too few for the 5-byte header"),
        (
            "truncated",
            truncated,
            &format!("cannot decode Avro with schema id {schema_id}"),
        ),
        ("unknown-id", unknown_id, "cannot decode Avro with schema id 987654321"),
    ];
    for (key, value, _) in &poison {
        support::produce(&producer, &topic, None, Some(key.as_bytes()), Some(value), &[]).await;
    }
    let tail = format!("errors:\n  tolerance: all\n  deadletterqueue:\n    topic: {dlq}\n");
    let events = sink_avro(&topic, 2, &tail).await;
    assert_eq!(events.len(), 2);
    let dead = tokio::task::spawn_blocking(move || support::consume_all(&dlq, 4, Duration::from_secs(30)))
        .await
        .unwrap();
    for (key, value, reason) in &poison {
        let record = dead
            .iter()
            .find(|record| record.key.as_deref() == Some(key.as_bytes()))
            .unwrap_or_else(|| panic!("{key} was not dead-lettered"));
        assert_eq!(record.value.as_ref(), Some(value));
        assert_eq!(record.headers["__connect.errors.stage"], "VALUE_CONVERTER");
        let message = &record.headers["__connect.errors.exception.message"];
        assert!(message.contains(reason), "{key}: {message}");
    }
}

/// A TCP path to the real Schema Registry that can be cut: while it is down, each connection is closed as soon as it
/// is accepted, as when the registry's host is restarting.
struct RegistryPath {
    url: String,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl RegistryPath {
    async fn start() -> Self {
        let registry = support::stack("SCHEMA_REGISTRY_URL");
        let authority = registry
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = registry.replace(&authority, &listener.local_addr().unwrap().to_string());
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let switch = up.clone();
        tokio::spawn(async move {
            loop {
                let (mut client, _) = listener.accept().await.unwrap();
                if !switch.load(std::sync::atomic::Ordering::SeqCst) {
                    continue;
                }
                let authority = authority.clone();
                tokio::spawn(async move {
                    let mut server = tokio::net::TcpStream::connect(authority).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Self { url, up }
    }

    fn set_up(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A registry outage is waited out inside the connector: while the registry cannot be reached the sink stays
/// RUNNING with no failure counted (before, it failed and restarted until `max_restarts` gave up), it reports the
/// waits in `ebconnect_schema_registry_waits_total`, and once the registry is back the records flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_outage_is_waited_out() {
    let path = RegistryPath::start().await;
    let topic = unique("avro-outage");
    support::create_topic(&topic, 1).await;
    support::produce_avro("logical", &topic, 2).await;
    let source = unique("ebconnect.test.avro");
    let capture = BusCapture::new("avro-outage", &json!({"source": [source]})).await;
    let name = unique("avro-outage");
    let connector = sink_yaml(
        &name,
        &topic,
        &capture.bus,
        &format!("source: {source}\ndetail: value\nvalue:\n  format: avro"),
        "",
    );
    let worker_file = worker_yaml("").replace(&support::stack("SCHEMA_REGISTRY_URL"), &path.url);
    let worker = RunningWorker::start(&worker_file, &[("sink.yaml", &connector)]);
    let labels = ebconnect::telemetry::metrics::connector(&name);
    let waits = || {
        ebconnect::telemetry::metrics::metrics()
            .registry_waits
            .get_or_create(&labels)
            .get()
    };
    // The worker restarts a failed connector after 100 ms and gives up after 3 restarts: 3 s of outage is far
    // beyond what restarting would have survived.
    support::wait_for("the sink to wait for the registry", Duration::from_secs(30), || async {
        (waits() >= 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = worker.state(&name).unwrap();
    assert_eq!(
        (status.state.as_str(), status.consecutive_failures),
        ("RUNNING", 0),
        "{:?}",
        status.trace
    );
    path.set_up();
    let events = capture.receive(2, Duration::from_secs(60)).await;
    assert_eq!(events.len(), 2);
    worker.stop().await;
}
