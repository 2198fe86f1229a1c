//! The eventbridge-sink against the real stack: Kafka in, the emulator's bus out (read back through a rule with an
//! SQS target), and a fault-injecting PutEvents endpoint where the emulator cannot produce the fault.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::support::fault_server::{FaultServer, Faults};
use crate::support::{sink_yaml, unique, worker_yaml, BusCapture, RunningWorker};
use serde_json::{json, Value};

/// The `n` of each delivered event's detail.
fn numbers(events: &[Value]) -> BTreeSet<u64> {
    events
        .iter()
        .map(|event| event["detail"]["n"].as_u64().unwrap())
        .collect()
}

/// Waits until `server` has acknowledged `count` distinct entries.
async fn wait_acknowledged(server: &FaultServer, what: &str, count: usize, timeout: Duration) {
    support::wait_for(what, timeout, || {
        let observed = server.observed.clone();
        async move { (observed.lock().unwrap().acknowledged.len() == count).then_some(()) }
    })
    .await;
}

fn cloudtrail_like(n: usize) -> Value {
    json!({
        "eventVersion": "1.08",
        "eventTime": format!("2024-03-01T12:00:{:02}Z", n % 60),
        "eventSource": "s3.amazonaws.com",
        "eventName": if n.is_multiple_of(2) { "GetObject" } else { "PutObject" },
        "userIdentity": {"type": "IAMUser", "principalId": format!("AIDA{n:04}")},
        "resources": [{"ARN": format!("arn:aws:s3:::bucket-{n}"), "type": "AWS::S3::Bucket"}],
        "n": n,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_records_with_the_configured_event_fields_and_commits_everything() {
    let topic = unique("sink-fields");
    support::create_topic(&topic, 3).await;
    let capture = BusCapture::new("sink-fields", &json!({"source": ["ebconnect.test.fields"]})).await;
    let producer = support::producer();
    let mut sent = BTreeMap::new();
    for n in 0..30 {
        let value = cloudtrail_like(n);
        let key = format!("k-{n}");
        support::produce(
            &producer,
            &topic,
            Some((n % 3) as i32),
            Some(key.as_bytes()),
            Some(value.to_string().as_bytes()),
            &[],
        )
        .await;
        sent.insert(n as u64, value);
    }
    let name = unique("fields");
    let connector = sink_yaml(
        &name,
        &topic,
        &capture.bus,
                // No periodic commit in this test: only the commit of the orderly stop can make the offsets match.
        "source: ebconnect.test.fields\ndetail: value\ndetail_type:\n  json_path: $.eventName\ntime:\n  json_path: $.eventTime\nresources:\n  - arn:aws:iam::123456789012:root\n  - json_path: $.resources[*].ARN\ncommit_interval: 1h",
        "",
    );
    let worker = RunningWorker::start(&worker_yaml(""), &[("sink.yaml", &connector)]);
    let events = capture.receive(30, Duration::from_secs(60)).await;
    for event in &events {
        let n = event["detail"]["n"].as_u64().unwrap();
        let original = &sent[&n];
        assert_eq!(&event["detail"], original, "detail must be the value, unchanged");
        assert_eq!(event["detail-type"], original["eventName"]);
        assert_eq!(event["source"], json!("ebconnect.test.fields"));
        assert_eq!(event["time"], original["eventTime"]);
        assert_eq!(
            event["resources"],
            json!(["arn:aws:iam::123456789012:root", format!("arn:aws:s3:::bucket-{n}")])
        );
    }
    let seen = numbers(&events);
    assert_eq!(seen, (0..30).collect());
    worker.stop().await;
    assert_eq!(
        support::committed_offsets(&format!("connect-{name}"), &topic, 3),
        support::end_offsets(&topic, 3),
        "after an orderly stop the group's committed offsets equal the end offsets"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_detail_carries_the_kafka_coordinates() {
    let topic = unique("sink-envelope");
    support::create_topic(&topic, 1).await;
    let capture = BusCapture::new("sink-envelope", &json!({"detail-type": [{"prefix": "kafka-connect-"}]})).await;
    let producer = support::producer();
    let (_, offset) = support::produce(
        &producer,
        &topic,
        None,
        Some(b"user-1"),
        Some(br#"{"action":"login"}"#),
        &[("origin", b"test"), ("binary", &[0xff, 0x00])],
    )
    .await;
    let name = unique("envelope");
    let connector = sink_yaml(&name, &topic, &capture.bus, "", "");
    let worker = RunningWorker::start(&worker_yaml(""), &[("sink.yaml", &connector)]);
    let events = capture.receive(1, Duration::from_secs(60)).await;
    worker.stop().await;
    let event = &events[0];
    assert_eq!(event["source"], json!(format!("kafka-connect.{name}")));
    assert_eq!(event["detail-type"], json!(format!("kafka-connect-{topic}")));
    let detail = &event["detail"];
    assert_eq!(detail["topic"], json!(topic));
    assert_eq!(detail["partition"], json!(0));
    assert_eq!(detail["offset"], json!(offset));
    assert_eq!(detail["timestampType"], json!("CreateTime"));
    assert!(detail["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
    assert_eq!(detail["key"], json!("user-1"));
    assert_eq!(detail["value"], json!({"action": "login"}));
    assert_eq!(detail["headers"], json!([{"origin": "test"}, {"binary": "/wA="}]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_go_to_the_dead_letter_topic_while_good_ones_flow() {
    let topic = unique("sink-poison");
    let dlq = unique("sink-poison-dlq");
    support::create_topic(&topic, 1).await;
    let capture = BusCapture::new("sink-poison", &json!({"source": ["ebconnect.test.poison"]})).await;
    let producer = support::producer();
    let oversize = json!({"blob": "x".repeat(3000)}).to_string();
    let records: Vec<(&str, Vec<u8>)> = vec![
        ("good-0", br#"{"n":0}"#.to_vec()),
        ("garbage", b"\x00\x01not json{".to_vec()),
        ("good-1", br#"{"n":1}"#.to_vec()),
        ("array", b"[1,2,3]".to_vec()),
        ("good-2", br#"{"n":2}"#.to_vec()),
        ("oversize", oversize.clone().into_bytes()),
        ("good-3", br#"{"n":3}"#.to_vec()),
    ];
    for (key, value) in &records {
        support::produce(
            &producer,
            &topic,
            None,
            Some(key.as_bytes()),
            Some(value),
            &[("trace", b"t-1")],
        )
        .await;
    }
    let name = unique("poison");
    let connector = sink_yaml(
        &name,
        &topic,
        &capture.bus,
        "source: ebconnect.test.poison\ndetail: value\nbatch:\n  max_bytes: 2048",
        &format!("errors:\n  tolerance: all\n  deadletterqueue:\n    topic: {dlq}\n  log:\n    enable: true\n"),
    );
    let worker = RunningWorker::start(&worker_yaml(""), &[("sink.yaml", &connector)]);
    let events = capture.receive(4, Duration::from_secs(60)).await;
    let delivered = numbers(&events);
    assert_eq!(delivered, (0..4).collect());

    let dead = tokio::task::spawn_blocking(move || support::consume_all(&dlq, 3, Duration::from_secs(30)))
        .await
        .unwrap();
    let by_key: BTreeMap<String, &support::Consumed> = dead
        .iter()
        .map(|record| (String::from_utf8(record.key.clone().unwrap()).unwrap(), record))
        .collect();
    let expect = [
        ("garbage", 1, "VALUE_CONVERTER", "DecodeError", "not valid JSON"),
        (
            "array",
            3,
            "TASK_PUT",
            "EntryBuildError",
            "the detail must be a JSON object, but the value is an array",
        ),
        ("oversize", 5, "TASK_PUT", "EntryTooLarge", "over the limit of 2048"),
    ];
    for (key, offset, stage, kind, message) in expect {
        let record = by_key
            .get(key)
            .unwrap_or_else(|| panic!("{key} not dead-lettered: {dead:?}"));
        let original = &records.iter().find(|(k, _)| *k == key).unwrap().1;
        assert_eq!(
            record.value.as_ref(),
            Some(original),
            "{key}: the original value is kept"
        );
        let headers = &record.headers;
        assert_eq!(headers["__connect.errors.topic"], topic);
        assert_eq!(headers["__connect.errors.partition"], "0");
        assert_eq!(headers["__connect.errors.offset"], offset.to_string());
        assert_eq!(headers["__connect.errors.connector.name"], name);
        assert_eq!(headers["__connect.errors.stage"], stage);
        assert_eq!(headers["__connect.errors.exception.class.name"], kind);
        assert!(
            headers["__connect.errors.exception.message"].contains(message),
            "{key}: {headers:?}"
        );
        assert_eq!(headers["trace"], "t-1", "{key}: the original headers are kept");
    }
    worker.stop().await;
    assert_eq!(
        support::committed_offsets(&format!("connect-{name}"), &topic, 1),
        support::end_offsets(&topic, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tolerance_none_the_connector_stops_at_the_first_bad_record() {
    let topic = unique("sink-strict");
    support::create_topic(&topic, 1).await;
    let capture = BusCapture::new("sink-strict", &json!({"source": ["ebconnect.test.strict"]})).await;
    let producer = support::producer();
    for value in [&br#"{"n":0}"#[..], br#"{"n":1}"#, b"garbage", br#"{"n":3}"#] {
        support::produce(&producer, &topic, None, None, Some(value), &[]).await;
    }
    let name = unique("strict");
    let connector = sink_yaml(
        &name,
        &topic,
        &capture.bus,
        "source: ebconnect.test.strict\ndetail: value",
        "",
    );
    let worker = RunningWorker::start(&worker_yaml(""), &[("sink.yaml", &connector)]);
    let status = support::wait_for("the connector to fail for good", Duration::from_secs(60), || async {
        worker.state(&name).filter(|status| {
            status.state == ebconnect::runtime::ConnectorState::Failed && status.consecutive_failures > 3
        })
    })
    .await;
    let trace = status.trace.unwrap();
    assert!(trace.contains(&format!("record {topic}/0@2 failed")), "{trace}");
    assert!(trace.contains("DecodeError at stage VALUE_CONVERTER"), "{trace}");
    assert!(trace.contains("errors.tolerance is `none`"), "{trace}");
    let events = capture.receive(2, Duration::from_secs(30)).await;
    let delivered = numbers(&events);
    assert!(delivered.is_subset(&[0, 1, 3].into()), "{delivered:?}");
    assert!(delivered.contains(&0) && delivered.contains(&1), "{delivered:?}");
    worker.stop().await;
    assert_eq!(
        support::committed_offsets(&format!("connect-{name}"), &topic, 1),
        BTreeMap::from([(0, 2)]),
        "nothing past the failed record is committed"
    );
}

/// Throttled and failed entries, 500s, request throttling and timeouts: nothing is lost, only failed entries are
/// sent again, and the retries stay bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_only_failed_entries_through_injected_faults() {
    let server = FaultServer::start(Faults {
        throttle_every_entry: 3,
        internal_failure_every_entry: 7,
        http_500_every_request: 5,
        throttle_every_request: 11,
        slow_every_request: 6,
        slow_delay: Duration::from_millis(1500),
        ..Faults::default()
    })
    .await;
    let topic = unique("sink-faults");
    support::create_topic(&topic, 2).await;
    const RECORDS: usize = 300;
    // Both partitions hold records, so that the final check covers a commit on each.
    support::produce_numbered_across(&topic, RECORDS as u64, 2).await;
    let name = unique("faults");
    let connector = sink_yaml(
        &name,
        &topic,
        "fault-bus",
        "detail: value\nrequest:\n  timeout: 500ms\n  max_in_flight: 4\nretry:\n  max_attempts: 30\n  initial_backoff: 5ms\n  max_backoff: 50ms",
        "",
    );
    let worker_config = support::worker_yaml_with_endpoint(&server.url, "");
    let worker = RunningWorker::start(&worker_config, &[("sink.yaml", &connector)]);
    wait_acknowledged(
        &server,
        "every record to be acknowledged",
        RECORDS,
        Duration::from_secs(90),
    )
    .await;
    worker.stop().await;
    let observed = server.observed.lock().unwrap();
    assert_eq!(observed.resent_after_ack, 0, "an acknowledged entry was sent again");
    assert!(observed.acknowledged.values().all(|count| *count == 1));
    assert!(observed.rejected.is_empty());
    let retried = observed.sends.values().filter(|count| **count > 1).count();
    assert!(
        retried > RECORDS / 4,
        "the faults should have forced retries, saw {retried}"
    );
    assert!(
        observed.entries_sent < RECORDS * 3,
        "retries must stay bounded: {} entry sends for {RECORDS} records",
        observed.entries_sent
    );
    assert_eq!(
        support::committed_offsets(&format!("connect-{name}"), &topic, 2),
        support::end_offsets(&topic, 2)
    );
}

/// botocore's SigV4Auth, the signer of AWS's own Python SDK, signs each PutEvents request the sink sent again, at
/// the request's own time, over the body as it arrived (sent in pieces: the JSON around the details, and each
/// detail shared with its entry), and must give the same `Authorization`. The details carry quotes, backslashes,
/// line breaks and non-ASCII text, and the batches are small, so that several requests are checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_events_requests_are_signed_as_botocore_signs_them() {
    const RECORDS: usize = 24;
    let server = FaultServer::start(Faults {
        keep_requests: RECORDS,
        ..Faults::default()
    })
    .await;
    let topic = unique("sink-signed");
    support::create_topic(&topic, 1).await;
    let producer = support::producer();
    for n in 0..RECORDS {
        let value = json!({"n": n, "text": format!("\"quoted\" \\ back\nline é 日本 🎉 {n}"), "nested": {"q": "\""}});
        support::produce(&producer, &topic, None, None, Some(value.to_string().as_bytes()), &[]).await;
    }
    let name = unique("signed");
    let connector = sink_yaml(
        &name,
        &topic,
        "signed-bus",
        "detail: value\nbatch:\n  max_entries: 3",
        "",
    );
    let worker = RunningWorker::start(
        &support::worker_yaml_with_endpoint(&server.url, ""),
        &[("sink.yaml", &connector)],
    );
    wait_acknowledged(
        &server,
        "every record to be acknowledged",
        RECORDS,
        Duration::from_secs(60),
    )
    .await;
    worker.stop().await;
    let kept = server.observed.lock().unwrap().kept.clone();
    assert!(kept.len() >= RECORDS / 3, "only {} requests were kept", kept.len());
    let requests = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(requests.path(), serde_json::to_vec(&kept).unwrap()).unwrap();
    let output = support::stack_python(
        "verify_put_events_signature.py",
        &[
            requests.path().to_str().unwrap(),
            &format!("{}/", server.url),
            &support::stack("AWS_REGION"),
            &std::env::var("AWS_ACCESS_KEY_ID").unwrap(),
            &std::env::var("AWS_SECRET_ACCESS_KEY").unwrap(),
        ],
    )
    .await;
    let verdicts: Vec<Value> = output
        .stdout
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).unwrap())
        .collect();
    assert_eq!(verdicts.len(), kept.len());
    for verdict in verdicts {
        assert_eq!(verdict["ok"], true, "{verdict}");
    }
}

/// The entry's `TraceHeader` comes from the record's header even when nothing else reads headers (`detail: value`,
/// no dead-letter topic), which is when the sink leaves the other records' headers unread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_header_is_read_when_no_other_part_reads_headers() {
    let server = FaultServer::start(Faults {
        keep_requests: 10,
        ..Faults::default()
    })
    .await;
    let topic = unique("sink-trace");
    support::create_topic(&topic, 1).await;
    let producer = support::producer();
    let traced = [
        ("X-Amzn-Trace-Id", &b"Root=1-5759e988-bd862e3fe1be46a994272793"[..]),
        ("other", b"x"),
    ];
    support::produce(&producer, &topic, None, None, Some(br#"{"n":0}"#), &traced).await;
    support::produce(&producer, &topic, None, None, Some(br#"{"n":1}"#), &[("other", b"y")]).await;
    let name = unique("trace");
    let connector = sink_yaml(
        &name,
        &topic,
        "trace-bus",
        "detail: value\ntrace_header: X-Amzn-Trace-Id\nbatch:\n  max_entries: 1",
        "",
    );
    let worker = RunningWorker::start(
        &support::worker_yaml_with_endpoint(&server.url, ""),
        &[("sink.yaml", &connector)],
    );
    wait_acknowledged(&server, "both records to be acknowledged", 2, Duration::from_secs(60)).await;
    worker.stop().await;
    let kept = server.observed.lock().unwrap().kept.clone();
    let mut trace_headers: Vec<(i64, Option<String>)> = kept
        .iter()
        .flat_map(|request| {
            let body: Value = serde_json::from_str(&request.body).unwrap();
            body["Entries"].as_array().unwrap().clone()
        })
        .map(|entry| {
            let detail: Value = serde_json::from_str(entry["Detail"].as_str().unwrap()).unwrap();
            let trace_header = entry.get("TraceHeader").and_then(Value::as_str).map(str::to_owned);
            (detail["n"].as_i64().unwrap(), trace_header)
        })
        .collect();
    trace_headers.sort();
    trace_headers.dedup();
    assert_eq!(
        trace_headers,
        [
            (0, Some("Root=1-5759e988-bd862e3fe1be46a994272793".to_owned())),
            (1, None)
        ]
    );
}

/// A service that takes smaller requests than `batch.max_bytes` allows answers HTTP 413: the sink sends the batch
/// again in halves until each half passes, and an entry too large for the service alone goes to the dead-letter
/// topic as `RequestEntityTooLarge`. Every other record arrives once, and the offsets reach the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_too_large_is_split_and_an_entry_too_large_alone_is_dead_lettered() {
    const LIMIT: usize = 3000;
    let server = FaultServer::start(Faults {
        max_request_bytes: LIMIT,
        ..Faults::default()
    })
    .await;
    let topic = unique("sink-413");
    let dlq = unique("sink-413-dlq");
    support::create_topic(&topic, 1).await;
    support::create_topic(&dlq, 1).await;
    let producer = support::producer();
    const RECORDS: usize = 60;
    for n in 0..RECORDS {
        let value = json!({"n": n, "pad": "x".repeat(200 + 37 * (n % 9))}).to_string();
        support::produce(&producer, &topic, None, Some(b"small"), Some(value.as_bytes()), &[]).await;
        if n == 30 {
            let huge = json!({"n": "huge", "pad": "y".repeat(LIMIT)}).to_string();
            support::produce(&producer, &topic, None, Some(b"huge"), Some(huge.as_bytes()), &[]).await;
        }
    }
    let name = unique("split");
    let connector = sink_yaml(
        &name,
        &topic,
        "fault-bus",
        "detail: value\nbatch:\n  linger: 200ms",
        &format!("errors:\n  tolerance: all\n  deadletterqueue:\n    topic: {dlq}\n"),
    );
    let worker = RunningWorker::start(
        &support::worker_yaml_with_endpoint(&server.url, ""),
        &[("sink.yaml", &connector)],
    );
    wait_acknowledged(
        &server,
        "every small record to be acknowledged",
        RECORDS,
        Duration::from_secs(60),
    )
    .await;
    let dead = tokio::task::spawn_blocking(move || support::consume_all(&dlq, 1, Duration::from_secs(30)))
        .await
        .unwrap();
    support::wait_for("the offsets to reach the end", Duration::from_secs(30), || {
        let (group, topic) = (format!("connect-{name}"), topic.clone());
        async move { (support::committed_offsets(&group, &topic, 1) == support::end_offsets(&topic, 1)).then_some(()) }
    })
    .await;
    worker.stop().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].key.as_deref(), Some(&b"huge"[..]));
    assert_eq!(
        dead[0].headers["__connect.errors.exception.class.name"],
        "RequestEntityTooLarge"
    );
    assert!(dead[0].headers["__connect.errors.exception.message"].contains("413"));
    let observed = server.observed.lock().unwrap();
    assert!(
        observed.too_large > 1,
        "batches over the limit were sent: {}",
        observed.too_large
    );
    assert!(observed.largest_request_bytes < LIMIT);
    assert_eq!(observed.resent_after_ack, 0);
    assert!(observed.acknowledged.values().all(|count| *count == 1));
}

/// Three workers run one sink against an account quota of 500 requests/s (answered after 20 to 60 ms), as several
/// workers share an account's PutEvents quota. Adaptive concurrency backs each off when the quota throttles it:
/// every record arrives exactly once, none is dead-lettered, no connector fails, each worker shows its concurrency
/// limit, and at most one request is throttled for four taken, slow start included (before adaptive concurrency,
/// 4,350 for 2,001).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_a_quota_and_deliver_every_record_once() {
    const RECORDS: usize = 20_000;
    let server = FaultServer::start(Faults {
        quota_per_second: 500.0,
        latency: Duration::from_millis(20),
        latency_max: Duration::from_millis(60),
        ..Faults::default()
    })
    .await;
    let topic = unique("sink-quota");
    support::create_topic(&topic, 6).await;
    let name = unique("quota");
    let connector = sink_yaml(&name, &topic, "fault-bus", "detail: value\nbatch:\n  linger: 100ms", "");
    let workers: Vec<RunningWorker> = (0..3)
        .map(|_| {
            RunningWorker::start(
                &support::worker_yaml_with_endpoint(&server.url, ""),
                &[("sink.yaml", &connector)],
            )
        })
        .collect();
    // Records come once the group has settled: a partition that moves while its records are in flight has them
    // read again by its next owner, which at least once allows and which is not what this test is about.
    support::wait_for_stable_group(&format!("connect-{name}"), 3).await;
    support::produce_numbered_across(&topic, RECORDS as u64, 6).await;
    wait_acknowledged(
        &server,
        "every record to be acknowledged",
        RECORDS,
        Duration::from_secs(120),
    )
    .await;
    for worker in &workers {
        let status = worker.state(&name).unwrap();
        assert_eq!(status.state, ebconnect::runtime::ConnectorState::Running, "{status:?}");
        assert_eq!(status.consecutive_failures, 0, "{status:?}");
    }
    let shown = ebconnect::telemetry::metrics::metrics().render();
    assert!(
        shown.contains(&format!(
            "ebconnect_putevents_concurrency_limit{{connector=\"{name}\"}}"
        )),
        "{shown}"
    );
    for worker in workers {
        worker.stop().await;
    }
    let observed = server.observed.lock().unwrap();
    assert!(
        !observed.quota_throttled.is_empty(),
        "the quota never throttled: the test tests nothing"
    );
    assert_eq!(observed.resent_after_ack, 0, "an acknowledged entry was sent again");
    assert!(observed.acknowledged.values().all(|count| *count == 1));
    assert!(observed.rejected.is_empty());
    let throttled = observed.quota_throttled.len();
    assert!(
        throttled * 4 <= observed.requests,
        "{throttled} requests throttled for {} taken",
        observed.requests
    );
}

/// A second worker joins while the first holds thousands of records read and not yet sent. The partitions that move
/// are read again by the new owner from their last commit, and the first worker sends none of their records it
/// still holds: an entry is sent twice only if its request was already out (2 requests of 10 here), not for the
/// backlog of the moved partitions (1,220 entries when the first worker still sent them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_worker_takes_over_partitions_without_their_backlog_being_sent_twice() {
    const RECORDS: usize = 3000;
    // About 100 entries/s: the first worker holds most records when the second has joined.
    let server = FaultServer::start(Faults {
        latency: Duration::from_millis(200),
        ..Faults::default()
    })
    .await;
    let topic = unique("sink-join");
    support::create_topic(&topic, 4).await;
    support::produce_numbered_across(&topic, RECORDS as u64, 4).await;
    let name = unique("join");
    let connector = sink_yaml(
        &name,
        &topic,
        "fault-bus",
        "detail: value\nrequest:\n  adaptive: false\n  max_in_flight: 2",
        "",
    );
    let worker_config = || support::worker_yaml_with_endpoint(&server.url, "");
    let first = RunningWorker::start(&worker_config(), &[("sink.yaml", &connector)]);
    let observed = server.observed.clone();
    support::wait_for("the first worker to be under way", Duration::from_secs(60), || {
        let observed = observed.clone();
        async move { (observed.lock().unwrap().acknowledged.len() >= 50).then_some(()) }
    })
    .await;
    let second = RunningWorker::start(&worker_config(), &[("sink.yaml", &connector)]);
    support::wait_for_stable_group(&format!("connect-{name}"), 2).await;
    let acknowledged_at_join = observed.lock().unwrap().acknowledged.len();
    assert!(
        acknowledged_at_join < RECORDS / 2,
        "the group settled after {acknowledged_at_join} records: too late to test a backlog"
    );
    wait_acknowledged(
        &server,
        "every record to be acknowledged",
        RECORDS,
        Duration::from_secs(120),
    )
    .await;
    first.stop().await;
    second.stop().await;
    let observed = server.observed.lock().unwrap();
    assert!(
        observed.resent_after_ack <= 2 * 2 * 10,
        "{} entries were sent again after their acknowledgement",
        observed.resent_after_ack
    );
}

/// A counter of this process's exposition, as Prometheus reads it.
fn exposed(metric: &str, connector: &str) -> u64 {
    let shown = ebconnect::telemetry::metrics::metrics().render();
    let series = format!("{metric}{{connector=\"{connector}\"}} ");
    shown
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |value| value.parse().unwrap())
}

/// Against an endpoint far slower than Kafka, the sink holds at most `max_buffered_records` read and unsettled (and
/// the chunk of up to 16 it read last), however long the endpoint takes: reading waits, and after a second the
/// partitions are paused. Every record still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_holds_reading_at_max_buffered_records() {
    const RECORDS: usize = 1500;
    const BUFFERED: u64 = 100;
    let server = FaultServer::start(Faults {
        latency: Duration::from_millis(100),
        ..Faults::default()
    })
    .await;
    let topic = unique("sink-bounded");
    support::create_topic(&topic, 2).await;
    support::produce_numbered_across(&topic, RECORDS as u64, 2).await;
    let name = unique("bounded");
    let connector = sink_yaml(
        &name,
        &topic,
        "fault-bus",
        &format!("detail: value\nmax_buffered_records: {BUFFERED}\nrequest:\n  adaptive: false\n  max_in_flight: 2"),
        "",
    );
    let worker = RunningWorker::start(
        &support::worker_yaml_with_endpoint(&server.url, ""),
        &[("sink.yaml", &connector)],
    );
    let mut most_unsettled = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while server.observed.lock().unwrap().acknowledged.len() < RECORDS {
        assert!(std::time::Instant::now() < deadline, "not every record was delivered");
        let read = exposed("ebconnect_sink_record_read_total", &name);
        let sent = exposed("ebconnect_sink_record_send_total", &name);
        most_unsettled = most_unsettled.max(read.saturating_sub(sent));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.stop().await;
    assert!(
        most_unsettled > BUFFERED / 2,
        "the bound was never approached: {most_unsettled}"
    );
    assert!(
        most_unsettled <= BUFFERED + 16,
        "{most_unsettled} records read and unsettled, over max_buffered_records {BUFFERED}"
    );
}

/// Heavy throttling slows the sink down and never fails it. 20,000 records meet 50% throttled entries, 10% internal
/// failures, 5% HTTP 500s and 20 ms of latency, with the default retry settings (whose `max_attempts: 10` an entry
/// throttled ten times in a row used to exhaust) and a worker that gives up after 3 restarts. The connector stays
/// RUNNING without a failure, nothing is lost, dead-lettered or sent again after its acknowledgement, and the
/// throughput stays above 1,000 records/s: a floor an order of magnitude under what the 32 request slots allow,
/// which a batch that held its slot through its backoff fell below (47 records/s). The slots are fixed
/// (`request.adaptive: false`), as this is about them: adaptive concurrency would rightly back off to one request
/// here, since every request carries a throttled entry (`three_workers_share_a_quota_...` covers it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_slows_the_sink_but_never_fails_it() {
    const RECORDS: usize = 20_000;
    let server = FaultServer::start(Faults {
        throttle_rate: 0.5,
        internal_failure_rate: 0.1,
        http_500_rate: 0.05,
        latency: Duration::from_millis(20),
        ..Faults::default()
    })
    .await;
    let topic = unique("sink-throttled");
    let dlq = unique("sink-throttled-dlq");
    support::create_topic(&topic, 2).await;
    support::create_topic(&dlq, 1).await;
    support::produce_numbered_across(&topic, RECORDS as u64, 2).await;
    let name = unique("throttled");
    let connector = sink_yaml(
        &name,
        &topic,
        "fault-bus",
        "detail: value\nrequest:\n  adaptive: false\n  max_in_flight: 32",
        &format!("errors:\n  tolerance: all\n  deadletterqueue:\n    topic: {dlq}\n"),
    );
    let worker_config = support::worker_yaml_with_endpoint(&server.url, "");
    let worker = RunningWorker::start(&worker_config, &[("sink.yaml", &connector)]);
    let started = std::time::Instant::now();
    let observed = server.observed.clone();
    let deadline = started + Duration::from_secs(180);
    loop {
        assert!(std::time::Instant::now() < deadline, "not every record was delivered");
        // UNASSIGNED until its first start completes.
        let Some(status) = worker
            .state(&name)
            .filter(|status| status.state.as_str() != "UNASSIGNED")
        else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        assert_eq!(
            (status.state.as_str(), status.consecutive_failures),
            ("RUNNING", 0),
            "throttling must not fail the connector: {:?}",
            status.trace
        );
        if observed.lock().unwrap().acknowledged.len() == RECORDS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed();
    worker.stop().await;
    let observed = server.observed.lock().unwrap();
    let retried = observed.sends.values().filter(|count| **count > 1).count();
    assert!(
        retried > RECORDS / 3,
        "the faults should have forced retries, saw {retried}"
    );
    assert_eq!(observed.resent_after_ack, 0, "an acknowledged entry was sent again");
    assert!(observed.rejected.is_empty());
    assert_eq!(
        support::end_offsets(&dlq, 1)[&0],
        0,
        "nothing is dead-lettered for throttling"
    );
    let rate = RECORDS as f64 / elapsed.as_secs_f64();
    assert!(rate >= 1000.0, "{rate:.0} records/s through the throttling");
    assert_eq!(
        support::committed_offsets(&format!("connect-{name}"), &topic, 2),
        support::end_offsets(&topic, 2)
    );
}

/// A poison record larger than the dead-letter topic takes (1.2 MB, against the 1 MB a topic created with the
/// defaults allows) is dead-lettered with its headers and the start of its value, marked as truncated, and the
/// records behind it flow; before, the write failed with MessageSizeTooLarge and the connector restarted onto the
/// same record forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_too_large_for_the_dead_letter_topic_is_truncated_there() {
    let topic = unique("sink-huge");
    let dlq = unique("sink-huge-dlq");
    support::create_topic_configured(support::kafka_config(), &topic, 1, &[("max.message.bytes", "2097152")]).await;
    support::create_topic(&dlq, 1).await;
    let capture = BusCapture::new("sink-huge", &json!({"source": ["ebconnect.test.huge"]})).await;
    let producer: rdkafka::producer::FutureProducer = support::kafka_config()
        .set("enable.idempotence", "true")
        .set("message.max.bytes", "3000000")
        .create()
        .unwrap();
    let huge = json!({"n": 1, "blob": "x".repeat(1_200_000)}).to_string();
    support::produce(&producer, &topic, None, None, Some(br#"{"n":0}"#), &[]).await;
    support::produce(
        &producer,
        &topic,
        None,
        Some(b"huge-key"),
        Some(huge.as_bytes()),
        &[("trace", b"abc")],
    )
    .await;
    for value in [br#"{"n":2}"#, br#"{"n":3}"#] {
        support::produce(&producer, &topic, None, None, Some(value), &[]).await;
    }
    let name = unique("huge");
    let connector = sink_yaml(
        &name,
        &topic,
        &capture.bus,
        "source: ebconnect.test.huge\ndetail: value",
        &format!("errors:\n  tolerance: all\n  deadletterqueue:\n    topic: {dlq}\n"),
    );
    let worker = RunningWorker::start(&worker_yaml(""), &[("sink.yaml", &connector)]);
    let events = capture.receive(3, Duration::from_secs(60)).await;
    let delivered = numbers(&events);
    assert_eq!(delivered, [0, 2, 3].into());
    let dead = tokio::task::spawn_blocking(move || support::consume_all(&dlq, 1, Duration::from_secs(60)))
        .await
        .unwrap();
    let status = worker.state(&name).unwrap();
    assert_eq!(status.state.as_str(), "RUNNING", "{:?}", status.trace);
    worker.stop().await;
    let letter = &dead[0];
    support::assert_cut_to_fit(letter, huge.as_bytes());
    assert_eq!(letter.headers["trace"], "abc");
    assert_eq!(letter.key.as_deref(), Some(&b"huge-key"[..]));
    assert_eq!(
        support::committed_offsets(&format!("connect-{name}"), &topic, 1),
        support::end_offsets(&topic, 1)
    );
}

/// Entries EventBridge rejects for good go to the dead-letter topic, with the PutEvents error code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_entries_are_dead_lettered_with_the_aws_error_code() {
    let server = FaultServer::start(Faults {
        reject_every_entry: 4,
        ..Faults::default()
    })
    .await;
    let topic = unique("sink-rejected");
    let dlq = unique("sink-rejected-dlq");
    support::create_topic(&topic, 1).await;
    support::produce_numbered(&topic, 20).await;
    let name = unique("rejected");
    let connector = sink_yaml(
        &name,
        &topic,
        "fault-bus",
        "detail: value",
        &format!("errors:\n  tolerance: all\n  deadletterqueue:\n    topic: {dlq}\n"),
    );
    let worker_config = support::worker_yaml_with_endpoint(&server.url, "");
    let worker = RunningWorker::start(&worker_config, &[("sink.yaml", &connector)]);
    let dead = tokio::task::spawn_blocking(move || support::consume_all(&dlq, 5, Duration::from_secs(60)))
        .await
        .unwrap();
    worker.stop().await;
    for record in &dead {
        assert_eq!(record.headers["__connect.errors.stage"], "TASK_PUT");
        assert_eq!(
            record.headers["__connect.errors.exception.class.name"],
            "InvalidArgument"
        );
        assert_eq!(
            record.headers["__connect.errors.exception.message"],
            "injected rejection"
        );
    }
    let observed = server.observed.lock().unwrap();
    assert_eq!(observed.rejected.len(), 5);
    assert!(
        observed.rejected.values().all(|count| *count == 1),
        "a rejected entry must not be retried"
    );
    assert_eq!(observed.acknowledged.len(), 15);
    assert_eq!(
        support::committed_offsets(&format!("connect-{name}"), &topic, 1),
        support::end_offsets(&topic, 1)
    );
}

/// A shared rate limit holds the configured entries per second within a few percent over a 10 s window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_holds_the_configured_rate() {
    let server = FaultServer::start(Faults::default()).await;
    let topic = unique("sink-rate");
    support::create_topic(&topic, 1).await;
    support::produce_numbered(&topic, 1500).await;
    let name = unique("rate");
    let connector = sink_yaml(&name, &topic, "fault-bus", "detail: value\nrate_limit: shared", "");
    let worker_config =
        support::worker_yaml_with_endpoint(&server.url, "rate_limits:\n  shared:\n    entries_per_second: 100\n");
    let worker = RunningWorker::start(&worker_config, &[("sink.yaml", &connector)]);
    tokio::time::sleep(Duration::from_secs(14)).await;
    worker.stop().await;
    let observed = server.observed.lock().unwrap();
    let first = observed.arrivals.first().expect("requests arrived").0;
    // Skip the first two seconds (the limiter's initial burst of one second's quota), then count ten seconds.
    let window_start = first + Duration::from_secs(2);
    let window_end = window_start + Duration::from_secs(10);
    let entries: usize = observed
        .arrivals
        .iter()
        .filter(|(at, _)| *at >= window_start && *at < window_end)
        .map(|(_, entries)| entries)
        .sum();
    assert!((950..=1050).contains(&entries), "{entries} entries in 10 s at 100/s");
}

/// An event too large for PutEvents has its value offloaded to S3 (the AWS connector's claim check); small ones
/// are sent whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_values_are_offloaded_to_s3_with_a_reference() {
    let topic = unique("sink-offload");
    support::create_topic(&topic, 1).await;
    let capture = BusCapture::new("sink-offload", &json!({"source": ["ebconnect.test.offload"]})).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&support::aws_config().await)
            .force_path_style(true)
            .build(),
    );
    let bucket = unique("claims");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let producer = support::producer();
    let large = json!({"blob": "y".repeat(4000), "n": 1});
    support::produce(
        &producer,
        &topic,
        None,
        Some(b"large"),
        Some(large.to_string().as_bytes()),
        &[],
    )
    .await;
    support::produce(&producer, &topic, None, Some(b"small"), Some(br#"{"n":2}"#), &[]).await;
    let name = unique("offload");
    let connector = sink_yaml(
        &name,
        &topic,
        &capture.bus,
        &format!("source: ebconnect.test.offload\nbatch:\n  max_bytes: 2048\noffload:\n  s3_bucket: {bucket}\n  s3_prefix: events/"),
        "",
    );
    let worker = RunningWorker::start(&worker_yaml(""), &[("sink.yaml", &connector)]);
    let events = capture.receive(2, Duration::from_secs(60)).await;
    worker.stop().await;
    let small = events
        .iter()
        .find(|event| event["detail"]["key"] == json!("small"))
        .unwrap();
    assert_eq!(
        small["detail"]["value"],
        json!({"n": 2}),
        "small events are not offloaded"
    );
    assert!(small["detail"].get("dataref").is_none());
    let offloaded = &events
        .iter()
        .find(|event| event["detail"]["key"] == json!("large"))
        .unwrap()["detail"];
    assert!(offloaded.get("value").is_none(), "{offloaded}");
    assert_eq!(offloaded["datarefJsonPath"], json!("$.detail.value"));
    assert_eq!(offloaded["topic"], json!(topic), "the rest of the envelope stays");
    let dataref = offloaded["dataref"].as_str().unwrap();
    let key = dataref
        .strip_prefix(&format!("arn:aws:s3:::{bucket}/"))
        .unwrap_or_else(|| panic!("{dataref}"));
    assert!(key.starts_with("events/"), "{key}");
    let object = s3.get_object().bucket(&bucket).key(key).send().await.unwrap();
    let body = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        large,
        "the object holds the value, unchanged"
    );
}

/// The reference scenario's shape: keep only S3 calls, mask the principal but its last two characters; a record a
/// transform cannot handle is dead-lettered at stage TRANSFORMATION; filtered records are committed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transforms_filter_and_mask_before_events_are_built() {
    let topic = unique("sink-transforms");
    let dlq = unique("sink-transforms-dlq");
    support::create_topic(&topic, 1).await;
    let capture = BusCapture::new("sink-transforms", &json!({"source": ["ebconnect.test.transforms"]})).await;
    let producer = support::producer();
    let records = [
        json!({"eventSource": "s3.amazonaws.com", "eventName": "GetObject", "userIdentity": {"principalId": "AIDAEXAMPLE42"}}),
        json!({"eventSource": "ec2.amazonaws.com", "eventName": "RunInstances", "userIdentity": {"principalId": "AIDAOTHER"}}),
        json!({"eventSource": "s3.amazonaws.com", "eventName": "PutObject", "noIdentity": true}),
        json!({"eventSource": "s3.amazonaws.com", "eventName": "ListBuckets", "userIdentity": {"principalId": "AROA:session"}}),
    ];
    for record in &records {
        support::produce(&producer, &topic, None, None, Some(record.to_string().as_bytes()), &[]).await;
    }
    let name = unique("transforms");
    let connector = sink_yaml(
        &name,
        &topic,
        &capture.bus,
        "source: ebconnect.test.transforms\ndetail: value\ndetail_type:\n  json_path: $.eventName",
        &format!(
            "transforms:\n  - filter:\n      pattern: {{eventSource: [s3.amazonaws.com]}}\n  - set_key:\n      path: $.userIdentity.principalId\n  - mask:\n      paths: [$.userIdentity.principalId]\n      keep_last: 2\nerrors:\n  tolerance: all\n  deadletterqueue:\n    topic: {dlq}\n"
        ),
    );
    let worker = RunningWorker::start(&worker_yaml(""), &[("sink.yaml", &connector)]);
    let events = capture.receive(2, Duration::from_secs(60)).await;
    let dead = tokio::task::spawn_blocking(move || support::consume_all(&dlq, 1, Duration::from_secs(30)))
        .await
        .unwrap();
    capture.assert_no_more(Duration::from_secs(2)).await;
    worker.stop().await;
    let by_name: BTreeMap<String, &Value> = events
        .iter()
        .map(|event| (event["detail-type"].as_str().unwrap().to_owned(), &event["detail"]))
        .collect();
    assert_eq!(by_name.keys().collect::<Vec<_>>(), ["GetObject", "ListBuckets"]);
    assert_eq!(
        by_name["GetObject"]["userIdentity"]["principalId"],
        json!("***********42")
    );
    assert_eq!(
        by_name["ListBuckets"]["userIdentity"]["principalId"],
        json!("**********on")
    );
    assert_eq!(dead[0].headers["__connect.errors.stage"], "TRANSFORMATION");
    assert_eq!(dead[0].headers["__connect.errors.offset"], "2");
    assert!(
        dead[0].headers["__connect.errors.exception.message"].contains("set_key"),
        "{:?}",
        dead[0].headers
    );
    assert_eq!(
        support::committed_offsets(&format!("connect-{name}"), &topic, 1),
        support::end_offsets(&topic, 1),
        "filtered records count as settled"
    );
}

/// `topics_regex` reads every matching topic, including one created after the connector started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_regex_reads_matching_topics_created_later() {
    let prefix = unique("regex");
    let first = format!("{prefix}-a");
    support::create_topic(&first, 1).await;
    support::create_topic(&format!("other-{prefix}"), 1).await;
    let capture = BusCapture::new("sink-regex", &json!({"source": ["ebconnect.test.regex"]})).await;
    let name = unique("regex");
    let connector = format!(
        "name: {name}\ntype: eventbridge-sink\nconfig:\n  topics_regex: '{prefix}-.*'\n  event_bus: {}\n  source: ebconnect.test.regex\n  consumer_override:\n    topic.metadata.refresh.interval.ms: '1000'\n",
        capture.bus
    );
    let worker = RunningWorker::start(&worker_yaml(""), &[("sink.yaml", &connector)]);
    let producer = support::producer();
    support::produce(&producer, &first, None, None, Some(br#"{"from":"a"}"#), &[]).await;
    support::produce(
        &producer,
        &format!("other-{prefix}"),
        None,
        None,
        Some(br#"{"from":"other"}"#),
        &[],
    )
    .await;
    let later = format!("{prefix}-b");
    support::create_topic(&later, 1).await;
    support::produce(&producer, &later, None, None, Some(br#"{"from":"b"}"#), &[]).await;
    let events = capture.receive(2, Duration::from_secs(60)).await;
    capture.assert_no_more(Duration::from_secs(2)).await;
    worker.stop().await;
    let mut topics: Vec<&str> = events
        .iter()
        .map(|event| event["detail"]["topic"].as_str().unwrap())
        .collect();
    topics.sort();
    assert_eq!(topics, [first.as_str(), later.as_str()]);
}
