//! Migration from AWS's Java EventBridge sink connector: its README's example configurations, sent unchanged to
//! `POST /connectors` (only the bus, region and topics made the local stack's), deliver the events that connector
//! sends (its DefaultEventBridgeMapper: `source` `kafka-connect.<connector.id>`, `detail-type`
//! `kafka-connect-<topic>`, the record envelope as `detail`, `time` left to EventBridge), and keys without an
//! equivalent are refused by name, by the API and by `ebconnect import-connect`.

use crate::support;

use std::time::Duration;

use crate::support::{stack, unique, worker_yaml, BusCapture, RunningWorker};
use rdkafka::producer::FutureRecord;
use serde_json::{json, Value};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/aws-eventbridge-connector");

fn example(file: &str) -> Value {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{file}")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The example, pointed at the local stack: `topic`, the capture's bus, the stack's region and a unique name.
fn localized(mut example: Value, name: &str, topic: &str, bus: &str) -> Value {
    let config = example["config"].as_object_mut().unwrap();
    config.insert("topics".into(), json!(topic));
    config.insert(
        "aws.eventbridge.eventbus.arn".into(),
        json!(format!(
            "arn:aws:events:{}:123456789012:event-bus/{bus}",
            stack("AWS_REGION")
        )),
    );
    config.insert("aws.eventbridge.region".into(), json!(stack("AWS_REGION")));
    example["name"] = json!(name);
    example
}

async fn post(base: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/connectors"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn base(worker: &str) -> String {
    let address = worker
        .lines()
        .find_map(|line| line.trim().strip_prefix("listen: "))
        .unwrap();
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_connectors_examples_deliver_the_events_it_sends() {
    let topic = unique("aws-json");
    let dlq = unique("aws-json-dlq");
    support::create_topic(&topic, 1).await;
    let capture = BusCapture::new(
        "aws-json",
        &json!({"source": [{"prefix": "kafka-connect.my-json-values-connector"}]}),
    )
    .await;
    let producer = support::producer();
    // A timestamp years back: the AWS connector leaves `time` to EventBridge, which stamps the PutEvents call.
    let long_ago = 1_600_000_000_000;
    for n in 0..3 {
        let value = json!({"n": n, "eventName": "GetObject"}).to_string();
        let key = format!("user-{n}");
        let record: FutureRecord<'_, str, str> = FutureRecord::to(&topic)
            .key(key.as_str())
            .payload(value.as_str())
            .timestamp(long_ago + n);
        producer.send(record, Duration::from_secs(10)).await.unwrap();
    }
    let not_json: FutureRecord<'_, str, str> = FutureRecord::to(&topic).key("bad").payload("not json");
    producer.send(not_json, Duration::from_secs(10)).await.unwrap();

    let worker_file = worker_yaml("");
    let worker = RunningWorker::start(&worker_file, &[]);
    let base = base(&worker_file);
    let name = unique("aws-sink");
    let mut request = localized(example("json-dlq.json"), &name, &topic, &capture.bus);
    request["config"]["errors.deadletterqueue.topic.name"] = json!(dlq);
    let (status, info) = post(&base, &request).await;
    assert_eq!(status, 201, "{info}");
    assert_eq!(info["type"], "sink");
    // Shown as sent: every value as Kafka Connect's strings, the AWS keys as they were.
    let mut expected: serde_json::Map<String, Value> = request["config"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, value)| {
            (
                key.clone(),
                json!(value.as_str().map_or_else(|| value.to_string(), str::to_owned)),
            )
        })
        .collect();
    expected.insert("name".into(), json!(name));
    assert_eq!(info["config"], Value::Object(expected));

    let events = capture.receive(3, Duration::from_secs(60)).await;
    let before = chrono::Utc::now() - chrono::Duration::minutes(10);
    for event in &events {
        assert_eq!(event["source"], "kafka-connect.my-json-values-connector");
        assert_eq!(event["detail-type"], format!("kafka-connect-{topic}"));
        let detail = &event["detail"];
        let n = detail["value"]["n"].as_i64().unwrap();
        assert_eq!(detail["key"], format!("user-{n}"));
        assert_eq!(detail["topic"], json!(topic));
        assert_eq!(detail["partition"], 0);
        assert_eq!(detail["offset"], n);
        assert_eq!(detail["timestamp"], long_ago + n);
        assert_eq!(detail["timestampType"], "CreateTime");
        assert_eq!(detail["headers"], json!([]));
        let time: chrono::DateTime<chrono::Utc> = event["time"].as_str().unwrap().parse().unwrap();
        assert!(time > before, "time {time} is the record's, not the PutEvents call's");
    }
    // The record that is not JSON went to the dead-letter topic, which was created with replication factor 1.
    let dead = tokio::task::spawn_blocking(move || support::consume_all(&dlq, 1, Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(dead[0].value.as_deref(), Some(&b"not json"[..]));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_without_an_equivalent_are_refused_by_name() {
    let worker_file = worker_yaml("");
    let worker = RunningWorker::start(&worker_file, &[]);
    let base = base(&worker_file);
    let good = localized(example("json.json"), "aws-refused", "t", "b");
    let glue = localized(example("avro-glue.json"), "aws-glue", "t", "b");
    let with = |key: &str, value: &str| {
        let mut changed = good.clone();
        changed["config"][key] = json!(value);
        changed
    };
    let cases = [
        (glue, "aws.eventbridge.iam.role.arn: `arn:aws:iam::1234567890:role/EventBridgePutEventsRole`, but this worker's aws.assume_role.role_arn is ``"),
        (with("value.converter", "com.amazonaws.services.schemaregistry.kafkaconnect.AWSKafkaAvroConverter"), "value.converter: `com.amazonaws.services.schemaregistry.kafkaconnect.AWSKafkaAvroConverter`"),
        (with("aws.eventbridge.region", "eu-west-1"), "aws.eventbridge.region: `eu-west-1`, but this worker's aws.region is"),
        (with("aws.eventbridge.detail.types.mapper.class", "com.example.MyMapper"), "aws.eventbridge.detail.types.mapper.class: `com.example.MyMapper` is a Java class"),
        (with("aws.eventbridge.time.mapper.class", "com.example.MyTime"), "aws.eventbridge.time.mapper.class"),
        (with("aws.eventbridge.retries.maks", "3"), "aws.eventbridge.retries.maks: not a setting of the AWS EventBridge sink connector"),
        (with("schema.history.internal.kafka.topic", "x"), "schema.history.internal.kafka.topic: not a setting"),
        (with("value.converter.schemas.enable", "true"), "value.converter.schemas.enable: must be `false`"),
    ];
    for (request, expected) in cases {
        let (status, answer) = post(&base, &request).await;
        assert_eq!(status, 400, "{request}: {answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(expected), "{message}\n  expected: {expected}");
    }
    // Validate takes the AWS connector's class, and attaches a problem to the AWS key it names.
    let validate = |config: Value| {
        let url = format!(
            "{base}/connector-plugins/software.amazon.event.kafkaconnector.EventBridgeSinkConnector/config/validate"
        );
        async move {
            let response = reqwest::Client::new().put(url).json(&config).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(validate(good["config"].clone()).await["error_count"], 0);
    let report = validate(with("aws.eventbridge.region", "eu-west-1")["config"].clone()).await;
    assert_eq!(report["error_count"], 1, "{report}");
    let blamed: Vec<&Value> = report["configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|config| !config["value"]["errors"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(blamed[0]["value"]["name"], "aws.eventbridge.region", "{report}");
    worker.stop().await;
}

/// `import-connect` prints a connector file that runs as the same sink as the flat configuration does.
#[test]
fn import_connect_prints_the_equivalent_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut request = example("json-dlq.json");
    request["config"]["aws.eventbridge.detail.types"] = json!("orders.v1:Order,customers:Customer");
    request["config"]["aws.eventbridge.eventbus.resources"] = json!("arn:aws:s3:::a, arn:aws:s3:::b");
    let input = dir.path().join("connector.json");
    std::fs::write(&input, request.to_string()).unwrap();
    let output = support::ebconnect().arg("import-connect").arg(&input).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let yaml = String::from_utf8(output.stdout).unwrap();
    assert!(yaml.contains("type: eventbridge-sink"), "{yaml}");
    let file = dir.path().join("imported.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let imported = ebconnect::connectors::load_connector(&file, None).unwrap();
    let flat = dir.path().join("flat.yaml");
    std::fs::write(&flat, serde_norway::to_string(&request).unwrap()).unwrap();
    let direct = ebconnect::connectors::load_connector(&flat, None).unwrap();
    assert_eq!(
        serde_json::to_value(&imported.settings).unwrap(),
        serde_json::to_value(&direct.settings).unwrap(),
        "{yaml}"
    );
    let settings = serde_json::to_value(&imported.settings).unwrap();
    assert_eq!(
        settings["detail_type"]["by_topic"],
        json!({"orders.v1": "Order", "customers": "Customer"})
    );
    assert_eq!(settings["resources"], json!(["arn:aws:s3:::a", "arn:aws:s3:::b"]));
    assert_eq!(settings["retry"]["max_attempts"], 3);

    std::fs::write(
        &input,
        r#"{"name": "x", "config": {"connector.class": "eventbridge-sink", "topics": "t"}}"#,
    )
    .unwrap();
    let output = support::ebconnect().arg("import-connect").arg(&input).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing field `event_bus`"));
}
