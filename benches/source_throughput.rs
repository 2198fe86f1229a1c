//! Throughput into Kafka through the two routes in, with the release `ebconnect` binary as a separate process
//! against the local stack:
//!
//! - the `rest-produce-receiver`: real CloudTrail events posted one record per request (64 concurrent clients, as
//!   API destinations send them), as `records:batch` requests of 100 entries (8 concurrent clients), and as one
//!   streaming request;
//! - the `eventbridge-source`: an SQS queue pre-filled in ElasticMQ, drained by the connector with 1, 4 and 16
//!   pollers.
//!
//! Reports records/s (every record acknowledged by Kafka), the worker's CPU time and peak RSS (VmHWM).
//!
//!     scripts/stack up && source <(scripts/stack env) && cargo bench --bench source_throughput
//!
//! `BENCH_RECORDS` (default 50000) sets the records per receiver mode, `BENCH_MESSAGES` (default 20000) the SQS
//! messages.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

mod support;

use support::{count, env, WorkerProcess};

/// The fixture's CloudTrail records as EventBridge events, the shape an API destination or a rule delivers.
fn events() -> Vec<Value> {
    include_str!("../tests/fixtures/cloudtrail/invictus_aws_dataset.jsonl")
        .lines()
        .enumerate()
        .map(|(n, line)| {
            let detail: Value = serde_json::from_str(line).unwrap();
            json!({
                "version": "0", "id": format!("bench-{n}"), "detail-type": "AWS API Call via CloudTrail",
                "source": "aws.cloudtrail", "account": "123456789012", "time": detail["eventTime"],
                "region": "us-east-1", "resources": [], "detail": detail,
            })
        })
        .collect()
}

/// The worker on the local stack, with one connector.
fn start_worker(connector: &str) -> WorkerProcess {
    WorkerProcess::start(
        &format!(
            "kafka:\n  bootstrap_servers: {}\nschema_registry:\n  url: {}\naws:\n  region: {}\n  endpoint_url: {}\nrest:\n  listen: 127.0.0.1:0\nlog_format: json\n",
            env("KAFKA_BOOTSTRAP_SERVERS"),
            env("SCHEMA_REGISTRY_URL"),
            env("AWS_REGION"),
            env("AWS_ENDPOINT_URL"),
        ),
        connector,
    )
}

fn report(what: &str, records: usize, seconds: f64, cpu: f64) {
    println!(
        "  {what:<28} {:>8.0} records/s   ({records} in {seconds:.2} s, worker CPU {cpu:.2} s = {:.0}% of a core)",
        records as f64 / seconds,
        100.0 * cpu / seconds
    );
}

async fn receiver(events: &[Value], records: usize) {
    let run = format!("bench-receiver-{}", std::process::id());
    let topic = format!("{run}-audit");
    let _run_topic = support::create_topic(&topic, 4).await;
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut worker = start_worker(&format!(
        "name: {run}\ntype: rest-produce-receiver\nconfig:\n  listen: {address}\n  topics: [{topic}]\n"
    ));
    let url = format!("http://{address}/kafka/v3/clusters/ebconnect/topics/{topic}/records");
    let client = reqwest::Client::new();
    while client.post(&url).send().await.is_err() {
        worker.assert_running();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bodies: Arc<Vec<String>> = Arc::new(
        events
            .iter()
            .map(|event| json!({"value": {"type": "JSON", "data": event}}).to_string())
            .collect(),
    );
    let mean = bodies.iter().map(String::len).sum::<usize>() / bodies.len();
    println!("source_throughput: rest-produce-receiver, CloudTrail events of {mean} bytes (mean) as JSON records");

    // One record per request, as API destinations send.
    let next = Arc::new(AtomicUsize::new(0));
    let (cpu_before, _) = worker.usage();
    let started = Instant::now();
    let clients: Vec<_> = (0..64)
        .map(|_| {
            let (client, url, bodies, next) = (client.clone(), url.clone(), bodies.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= records {
                        return;
                    }
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(bodies[n % bodies.len()].clone())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status().as_u16(), 200);
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    let (cpu_after, _) = worker.usage();
    report("single record per request", records, seconds, cpu_after - cpu_before);

    // records:batch, 100 entries per request.
    let next = Arc::new(AtomicUsize::new(0));
    let batch_url = format!("{url}:batch");
    let started = Instant::now();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, bodies, next) = (client.clone(), batch_url.clone(), bodies.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let first = next.fetch_add(100, Ordering::Relaxed);
                    if first >= records {
                        return;
                    }
                    let entries: Vec<String> = (first..(first + 100).min(records))
                        .map(|n| {
                            let body = &bodies[n % bodies.len()];
                            format!("{{\"id\":\"{n}\",{}", &body[1..])
                        })
                        .collect();
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(format!("{{\"entries\":[{}]}}", entries.join(",")))
                        .send()
                        .await
                        .unwrap();
                    let answer: Value = response.json().await.unwrap();
                    assert_eq!(answer["failures"], json!([]));
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    let (cpu_after_batch, _) = worker.usage();
    report("records:batch of 100", records, seconds, cpu_after_batch - cpu_after);

    // One streaming request.
    let (mut sender, chunks) = futures::channel::mpsc::channel::<Result<String, std::io::Error>>(256);
    let feeder = {
        let bodies = bodies.clone();
        tokio::spawn(async move {
            use futures::SinkExt;
            for n in 0..records {
                sender.send(Ok(bodies[n % bodies.len()].clone())).await.unwrap();
            }
        })
    };
    let started = Instant::now();
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    feeder.await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let delivered = text.matches("\"error_code\":200").count();
    assert_eq!(delivered, records);
    let (cpu_after_stream, rss) = worker.usage();
    report(
        "one streaming request",
        records,
        seconds,
        cpu_after_stream - cpu_after_batch,
    );
    println!("  worker peak RSS: {rss:.1} MiB");
    worker.stop();
    assert_eq!(support::records_in(&topic), 3 * records as i64);
}

/// Fills a fresh ElasticMQ queue with `messages` events, then starts the source with `pollers` on it and waits until
/// Kafka holds every record.
async fn sqs(sqs: &aws_sdk_sqs::Client, events: &[Value], messages: usize, pollers: usize) {
    let run = format!("bench-source-{}-{pollers}", std::process::id());
    let topic = format!("{run}-audit");
    let _run_topic = support::create_topic(&topic, 4).await;
    let queue_url = sqs
        .create_queue()
        .queue_name(&run)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let started = Instant::now();
    let batches: Vec<_> = (0..messages)
        .step_by(10)
        .map(|first| {
            let entries = (first..(first + 10).min(messages)).map(|n| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(n.to_string())
                    .message_body(events[n % events.len()].to_string())
                    .build()
                    .unwrap()
            });
            sqs.send_message_batch()
                .queue_url(&queue_url)
                .set_entries(Some(entries.collect()))
                .send()
        })
        .collect();
    let sent = futures::stream::iter(batches).buffer_unordered(16);
    futures::pin_mut!(sent);
    while let Some(answer) = sent.next().await {
        assert!(answer.unwrap().failed().is_empty());
    }
    println!(
        "source_throughput: eventbridge-source, {messages} messages pre-filled in ElasticMQ in {:.1} s, {pollers} pollers",
        started.elapsed().as_secs_f64()
    );
    let mut worker = WorkerProcess::start(
        &format!(
            "kafka:\n  bootstrap_servers: {}\naws:\n  region: {}\n  service_endpoints:\n    sqs: {}\nrest:\n  listen: 127.0.0.1:0\nlog_format: json\n",
            env("KAFKA_BOOTSTRAP_SERVERS"),
            env("AWS_REGION"),
            env("ELASTICMQ_URL"),
        ),
        &format!(
            "name: {run}\ntype: eventbridge-source\nconfig:\n  queue_url: {queue_url}\n  topic: {topic}\n  key: $.detail.userIdentity.principalId\n  pollers: {pollers}\n  wait_time: 1s\n"
        ),
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    loop {
        let topic = topic.clone();
        let written = tokio::task::spawn_blocking(move || support::records_in(&topic))
            .await
            .unwrap();
        if written >= messages as i64 {
            break;
        }
        assert!(Instant::now() < deadline, "the source did not drain the queue in time");
        worker.assert_running();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (cpu, rss) = worker.usage();
    report(&format!("SQS -> Kafka ({pollers} pollers)"), messages, seconds, cpu);
    println!("  worker peak RSS: {rss:.1} MiB");
    worker.stop();
}

#[tokio::main]
async fn main() {
    let events = events();
    receiver(&events, count("BENCH_RECORDS", 50_000)).await;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(env("ELASTICMQ_URL"))
        .load()
        .await;
    let client = aws_sdk_sqs::Client::new(&config);
    for pollers in [1, 4, 16] {
        sqs(&client, &events, count("BENCH_MESSAGES", 20_000), pollers).await;
    }
}
