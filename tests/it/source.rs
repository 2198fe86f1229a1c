//! The eventbridge-source against the real stack: events put on a bus in the emulator reach Kafka through a rule
//! with an SQS target that the connector provisions itself; SQS keeps nothing that was written.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::{unique, worker_yaml, RunningWorker};
use serde_json::{json, Value};

pub(crate) fn cloudtrail_event(n: usize, event_source: &str, principal: &str) -> Value {
    json!({
        "eventVersion": "1.08",
        "eventSource": event_source,
        "eventName": "GetObject",
        "userIdentity": {"type": "IAMUser", "principalId": principal},
        "n": n,
    })
}

pub(crate) async fn put(events: &aws_sdk_eventbridge::Client, bus: &str, source: &str, detail: &Value) -> String {
    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .event_bus_name(bus)
        .source(source)
        .detail_type("AWS API Call via CloudTrail")
        .detail(detail.to_string())
        .build();
    let response = events.put_events().entries(entry).send().await.unwrap();
    assert_eq!(response.failed_entry_count(), 0);
    response.entries()[0].event_id().unwrap().to_owned()
}

/// Waits until connector `name`'s rule on `bus` has its queue as target. The rule is created before the queue,
/// and the target attached last: an event put in between matches a rule with nowhere to send it, and is dropped.
pub(crate) async fn provisioned(events: &aws_sdk_eventbridge::Client, bus: &str, name: &str) {
    support::wait_for("the rule and its target", Duration::from_secs(30), || async {
        let answer = events
            .list_targets_by_rule()
            .rule(format!("ebconnect-{name}"))
            .event_bus_name(bus)
            .send()
            .await
            .ok()?;
        (!answer.targets().is_empty()).then_some(())
    })
    .await;
}

/// Waits until connector `name`'s provisioned queue is empty: everything received was settled and deleted.
async fn drained(sqs: &aws_sdk_sqs::Client, name: &str) {
    let queue_url = sqs
        .get_queue_url()
        .queue_name(format!("ebconnect-{name}"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    support::wait_for("the queue to be drained", Duration::from_secs(30), || async {
        support::queue_is_empty(sqs, &queue_url).await.then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matching_events_reach_kafka_with_key_value_and_headers() {
    let config = support::aws_config().await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let bus = unique("source-bus");
    events.create_event_bus().name(&bus).send().await.unwrap();
    let topic = unique("source-audit");
    support::create_topic(&topic, 2).await;
    let name = unique("source");
    // The reference setup's rule: CloudTrail API calls, without AWS-service callers and without STS or SSM.
    let connector = format!(
        "name: {name}\ntype: eventbridge-source\nconfig:\n  provision:\n    event_bus: {bus}\n    event_pattern:\n      detail-type: [AWS API Call via CloudTrail]\n      detail:\n        userIdentity:\n          type: [{{anything-but: AWSService}}]\n        eventSource: [{{anything-but: [sts.amazonaws.com, ssm.amazonaws.com]}}]\n  topic: {topic}\n  key: $.detail.userIdentity.principalId\n  wait_time: 1s\n"
    );
    let worker = RunningWorker::start(&worker_yaml(""), &[("source.yaml", &connector)]);
    provisioned(&events, &bus, &name).await;

    let mut expected = BTreeMap::new();
    for n in 0..6 {
        let detail = cloudtrail_event(n, "s3.amazonaws.com", &format!("AIDA{n}"));
        let id = put(&events, &bus, "aws.s3", &detail).await;
        expected.insert(id, detail);
    }
    let mut noise = cloudtrail_event(100, "sts.amazonaws.com", "AIDA100");
    put(&events, &bus, "aws.sts", &noise).await;
    noise = cloudtrail_event(101, "s3.amazonaws.com", "AWSSVC");
    noise["userIdentity"]["type"] = json!("AWSService");
    put(&events, &bus, "aws.s3", &noise).await;

    let records = tokio::task::spawn_blocking({
        let topic = topic.clone();
        move || support::consume_all(&topic, 6, Duration::from_secs(60))
    })
    .await
    .unwrap();
    for record in &records {
        let value: Value = serde_json::from_slice(record.value.as_ref().unwrap()).unwrap();
        let id = value["id"].as_str().unwrap();
        let detail = &expected[id];
        assert_eq!(
            &value["detail"], detail,
            "the value is the whole event as EventBridge delivered it"
        );
        assert_eq!(value["source"], json!("aws.s3"));
        assert_eq!(
            record.key.as_deref(),
            detail["userIdentity"]["principalId"].as_str().map(str::as_bytes)
        );
        assert_eq!(record.headers["id"], id);
        assert_eq!(record.headers["source"], "aws.s3");
        assert_eq!(record.headers["detail-type"], "AWS API Call via CloudTrail");
        assert_eq!(record.headers["time"], value["time"].as_str().unwrap());
    }
    let ids: Vec<&str> = expected.keys().map(String::as_str).collect();
    let mut arrived: Vec<String> = records
        .iter()
        .map(|record| {
            serde_json::from_slice::<Value>(record.value.as_ref().unwrap()).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    arrived.sort();
    assert_eq!(arrived, ids, "exactly the matching events arrive");
    drained(&sqs, &name).await;
    worker.stop().await;
    // The topic holds those six records and nothing else: the non-matching events never reached the queue.
    assert_eq!(support::end_offsets(&topic, 2).values().sum::<i64>(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_is_not_an_event_is_dead_lettered_and_deleted() {
    let config = support::aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue_url = support::create_queue(&sqs, &unique("source-raw")).await;
    let topic = unique("source-raw");
    let dlq = unique("source-raw-dlq");
    support::create_topic(&topic, 1).await;
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body("not json {")
        .send()
        .await
        .unwrap();
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body(json!({"id": "e-1", "source": "custom", "detail": {"ok": true}}).to_string())
        .send()
        .await
        .unwrap();
    let name = unique("raw");
    let connector = format!(
        "name: {name}\ntype: eventbridge-source\nconfig:\n  queue_url: {queue_url}\n  topic: {topic}\n  wait_time: 1s\nerrors:\n  tolerance: all\n  deadletterqueue:\n    topic: {dlq}\n"
    );
    let worker = RunningWorker::start(&worker_yaml(""), &[("source.yaml", &connector)]);
    let good = tokio::task::spawn_blocking({
        let topic = topic.clone();
        move || support::consume_all(&topic, 1, Duration::from_secs(60))
    })
    .await
    .unwrap();
    assert_eq!(
        good[0].key.as_deref(),
        Some(&b"e-1"[..]),
        "the default key is the event id"
    );
    let dead = tokio::task::spawn_blocking(move || support::consume_all(&dlq, 1, Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(dead[0].value.as_deref(), Some(&b"not json {"[..]));
    assert_eq!(dead[0].headers["__connect.errors.stage"], "VALUE_CONVERTER");
    assert!(dead[0].headers["__connect.errors.exception.message"].contains("not JSON"));
    support::wait_for("the queue to be drained", Duration::from_secs(30), || async {
        support::queue_is_empty(&sqs, &queue_url).await.then_some(())
    })
    .await;
    worker.stop().await;
}

/// The CloudTrail envelope as an Avro record. Avro names cannot hold `-`, so the connector renames `detail-type`.
const ENVELOPE_SCHEMA: &str = r#"{
  "type": "record", "name": "CloudTrailEvent", "namespace": "ebconnect.test",
  "fields": [
    {"name": "id", "type": "string"},
    {"name": "source", "type": "string"},
    {"name": "detail_type", "type": "string"},
    {"name": "time", "type": "string"},
    {"name": "detail", "type": {"type": "record", "name": "Detail", "fields": [
      {"name": "eventSource", "type": "string"},
      {"name": "eventName", "type": "string"},
      {"name": "n", "type": "int"},
      {"name": "userIdentity", "type": {"type": "map", "values": "string"}},
      {"name": "errorCode", "type": ["null", "string"], "default": null}
    ]}}
  ]
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_values_round_trip_through_the_schema_registry() {
    let config = support::aws_config().await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let bus = unique("source-avro-bus");
    events.create_event_bus().name(&bus).send().await.unwrap();
    let topic = unique("source-avro");
    let dlq = unique("source-avro-dlq");
    support::create_topic(&topic, 1).await;
    let schema_dir = tempfile::tempdir().unwrap();
    let schema_file = schema_dir.path().join("cloudtrail.avsc");
    std::fs::write(&schema_file, ENVELOPE_SCHEMA).unwrap();
    let name = unique("source-avro");
    let connector = format!(
        "name: {name}\ntype: eventbridge-source\nconfig:\n  provision:\n    event_bus: {bus}\n    event_pattern: {{source: [aws.s3]}}\n  topic: {topic}\n  value:\n    format: avro\n    schema_file: {}\n  wait_time: 1s\ntransforms:\n  - rename_fields: {{renames: {{$.detail-type: detail_type}}}}\nerrors:\n  tolerance: all\n  deadletterqueue:\n    topic: {dlq}\n",
        schema_file.display()
    );
    let worker = RunningWorker::start(&worker_yaml(""), &[("source.yaml", &connector)]);
    provisioned(&events, &bus, &name).await;
    let mut expected = BTreeMap::new();
    for n in 0..3 {
        let detail = cloudtrail_event(n, "s3.amazonaws.com", &format!("AIDA{n}"));
        let id = put(&events, &bus, "aws.s3", &detail).await;
        expected.insert(id, detail);
    }
    // `n` must be an int: this event cannot be written with the schema and goes to the dead-letter topic.
    let mut misfit = cloudtrail_event(9, "s3.amazonaws.com", "AIDA9");
    misfit["n"] = json!("nine");
    let misfit_id = put(&events, &bus, "aws.s3", &misfit).await;

    let records = support::consume_avro(&topic, 3).await;
    let schema_ids: Vec<u32> = records.iter().map(|record| record.schema_id).collect();
    assert!(schema_ids.windows(2).all(|pair| pair[0] == pair[1]), "{schema_ids:?}");
    for record in &records {
        let id = record.value["id"].as_str().unwrap();
        let detail = &expected[id];
        assert_eq!(record.value["detail_type"], json!("AWS API Call via CloudTrail"));
        assert_eq!(record.value["source"], json!("aws.s3"));
        assert_eq!(record.value["detail"]["eventSource"], detail["eventSource"]);
        assert_eq!(record.value["detail"]["n"], detail["n"]);
        assert_eq!(record.value["detail"]["userIdentity"], detail["userIdentity"]);
        assert_eq!(record.value["detail"]["errorCode"], Value::Null);
        assert_eq!(record.key.as_deref(), Some(id));
        assert_eq!(record.headers["detail-type"], "AWS API Call via CloudTrail");
    }
    // The schema was registered under the topic's value subject.
    let subject = format!(
        "{}/subjects/{topic}-value/versions/latest",
        support::stack("SCHEMA_REGISTRY_URL")
    );
    let registered: Value = reqwest::get(&subject).await.unwrap().json().await.unwrap();
    assert_eq!(registered["id"].as_u64(), Some(u64::from(schema_ids[0])));

    let dead = tokio::task::spawn_blocking(move || support::consume_all(&dlq, 1, Duration::from_secs(60)))
        .await
        .unwrap();
    let dead_event: Value = serde_json::from_slice(dead[0].value.as_ref().unwrap()).unwrap();
    assert_eq!(dead_event["id"], json!(misfit_id));
    assert_eq!(
        dead[0].headers["__connect.errors.exception.class.name"],
        "SerializationError"
    );
    assert!(
        dead[0].headers["__connect.errors.exception.message"].contains("does not fit schema id"),
        "{:?}",
        dead[0].headers
    );
    drained(&sqs, &name).await;
    worker.stop().await;
}

/// The distinct `detail.n` of the events in `records`, in order.
fn distinct_numbers(records: &[support::Consumed]) -> Vec<u64> {
    let mut numbers: Vec<u64> = records
        .iter()
        .map(|record| {
            serde_json::from_slice::<Value>(record.value.as_ref().unwrap()).unwrap()["detail"]["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    numbers
}

async fn queued_messages(sqs: &aws_sdk_sqs::Client, url: &str) -> usize {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    attributes
        .attributes()
        .unwrap()
        .values()
        .map(|count| count.parse::<usize>().unwrap())
        .sum()
}

/// With `dedupe` on the event ids, so that a message whose write failed must not be taken, when SQS delivers it
/// again, for a duplicate of itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_kafka_is_down_nothing_is_deleted_and_afterwards_everything_arrives() {
    let mut kafka = tokio::task::block_in_place(support::PrivateKafka::start);
    let topic = unique("source-outage");
    support::create_topic_with(kafka.client_config(), &topic, 1).await;
    let config = support::aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue_url = support::create_queue(&sqs, &unique("source-outage")).await;
    let send = |n: usize| {
        let body = json!({"id": format!("e-{n}"), "source": "custom", "detail-type": "t", "detail": {"n": n}});
        sqs.send_message()
            .queue_url(&queue_url)
            .message_body(body.to_string())
            .send()
    };
    let name = unique("outage");
    let connector = format!(
        "name: {name}\ntype: eventbridge-source\nconfig:\n  queue_url: {queue_url}\n  topic: {topic}\n  wait_time: 1s\n  visibility_timeout: 4s\n  producer_override:\n    message.timeout.ms: '6000'\ntransforms:\n  - dedupe: {{key: $.id, window: 10m}}\n"
    );
    let worker = RunningWorker::start(
        &support::worker_yaml_for_kafka(&kafka.bootstrap(), ""),
        &[("source.yaml", &connector)],
    );
    for n in 0..5 {
        send(n).await.unwrap();
    }
    let reader_config = kafka.client_config();
    let read = |count: usize| {
        let (config, topic) = (reader_config.clone(), topic.clone());
        tokio::task::spawn_blocking(move || support::consume_with(config, &topic, count, Duration::from_secs(90)))
    };
    assert_eq!(read(5).await.unwrap().len(), 5);
    support::wait_for("the first messages to be deleted", Duration::from_secs(30), || async {
        support::queue_is_empty(&sqs, &queue_url).await.then_some(())
    })
    .await;

    tokio::task::block_in_place(|| kafka.kill());
    for n in 5..15 {
        send(n).await.unwrap();
    }
    // Long enough for every write to time out (6s) and for messages to be received again after their visibility.
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(
        queued_messages(&sqs, &queue_url).await,
        10,
        "with Kafka down, no message is deleted"
    );
    let state = worker.state(&name).unwrap();
    assert_eq!(state.state, ebconnect::runtime::ConnectorState::Running, "{state:?}");

    tokio::task::block_in_place(|| kafka.resume());
    support::wait_for("the queue to be drained", Duration::from_secs(90), || async {
        support::queue_is_empty(&sqs, &queue_url).await.then_some(())
    })
    .await;
    let written: i64 = support::end_offsets_with(kafka.client_config(), &topic, 1)
        .values()
        .sum();
    let records = read(usize::try_from(written).unwrap()).await.unwrap();
    let numbers = distinct_numbers(&records);
    assert_eq!(
        numbers,
        (0..15).collect::<Vec<u64>>(),
        "every event arrives at least once"
    );
    worker.stop().await;
}

/// Sends `count` EventBridge events (detail `{"n": n}`) to the queue, ten to a request.
async fn fill(sqs: &aws_sdk_sqs::Client, queue_url: &str, count: usize) {
    for first in (0..count).step_by(10) {
        let entries = (first..(first + 10).min(count)).map(|n| {
            let event = json!({"id": format!("e-{n}"), "source": "custom", "detail-type": "t", "detail": {"n": n}});
            aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                .id(n.to_string())
                .message_body(event.to_string())
                .build()
                .unwrap()
        });
        let answer = sqs
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .unwrap();
        assert!(answer.failed().is_empty(), "{:?}", answer.failed());
    }
}

/// Messages are deleted only once Kafka acknowledged their record: a worker killed with messages received, records
/// waiting in its producer (a long linger keeps many there) and deletes not yet sent loses nothing. The queue is
/// ElasticMQ's (`aws.service_endpoints.sqs`), fast enough to be mid-stream at the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_no_message() {
    const MESSAGES: usize = 3_000;
    let sqs = support::elasticmq().await;
    let queue_url = support::create_queue(&sqs, &unique("source-kill")).await;
    fill(&sqs, &queue_url, MESSAGES).await;
    let topic = unique("source-kill");
    support::create_topic(&topic, 2).await;
    let name = unique("source-kill");
    let connector = format!(
        "name: {name}\ntype: eventbridge-source\nconfig:\n  queue_url: {queue_url}\n  topic: {topic}\n  pollers: 4\n  wait_time: 1s\n  visibility_timeout: 3s\n  producer_override:\n    linger.ms: '300'\n"
    );
    let worker = support::worker_yaml_with_sqs(&support::stack("ELASTICMQ_URL"));
    let config = support::ConfigDir::new(&worker, &[("source.yaml", &connector)]);
    let written = || support::end_offsets(&topic, 2).values().sum::<i64>();

    let mut first = support::spawn_worker(&config, "first.log");
    support::wait_for("a third of the messages in Kafka", Duration::from_secs(60), || async {
        (tokio::task::block_in_place(written) >= MESSAGES as i64 / 3).then_some(())
    })
    .await;
    support::signal(&first, "KILL");
    first.wait().unwrap();
    let before_restart = tokio::task::block_in_place(written);
    assert!(
        before_restart < MESSAGES as i64,
        "the kill came too late to test anything: {before_restart} records written"
    );

    let mut second = support::spawn_worker(&config, "second.log");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !support::queue_is_empty(&sqs, &queue_url).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the restarted worker did not drain the queue"
        );
        if let Some(status) = second.try_wait().unwrap() {
            panic!("the restarted worker exited with {status}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    support::terminate(&second);
    second.wait().unwrap();

    let total = tokio::task::block_in_place(written);
    let records = tokio::task::spawn_blocking({
        let topic = topic.clone();
        move || support::consume_all(&topic, usize::try_from(total).unwrap(), Duration::from_secs(60))
    })
    .await
    .unwrap();
    let numbers = distinct_numbers(&records);
    assert_eq!(
        numbers,
        (0..MESSAGES as u64).collect::<Vec<u64>>(),
        "every message reaches Kafka at least once ({before_restart} records before the kill, {total} in all)"
    );
}

/// SQS delivers at least once, and EventBridge may put one event twice: with `dedupe` on the event id, the copies
/// one worker receives within the window become one record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedupe_writes_one_record_per_event_id() {
    let config = support::aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue_url = support::create_queue(&sqs, &unique("source-dedupe")).await;
    let topic = unique("source-dedupe");
    support::create_topic(&topic, 1).await;
    fill(&sqs, &queue_url, 20).await;
    // Ten of the twenty again, as a redelivery would bring them.
    fill(&sqs, &queue_url, 10).await;
    let name = unique("dedupe");
    let connector = format!(
        "name: {name}\ntype: eventbridge-source\nconfig:\n  queue_url: {queue_url}\n  topic: {topic}\n  wait_time: 1s\ntransforms:\n  - dedupe: {{key: $.id, window: 10m}}\n"
    );
    let worker = RunningWorker::start(&worker_yaml(""), &[("source.yaml", &connector)]);
    support::wait_for("the queue to be drained", Duration::from_secs(60), || async {
        support::queue_is_empty(&sqs, &queue_url).await.then_some(())
    })
    .await;
    worker.stop().await;
    let written = support::end_offsets(&topic, 1)[&0];
    assert_eq!(written, 20, "one record per event id");
    let records = tokio::task::spawn_blocking(move || support::consume_all(&topic, 20, Duration::from_secs(30)))
        .await
        .unwrap();
    let ids: std::collections::BTreeSet<Vec<u8>> = records.into_iter().filter_map(|record| record.key).collect();
    assert_eq!(ids.len(), 20);
}
