//! One test per real service of the local stack, from Rust, the way ebconnect talks to each.

use crate::support;

use std::time::Duration;

use crate::support::{stack, unique};
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;
use serde_json::{json, Value};

async fn round_trip(config: ClientConfig) {
    let topic = unique("stack-roundtrip");
    support::create_topic(&topic, 1).await;
    let producer: FutureProducer = config.clone().set("enable.idempotence", "true").create().unwrap();
    for index in 0..5 {
        let value = format!("record {index}");
        support::produce(
            &producer,
            &topic,
            None,
            Some(b"k"),
            Some(value.as_bytes()),
            &[("h", b"v")],
        )
        .await;
    }
    let records =
        tokio::task::spawn_blocking(move || support::consume_with(config, &topic, 5, Duration::from_secs(30)))
            .await
            .unwrap();
    let values: Vec<String> = records
        .iter()
        .map(|record| String::from_utf8(record.value.clone().unwrap()).unwrap())
        .collect();
    assert_eq!(values, (0..5).map(|i| format!("record {i}")).collect::<Vec<_>>());
    assert_eq!(records[0].headers.get("h").map(String::as_str), Some("v"));
}

fn sasl_config(mechanism: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", stack("KAFKA_SASL_BOOTSTRAP_SERVERS"))
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanism", mechanism)
        .set("sasl.username", stack("KAFKA_SASL_USERNAME"))
        .set("sasl.password", stack("KAFKA_SASL_PASSWORD"));
    config
}

#[tokio::test]
async fn kafka_plaintext_produce_and_consume() {
    round_trip(support::kafka_config()).await;
}

#[tokio::test]
async fn kafka_sasl_plain_produce_and_consume() {
    round_trip(sasl_config("PLAIN")).await;
}

#[tokio::test]
async fn kafka_sasl_scram_produce_and_consume() {
    round_trip(sasl_config("SCRAM-SHA-512")).await;
}

#[tokio::test]
async fn kafka_sasl_rejects_a_wrong_password() {
    let producer: FutureProducer = sasl_config("PLAIN")
        .set("sasl.password", "wrong")
        .set("message.timeout.ms", "3000")
        .create()
        .unwrap();
    let delivery = producer
        .send(
            rdkafka::producer::FutureRecord::<(), str>::to("anything").payload("x"),
            Duration::from_secs(5),
        )
        .await;
    assert!(delivery.is_err(), "a wrong password must not be able to produce");
}

#[tokio::test]
async fn schema_registry_registers_and_serves_a_schema() {
    // Bounded: the stack's Apicurio has once registered a schema and then lost its answer (a Netty error in its
    // log), which without a timeout leaves the whole run waiting.
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    let url = stack("SCHEMA_REGISTRY_URL");
    let subject = unique("stack-subject");
    let schema = json!({"type": "record", "name": "Probe", "fields": [{"name": "a", "type": "long"}]});
    let registered: Value = client
        .post(format!("{url}/subjects/{subject}/versions"))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .json(&json!({"schema": schema.to_string()}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = registered["id"].as_i64().expect("an id");
    let fetched: Value = client
        .get(format!("{url}/schemas/ids/{id}"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let fetched_schema: Value = serde_json::from_str(fetched["schema"].as_str().unwrap()).unwrap();
    assert_eq!(fetched_schema, schema);
    let latest: Value = client
        .get(format!("{url}/subjects/{subject}/versions/latest"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(latest["id"].as_i64(), Some(id));
    assert_eq!(latest["version"].as_i64(), Some(1));
}

#[tokio::test]
async fn eventbridge_put_events_reaches_sqs_through_a_rule() {
    let capture = support::BusCapture::new("stack-bus", &json!({"source": ["ebconnect.test"]})).await;
    let entry = |source: &str, n: i64| {
        aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&capture.bus)
            .source(source)
            .detail_type("probe")
            .detail(json!({"n": n}).to_string())
            .build()
    };
    let response = capture
        .events
        .put_events()
        .entries(entry("ebconnect.test", 1))
        .entries(entry("somebody.else", 2))
        .send()
        .await
        .unwrap();
    assert_eq!(response.failed_entry_count(), 0);
    let event_id = response.entries()[0].event_id().unwrap().to_owned();
    let events = capture.receive(1, Duration::from_secs(30)).await;
    assert_eq!(events[0]["id"], json!(event_id));
    assert_eq!(events[0]["source"], json!("ebconnect.test"));
    assert_eq!(events[0]["detail"], json!({"n": 1}));
    capture.assert_no_more(Duration::from_secs(2)).await;
}
