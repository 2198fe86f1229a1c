//! End-to-end sink throughput: a topic pre-filled with ~1 KiB Schema Registry Avro (or Protobuf, or JSON Schema)
//! CloudTrail-like records (built from the real CloudTrail fixture), the release `ebconnect` binary as a separate
//! process, and a fast local PutEvents endpoint in this process that acknowledges every entry. No rate limit. Reports records/s, the worker's CPU time
//! and its peak RSS (VmHWM).
//!
//!     scripts/stack up && source <(scripts/stack env) && cargo bench --bench sink_throughput
//!
//! `BENCH_FORMAT` (`avro`, the default; `protobuf`; `json_schema`) the records' format, each in the Schema Registry's
//! wire format, `BENCH_RECORDS` (default 300000) the number of records, `BENCH_LATENCY_MS` (default 0) how long the endpoint
//! takes to answer each request (a real PutEvents call takes tens of milliseconds), and `BENCH_SINK_CONFIG` YAML
//! lines added under the connector's `config:` (e.g. `request: {adaptive: false, max_in_flight: 32}`).
//!
//! With `BENCH_RATE` (records/s) the topic is not pre-filled: once the worker delivers, records are produced at that
//! pace with `eventTime` set to the moment of producing (the entry's `Time`), and the endpoint reports the p50 and
//! p99 of the time from there to its receipt of the entry:
//!
//!     BENCH_RATE=5000 BENCH_RECORDS=100000 BENCH_LATENCY_MS=30 cargo bench --bench sink_throughput

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apache_avro::schema::Schema;
use apache_avro::types::Value as Avro;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use rdkafka::producer::{BaseRecord, Producer};
use serde_json::{json, Value};

const SCHEMA: &str = r#"{"type":"record","name":"CloudTrailEvent","namespace":"ebconnect.bench","fields":[
  {"name":"eventVersion","type":"string"},
  {"name":"userIdentity","type":{"type":"record","name":"UserIdentity","fields":[
    {"name":"type","type":["null","string"],"default":null},
    {"name":"principalId","type":["null","string"],"default":null},
    {"name":"arn","type":["null","string"],"default":null},
    {"name":"accountId","type":["null","string"],"default":null},
        {"name":"accessKeyId","type":["null","string"],"default":null},
    {"name":"userName","type":["null","string"],"default":null},
    {"name":"sessionContext","type":["null","string"],"default":null}]}},
  {"name":"eventTime","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"eventSource","type":"string"},
  {"name":"eventName","type":"string"},
  {"name":"awsRegion","type":"string"},
  {"name":"sourceIPAddress","type":["null","string"],"default":null},
  {"name":"userAgent","type":["null","string"],"default":null},
  {"name":"errorCode","type":["null","string"],"default":null},
  {"name":"requestParameters","type":["null","string"],"default":null},
  {"name":"responseElements","type":["null","string"],"default":null},
  {"name":"requestID","type":["null","string"],"default":null},
  {"name":"eventID","type":"string"},
  {"name":"readOnly","type":["null","boolean"],"default":null},
  {"name":"eventType","type":["null","string"],"default":null},
  {"name":"recipientAccountId","type":["null","string"],"default":null},
    {"name":"tlsDetails","type":["null",{"type":"map","values":"string"}],"default":null},
  {"name":"additionalEventData","type":["null","string"],"default":null},
  {"name":"resources","type":["null","string"],"default":null}]}"#;

/// `SCHEMA` as Protobuf: the times as `Timestamp` (RFC 3339 in the JSON), the text fields as strings.
const PROTO_SCHEMA: &str = r#"syntax = "proto3";
package ebconnect.bench;
import "google/protobuf/timestamp.proto";
message CloudTrailEvent {
  string eventVersion = 1;
  UserIdentity userIdentity = 2;
  google.protobuf.Timestamp eventTime = 3;
  string eventSource = 4;
  string eventName = 5;
  string awsRegion = 6;
  string sourceIPAddress = 7;
  string userAgent = 8;
  string errorCode = 9;
  string requestParameters = 10;
  string responseElements = 11;
  string requestID = 12;
  string eventID = 13;
  bool readOnly = 14;
  string eventType = 15;
  string recipientAccountId = 16;
  map<string, string> tlsDetails = 17;
  string additionalEventData = 18;
  string resources = 19;
  message UserIdentity {
    string type = 1;
    string principalId = 2;
    string arn = 3;
    string accountId = 4;
    string accessKeyId = 5;
    string userName = 6;
    string sessionContext = 7;
  }
}
"#;

/// A JSON Schema for the same records, as loose as producers' often are: the JSON is taken as it is.
const JSON_SCHEMA: &str = r#"{"type":"object","properties":{"eventName":{"type":"string"},"eventTime":{"type":"string"}},"required":["eventName","eventTime"]}"#;

mod support;

use support::env;

fn text(value: &Value) -> Value {
    match value {
        Value::Null => Value::Null,
        Value::String(_) => value.clone(),
        other => Value::String(other.to_string()),
    }
}

/// One fixture record as this schema's JSON shape, ready for `Avro::from(...).resolve(...)`.
fn shaped(event: &Value, n: usize) -> Value {
    let identity = &event["userIdentity"];
    let time = chrono::DateTime::parse_from_rfc3339(event["eventTime"].as_str().unwrap()).unwrap();
    let tls = event.get("tlsDetails").filter(|tls| tls.is_object()).map(|tls| {
        Value::Object(
            tls.as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), text(v)))
                .collect(),
        )
    });
    json!({
        "eventVersion": event["eventVersion"],
        "userIdentity": {
            "type": identity["type"], "principalId": identity["principalId"], "arn": identity["arn"],
                        "accountId": identity["accountId"], "accessKeyId": identity["accessKeyId"], "userName": identity["userName"],
            "sessionContext": text(&identity["sessionContext"]),
        },
        "eventTime": time.timestamp_millis(),
        "eventSource": event["eventSource"],
        "eventName": event["eventName"],
        "awsRegion": event["awsRegion"],
        "sourceIPAddress": event["sourceIPAddress"],
        "userAgent": event["userAgent"],
        "errorCode": event["errorCode"],
        "requestParameters": text(&event["requestParameters"]),
        "responseElements": text(&event["responseElements"]),
        "requestID": event["requestID"],
        "eventID": format!("{}-{n}", event["eventID"].as_str().unwrap_or_default()),
        "readOnly": event["readOnly"],
        "eventType": event["eventType"],
        "recipientAccountId": event["recipientAccountId"],
                "tlsDetails": tls,
        "additionalEventData": text(&event["additionalEventData"]),
        "resources": text(&event["resources"]),
    })
}

/// JSON as schema-less Avro values; `resolve` then fits them to the schema (maps become records, unions pick a
/// branch, longs become timestamps).
fn json_to_avro(value: Value) -> Avro {
    match value {
        Value::Null => Avro::Null,
        Value::Bool(flag) => Avro::Boolean(flag),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => Avro::Long(integer),
            None => Avro::Double(number.as_f64().unwrap_or_default()),
        },
        Value::String(text) => Avro::String(text),
        Value::Array(items) => Avro::Array(items.into_iter().map(json_to_avro).collect()),
        Value::Object(map) => Avro::Map(map.into_iter().map(|(key, value)| (key, json_to_avro(value))).collect()),
    }
}

/// Registering again is harmless (the registry answers the same id), and is how a lost answer is got over: the
/// stack's Apicurio once registered a schema and then failed writing the answer (a Netty `IllegalReferenceCount`
/// error in its log), leaving the bench waiting for ever.
async fn register(schema: &str, schema_type: &str, subject: &str) -> u32 {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let answer = client
            .post(format!("{}/subjects/{subject}/versions", env("SCHEMA_REGISTRY_URL")))
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .json(&json!({ "schema": schema, "schemaType": schema_type }))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        let response: Value = match answer {
            Ok(response) => response.json().await.unwrap(),
            Err(error) if error.is_timeout() && attempts < 3 => continue,
            Err(error) => panic!("registering {subject}: {error}"),
        };
        return response["id"].as_u64().unwrap() as u32;
    }
}

/// The record format (`BENCH_FORMAT`): each is the Schema Registry's wire format of the same fixture events.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Avro,
    Protobuf,
    JsonSchema,
}

impl Format {
    fn from_env() -> Self {
        match std::env::var("BENCH_FORMAT").as_deref() {
            Err(_) | Ok("avro") => Self::Avro,
            Ok("protobuf") => Self::Protobuf,
            Ok("json_schema") => Self::JsonSchema,
            Ok(other) => panic!("BENCH_FORMAT `{other}` is not avro, protobuf or json_schema"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Avro => "avro",
            Self::Protobuf => "protobuf",
            Self::JsonSchema => "json_schema",
        }
    }

    /// The schema and its type, as the registry takes them.
    fn schema(self) -> (&'static str, &'static str) {
        match self {
            Self::Avro => (SCHEMA, "AVRO"),
            Self::Protobuf => (PROTO_SCHEMA, "PROTOBUF"),
            Self::JsonSchema => (JSON_SCHEMA, "JSON"),
        }
    }
}

/// The fixture's events in this schema's shape, and how to frame one in the Schema Registry's wire format.
struct Encoder {
    format: Format,
    schema: Schema,
    message: prost_reflect::MessageDescriptor,
    schema_id: u32,
    events: Vec<Value>,
}

/// The bench schema's Protobuf message, compiled.
fn proto_message() -> prost_reflect::MessageDescriptor {
    use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
    struct Schema;
    impl FileResolver for Schema {
        fn open_file(&self, name: &str) -> Result<File, protox::Error> {
            match name {
                "bench.proto" => File::from_source(name, PROTO_SCHEMA),
                _ => Err(protox::Error::file_not_found(name)),
            }
        }
    }
    let mut resolver = ChainFileResolver::new();
    resolver.add(Schema);
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.open_file("bench.proto").unwrap();
    compiler
        .descriptor_pool()
        .get_message_by_name("ebconnect.bench.CloudTrailEvent")
        .unwrap()
}

impl Encoder {
    fn new(format: Format, schema_id: u32) -> Self {
        let fixture = include_str!("../tests/fixtures/cloudtrail/invictus_aws_dataset.jsonl");
        let events = fixture
            .lines()
            .enumerate()
            .map(|(n, line)| shaped(&serde_json::from_str(line).unwrap(), n))
            .collect();
        Self {
            format,
            schema: Schema::parse_str(SCHEMA).unwrap(),
            message: proto_message(),
            schema_id,
            events,
        }
    }

    fn framed(&self, mut event: Value) -> Vec<u8> {
        let mut framed = vec![0];
        framed.extend(self.schema_id.to_be_bytes());
        if self.format != Format::Avro {
            // Avro's timestamp-millis decodes to RFC 3339, which the sink's `time` reads; the others carry it so.
            let millis = event["eventTime"].as_i64().unwrap();
            event["eventTime"] = json!(chrono::DateTime::from_timestamp_millis(millis)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        }
        match self.format {
            Format::Avro => {
                let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&self.schema)
                    .build()
                    .unwrap();
                let value = json_to_avro(event).resolve(&self.schema).unwrap();
                framed.extend(writer.write_value_to_vec(value).unwrap());
            }
            Format::Protobuf => {
                use prost::Message;
                let message = prost_reflect::DynamicMessage::deserialize(self.message.clone(), &event).unwrap();
                // The first message of the file: the short form of the message indexes.
                framed.push(0);
                framed.extend(message.encode_to_vec());
            }
            Format::JsonSchema => framed.extend(event.to_string().into_bytes()),
        }
        framed
    }
}

/// Fills `topic` with `count` framed Avro records; returns the mean value size.
fn prefill(topic: &str, count: usize, encoder: &Encoder) -> usize {
    // Pre-encode one body per fixture event; records cycle through them with their own key.
    let bodies: Vec<Vec<u8>> = encoder
        .events
        .iter()
        .map(|event| encoder.framed(event.clone()))
        .collect();
    let producer = support::bulk_producer();
    let mut total = 0;
    for n in 0..count {
        let body = &bodies[n % bodies.len()];
        total += body.len();
        let key = n.to_string();
        support::send_waiting(
            &producer,
            BaseRecord::to(topic).key(key.as_str()).payload(body.as_slice()),
        );
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    total / count
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Produces `count` records at `rate` a second, each with `eventTime` the moment it is produced, records
/// `first..first + count` of the fixture cycle; returns the mean value size.
fn paced(topic: &str, first: usize, count: usize, rate: f64, encoder: &Encoder) -> usize {
    let producer: rdkafka::producer::BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", env("KAFKA_BOOTSTRAP_SERVERS"))
        .set("linger.ms", "1")
        .create()
        .unwrap();
    let started = Instant::now();
    let mut total = 0;
    for n in first..first + count {
        let due = started + Duration::from_secs_f64((n - first) as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let mut event = encoder.events[n % encoder.events.len()].clone();
        event["eventTime"] = json!(now_millis());
        let body = encoder.framed(event);
        total += body.len();
        let key = n.to_string();
        support::send_waiting(
            &producer,
            BaseRecord::to(topic).key(key.as_str()).payload(body.as_slice()),
        );
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    total / count.max(1)
}

#[derive(Default)]
struct Counters {
    entries: AtomicU64,
    requests: AtomicU64,
    first_request_ns: AtomicU64,
    last_request_ns: AtomicU64,
    /// With `BENCH_RATE`: each entry's time from its `Time` to its receipt, in milliseconds.
    delays_ms: Option<Mutex<Vec<i64>>>,
}

/// The entries' `Time` values (seconds since the epoch, to the millisecond), found without a full parse.
fn entry_times(body: &str) -> impl Iterator<Item = f64> + '_ {
    body.split("\"Time\":").skip(1).filter_map(|rest| {
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        rest[..end].trim().parse().ok()
    })
}

async fn put_events(
    State((counters, origin, latency)): State<(Arc<Counters>, Instant, Duration)>,
    body: String,
) -> ([(&'static str, &'static str); 1], String) {
    if let Some(delays) = &counters.delays_ms {
        let received = now_millis();
        let mut delays = delays.lock().unwrap();
        delays.extend(entry_times(&body).map(|time| received - (time * 1000.0).round() as i64));
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    // Counting `"Source"` keys is enough to know the entries; a full parse would take CPU from the worker.
    let entries = body.matches("\"Source\"").count();
    let now = origin.elapsed().as_nanos() as u64;
    let _ = counters
        .first_request_ns
        .compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
    counters.last_request_ns.store(now, Ordering::SeqCst);
    counters.requests.fetch_add(1, Ordering::Relaxed);
    let first = counters.entries.fetch_add(entries as u64, Ordering::Relaxed);
    let results: Vec<String> = (0..entries)
        .map(|i| format!(r#"{{"EventId":"e{}"}}"#, first + i as u64))
        .collect();
    (
        [("content-type", "application/x-amz-json-1.1")],
        format!(r#"{{"FailedEntryCount":0,"Entries":[{}]}}"#, results.join(",")),
    )
}

fn percentile(sorted: &[i64], fraction: f64) -> i64 {
    sorted[((sorted.len() - 1) as f64 * fraction).round() as usize]
}

#[tokio::main]
async fn main() {
    let records = support::count("BENCH_RECORDS", 300_000);
    let latency = Duration::from_millis(support::count("BENCH_LATENCY_MS", 0) as u64);
    let rate = support::count("BENCH_RATE", 0) as f64;
    let sink_config: String = std::env::var("BENCH_SINK_CONFIG")
        .unwrap_or_default()
        .lines()
        .map(|line| format!("  {line}\n"))
        .collect();
    let run = format!("bench-{}", std::process::id());
    let topic = format!("{run}-cloudtrail");
    let format = Format::from_env();
    let (schema, schema_type) = format.schema();
    let schema_id = register(schema, schema_type, &format!("{topic}-value")).await;
    let _run_topic = support::create_topic(&topic, 4).await;
    let encoder = Arc::new(Encoder::new(format, schema_id));
    let mut mean_size = 0;
    if rate == 0.0 {
        let started = Instant::now();
        let (topic, encoder) = (topic.clone(), encoder.clone());
        mean_size = tokio::task::spawn_blocking(move || prefill(&topic, records, &encoder))
            .await
            .unwrap();
        eprintln!(
            "prefilled {records} records (mean value {mean_size} bytes) in {:?}",
            started.elapsed()
        );
    }

    let counters = Arc::new(Counters {
        delays_ms: (rate > 0.0).then(|| Mutex::new(Vec::with_capacity(records))),
        ..Counters::default()
    });
    let origin = Instant::now();
    let app = Router::new()
        .route("/", post(put_events))
        .with_state((counters.clone(), origin, latency));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut worker = support::WorkerProcess::start(
        &format!(
            "kafka:\n  bootstrap_servers: {}\nschema_registry:\n  url: {}\naws:\n  region: us-east-1\n  endpoint_url: {endpoint}\nrest:\n  listen: 127.0.0.1:0\nlog_format: json\n",
            env("KAFKA_BOOTSTRAP_SERVERS"),
            env("SCHEMA_REGISTRY_URL")
        ),
        &format!(
            "name: {run}\ntype: eventbridge-sink\nconfig:\n  topics: [{topic}]\n  event_bus: bench\n  source: ebconnect.bench\n  value:\n    format: {format}\n  detail: value\n  detail_type:\n    json_path: $.eventName\n  time:\n    json_path: $.eventTime\n{sink_config}",
            format = format.name()
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    let wait_for_entries = |target: u64, worker: &mut support::WorkerProcess| {
        assert!(
            Instant::now() < deadline,
            "the worker did not deliver every record in time"
        );
        worker.assert_running();
        counters.entries.load(Ordering::SeqCst) < target
    };
    if rate > 0.0 {
        // One record first, so that the paced ones find the worker started and its consumer assigned.
        let warm_up = encoder.clone();
        let topic_for_warm_up = topic.clone();
        tokio::task::spawn_blocking(move || paced(&topic_for_warm_up, 0, 1, rate, &warm_up))
            .await
            .unwrap();
        while wait_for_entries(1, &mut worker) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Some(delays) = &counters.delays_ms {
            delays.lock().unwrap().clear();
        }
        let (topic, encoder) = (topic.clone(), encoder.clone());
        mean_size = tokio::task::spawn_blocking(move || paced(&topic, 1, records, rate, &encoder))
            .await
            .unwrap();
    }
    let expected = records as u64 + u64::from(rate > 0.0);
    while wait_for_entries(expected, &mut worker) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (cpu_seconds, peak_rss_mib) = worker.usage();
    let first = counters.first_request_ns.load(Ordering::SeqCst);
    let last = counters.last_request_ns.load(Ordering::SeqCst);
    let seconds = (last - first) as f64 / 1e9;
    let requests = counters.requests.load(Ordering::SeqCst);
    worker.stop();

    match &counters.delays_ms {
        None => println!(
            "sink_throughput: {records} {} records of {mean_size} bytes (mean) to a local PutEvents endpoint answering after {latency:?}",
            format.name()
        ),
        Some(_) => println!(
            "sink_throughput: {records} {} records of {mean_size} bytes (mean) produced at {rate:.0}/s to a local PutEvents endpoint answering after {latency:?}",
            format.name()
        ),
    }
    println!("  records/s:        {:.0}", records as f64 / seconds);
    println!("  delivery time:    {seconds:.2} s (first to last request), {requests} requests");
    println!(
        "  worker CPU:       {cpu_seconds:.2} s user+system ({:.0}% of one core over the delivery, {:.1} µs a record)",
        100.0 * cpu_seconds / seconds,
        1e6 * cpu_seconds / records as f64
    );
    println!("  worker peak RSS:  {peak_rss_mib:.1} MiB");
    if let Some(delays) = &counters.delays_ms {
        let mut delays = delays.lock().unwrap().clone();
        delays.sort_unstable();
        println!(
            "  record to endpoint: p50 {} ms, p90 {} ms, p99 {} ms, p99.9 {} ms, max {} ms ({} entries)",
            percentile(&delays, 0.5),
            percentile(&delays, 0.9),
            percentile(&delays, 0.99),
            percentile(&delays, 0.999),
            delays.last().copied().unwrap_or_default(),
            delays.len()
        );
    }
}
