//! topic-processor against the real broker: exactly once across SIGKILLs, a second worker joining and a paused
//! member being fenced, checked by an independent `read_committed` consumer (confluent-kafka), for the output and
//! for dead letters; and masking.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::producer::FutureRecord;
use serde_json::{json, Value};

use crate::random::Random;
use crate::support::{self, unique, worker_yaml, ConfigDir};

/// Waits until the group has committed every input record.
async fn wait_until_committed(group: &str, topic: &str, partitions: i32, within: Duration) {
    support::wait_for("every input record committed", within, || async {
        let (group, topic) = (group.to_owned(), topic.to_owned());
        tokio::task::spawn_blocking(move || {
            let committed = support::committed_offsets(&group, &topic, partitions);
            (committed == support::end_offsets(&topic, partitions)).then_some(())
        })
        .await
        .unwrap()
    })
    .await;
}

/// One input record: an event id, keyed by it (so that its duplicates meet in one partition), stamped `timestamp`.
#[derive(Clone)]
struct Event {
    id: String,
    timestamp: i64,
    copy: u32,
}

/// 18,000 distinct ids and 2,000 duplicates of earlier ones (10% of the 20,000 records), each duplicate stamped
/// up to three minutes after its original and placed anywhere after it; all within the last five minutes.
fn events(random: &mut Random) -> Vec<Event> {
    let start = chrono::Utc::now().timestamp_millis() - 5 * 60_000;
    let mut events: Vec<Event> = (0..18_000)
        .map(|n| Event {
            id: format!("evt-{n:05}"),
            timestamp: start + n * 6,
            copy: 0,
        })
        .collect();
    for copy in 1..=2_000 {
        let original = random.below(18_000);
        let mut duplicate = events[original].clone();
        duplicate.timestamp += i64::try_from(random.below(180_000)).unwrap();
        duplicate.copy = copy;
        let at = original + 1 + random.below(events.len() - original);
        events.insert(at, duplicate);
    }
    events
}

async fn produce(topic: &str, events: &[Event]) {
    let producer = support::producer();
    let mut acknowledgements = Vec::new();
    for event in events {
        let value =
            json!({"id": event.id, "copy": event.copy, "userIdentity": {"principalId": "AIDAEXAMPLE"}}).to_string();
        let record: FutureRecord<'_, str, str> = FutureRecord::to(topic)
            .key(event.id.as_str())
            .payload(value.as_str())
            .timestamp(event.timestamp);
        acknowledgements.push(producer.send_result(record).map_err(|(error, _)| error).unwrap());
    }
    for acknowledgement in acknowledgements {
        acknowledgement.await.unwrap().unwrap();
    }
}

fn processor_yaml(name: &str, input: &str, output: &str, transforms: &str) -> String {
    format!(
        "name: {name}\ntype: topic-processor\nconfig:\n  topics: [{input}]\n  output: {{topic: {output}}}\n  \
         commit_interval: 100ms\n  consumer_override:\n    session.timeout.ms: '6000'\n    \
         heartbeat.interval.ms: '1000'\ntransforms:\n{transforms}"
    )
}

/// Avro of every logical type, `bytes` and `fixed` (`tests/support/produce_avro.py`'s `logical` and Avro's own
/// `interop` datum, written by confluent-kafka's serializer) goes through a topic-processor with no transform and
/// comes out as it went in, read back by confluent-kafka's deserializer: what the decoder shows as text (base64,
/// decimals, UUIDs, times) is written back as the same Avro.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_of_every_type_comes_out_as_it_went_in() {
    for (case, count) in [("logical", 2), ("interop", 1)] {
        let input = unique(&format!("processor-{case}-in"));
        let output = unique(&format!("processor-{case}-out"));
        support::create_topic(&input, 1).await;
        support::create_topic(&output, 1).await;
        support::produce_avro(case, &input, count).await;
        let name = unique(&format!("processor-{case}"));
        let connector = format!(
            "name: {name}\ntype: topic-processor\nconfig:\n  topics: [{input}]\n  value: {{format: avro}}\n  output:\n    \
             topic: {output}\n    value: {{format: avro, subject: {input}-value}}\n  commit_interval: 100ms\n\
             errors:\n  tolerance: none\n"
        );
        let config = ConfigDir::new(&worker_yaml(""), &[("avro.yaml", &connector)]);
        let mut worker = support::spawn_worker(&config, &format!("{case}.log"));
        let written = support::consume_avro(&output, count).await;
        let original = support::consume_avro(&input, count).await;
        support::terminate(&worker);
        assert!(worker.wait().unwrap().success());
        assert_eq!(written.len(), count, "{case}");
        for (record, before) in written.iter().zip(&original) {
            assert_eq!(record.value, before.value, "{case}");
            assert_eq!(
                record.schema_id, before.schema_id,
                "{case}: written with the input's schema"
            );
        }
    }
}

/// 20,000 records with 10% duplicated ids through topic-processor + dedupe. The worker is SIGKILLed five times at
/// random moments while records flow and started again each time; then a second worker joins mid-stream, and the
/// first is paused (SIGSTOP) long enough for the group to give its partitions away, so that when it resumes it is a
/// zombie whose transaction must be fenced. A `read_committed` consumer must see every distinct id exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedupe_is_exactly_once_across_kills_a_joining_worker_and_a_fenced_zombie() {
    let mut random = Random(0x5eed_0019);
    let events = events(&mut random);
    let distinct: BTreeSet<String> = events.iter().map(|event| event.id.clone()).collect();
    let input = unique("dedupe-in");
    let output = unique("dedupe-out");
    support::create_topic(&input, 3).await;
    support::create_topic(&output, 3).await;
    let name = unique("dedupe");
    let connector = processor_yaml(&name, &input, &output, "  - dedupe: {key: $.id, window: 10m}\n");
    let first = ConfigDir::new(&worker_yaml("worker_id: first\n"), &[("dedupe.yaml", &connector)]);
    let second = ConfigDir::new(&worker_yaml("worker_id: second\n"), &[("dedupe.yaml", &connector)]);
    let chunks: Vec<&[Event]> = events.chunks(events.len() / 8 + 1).collect();
    let mut worker = support::spawn_worker(&first, "first-0.log");
    for (kill, chunk) in chunks.iter().take(5).enumerate() {
        produce(&input, chunk).await;
        tokio::time::sleep(Duration::from_millis(300 + random.below(1_500) as u64)).await;
        support::signal(&worker, "KILL");
        worker.wait().unwrap();
        worker = support::spawn_worker(&first, &format!("first-{}.log", kill + 1));
    }
    // A second worker joins while records flow.
    let mut joined = support::spawn_worker(&second, "second.log");
    produce(&input, chunks[5]).await;
    let group = format!("connect-{name}");
    support::wait_for_stable_group(&group, 2).await;
    produce(&input, chunks[6]).await;
    // The first worker freezes mid-stream; after its session times out the group gives its partitions to the
    // second, and when it thaws, its open transaction belongs to a generation that is gone.
    support::signal(&worker, "STOP");
    for chunk in &chunks[7..] {
        produce(&input, chunk).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    support::signal(&worker, "CONT");
    wait_until_committed(&group, &input, 3, Duration::from_secs(180)).await;
    let seen = support::read_committed(&output).await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for value in &seen {
        *counts.entry(value["id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    let repeated: Vec<_> = counts.iter().filter(|(_, count)| **count > 1).take(10).collect();
    assert!(repeated.is_empty(), "ids written more than once: {repeated:?}");
    let missing: Vec<_> = distinct
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .take(10)
        .collect();
    assert!(missing.is_empty(), "ids never written: {missing:?}");
    assert_eq!(seen.len(), distinct.len());
    for child in [&worker, &joined] {
        support::terminate(child);
    }
    assert!(worker.wait().unwrap().success());
    assert!(joined.wait().unwrap().success());
}

/// A backfill: records stamped two days ago, so that none is within the dedupe's window of the wall clock. The
/// worker commits the first 1,000 ids and is killed; then come duplicates of every third of them (each within the
/// window of its original, by record time) and 300 new ids. The restarted worker rebuilds its dedupe set from the
/// output's records within the window before the latest of them, not before now, so a `read_committed` consumer
/// sees each id once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_is_deduplicated_across_a_restart() {
    let start = chrono::Utc::now().timestamp_millis() - 2 * 24 * 3_600_000;
    let originals: Vec<Event> = (0..1_000)
        .map(|n| Event {
            id: format!("old-{n:04}"),
            timestamp: start + n * 60,
            copy: 0,
        })
        .collect();
    let later = start + 120_000;
    let mut rest: Vec<Event> = originals
        .iter()
        .step_by(3)
        .map(|original| Event {
            timestamp: later + (original.timestamp - start),
            copy: 1,
            ..original.clone()
        })
        .collect();
    rest.extend((1_000..1_300).map(|n| Event {
        id: format!("old-{n:04}"),
        timestamp: later + n * 60,
        copy: 0,
    }));
    let input = unique("backfill-in");
    let output = unique("backfill-out");
    support::create_topic(&input, 3).await;
    support::create_topic(&output, 3).await;
    let name = unique("backfill");
    let connector = processor_yaml(&name, &input, &output, "  - dedupe: {key: $.id, window: 10m}\n");
    let dir = ConfigDir::new(&worker_yaml(""), &[("dedupe.yaml", &connector)]);
    let group = format!("connect-{name}");
    let mut worker = support::spawn_worker(&dir, "backfill-0.log");
    produce(&input, &originals).await;
    wait_until_committed(&group, &input, 3, Duration::from_secs(60)).await;
    support::signal(&worker, "KILL");
    worker.wait().unwrap();
    produce(&input, &rest).await;
    let mut worker = support::spawn_worker(&dir, "backfill-1.log");
    wait_until_committed(&group, &input, 3, Duration::from_secs(60)).await;
    let seen = support::read_committed(&output).await;
    support::terminate(&worker);
    assert!(worker.wait().unwrap().success());
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for value in &seen {
        *counts.entry(value["id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    let repeated: Vec<_> = counts.iter().filter(|(_, count)| **count > 1).take(10).collect();
    assert!(repeated.is_empty(), "ids written more than once: {repeated:?}");
    assert_eq!(counts.len(), 1_300);
    assert!(seen.iter().all(|value| value["copy"] == 0), "a duplicate was written");
}

/// The reference's "Mask fields" Topic Action: every output value masked, key, headers and timestamp kept, and the
/// input left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masking_writes_a_masked_topic_and_leaves_the_input_alone() {
    let events: Vec<Value> = include_str!("../fixtures/cloudtrail/invictus_aws_dataset.jsonl")
        .lines()
        .take(300)
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let input = unique("mask-in");
    let output = unique("mask-out");
    support::create_topic(&input, 1).await;
    support::create_topic(&output, 1).await;
    let producer = support::producer();
    for (n, event) in events.iter().enumerate() {
        let key = format!("k{n}");
        support::produce(
            &producer,
            &input,
            None,
            Some(key.as_bytes()),
            Some(event.to_string().as_bytes()),
            &[("trace", key.as_bytes())],
        )
        .await;
    }
    let name = unique("mask");
    let connector = processor_yaml(
        &name,
        &input,
        &output,
        "  - mask: {paths: [$.userIdentity], keep_last: 2}\n",
    );
    let config = ConfigDir::new(&worker_yaml(""), &[("mask.yaml", &connector)]);
    let mut worker = support::spawn_worker(&config, "worker.log");
    wait_until_committed(&format!("connect-{name}"), &input, 1, Duration::from_secs(60)).await;
    let written = support::consume_all(&output, events.len(), Duration::from_secs(30));
    let original = support::consume_all(&input, events.len(), Duration::from_secs(30));
    for ((record, before), event) in written.iter().zip(&original).zip(&events) {
        let value: Value = serde_json::from_slice(record.value.as_ref().unwrap()).unwrap();
        let mut expected = event.clone();
        mask_all_but_last_two(&mut expected["userIdentity"]);
        assert_eq!(value, expected);
        assert_eq!(record.key, before.key);
        assert_eq!(record.headers.get("trace"), before.headers.get("trace"));
        let unchanged: Value = serde_json::from_slice(before.value.as_ref().unwrap()).unwrap();
        assert_eq!(&unchanged, event, "the input is not changed");
    }
    support::terminate(&worker);
    assert!(worker.wait().unwrap().success());
}

/// What `mask: {keep_last: 2}` makes of a value, written out independently of the transform.
fn mask_all_but_last_two(value: &mut Value) {
    let hide = |text: &str| {
        let chars: Vec<char> = text.chars().collect();
        let keep = chars.len().saturating_sub(2);
        chars
            .iter()
            .enumerate()
            .map(|(index, c)| if index < keep { '*' } else { *c })
            .collect::<String>()
    };
    match value {
        Value::String(text) => *text = hide(text),
        Value::Number(_) | Value::Bool(_) => *value = Value::String(hide(&value.to_string())),
        Value::Array(items) => items.iter_mut().for_each(mask_all_but_last_two),
        Value::Object(fields) => fields.values_mut().for_each(mask_all_but_last_two),
        Value::Null => {}
    }
}

/// Avro in, Avro out: CloudTrail records written by confluent-kafka's AvroSerializer (logical types among them),
/// masked and written with the input's own schema, read back by confluent-kafka's AvroDeserializer equal to the input
/// with the principal masked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_records_are_written_back_as_avro_with_the_input_schema() {
    const COUNT: usize = 100;
    let input = unique("processor-avro-in");
    let output = unique("processor-avro-out");
    support::create_topic(&input, 1).await;
    support::create_topic(&output, 1).await;
    support::produce_avro("cloudtrail", &input, COUNT).await;
    let name = unique("processor-avro");
    let connector = format!(
        "name: {name}\ntype: topic-processor\nconfig:\n  topics: [{input}]\n  value: {{format: avro}}\n  output:\n    \
         topic: {output}\n    value: {{format: avro, subject: {input}-value}}\n  commit_interval: 100ms\ntransforms:\n  \
         - mask: {{paths: [$.userIdentity.principalId], keep_last: 2}}\nerrors:\n  tolerance: none\n"
    );
    let config = ConfigDir::new(&worker_yaml(""), &[("avro.yaml", &connector)]);
    let mut worker = support::spawn_worker(&config, "worker.log");
    let written = support::consume_avro(&output, COUNT).await;
    let original = support::consume_avro(&input, COUNT).await;
    assert_eq!(written.len(), COUNT);
    for (record, before) in written.iter().zip(&original) {
        let mut expected = before.value.clone();
        if let Some(principal) = expected["userIdentity"]["principalId"].as_str() {
            let hidden = principal.chars().count().saturating_sub(2);
            expected["userIdentity"]["principalId"] = json!(principal
                .chars()
                .enumerate()
                .map(|(index, c)| if index < hidden { '*' } else { c })
                .collect::<String>());
        }
        assert_eq!(record.value, expected);
        assert_eq!(record.schema_id, before.schema_id, "written with the input's schema");
        assert_eq!(record.key, before.key);
    }
    support::terminate(&worker);
    assert!(worker.wait().unwrap().success());
}

/// With exactly once, a record that cannot be decoded is dead-lettered in the transaction that carries the output
/// around it. 6,000 records, every fifth not JSON, go through a worker that is SIGKILLed three times while
/// transactions are open (committed every 2 s); a `read_committed` reader then finds each bad record in the
/// dead-letter topic once, and each good one in the output once. Written outside the transaction, a dead letter
/// stayed behind for a record read again after the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_exactly_once_across_kills() {
    let mut random = Random(0x5eed_0d1e);
    let input = unique("eos-dlq-in");
    let output = unique("eos-dlq-out");
    let dead = unique("eos-dlq-dead");
    support::create_topic(&input, 3).await;
    support::create_topic(&output, 3).await;
    support::create_topic(&dead, 1).await;
    let name = unique("eos-dlq");
    let connector = format!(
        "name: {name}\ntype: topic-processor\nconfig:\n  topics: [{input}]\n  output: {{topic: {output}}}\n  \
         commit_interval: 2s\n  consumer_override:\n    session.timeout.ms: '6000'\n    \
         heartbeat.interval.ms: '1000'\nerrors:\n  tolerance: all\n  deadletterqueue:\n    topic: {dead}\n"
    );
    let config = ConfigDir::new(&worker_yaml("worker_id: only\n"), &[("eos-dlq.yaml", &connector)]);
    let values: Vec<String> = (0..6000)
        .map(|n| {
            if n % 5 == 0 {
                format!("bad-{n}")
            } else {
                json!({ "id": format!("good-{n}") }).to_string()
            }
        })
        .collect();
    let producer = support::producer();
    let mut worker = support::spawn_worker(&config, "worker-0.log");
    for (kill, chunk) in values.chunks(1500).enumerate() {
        let mut acknowledgements = Vec::new();
        for value in chunk {
            let record: FutureRecord<'_, str, str> =
                FutureRecord::to(&input).key(value.as_str()).payload(value.as_str());
            acknowledgements.push(producer.send_result(record).map_err(|(error, _)| error).unwrap());
        }
        for acknowledgement in acknowledgements {
            acknowledgement.await.unwrap().unwrap();
        }
        if kill < 3 {
            tokio::time::sleep(Duration::from_millis(500 + random.below(1_000) as u64)).await;
            support::signal(&worker, "KILL");
            worker.wait().unwrap();
            worker = support::spawn_worker(&config, &format!("worker-{}.log", kill + 1));
        }
    }
    wait_until_committed(&format!("connect-{name}"), &input, 3, Duration::from_secs(180)).await;
    let letters = support::stack_python("consume_committed.py", &[&dead]).await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for letter in String::from_utf8_lossy(&letters.stdout).lines() {
        *counts.entry(letter.to_owned()).or_default() += 1;
    }
    for value in support::read_committed(&output).await {
        *counts.entry(value["id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = values
        .iter()
        .map(|value| match serde_json::from_str::<Value>(value) {
            Ok(good) => (good["id"].as_str().unwrap().to_owned(), 1),
            Err(_) => (value.clone(), 1),
        })
        .collect();
    let twice: Vec<_> = counts.iter().filter(|(_, count)| **count > 1).take(10).collect();
    assert!(twice.is_empty(), "written more than once: {twice:?}");
    assert_eq!(counts, expected);
    support::terminate(&worker);
    assert!(worker.wait().unwrap().success());
}

/// With exactly once, a record too large for the dead-letter topic is cut to fit before it is written in the
/// transaction (the broker refusing it would fail the whole transaction), and the records around it go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_too_large_for_its_topic_is_cut_to_fit_inside_the_transaction() {
    let input = unique("eos-huge-in");
    let output = unique("eos-huge-out");
    let dead = unique("eos-huge-dead");
    support::create_topic_configured(support::kafka_config(), &input, 1, &[("max.message.bytes", "2097152")]).await;
    support::create_topic(&output, 1).await;
    support::create_topic(&dead, 1).await;
    let producer: rdkafka::producer::FutureProducer = support::kafka_config()
        .set("enable.idempotence", "true")
        .set("message.max.bytes", "3000000")
        .create()
        .unwrap();
    let huge = format!("not JSON {}", "x".repeat(1_200_000));
    for value in [r#"{"id":"before"}"#, huge.as_str(), r#"{"id":"after"}"#] {
        support::produce(&producer, &input, None, Some(b"k"), Some(value.as_bytes()), &[]).await;
    }
    let name = unique("eos-huge");
    let connector = format!(
        "name: {name}\ntype: topic-processor\nconfig:\n  topics: [{input}]\n  output: {{topic: {output}}}\nerrors:\n  \
         tolerance: all\n  deadletterqueue:\n    topic: {dead}\n"
    );
    let config = ConfigDir::new(&worker_yaml(""), &[("eos-huge.yaml", &connector)]);
    let mut worker = support::spawn_worker(&config, "worker.log");
    wait_until_committed(&format!("connect-{name}"), &input, 1, Duration::from_secs(60)).await;
    let ids: Vec<Value> = support::read_committed(&output)
        .await
        .into_iter()
        .map(|value| value["id"].clone())
        .collect();
    assert_eq!(ids, [json!("before"), json!("after")]);
    let letters = tokio::task::spawn_blocking(move || support::consume_all(&dead, 1, Duration::from_secs(60)))
        .await
        .unwrap();
    support::assert_cut_to_fit(&letters[0], huge.as_bytes());
    support::terminate(&worker);
    assert!(worker.wait().unwrap().success());
}
