//! Several workers sharing one account's PutEvents quota: three release `ebconnect` processes run the same sink
//! connector (one consumer group) against an endpoint that models the account quota as a token bucket shared by all
//! clients (`tests/support/fault_server.rs`), answering after 20 to 60 ms. Nothing tells a worker what the others
//! send; each finds its share from the throttles and latencies it sees.
//!
//! Reports, after the first 10 s: the requests/s taken against the quota, the share of requests throttled, each
//! worker's entries/s, and over the whole run the records lost, duplicated and dead-lettered.
//!
//!     scripts/stack up && source <(scripts/stack env) && cargo bench --bench quota_sharing
//!
//! `BENCH_RECORDS` (default 600000) sets the records, `BENCH_QUOTA` (default 2000) the quota in requests/s.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, Producer};

// The tests' endpoint; this benchmark uses its quota and latency, not its other faults.
#[allow(dead_code)]
#[path = "../tests/support/fault_server.rs"]
mod fault_server;
mod support;

use fault_server::{FaultServer, Faults};
use support::{count, env, WorkerProcess};

const WORKERS: usize = 3;
const PARTITIONS: i32 = 6;
/// Measured from here on: the first seconds are the workers' slow start.
const SETTLE: Duration = Duration::from_secs(10);

fn free_address() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// What one worker reports having delivered (`ebconnect_sink_record_send_total`).
async fn delivered(address: std::net::SocketAddr, connector: &str) -> u64 {
    let Ok(response) = reqwest::get(format!("http://{address}/metrics")).await else {
        return 0;
    };
    let text = response.text().await.unwrap_or_default();
    let series = format!("ebconnect_sink_record_send_total{{connector=\"{connector}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

async fn wait_for_group(group: &str, members: usize, workers: &mut [WorkerProcess]) {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", env("KAFKA_BOOTSTRAP_SERVERS"))
        .create()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = consumer.fetch_group_list(Some(group), Duration::from_secs(5)).unwrap();
        if let Some(found) = list.groups().first() {
            if found.state() == "Stable" && found.members().len() == members {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the consumer group did not settle");
        for worker in workers.iter_mut() {
            worker.assert_running();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn prefill(topic: &str, records: usize) {
    let producer = support::bulk_producer();
    for n in 0..records {
        let (key, value) = (n.to_string(), format!("{{\"n\":{n}}}"));
        support::send_waiting(
            &producer,
            BaseRecord::to(topic)
                .key(key.as_str())
                .partition((n % PARTITIONS as usize) as i32)
                .payload(value.as_bytes()),
        );
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

#[tokio::main]
async fn main() {
    let records = count("BENCH_RECORDS", 600_000);
    let quota = count("BENCH_QUOTA", 2_000) as f64;
    let server = FaultServer::start(Faults {
        quota_per_second: quota,
        latency: Duration::from_millis(20),
        latency_max: Duration::from_millis(60),
        ..Faults::default()
    })
    .await;
    let run = format!("bench-quota-{}", std::process::id());
    let topic = format!("{run}-events");
    let _run_topic = support::create_topic(&topic, PARTITIONS).await;
    let connector = format!(
        "name: {run}\ntype: eventbridge-sink\nconfig:\n  topics: [{topic}]\n  event_bus: bench\n  source: ebconnect.bench\n  detail: value\n  batch:\n    linger: 100ms\nerrors:\n  tolerance: all\n  deadletterqueue:\n    topic: {run}-dlq\n"
    );
    let addresses: Vec<_> = (0..WORKERS).map(|_| free_address()).collect();
    let mut workers: Vec<WorkerProcess> = addresses
        .iter()
        .map(|address| {
            WorkerProcess::start(
                &format!(
                    "kafka:\n  bootstrap_servers: {}\naws:\n  region: us-east-1\n  endpoint_url: {}\nrest:\n  listen: {address}\nlog_format: json\n",
                    env("KAFKA_BOOTSTRAP_SERVERS"),
                    server.url
                ),
                &connector,
            )
        })
        .collect();
    // Records come once the group has settled, so that no partition moves with records in flight.
    wait_for_group(&format!("connect-{run}"), WORKERS, &mut workers).await;
    let topic_for_fill = topic.clone();
    tokio::task::spawn_blocking(move || prefill(&topic_for_fill, records))
        .await
        .unwrap();
    let started = Instant::now();
    println!(
        "quota_sharing: {records} records, {WORKERS} workers, one connector, a quota of {quota:.0} requests/s answered after 20-60 ms"
    );

    let mut at_settle: Option<(Instant, usize, usize, Vec<u64>)> = None;
    let deadline = started + Duration::from_secs(900);
    loop {
        let (acknowledged, taken, throttled) = {
            let observed = server.observed.lock().unwrap();
            (
                observed.acknowledged.len(),
                observed.requests,
                observed.quota_throttled.len(),
            )
        };
        if at_settle.is_none() && started.elapsed() >= SETTLE {
            let mut per_worker = Vec::new();
            for address in &addresses {
                per_worker.push(delivered(*address, &run).await);
            }
            at_settle = Some((Instant::now(), taken, throttled, per_worker));
        }
        if acknowledged >= records {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the workers did not deliver every record in time"
        );
        for worker in &mut workers {
            worker.assert_running();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (settled_at, taken_before, throttled_before, delivered_before) =
        at_settle.expect("the run ended within its first seconds: raise BENCH_RECORDS");
    // The end is the last request answered, not this loop's next turn.
    let (taken, throttled, last_arrival, duplicates, sends) = {
        let observed = server.observed.lock().unwrap();
        let last = observed.arrivals.last().map(|(at, _)| *at).unwrap_or_else(Instant::now);
        let duplicates: usize = observed.acknowledged.values().map(|count| count - 1).sum();
        (
            observed.requests,
            observed.quota_throttled.len(),
            last,
            duplicates,
            observed.entries_sent,
        )
    };
    let mut delivered_after = Vec::new();
    for address in &addresses {
        delivered_after.push(delivered(*address, &run).await);
    }
    let seconds = last_arrival.duration_since(settled_at).as_secs_f64();
    let taken_rate = (taken - taken_before) as f64 / seconds;
    let throttled_share =
        (throttled - throttled_before) as f64 / ((taken - taken_before) + (throttled - throttled_before)) as f64;
    let rates: Vec<f64> = delivered_after
        .iter()
        .zip(&delivered_before)
        .map(|(after, before)| (after - before) as f64 / seconds)
        .collect();
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    let spread = rates.iter().map(|rate| (rate / mean - 1.0).abs()).fold(0.0, f64::max);
    let dead_lettered = support::records_in(&format!("{run}-dlq"));
    for worker in workers {
        worker.stop();
    }
    println!(
        "  after the first {} s, over {seconds:.1} s: {taken_rate:.0} requests/s taken ({:.1}% of the quota), {:.2}% of requests throttled",
        SETTLE.as_secs(),
        100.0 * taken_rate / quota,
        100.0 * throttled_share
    );
    let shown: Vec<String> = rates.iter().map(|rate| format!("{rate:.0}")).collect();
    println!(
        "  entries/s per worker: {} (largest gap from the mean: {:.1}%)",
        shown.join(", "),
        100.0 * spread
    );
    let acknowledged = server.observed.lock().unwrap().acknowledged.len();
    println!(
        "  {acknowledged} of {records} records delivered ({} lost), {duplicates} delivered twice, {sends} entries sent, {dead_lettered} dead-lettered",
        records - acknowledged.min(records)
    );
}
