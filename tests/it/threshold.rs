//! threshold-alert against the real stack: the real CloudTrail records, in their file order (out of order in time),
//! counted per minute, S3 calls only, per (eventName, eventSource, principal); the flagged output must equal an
//! offline count of the same data. And the same after the worker is killed mid-stream and started again.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::support::{unique, worker_yaml, RunningWorker};
use serde_json::{json, Value};

const THRESHOLD: u64 = 3;

fn fixture() -> Vec<Value> {
    include_str!("../fixtures/cloudtrail/invictus_aws_dataset.jsonl")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// (window start in ms, eventName, principalId) -> count, for the windows over the threshold.
type Flagged = BTreeMap<(i64, String, String), u64>;

/// The exact count, offline: tumbling one-minute windows, `eventSource == s3.amazonaws.com`, count > THRESHOLD.
fn offline_count(events: &[Value]) -> Flagged {
    let mut counts: Flagged = BTreeMap::new();
    for event in events {
        if event["eventSource"] != "s3.amazonaws.com" {
            continue;
        }
        let time = chrono::DateTime::parse_from_rfc3339(event["eventTime"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
        let window = time.div_euclid(60_000) * 60_000;
        let name = event["eventName"].as_str().unwrap_or_default().to_owned();
        let principal = event["userIdentity"]["principalId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        *counts.entry((window, name, principal)).or_default() += 1;
    }
    counts.retain(|_, count| *count > THRESHOLD);
    counts
}

fn connector(name: &str, input: &str, output: &str, allowed_lateness: &str) -> String {
    format!(
        "name: {name}\ntype: threshold-alert\nconfig:\n  topics: [{input}]\n  filter: {{eventSource: [s3.amazonaws.com]}}\n  event_time: {{json_path: $.eventTime}}\n  window: 1m\n  group_by:\n    eventName: $.eventName\n    eventSource: $.eventSource\n    principalId: $.userIdentity.principalId\n  threshold: {{count: {THRESHOLD}, op: '>'}}\n  allowed_lateness: {allowed_lateness}\n  idle_timeout: 1h\n  late_records: drop\n  commit_interval: 200ms\n  output: {{topic: {output}}}\n"
    )
}

async fn feed(topic: &str, events: &[Value]) {
    let producer = support::producer();
    for event in events {
        let key = event["userIdentity"]["principalId"].as_str().unwrap_or("none");
        support::produce(
            &producer,
            topic,
            None,
            Some(key.as_bytes()),
            Some(event.to_string().as_bytes()),
            &[],
        )
        .await;
    }
}

/// A record far in the future on every partition, so that the watermark passes every window of the data.
async fn push_watermark(topic: &str, partitions: i32) {
    let producer = support::producer();
    let flush = json!({"eventSource": "flush.example", "eventTime": "2030-01-01T00:00:00Z"}).to_string();
    for partition in 0..partitions {
        support::produce(&producer, topic, Some(partition), None, Some(flush.as_bytes()), &[]).await;
    }
}

/// Reads alerts until every expected (window, group) arrived; duplicates (at least once) must agree on the count.
async fn read_alerts(topic: &str, expected: &Flagged) -> Flagged {
    let topic = topic.to_owned();
    let wanted: BTreeSet<(i64, String, String)> = expected.keys().cloned().collect();
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let mut seen: Flagged = BTreeMap::new();
        while !wanted.iter().all(|key| seen.contains_key(key)) {
            assert!(std::time::Instant::now() < deadline, "alerts so far: {seen:?}");
            std::thread::sleep(Duration::from_millis(500));
            let written = support::end_offsets(&topic, 1)[&0];
            if written < i64::try_from(wanted.len()).unwrap() {
                continue;
            }
            let records = support::consume_all(&topic, usize::try_from(written).unwrap(), Duration::from_secs(60));
            seen.clear();
            for record in records {
                let alert: Value = serde_json::from_slice(record.value.as_ref().unwrap()).unwrap();
                assert_eq!(alert["eventSource"], "s3.amazonaws.com");
                assert_eq!(alert["final"], true);
                let start = chrono::DateTime::parse_from_rfc3339(alert["window_start"].as_str().unwrap())
                    .unwrap()
                    .timestamp_millis();
                let end = chrono::DateTime::parse_from_rfc3339(alert["window_end"].as_str().unwrap())
                    .unwrap()
                    .timestamp_millis();
                assert_eq!(end - start, 60_000);
                let key: Value = serde_json::from_slice(record.key.as_ref().unwrap()).unwrap();
                assert_eq!(key["principalId"], alert["principalId"], "the key is the group");
                let group = (
                    start,
                    alert["eventName"].as_str().unwrap().to_owned(),
                    alert["principalId"].as_str().unwrap_or_default().to_owned(),
                );
                let count = alert["event_count"].as_u64().unwrap();
                if let Some(previous) = seen.insert(group.clone(), count) {
                    assert_eq!(previous, count, "a repeated alert for {group:?} has another count");
                }
            }
        }
        seen
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flagged_output_equals_an_exact_offline_count_of_the_real_records() {
    let events = fixture();
    let expected = offline_count(&events);
    assert!(expected.len() >= 5, "the data must flag something: {expected:?}");
    let input = unique("audit");
    let output = unique("flagged");
    support::create_topic(&input, 2).await;
    support::create_topic(&output, 1).await;
    feed(&input, &events).await;
    push_watermark(&input, 2).await;
    let name = unique("threshold");
    let worker = RunningWorker::start(
        &worker_yaml(""),
        &[("alert.yaml", &connector(&name, &input, &output, "60m"))],
    );
    let flagged = read_alerts(&output, &expected).await;
    assert_eq!(flagged, expected);
    worker.stop().await;
    // Everything was settled: the committed offsets reach the end of the input.
    let group = format!("connect-{name}");
    assert_eq!(
        support::committed_offsets(&group, &input, 2),
        support::end_offsets(&input, 2)
    );
    // And the REST API shows them, as Kafka Connect's `GET .../offsets` does for a sink connector.
    let worker = RunningWorker::start(
        &worker_yaml(""),
        &[("alert.yaml", &connector(&name, &input, &output, "60m"))],
    );
    let url = format!("http://{}/connectors/{name}/offsets", worker.config.rest_address());
    // The API listens before the worker has registered its connectors: until then the connector is not found.
    let shown: Value = support::wait_for("the connector's offsets", Duration::from_secs(30), || async {
        let answer: Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
        answer.get("offsets").is_some().then_some(answer)
    })
    .await;
    let shown: std::collections::BTreeMap<i32, i64> = shown["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["partition"]["kafka_topic"] == input.as_str())
        .map(|entry| {
            (
                entry["partition"]["kafka_partition"].as_i64().unwrap() as i32,
                entry["offset"]["kafka_offset"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(shown, support::end_offsets(&input, 2));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigkill_every_window_is_still_emitted_with_its_exact_count() {
    // In time order and without lateness, windows close all along the stream, so the kill finds some emitted and
    // committed, and others open: the restart must neither lose the open ones nor re-emit closed ones partially.
    let mut events = fixture();
    events.sort_by_key(|event| event["eventTime"].as_str().unwrap_or_default().to_owned());
    let expected = offline_count(&events);
    let input = unique("audit-kill");
    let output = unique("flagged-kill");
    support::create_topic(&input, 2).await;
    support::create_topic(&output, 1).await;
    let name = unique("threshold-kill");
    let config = support::ConfigDir::new(
        &worker_yaml(""),
        &[("alert.yaml", &connector(&name, &input, &output, "0s"))],
    );
    let first = support::spawn_worker(&config, "first.log");
    let (head, tail) = events.split_at(events.len() / 2);
    feed(&input, head).await;
    let group = format!("connect-{name}");
    // Killed once it has emitted alerts and committed past them, with the last windows still open.
    support::wait_for("an alert and a commit", Duration::from_secs(60), || async {
        let (group, input, output) = (group.clone(), input.clone(), output.clone());
        tokio::task::spawn_blocking(move || {
            let committed: i64 = support::committed_offsets(&group, &input, 2).values().sum();
            let alerts = support::end_offsets(&output, 1)[&0];
            (committed > 0 && alerts > 0).then_some(())
        })
        .await
        .unwrap()
    })
    .await;
    support::signal(&first, "KILL");
    let mut first = first;
    first.wait().unwrap();
    feed(&input, tail).await;
    push_watermark(&input, 2).await;
    let mut second = support::spawn_worker(&config, "second.log");
    let flagged = read_alerts(&output, &expected).await;
    assert_eq!(
        flagged, expected,
        "every window over the threshold, with its exact count"
    );
    support::terminate(&second);
    assert!(second.wait().unwrap().success());
}

/// `processing: exactly_once`: the worker is killed right after its first alerts are written, with a commit
/// interval long enough that, at least once, those alerts would be written again by the replay. A `read_committed`
/// consumer (confluent-kafka) must see each flagged window exactly once, with its full count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_each_window_is_seen_once_by_a_read_committed_consumer_across_sigkill() {
    let mut events = fixture();
    events.sort_by_key(|event| event["eventTime"].as_str().unwrap_or_default().to_owned());
    let expected = offline_count(&events);
    let input = unique("audit-eos");
    let output = unique("flagged-eos");
    support::create_topic(&input, 2).await;
    support::create_topic(&output, 1).await;
    let name = unique("threshold-eos");
    let connector = connector(&name, &input, &output, "0s").replace("commit_interval: 200ms", "commit_interval: 30s")
        + "  processing: exactly_once\n";
    let config = support::ConfigDir::new(&worker_yaml(""), &[("alert.yaml", &connector)]);
    let first = support::spawn_worker(&config, "first.log");
    let (head, tail) = events.split_at(events.len() / 2);
    feed(&input, head).await;
    support::wait_for("the first alerts", Duration::from_secs(60), || async {
        let output = output.clone();
        tokio::task::spawn_blocking(move || (support::end_offsets(&output, 1)[&0] > 0).then_some(()))
            .await
            .unwrap()
    })
    .await;
    support::signal(&first, "KILL");
    let mut first = first;
    first.wait().unwrap();
    feed(&input, tail).await;
    push_watermark(&input, 2).await;
    let mut second = support::spawn_worker(&config, "second.log");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let seen = loop {
        let alerts = support::read_committed(&output).await;
        let mut seen: BTreeMap<(i64, String, String), Vec<u64>> = BTreeMap::new();
        for alert in &alerts {
            let start = chrono::DateTime::parse_from_rfc3339(alert["window_start"].as_str().unwrap())
                .unwrap()
                .timestamp_millis();
            let group = (
                start,
                alert["eventName"].as_str().unwrap().to_owned(),
                alert["principalId"].as_str().unwrap_or_default().to_owned(),
            );
            seen.entry(group)
                .or_default()
                .push(alert["event_count"].as_u64().unwrap());
        }
        if expected.keys().all(|key| seen.contains_key(key)) {
            break seen;
        }
        assert!(std::time::Instant::now() < deadline, "alerts so far: {seen:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let repeated: Vec<_> = seen.iter().filter(|(_, counts)| counts.len() > 1).collect();
    assert!(repeated.is_empty(), "windows written more than once: {repeated:?}");
    let flagged: Flagged = seen.into_iter().map(|(key, counts)| (key, counts[0])).collect();
    assert_eq!(
        flagged, expected,
        "every window over the threshold, once, with its exact count"
    );
    support::terminate(&second);
    assert!(second.wait().unwrap().success());
}

/// A window closed and emitted before a crash, whose records straddle the offset the restart reads from, must not
/// be emitted again with the partial count the replay sees. Offsets and times (one partition, lateness 1m):
/// 0 @ 00:00:20 (window 0), 1 @ 00:01:10 (window 1), 2 and 3 @ 00:00:30 (window 0), 4 @ 00:02:30 (closes window 0).
/// The commit stops at offset 1 (window 1 is open), so the replay reads offsets 2 and 3 of window 0 again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_does_not_emit_a_closed_window_again_with_a_partial_count() {
    let input = unique("audit-partial");
    let output = unique("flagged-partial");
    support::create_topic(&input, 1).await;
    support::create_topic(&output, 1).await;
    let name = unique("threshold-partial");
    let connector = format!(
        "name: {name}\ntype: threshold-alert\nconfig:\n  topics: [{input}]\n  event_time: {{json_path: $.t}}\n  window: 1m\n  group_by: {{who: $.who}}\n  threshold: {{count: 1}}\n  allowed_lateness: 1m\n  idle_timeout: 1h\n  commit_interval: 100ms\n  output: {{topic: {output}}}\n"
    );
    let config = support::ConfigDir::new(&worker_yaml(""), &[("alert.yaml", &connector)]);
    let producer = support::producer();
    for time in ["00:00:20", "00:01:10", "00:00:30", "00:00:30", "00:02:30"] {
        let record = json!({"who": "AIDA1", "t": format!("2026-01-01T{time}Z")}).to_string();
        support::produce(&producer, &input, Some(0), None, Some(record.as_bytes()), &[]).await;
    }
    let first = support::spawn_worker(&config, "first.log");
    let group = format!("connect-{name}");
    support::wait_for(
        "window 0 emitted and offset 1 committed",
        Duration::from_secs(60),
        || async {
            let (group, input, output) = (group.clone(), input.clone(), output.clone());
            tokio::task::spawn_blocking(move || {
                let committed = support::committed_offsets(&group, &input, 1);
                let alerts = support::end_offsets(&output, 1)[&0];
                (committed.get(&0) == Some(&1) && alerts == 1).then_some(())
            })
            .await
            .unwrap()
        },
    )
    .await;
    support::signal(&first, "KILL");
    let mut first = first;
    first.wait().unwrap();
    let mut second = support::spawn_worker(&config, "second.log");
    let flush = json!({"who": "nobody", "t": "2030-01-01T00:00:00Z"}).to_string();
    support::produce(&producer, &input, Some(0), None, Some(flush.as_bytes()), &[]).await;
    // Everything before the flush record is settled; the flush record itself sits in a window still open.
    support::wait_for("the replay to be committed", Duration::from_secs(60), || async {
        let (group, input) = (group.clone(), input.clone());
        tokio::task::spawn_blocking(move || {
            (support::committed_offsets(&group, &input, 1).get(&0) == Some(&5)).then_some(())
        })
        .await
        .unwrap()
    })
    .await;
    support::terminate(&second);
    assert!(second.wait().unwrap().success());
    let written = support::end_offsets(&output, 1)[&0];
    let alerts = support::consume_all(&output, usize::try_from(written).unwrap(), Duration::from_secs(30));
    let counts: Vec<(String, u64)> = alerts
        .iter()
        .map(|record| {
            let alert: Value = serde_json::from_slice(record.value.as_ref().unwrap()).unwrap();
            (
                alert["window_start"].as_str().unwrap().to_owned(),
                alert["event_count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [("2026-01-01T00:00:00.000Z".to_owned(), 3)],
        "window 0 once, with all three records"
    );
}

/// Avro output through the registry, read back by confluent-kafka's deserializer; early alerts first, then the
/// final count, each marked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_can_be_avro_and_early() {
    let input = unique("audit-avro");
    let output = unique("flagged-avro");
    support::create_topic(&input, 1).await;
    support::create_topic(&output, 1).await;
    let name = unique("threshold-avro");
    let connector = format!(
        "name: {name}\ntype: threshold-alert\nconfig:\n  topics: [{input}]\n  event_time: {{json_path: $.t}}\n  window: 1m\n  group_by: {{who: $.who, calls: $.n}}\n  threshold: {{count: 2, op: '>='}}\n  emit: early\n  idle_timeout: 1h\n  output: {{topic: {output}, format: avro}}\n"
    );
    let worker = RunningWorker::start(&worker_yaml(""), &[("alert.yaml", &connector)]);
    let producer = support::producer();
    for time in ["00:00:01", "00:00:02", "00:00:03", "00:01:30"] {
        let record = json!({"who": "AIDA7", "n": 5, "t": format!("2026-01-01T{time}Z")}).to_string();
        support::produce(&producer, &input, Some(0), None, Some(record.as_bytes()), &[]).await;
    }
    let alerts = support::consume_avro(&output, 2).await;
    let early = &alerts[0].value;
    assert_eq!(
        early,
        &json!({"window_start": "2026-01-01T00:00:00.000Z", "window_end": "2026-01-01T00:01:00.000Z",
                "calls": "5", "who": "AIDA7", "event_count": 2, "final": false})
    );
    assert_eq!(alerts[1].value["event_count"], 3);
    assert_eq!(alerts[1].value["final"], true);
    assert_eq!(
        alerts[0].key.as_deref(),
        Some(r#"{"calls":5,"who":"AIDA7"}"#),
        "the key is the group"
    );
    worker.stop().await;
}
