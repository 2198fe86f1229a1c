//! `ebconnect preview` and `ebconnect test` against the real stack: the entries preview shows for the real
//! CloudTrail records on a topic are the events the sink then delivers to the bus (through moto, read back from a
//! rule's queue), its errors are the records the sink dead-letters, and previewing commits nothing and joins no
//! group; `--send` delivers to the bus; the example connectors' test files pass.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{json, Value};

use crate::support::{self, ebconnect, unique, BusCapture, ConfigDir, RunningWorker};

const PARTITIONS: i32 = 3;

/// The first `count` CloudTrail records of the fixture, as EventBridge envelopes.
fn audit_events(count: usize) -> Vec<Value> {
    include_str!("../fixtures/cloudtrail/invictus_aws_dataset.jsonl")
        .lines()
        .take(count)
        .map(|line| support::cloudtrail_envelope(&serde_json::from_str(line).unwrap()))
        .collect()
}

/// connectors/s3-calls-to-bus.yaml, reading `topic`, delivering to `bus`, dead-lettering to `dlq`.
fn s3_calls_connector(name: &str, topic: &str, bus: &str, dlq: &str) -> String {
    include_str!("../../connectors/s3-calls-to-bus.yaml")
        .replace("name: s3-calls-to-bus", &format!("name: {name}"))
        .replace("audit_trail_topic", topic)
        .replace("security-findings", bus)
        .replace("s3-calls-to-bus-dlq", dlq)
}

fn worker() -> String {
    support::worker_yaml("rate_limits:\n  local-account:\n    entries_per_second: 2000\n")
}

/// Runs `ebconnect preview ... --json`; returns the other lines (outcomes, and what `--send` did) and the summary.
fn preview_json(config: &ConfigDir, arguments: &[&str]) -> (Vec<Value>, Value) {
    let connector = config.connectors().join("connector.yaml");
    let output = ebconnect()
        .arg("preview")
        .arg(&connector)
        .arg("--worker")
        .arg(config.worker())
        .args(arguments)
        .arg("--json")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "preview failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (summaries, lines): (Vec<Value>, Vec<Value>) = stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .partition(|line| line.get("summary").is_some());
    assert_eq!(summaries.len(), 1, "{stdout}");
    (lines, summaries[0]["summary"].clone())
}

/// What a delivered event and a previewed entry have in common: source, detail type, time (as seconds), resources
/// and detail.
fn comparable(source: &Value, detail_type: &Value, time: &Value, resources: &Value, detail: &Value) -> String {
    let seconds = time
        .as_str()
        .map(|time| chrono::DateTime::parse_from_rfc3339(time).unwrap().timestamp());
    json!([source, detail_type, seconds, resources, detail]).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn preview_shows_what_the_sink_then_delivers_and_commits_nothing() {
    let topic = unique("preview-audit");
    support::create_topic(&topic, PARTITIONS).await;
    let producer = support::producer();
    let events = audit_events(400);
    for event in &events {
        let key = event["detail"]["userIdentity"]["principalId"]
            .as_str()
            .unwrap_or("none");
        let value = event.to_string();
        support::produce(
            &producer,
            &topic,
            None,
            Some(key.as_bytes()),
            Some(value.as_bytes()),
            &[],
        )
        .await;
    }
    support::produce(&producer, &topic, Some(1), None, Some(b"GetObject by benjamin"), &[]).await;
    let capture = BusCapture::new("preview", &json!({"source": ["ebconnect.audit"]})).await;
    let name = unique("preview-s3-calls");
    let dlq = unique("preview-dlq");
    let connector = s3_calls_connector(&name, &topic, &capture.bus, &dlq);
    let config = ConfigDir::new(&worker(), &[("connector.yaml", &connector)]);

    let (outcomes, summary) = preview_json(&config, &["--topic", &topic, "--from-beginning", "--limit", "10000"]);
    assert_eq!(summary["records"], events.len() + 1, "{summary}");
    let entries: Vec<&Value> = outcomes
        .iter()
        .filter(|outcome| outcome["outcome"] == "entry")
        .collect();
    let errors: Vec<&Value> = outcomes
        .iter()
        .filter(|outcome| outcome["outcome"] == "error")
        .collect();
    let filtered = outcomes
        .iter()
        .filter(|outcome| outcome["outcome"] == "filtered")
        .count();
    let s3_calls = events
        .iter()
        .filter(|event| event["detail"]["eventSource"] == "s3.amazonaws.com")
        .count();
    assert_eq!(entries.len(), s3_calls);
    assert_eq!(filtered, events.len() - s3_calls);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["stage"], "VALUE_CONVERTER");
    assert_eq!(errors[0]["then"], json!({"dead_letter": dlq}));

    // Nothing committed for the topic, by the connector's group or by any preview's.
    assert!(support::committed_offsets(&format!("connect-{name}"), &topic, PARTITIONS).is_empty());
    let consumer: BaseConsumer = support::kafka_config().create().unwrap();
    let groups = consumer.fetch_group_list(None, Duration::from_secs(10)).unwrap();
    for group in groups.groups().iter().map(|group| group.name()) {
        if group.starts_with("ebconnect-preview-") {
            let committed = support::committed_offsets(group, &topic, PARTITIONS);
            assert!(committed.is_empty(), "preview's group {group} committed {committed:?}");
        }
    }

    // The sink itself, on the same records.
    let worker = RunningWorker::start(&worker(), &[("connector.yaml", &connector)]);
    let delivered = capture.receive(entries.len(), Duration::from_secs(120)).await;
    capture.assert_no_more(Duration::from_secs(2)).await;
    let mut previewed: Vec<String> = entries
        .iter()
        .map(|entry| {
            assert_eq!(entry["EventBusName"], capture.bus.as_str());
            comparable(
                &entry["Source"],
                &entry["DetailType"],
                &entry["Time"],
                &entry["Resources"],
                &entry["Detail"],
            )
        })
        .collect();
    let mut sent: Vec<String> = delivered
        .iter()
        .map(|event| {
            comparable(
                &event["source"],
                &event["detail-type"],
                &event["time"],
                &event["resources"],
                &event["detail"],
            )
        })
        .collect();
    previewed.sort();
    sent.sort();
    assert_eq!(previewed, sent);
    let dead_letters = support::consume_all(&dlq, errors.len(), Duration::from_secs(30));
    assert_eq!(dead_letters.len(), errors.len());
    assert_eq!(dead_letters[0].value.as_deref(), Some(&b"GetObject by benjamin"[..]));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn preview_of_the_latest_records_and_send_delivers_them() {
    let topic = unique("preview-latest");
    support::create_topic(&topic, 1).await;
    let producer = support::producer();
    let s3_events: Vec<Value> = audit_events(400)
        .into_iter()
        .filter(|event| event["detail"]["eventSource"] == "s3.amazonaws.com")
        .take(8)
        .collect();
    for event in &s3_events {
        let value = event.to_string();
        support::produce(&producer, &topic, Some(0), None, Some(value.as_bytes()), &[]).await;
    }
    let capture = BusCapture::new("preview-send", &json!({"source": ["ebconnect.audit"]})).await;
    let name = unique("preview-send");
    let connector = s3_calls_connector(&name, &topic, &capture.bus, &unique("preview-dlq"));
    let config = ConfigDir::new(&worker(), &[("connector.yaml", &connector)]);

    let (outcomes, _) = preview_json(&config, &["--topic", &topic, "--limit", "3", "--send"]);
    let (entries, sends): (Vec<&Value>, Vec<&Value>) = outcomes.iter().partition(|line| line["outcome"] == "entry");
    // The last three records, in order.
    let offsets: Vec<&str> = entries.iter().map(|entry| entry["input"].as_str().unwrap()).collect();
    assert_eq!(
        offsets,
        [format!("{topic}/0@5"), format!("{topic}/0@6"), format!("{topic}/0@7")]
    );
    assert_eq!(sends.len(), 3);
    assert!(sends.iter().all(|line| line["sent"].is_string()), "{sends:?}");
    let delivered = capture.receive(3, Duration::from_secs(30)).await;
    let mut ids: Vec<&Value> = delivered.iter().map(|event| &event["detail"]["eventID"]).collect();
    ids.sort_by_key(|id| id.to_string());
    let mut expected: Vec<&Value> = s3_events[5..].iter().map(|event| &event["detail"]["eventID"]).collect();
    expected.sort_by_key(|id| id.to_string());
    assert_eq!(ids, expected);
    assert!(support::committed_offsets(&format!("connect-{name}"), &topic, 1).is_empty());
}

/// The example connectors' test files, against config/worker.yaml with the stack's addresses.
#[test]
fn the_example_connectors_pass_their_tests() {
    let output = ebconnect()
        .arg("test")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let files: BTreeMap<String, usize> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("ok    connectors/tests/"))
        .filter_map(|rest| rest.split_once(':'))
        .fold(BTreeMap::new(), |mut files, (file, _)| {
            *files.entry(file.to_owned()).or_default() += 1;
            files
        });
    let examples: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/connectors"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "yaml"))
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for example in &examples {
        assert!(
            files.contains_key(example),
            "connectors/{example} has no test file; ran {files:?}"
        );
    }
    assert!(stdout.contains(" 0 failed"), "{stdout}");
}

/// Runs `ebconnect test` on `file`; returns the exit code and the output.
fn run_tests(file: &std::path::Path) -> (i32, String) {
    let output = ebconnect().arg("test").arg(file).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

/// The README's example of a test file, as written, holds for the example connector.
#[test]
fn the_readme_test_example_passes() {
    let readme = include_str!("../../README.md");
    let opening = "```yaml\nconnector: ../s3-calls-to-bus.yaml";
    let start = readme.find(opening).expect("the README shows a test file") + "```yaml\n".len();
    let example = &readme[start..][..readme[start..].find("```").unwrap()];
    let root = env!("CARGO_MANIFEST_DIR");
    let example = example
        .replace(
            "../s3-calls-to-bus.yaml",
            &format!("{root}/connectors/s3-calls-to-bus.yaml"),
        )
        .replace("../../config/worker.yaml", &format!("{root}/config/worker.yaml"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("example.yaml");
    std::fs::write(&file, example).unwrap();
    let (code, text) = run_tests(&file);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("1 passed, 0 failed"), "{text}");
}

/// `value_avro` goes through the registry: written as Confluent-framed Avro with its schema, read back by an Avro
/// sink's decoder; JSON given to the same sink is a decode error.
#[test]
fn a_test_file_gives_avro_values_through_the_registry() {
    let topic = unique("test-avro");
    let connector = support::sink_yaml(
        &unique("avro-sink"),
        &topic,
        "findings",
        "source: audit\ndetail: value\ndetail_type: {json_path: $.eventName}\nvalue:\n  format: avro",
        "errors:\n  tolerance: all\n  deadletterqueue: {topic: avro-dlq}\n",
    );
    let config = ConfigDir::new(&worker(), &[("connector.yaml", &connector)]);
    let tests = r#"connector: connectors/connector.yaml
worker: worker.yaml
tests:
  - name: an Avro value is decoded into the entry's detail
    records:
      - value_avro:
          schema: {type: record, name: Call, fields: [{name: eventName, type: string}, {name: calls, type: int}]}
          value: {eventName: GetObject, calls: 3}
      - value: {eventName: GetObject, calls: 3}
    expect:
      - entry: {DetailType: GetObject, Detail: {eventName: GetObject, calls: 3}}
      - error: {stage: VALUE_CONVERTER, kind: DecodeError, then: {dead_letter: avro-dlq}}
"#;
    let file = config.dir.path().join("avro-test.yaml");
    std::fs::write(&file, tests).unwrap();
    let (code, text) = run_tests(&file);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("1 passed, 0 failed"), "{text}");
}

/// Records written by confluent-kafka's Avro serializer, previewed from the topic through the registry.
#[tokio::test(flavor = "multi_thread")]
async fn preview_reads_an_avro_topic_through_the_registry() {
    let topic = unique("preview-avro");
    support::create_topic(&topic, 1).await;
    support::produce_avro("logical", &topic, 2).await;
    let connector = support::sink_yaml(
        &unique("preview-avro"),
        &topic,
        "findings",
        "detail: value\nvalue:\n  format: avro",
        "",
    );
    let config = ConfigDir::new(&worker(), &[("connector.yaml", &connector)]);
    let (outcomes, summary) = preview_json(&config, &["--topic", &topic, "--from-beginning"]);
    assert_eq!(summary["entry"], 2, "{outcomes:?}");
    let mut statuses: Vec<&str> = outcomes
        .iter()
        .map(|entry| {
            assert_eq!(entry["Detail"]["payer"]["name"], "Alice");
            entry["Detail"]["status"].as_str().unwrap()
        })
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, ["PENDING", "SETTLED"]);
}
