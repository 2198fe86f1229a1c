//! The rest-produce-receiver against the real stack: requests shaped as EventBridge API destinations and Confluent
//! REST v3 clients send them, records read back from Kafka (and through the Schema Registry for Avro).

use crate::support;

use std::time::Duration;

use crate::support::{unique, worker_yaml, RunningWorker};
use axum::body::Bytes;
use futures::SinkExt;
use serde_json::{json, Value};

const KEY: &str = "api-key";
const SECRET: &str = "api-secret";

struct Endpoint {
    worker: RunningWorker,
    base: String,
    topic: String,
    client: reqwest::Client,
}

impl Endpoint {
    async fn start(max_record_bytes: usize) -> Self {
        let topic = unique("receiver");
        support::create_topic(&topic, 1).await;
        let address = support::rest_address();
        let name = unique("receiver");
        let connector = format!(
            "name: {name}\ntype: rest-produce-receiver\nconfig:\n  listen: {address}\n  cluster_id: lkc-test\n  topics: [{topic}]\n  auth:\n    api_key: {KEY}\n    api_secret: {SECRET}\n  max_record_bytes: {max_record_bytes}\n"
        );
        let worker = RunningWorker::start(&worker_yaml(""), &[("receiver.yaml", &connector)]);
        let client = reqwest::Client::new();
        let base = format!("http://{address}/kafka/v3/clusters/lkc-test/topics");
        support::wait_for("the receiver to listen", Duration::from_secs(30), || async {
            tokio::net::TcpStream::connect(address).await.ok()
        })
        .await;
        Self {
            worker,
            base,
            topic,
            client,
        }
    }

    fn records_url(&self) -> String {
        format!("{}/{}/records", self.base, self.topic)
    }

    async fn post(&self, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .client
            .post(self.records_url())
            .basic_auth(KEY, Some(SECRET))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn consume(&self, count: usize) -> Vec<support::Consumed> {
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || support::consume_all(&topic, count, Duration::from_secs(60)))
            .await
            .unwrap()
    }
}

fn event() -> Value {
    let text = include_str!("../fixtures/eventbridge/01_awsdocs_s3_CreateBucket.json");
    serde_json::from_str(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_destination_request_is_answered_after_kafka_has_the_record() {
    let endpoint = Endpoint::start(1 << 20).await;
    // The reference setup's input transformer body: {"value":{"type":"JSON","data":<event>}}.
    let body = json!({"value": {"type": "JSON", "data": event()}}).to_string();
    let (status, report) = endpoint.post(body).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["error_code"], 200);
    assert_eq!(report["cluster_id"], "lkc-test");
    assert_eq!(report["topic_name"], endpoint.topic.as_str());
    assert_eq!(report["value"]["type"], "JSON");
    assert!(report["key"].is_null());

    let with_key_and_headers = json!({
        "key": {"type": "STRING", "data": "AIDAEXAMPLE"},
        "value": {"type": "BINARY", "data": "AAEC"},
        "headers": [{"name": "source", "value": "YXdzLnMz"}],
        "timestamp": "2026-11-28T10:00:00.250Z",
    });
    let (status, second) = endpoint.post(with_key_and_headers.to_string()).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["offset"], report["offset"].as_i64().unwrap() + 1);
    assert_eq!(second["timestamp"], "2026-11-28T10:00:00.250Z");
    assert_eq!(second["key"], json!({"type": "STRING", "size": 11}));

    let records = endpoint.consume(2).await;
    let value: Value = serde_json::from_slice(records[0].value.as_ref().unwrap()).unwrap();
    assert_eq!(value, event(), "the event arrives as sent");
    assert_eq!(records[0].offset, report["offset"].as_i64().unwrap());
    assert_eq!(records[1].key.as_deref(), Some(&b"AIDAEXAMPLE"[..]));
    assert_eq!(records[1].value.as_deref(), Some(&[0u8, 1, 2][..]));
    assert_eq!(records[1].headers["source"], "aws.s3");
    endpoint.worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_mode_reports_each_record_in_order_while_the_client_still_sends() {
    let endpoint = Endpoint::start(1 << 20).await;
    let (mut sender, chunks) = futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let record = |n: u32| Bytes::from(json!({"value": {"type": "JSON", "data": {"n": n}}}).to_string());
    sender.send(Ok(record(0))).await.unwrap();
    let mut response = endpoint
        .client
        .post(endpoint.records_url())
        .basic_auth(KEY, Some(SECRET))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    // The first report arrives while the request is still open: the client has not sent its second record yet.
    let first = tokio::time::timeout(Duration::from_secs(20), response.chunk())
        .await
        .expect("the first report arrives before the request ends")
        .unwrap()
        .unwrap();
    let first: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(first["error_code"], 200);
    // A bad record in the middle gets its own error report; the records around it are written.
    sender
        .send(Ok(Bytes::from(
            r#"{"value":{"type":"STRING","data":5}} {"value":{"type":"JSON","data":{"n":2}}}"#,
        )))
        .await
        .unwrap();
    sender.send(Ok(record(3))).await.unwrap();
    drop(sender);
    let rest = response.text().await.unwrap();
    let reports: Vec<Value> = serde_json::Deserializer::from_str(&rest)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect();
    let codes: Vec<i64> = reports
        .iter()
        .map(|report| report["error_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [42201, 200, 200], "{rest}");
    let offset = first["offset"].as_i64().unwrap();
    assert_eq!(reports[1]["offset"], offset + 1);
    assert_eq!(reports[2]["offset"], offset + 2);
    let records = endpoint.consume(3).await;
    let numbers: Vec<Value> = records
        .iter()
        .map(|record| serde_json::from_slice::<Value>(record.value.as_ref().unwrap()).unwrap()["n"].clone())
        .collect();
    assert_eq!(numbers, [json!(0), json!(2), json!(3)]);
    endpoint.worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_documented_status_and_error_code() {
    let endpoint = Endpoint::start(1024).await;
    let good = json!({"value": {"type": "JSON", "data": {"ok": true}}}).to_string();
    let send = |url: String, auth: Option<(&'static str, &'static str)>, content_type: &'static str, body: String| {
        let mut request = endpoint
            .client
            .post(url)
            .header("content-type", content_type)
            .body(body);
        if let Some((key, secret)) = auth {
            request = request.basic_auth(key, Some(secret));
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let authenticate = response.headers().get("www-authenticate").is_some();
            let body: Value = response.json().await.unwrap();
            (status, body["error_code"].as_i64().unwrap(), authenticate)
        }
    };
    let url = endpoint.records_url();
    let json = "application/json";
    let auth = Some((KEY, SECRET));
    assert_eq!(send(url.clone(), None, json, good.clone()).await, (401, 40101, true));
    assert_eq!(
        send(url.clone(), Some((KEY, "wrong")), json, good.clone()).await,
        (401, 40101, true)
    );
    assert_eq!(send(url.clone(), auth, json, "{\"value\": ".into()).await.0, 400);
    assert_eq!(
        send(url.clone(), auth, json, "{nope}".into()).await,
        (400, 40001, false)
    );
    let unknown = format!("{}/not-{}/records", endpoint.base, endpoint.topic);
    assert_eq!(send(unknown, auth, json, good.clone()).await, (404, 40403, false));
    let oversize = json!({"value": {"type": "STRING", "data": "x".repeat(2000)}}).to_string();
    assert_eq!(send(url.clone(), auth, json, oversize).await, (413, 41301, false));
    assert_eq!(
        send(url.clone(), auth, "text/plain", good.clone()).await,
        (415, 41501, false)
    );
    let misfit = json!({"value": {"type": "BINARY", "data": "not base64!"}}).to_string();
    assert_eq!(send(url.clone(), auth, json, misfit).await, (422, 42201, false));
    let before_1970 =
        json!({"value": {"type": "STRING", "data": "x"}, "timestamp": "1969-12-31T23:59:59Z"}).to_string();
    assert_eq!(send(url.clone(), auth, json, before_1970).await, (422, 42201, false));
    let wrong_cluster = url.replace("lkc-test", "lkc-other");
    assert_eq!(send(wrong_cluster, auth, json, good.clone()).await, (404, 40402, false));
    // Nothing of the above reached Kafka; the good record after it is the topic's first.
    assert_eq!(send(url, auth, json, good).await.0, 200);
    let records = endpoint.consume(1).await;
    assert_eq!(records[0].offset, 0);
    endpoint.worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_answered_entry_by_entry() {
    let endpoint = Endpoint::start(1 << 20).await;
    let batch = json!({"entries": [
        {"id": "a", "value": {"type": "JSON", "data": {"n": 1}}},
        {"id": "b", "value": {"type": "STRING", "data": {"not": "a string"}}},
        {"id": "c", "key": {"type": "STRING", "data": "k"}, "value": {"type": "JSON", "data": {"n": 3}}},
    ]});
    let response = endpoint
        .client
        .post(format!("{}:batch", endpoint.records_url()))
        .basic_auth(KEY, Some(SECRET))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 207);
    let body: Value = response.json().await.unwrap();
    let succeeded: Vec<&str> = body["successes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["id"].as_str().unwrap())
        .collect();
    assert_eq!(succeeded, ["a", "c"]);
    assert_eq!(body["failures"][0]["id"], "b");
    assert_eq!(body["failures"][0]["error_code"], 42201);
    assert_eq!(endpoint.consume(2).await.len(), 2);
    endpoint.worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_values_are_encoded_through_the_schema_registry() {
    let endpoint = Endpoint::start(1 << 20).await;
    let schema = json!({
        "type": "record", "name": "Flagged", "namespace": "ebconnect.test",
        "fields": [
            {"name": "principal", "type": "string"},
            {"name": "count", "type": "int"},
            {"name": "note", "type": ["null", "string"], "default": null},
        ]
    })
    .to_string();
    let record = json!({"value": {"type": "AVRO", "schema": schema, "data": {"principal": "AIDA1", "count": 11}}});
    let (status, report) = endpoint.post(record.to_string()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["value"]["type"], "AVRO");
    // The schema is now the subject's latest: a record naming no schema is written with it.
    let implied = json!({"value": {"type": "AVRO", "data": {"principal": "AIDA2", "count": 12, "note": "x"}}});
    let (status, report) = endpoint.post(implied.to_string()).await;
    assert_eq!(status, 200, "{report}");
    let misfit = json!({"value": {"type": "AVRO", "data": {"principal": "AIDA3", "count": "twelve"}}});
    let (status, report) = endpoint.post(misfit.to_string()).await;
    assert_eq!((status, report["error_code"].as_i64()), (422, Some(42201)), "{report}");

    let records = support::consume_avro(&endpoint.topic, 2).await;
    assert_eq!(
        records[0].value,
        json!({"principal": "AIDA1", "count": 11, "note": null})
    );
    assert_eq!(
        records[1].value,
        json!({"principal": "AIDA2", "count": 12, "note": "x"})
    );
    assert_eq!(records[0].schema_id, records[1].schema_id);
    endpoint.worker.stop().await;
}

/// Avro data in Avro's JSON encoding, as Confluent's REST Proxy reads it: `bytes` a character a byte, and a union
/// as `{"<branch>": value}`, read back by confluent-kafka's deserializer; a character past U+00FF is answered 422.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_data_is_read_in_avros_json_encoding() {
    let endpoint = Endpoint::start(1 << 20).await;
    let schema = json!({
        "type": "record", "name": "Blob", "namespace": "ebconnect.test",
        "fields": [
            {"name": "raw", "type": "bytes"},
            {"name": "note", "type": ["null", "string"], "default": null},
        ]
    })
    .to_string();
    let data = json!({"raw": "\u{0}\u{ff}Aé", "note": {"string": "tagged"}});
    let record = json!({"value": {"type": "AVRO", "schema": schema, "data": data}});
    let (status, report) = endpoint.post(record.to_string()).await;
    assert_eq!(status, 200, "{report}");
    let wide = json!({"value": {"type": "AVRO", "data": {"raw": "日"}}});
    let (status, report) = endpoint.post(wide.to_string()).await;
    assert_eq!((status, report["error_code"].as_i64()), (422, Some(42201)), "{report}");
    let records = support::consume_avro(&endpoint.topic, 1).await;
    // consume_avro.py shows bytes as Python writes them.
    assert_eq!(
        records[0].value,
        json!({"raw": "b'\\x00\\xffA\\xe9'", "note": "tagged"})
    );
    endpoint.worker.stop().await;
}

/// With Kafka down, a record is answered 503 once its write times out, and a record beyond `max_in_flight` 429 at
/// once, both with Retry-After: statuses API destinations retry, where Confluent's endpoint would answer 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_down_gives_503_and_a_full_endpoint_429() {
    let mut kafka = tokio::task::block_in_place(support::PrivateKafka::start);
    let topic = unique("receiver-down");
    support::create_topic_with(kafka.client_config(), &topic, 1).await;
    let address = support::rest_address();
    let name = unique("receiver-down");
    let connector = format!(
        "name: {name}\ntype: rest-produce-receiver\nconfig:\n  listen: {address}\n  topics: [{topic}]\n  max_in_flight: 1\n  produce_timeout: 3s\n"
    );
    let worker = RunningWorker::start(
        &support::worker_yaml_for_kafka(&kafka.bootstrap(), ""),
        &[("receiver.yaml", &connector)],
    );
    let client = reqwest::Client::new();
    let url = format!("http://{address}/kafka/v3/clusters/ebconnect/topics/{topic}/records");
    let post = |n: u32| {
        client
            .post(&url)
            .header("content-type", "application/json")
            .body(json!({"value": {"type": "JSON", "data": {"n": n}}}).to_string())
            .send()
    };
    support::wait_for("the receiver to listen", Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(address).await.ok()
    })
    .await;
    assert_eq!(post(0).await.unwrap().status().as_u16(), 200, "Kafka is up");

    tokio::task::block_in_place(|| kafka.kill());
    let waiting = tokio::spawn(post(1));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let busy = post(2).await.unwrap();
    assert_eq!(busy.status().as_u16(), 429);
    assert_eq!(busy.headers()["retry-after"], "1");
    assert_eq!(busy.json::<Value>().await.unwrap()["error_code"], 42901);
    let unavailable = waiting.await.unwrap().unwrap();
    assert_eq!(unavailable.status().as_u16(), 503);
    assert_eq!(unavailable.headers()["retry-after"], "1");
    assert_eq!(unavailable.json::<Value>().await.unwrap()["error_code"], 50301);
    worker.stop().await;
}

/// A batch larger than `max_in_flight` waits for room instead of being refused: with two write slots, all 25
/// entries of one batch are written and answered as successes, and the records reach Kafka.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_max_in_flight_waits_for_room() {
    let topic = unique("receiver-room");
    support::create_topic(&topic, 1).await;
    let address = support::rest_address();
    let name = unique("receiver-room");
    let connector = format!(
        "name: {name}\ntype: rest-produce-receiver\nconfig:\n  listen: {address}\n  topics: [{topic}]\n  max_in_flight: 2\n"
    );
    let worker = RunningWorker::start(&worker_yaml(""), &[("receiver.yaml", &connector)]);
    support::wait_for("the receiver to listen", Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(address).await.ok()
    })
    .await;
    let entries: Vec<Value> = (0..25)
        .map(|n| json!({"id": format!("e{n}"), "value": {"type": "JSON", "data": {"n": n}}}))
        .collect();
    let response = reqwest::Client::new()
        .post(format!(
            "http://{address}/kafka/v3/clusters/ebconnect/topics/{topic}/records:batch"
        ))
        .header("content-type", "application/json")
        .body(json!({ "entries": entries }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 207);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["failures"], json!([]), "{report}");
    assert_eq!(report["successes"].as_array().unwrap().len(), 25, "{report}");
    assert_eq!(report["successes"][24]["id"], "e24");
    let topic_name = topic.clone();
    let records = tokio::task::spawn_blocking(move || support::consume_all(&topic_name, 25, Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(records.len(), 25);
    worker.stop().await;
}
