//! threshold-alert throughput and memory: a topic pre-filled with JSON audit records from 100,000 distinct
//! principals, all inside one open window (so every group is held in memory at once), read by the release
//! `ebconnect` binary as a separate process. Reports records/s (from the connector's own read counter), the
//! worker's CPU time and its peak RSS (VmHWM).
//!
//!     scripts/stack up && source <(scripts/stack env) && cargo bench --bench threshold_alert
//!
//! `BENCH_RECORDS` (default 300000) and `BENCH_GROUPS` (default 100000) set the sizes.

use std::time::{Duration, Instant};

use rdkafka::producer::{BaseRecord, Producer};

mod support;

use support::{count, env};

fn prefill(topic: &str, records: usize, groups: usize) {
    let producer = support::bulk_producer();
    for n in 0..records {
        let principal = format!("AIDA{:08}", n % groups);
        // Ten minutes of event time, inside one one-hour window.
        let second = (n * 600) / records;
        let value = format!(
            r#"{{"eventVersion":"1.08","eventSource":"s3.amazonaws.com","eventName":"GetObject","eventTime":"2026-01-01T10:{:02}:{:02}Z","userIdentity":{{"type":"IAMUser","principalId":"{principal}"}},"awsRegion":"us-east-1","sourceIPAddress":"203.0.113.7"}}"#,
            second / 60,
            second % 60
        );
        support::send_waiting(
            &producer,
            BaseRecord::to(topic).key(principal.as_str()).payload(value.as_bytes()),
        );
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

#[tokio::main]
async fn main() {
    let records = count("BENCH_RECORDS", 300_000);
    let groups = count("BENCH_GROUPS", 100_000);
    let run = format!("bench-threshold-{}", std::process::id());
    let topic = format!("{run}-audit");
    let _run_topic = support::create_topic(&topic, 4).await;
    let started = Instant::now();
    let fill_topic = topic.clone();
    tokio::task::spawn_blocking(move || prefill(&fill_topic, records, groups))
        .await
        .unwrap();
    eprintln!(
        "prefilled {records} records of {groups} principals in {:?}",
        started.elapsed()
    );

    let rest = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut worker = support::WorkerProcess::start(
        &format!(
            "kafka:\n  bootstrap_servers: {}\nrest:\n  listen: {rest}\nlog_format: json\n",
            env("KAFKA_BOOTSTRAP_SERVERS")
        ),
        &format!(
            "name: {run}\ntype: threshold-alert\nconfig:\n  topics: [{topic}]\n  filter: {{eventSource: [s3.amazonaws.com]}}\n  event_time: {{json_path: $.eventTime}}\n  window: 1h\n  group_by:\n    eventName: $.eventName\n    eventSource: $.eventSource\n    principalId: $.userIdentity.principalId\n  threshold: {{count: 1000000}}\n  idle_timeout: 1h\n  output: {{topic: {run}-flagged}}\n"
        ),
    );
    let client = reqwest::Client::new();
    let sample = format!("ebconnect_sink_record_read_total{{connector=\"{run}\"}}");
    let read = || support::metric(&client, rest, &sample);
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut first: Option<Instant> = None;
    let (cpu_before, _) = worker.usage();
    loop {
        assert!(
            Instant::now() < deadline,
            "the worker did not read every record in time"
        );
        worker.assert_running();
        let done = read().await.unwrap_or(0.0);
        if done > 0.0 && first.is_none() {
            first = Some(Instant::now());
        }
        if done >= records as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = first.map_or(0.0, |first| first.elapsed().as_secs_f64());
    let (cpu_after, peak_rss) = worker.usage();
    worker.stop();
    println!("threshold_alert: {records} JSON records, {groups} distinct groups, all in one open window");
    println!("  records/s:        {:.0}", records as f64 / seconds);
    println!("  read time:        {seconds:.2} s (first to last record read)");
    println!("  worker CPU:       {:.2} s user+system", cpu_after - cpu_before);
    println!("  worker peak RSS:  {peak_rss:.1} MiB (with {groups} open aggregates)");
}
