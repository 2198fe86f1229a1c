//! topic-processor throughput and memory, exactly once against at least once on the same data in one sitting: a
//! topic pre-filled with JSON audit records (5% of ids duplicated), read by the release `ebconnect` binary as a
//! separate process through `dedupe` and `mask` into an output topic, once per processing mode. Reports records/s
//! (from the first record read until every record is read and the output's end offsets hold every distinct one;
//! exactly once, the last transaction's commit may still be under way, at most `commit_interval`), the worker's CPU
//! time and its peak RSS (VmHWM).
//!
//!     scripts/stack up && source <(scripts/stack env) && cargo bench --bench topic_processor
//!
//! `BENCH_RECORDS` (default 300000) sets the size.

use std::time::{Duration, Instant};

use rdkafka::producer::{BaseRecord, Producer};

mod support;

use support::{count, env};

fn prefill(topic: &str, records: usize) -> usize {
    let producer = support::bulk_producer();
    let mut distinct = 0;
    for n in 0..records {
        // Every twentieth record repeats the id of the record ten before it.
        let id = if n % 20 == 19 { n - 10 } else { n };
        distinct += usize::from(id == n);
        let value = format!(
            r#"{{"eventVersion":"1.08","eventID":"evt-{id:08}","eventSource":"s3.amazonaws.com","eventName":"GetObject","eventTime":"2026-01-01T10:00:00Z","userIdentity":{{"type":"IAMUser","principalId":"AIDA{:08}"}},"awsRegion":"us-east-1","sourceIPAddress":"203.0.113.7"}}"#,
            id % 5000
        );
        let key = format!("evt-{id:08}");
        support::send_waiting(
            &producer,
            BaseRecord::to(topic).key(key.as_str()).payload(value.as_bytes()),
        );
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    distinct
}

struct Figures {
    records_per_second: f64,
    cpu_seconds: f64,
    peak_rss: f64,
}

async fn run(input: &str, processing: &str, records: usize, distinct: usize) -> Figures {
    let name = format!("{input}-{}", processing.replace('_', "-"));
    let output = format!("{name}-out");
    let _run_output = support::create_topic(&output, 4).await;
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
            "name: {name}\ntype: topic-processor\nconfig:\n  topics: [{input}]\n  output: {{topic: {output}}}\n  processing: {processing}\ntransforms:\n  - dedupe: {{key: $.eventID, window: 10m}}\n  - mask: {{paths: [$.userIdentity.principalId], keep_last: 2}}\n"
        ),
    );
    let client = reqwest::Client::new();
    let sample = format!("ebconnect_sink_record_read_total{{connector=\"{name}\"}}");
    let read = || support::metric(&client, rest, &sample);
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut first: Option<Instant> = None;
    let (cpu_before, _) = worker.usage();
    loop {
        assert!(
            Instant::now() < deadline,
            "the worker did not process every record in time"
        );
        worker.assert_running();
        if first.is_none() && read().await.unwrap_or(0.0) > 0.0 {
            first = Some(Instant::now());
        }
        // Output records and commit markers: the end offsets pass the distinct records once all are committed.
        if first.is_some()
            && support::records_in(&output) >= distinct as i64
            && read().await.unwrap_or(0.0) >= records as f64
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = first.map_or(0.0, |first| first.elapsed().as_secs_f64());
    let (cpu_after, peak_rss) = worker.usage();
    worker.stop();
    Figures {
        records_per_second: records as f64 / seconds,
        cpu_seconds: cpu_after - cpu_before,
        peak_rss,
    }
}

#[tokio::main]
async fn main() {
    let records = count("BENCH_RECORDS", 300_000);
    let input = format!("bench-processor-{}", std::process::id());
    let _run_input = support::create_topic(&input, 4).await;
    let started = Instant::now();
    let fill_topic = input.clone();
    let distinct = tokio::task::spawn_blocking(move || prefill(&fill_topic, records))
        .await
        .unwrap();
    eprintln!(
        "prefilled {records} records ({distinct} distinct ids) in {:?}",
        started.elapsed()
    );
    println!("topic_processor: {records} JSON records, {distinct} distinct ids, dedupe + mask, 4 partitions");
    for processing in ["exactly_once", "at_least_once"] {
        let figures = run(&input, processing, records, distinct).await;
        println!(
            "  {processing:<14} {:>8.0} records/s  CPU {:>5.2} s ({:.1} µs/record)  peak RSS {:.1} MiB",
            figures.records_per_second,
            figures.cpu_seconds,
            figures.cpu_seconds * 1e6 / records as f64,
            figures.peak_rss
        );
    }
}
