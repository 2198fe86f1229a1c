//! Shared by the end-to-end benchmarks: the stack's addresses, counts from the environment, a topic, and a worker
//! process's CPU time and peak memory.
#![allow(dead_code)] // Each benchmark uses its own part of this module.

use std::time::Duration;

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run `source <(scripts/stack env)` first"))
}

/// A count from the environment, or `default`.
pub fn count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|n| n.parse().ok()).unwrap_or(default)
}

fn admin() -> rdkafka::error::KafkaResult<rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>> {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", env("KAFKA_BOOTSTRAP_SERVERS"))
        .create()
}

fn admin_options() -> rdkafka::admin::AdminOptions {
    rdkafka::admin::AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)))
}

/// Creates a topic for this run; it is deleted when the returned guard is dropped.
pub async fn create_topic(topic: &str, partitions: i32) -> RunTopic {
    admin()
        .unwrap()
        .create_topics(
            &[rdkafka::admin::NewTopic::new(
                topic,
                partitions,
                rdkafka::admin::TopicReplication::Fixed(1),
            )],
            &admin_options(),
        )
        .await
        .unwrap();
    RunTopic(topic.to_owned())
}

/// A topic a run made, deleted when this is dropped, also when the run panics: each run fills topics of its own (a
/// million sink records are about 800 MB), which would otherwise pile up in the stack's broker until its disk is full.
#[must_use = "the topic is deleted as soon as this is dropped"]
pub struct RunTopic(String);

impl Drop for RunTopic {
    fn drop(&mut self) {
        // No runtime is needed: the admin client's answer comes over a channel from a thread of its own. A failure
        // is only reported, since this may run while a panic unwinds.
        let deleted = admin().and_then(|admin| {
            futures::executor::block_on(admin.delete_topics(&[&self.0], &admin_options()))?
                .into_iter()
                .try_for_each(|result| {
                    result
                        .map(drop)
                        .map_err(|(_, code)| rdkafka::error::KafkaError::AdminOp(code))
                })
        });
        if let Err(error) = deleted {
            eprintln!("could not delete the run's topic {}: {error}", self.0);
        }
    }
}

/// A producer for pre-filling topics fast: large batches, a deep queue.
pub fn bulk_producer() -> rdkafka::producer::BaseProducer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", env("KAFKA_BOOTSTRAP_SERVERS"))
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "500000")
        .create()
        .unwrap()
}

/// Queues one record, waiting while the producer's queue is full.
pub fn send_waiting(
    producer: &rdkafka::producer::BaseProducer,
    mut record: rdkafka::producer::BaseRecord<'_, str, [u8]>,
) {
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, returned)) => {
                record = returned;
                producer.poll(Duration::from_millis(10));
            }
        }
    }
}

/// (user + system CPU seconds, peak RSS in MiB) of a process, from /proc.
pub fn process_usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm_kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    (ticks as f64 / 100.0, hwm_kib / 1024.0)
}

/// The worker binary the benchmarks run: `BENCH_WORKER_BINARY` (say a `dist` build, or two builds compared in one
/// sitting), else the release `ebconnect` built with the benchmark.
pub fn worker_binary() -> std::ffi::OsString {
    std::env::var_os("BENCH_WORKER_BINARY").unwrap_or_else(|| env!("CARGO_BIN_EXE_ebconnect").into())
}

/// The worker binary (`worker_binary`) as its own process, on a worker file and one connector file of its own.
pub struct WorkerProcess {
    pub child: std::process::Child,
    dir: tempfile::TempDir,
}

impl WorkerProcess {
    pub fn start(worker: &str, connector: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("connectors")).unwrap();
        std::fs::write(dir.path().join("worker.yaml"), worker).unwrap();
        std::fs::write(dir.path().join("connectors/bench.yaml"), connector).unwrap();
        let child = std::process::Command::new(worker_binary())
            .args(["run", "--worker"])
            .arg(dir.path().join("worker.yaml"))
            .arg("--connectors")
            .arg(dir.path().join("connectors"))
            .stderr(std::fs::File::create(dir.path().join("worker.log")).unwrap())
            .spawn()
            .unwrap();
        Self { child, dir }
    }

    /// (user + system CPU seconds, peak RSS in MiB).
    pub fn usage(&self) -> (f64, f64) {
        process_usage(self.child.id())
    }

    /// Fails the benchmark, with the worker's log, if the worker has exited or a connector has failed (a worker
    /// goes on running when its connector fails, say on a setting librdkafka refuses, and the benchmark would wait
    /// out its deadline).
    pub fn assert_running(&mut self) {
        let log = || std::fs::read_to_string(self.dir.path().join("worker.log")).unwrap_or_default();
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the worker exited with {status}: {}", log());
        }
        let log = log();
        if log.contains("connector failed") {
            panic!("a connector failed in the worker: {log}");
        }
    }

    /// SIGTERM, then waits for the orderly stop.
    pub fn stop(mut self) {
        std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap();
    }
}

/// A benchmark that fails leaves no worker behind (after `stop`, the child has exited and this does nothing).
impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Records in `topic`, over all its partitions (0 for a topic that was never created).
pub fn records_in(topic: &str) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", env("KAFKA_BOOTSTRAP_SERVERS"))
        .create()
        .unwrap();
    let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)) else {
        return 0;
    };
    metadata
        .topics()
        .iter()
        .flat_map(|found| found.partitions())
        .map(|partition| {
            consumer
                .fetch_watermarks(topic, partition.id(), Duration::from_secs(10))
                .unwrap()
                .1
        })
        .sum()
}

/// The value of one sample (`name{labels}`) of the worker's `/metrics` at `rest`; `None` until it is there.
pub async fn metric(client: &reqwest::Client, rest: std::net::SocketAddr, sample: &str) -> Option<f64> {
    let text = client
        .get(format!("http://{rest}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse::<f64>().ok())
}
