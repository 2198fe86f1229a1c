//! Shared by the integration tests: the local stack's addresses, Kafka and AWS plumbing, an in-process worker.
//! Every test needs `scripts/stack up` and the variables of `scripts/stack env` (as `make test` provides); a test
//! that finds them missing fails rather than skips.
#![allow(dead_code)] // tests/msk_iam.rs, a binary of its own, uses a part of this module.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;

pub fn stack(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start the stack with `scripts/stack up` and `eval \"$(scripts/stack env)\"`, or run `make test`")
    })
}

/// A name no other test or run uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000_000)
}

pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn kafka_config() -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", stack("KAFKA_BOOTSTRAP_SERVERS"));
    config
}

pub async fn create_topic(topic: &str, partitions: i32) {
    create_topic_with(kafka_config(), topic, partitions).await;
}

pub async fn create_topic_with(config: ClientConfig, topic: &str, partitions: i32) {
    create_topic_configured(config, topic, partitions, &[]).await;
}

/// A topic with topic-level settings such as `max.message.bytes`.
pub async fn create_topic_configured(config: ClientConfig, topic: &str, partitions: i32, settings: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = config.create().unwrap();
    let mut new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (key, value) in settings {
        new_topic = new_topic.set(key, value);
    }
    let results = admin
        .create_topics(
            &[new_topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    for result in results {
        result.unwrap();
    }
}

pub fn producer() -> FutureProducer {
    kafka_config()
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap()
}

pub async fn produce(
    producer: &FutureProducer,
    topic: &str,
    partition: Option<i32>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&str, &[u8])],
) -> (i32, i64) {
    let mut owned = OwnedHeaders::new();
    for (name, value) in headers {
        owned = owned.insert(Header {
            key: name,
            value: Some(*value),
        });
    }
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(owned);
    if let Some(partition) = partition {
        record = record.partition(partition);
    }
    if let Some(key) = key {
        record = record.key(key);
    }
    if let Some(value) = value {
        record = record.payload(value);
    }
    let delivery = producer.send(record, Duration::from_secs(10)).await.unwrap();
    (delivery.partition, delivery.offset)
}

/// A record read back from Kafka.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: BTreeMap<String, String>,
}

/// Reads `topic` from the beginning until `count` records arrived.
/// Checks that `letter` is `original` cut to fit a dead-letter topic of Kafka's default `max.message.bytes`: the
/// start of its value, and the header giving its full size.
pub fn assert_cut_to_fit(letter: &Consumed, original: &[u8]) {
    assert_eq!(
        letter.headers[ebconnect::dead_letter::TRUNCATED_HEADER],
        original.len().to_string()
    );
    let value = letter.value.as_deref().unwrap_or_default();
    assert!(
        value.len() < 1_048_588 && value.len() > 1_000_000,
        "{} bytes",
        value.len()
    );
    assert!(original.starts_with(value));
}

pub fn consume_all(topic: &str, count: usize, timeout: Duration) -> Vec<Consumed> {
    consume_with(kafka_config(), topic, count, timeout)
}

pub fn consume_with(mut config: ClientConfig, topic: &str, count: usize, timeout: Duration) -> Vec<Consumed> {
    let consumer: BaseConsumer = config
        .set("group.id", unique("test-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + timeout;
    let mut records = Vec::new();
    while records.len() < count {
        assert!(
            Instant::now() < deadline,
            "read {} of {count} records from {topic} in {timeout:?}",
            records.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        // A topic that does not exist yet (a dead-letter topic before its first record) reports an error here;
        // keep polling until the deadline.
        let Ok(message) = message else {
            continue;
        };
        let headers = message
            .headers()
            .map(|headers| {
                use rdkafka::message::Headers;
                headers
                    .iter()
                    .map(|header| {
                        (
                            header.key.to_owned(),
                            String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        records.push(Consumed {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers,
        });
    }
    records
}

/// The values of `topic` as a `read_committed` confluent-kafka consumer sees them, read to the end.
pub async fn read_committed(topic: &str) -> Vec<Value> {
    let output = stack_python("consume_committed.py", &[topic]).await;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect()
}

/// Runs `tests/support/SCRIPT` with the stack's Python (it has confluent-kafka and its Schema Registry clients) and
/// `args`; fails the test, with what the script printed, if it fails.
pub async fn stack_python(script: &str, args: &[&str]) -> std::process::Output {
    let path = format!("{}/tests/support/{script}", env!("CARGO_MANIFEST_DIR"));
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(stack("EBCONNECT_STACK_PYTHON"))
            .arg(path)
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{script}: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    output
}

/// Creates an SQS queue named `name`; returns its URL.
pub async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

/// The group's committed offset for each partition of `topic` (partitions without a commit are left out).
pub fn committed_offsets(group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = kafka_config().set("group.id", group).create().unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    consumer
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .filter_map(|element| match element.offset() {
            Offset::Offset(offset) => Some((element.partition(), offset)),
            _ => None,
        })
        .collect()
}

pub fn end_offsets(topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    end_offsets_with(kafka_config(), topic, partitions)
}

pub fn end_offsets_with(config: ClientConfig, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = config.create().unwrap();
    (0..partitions)
        .map(|partition| {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .unwrap();
            (partition, high)
        })
        .collect()
}

pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config_at(&stack("AWS_ENDPOINT_URL")).await
}

/// The SDK configuration for the stack's region, against `endpoint`.
async fn aws_config_at(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(stack("AWS_REGION")))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// An SQS client of the stack's ElasticMQ, the SQS server that keeps up with a connector.
pub async fn elasticmq() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&aws_config_at(&stack("ELASTICMQ_URL")).await)
}

/// A bus in the emulator whose events matching `pattern` land in a fresh SQS queue.
pub struct BusCapture {
    pub bus: String,
    pub queue_url: String,
    pub sqs: aws_sdk_sqs::Client,
    pub events: aws_sdk_eventbridge::Client,
}

impl BusCapture {
    pub async fn new(prefix: &str, pattern: &Value) -> Self {
        let config = aws_config().await;
        let events = aws_sdk_eventbridge::Client::new(&config);
        let sqs = aws_sdk_sqs::Client::new(&config);
        let bus = unique(prefix);
        events.create_event_bus().name(&bus).send().await.unwrap();
        let queue_url = create_queue(&sqs, &unique(prefix)).await;
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()
            .remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .unwrap();
        let rule = unique("rule");
        events
            .put_rule()
            .name(&rule)
            .event_bus_name(&bus)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .unwrap();
        events
            .put_targets()
            .rule(&rule)
            .event_bus_name(&bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("capture")
                    .arn(queue_arn)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        Self {
            bus,
            queue_url,
            sqs,
            events,
        }
    }

    /// Receives (and deletes) events until `count` arrived; fails after `timeout`.
    pub async fn receive(&self, count: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut events = Vec::new();
        while events.len() < count {
            assert!(
                Instant::now() < deadline,
                "received {} of {count} events in {timeout:?}",
                events.len()
            );
            events.extend(self.poll_once().await);
        }
        events
    }

    /// One long poll: whatever arrives within a second (deleted once read).
    pub async fn poll_once(&self) -> Vec<Value> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let mut events = Vec::new();
        for message in received.messages() {
            events.push(serde_json::from_str(message.body().unwrap()).unwrap());
            self.sqs
                .delete_message()
                .queue_url(&self.queue_url)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        events
    }

    /// Asserts that nothing more arrives within `quiet`.
    pub async fn assert_no_more(&self, quiet: Duration) {
        let deadline = Instant::now() + quiet;
        while Instant::now() < deadline {
            let events = self.poll_once().await;
            assert!(events.is_empty(), "unexpected events: {events:?}");
        }
    }
}

/// True when the queue holds no message, visible or in flight.
pub async fn queue_is_empty(sqs: &aws_sdk_sqs::Client, url: &str) -> bool {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let count = |name: aws_sdk_sqs::types::QueueAttributeName| attributes[&name].parse::<u64>().unwrap();
    count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages) == 0
        && count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible) == 0
}

/// The worker configuration for the local stack, plus `extra` YAML lines; `rest:` comes last, so indented lines
/// add to it.
pub fn worker_yaml(extra: &str) -> String {
    worker_yaml_for_kafka(&stack("KAFKA_BOOTSTRAP_SERVERS"), extra)
}

/// `worker_yaml` for another Kafka cluster.
pub fn worker_yaml_for_kafka(bootstrap_servers: &str, extra: &str) -> String {
    format!(
                "kafka:\n  bootstrap_servers: {}\nschema_registry:\n  url: {}\naws:\n  region: {}\n  endpoint_url: {}\nshutdown_timeout: 20s\nreload_interval: 500ms\nrestart:\n  initial_backoff: 100ms\n  max_backoff: 1s\n  max_restarts: 3\nrest:\n  listen: {}\n{extra}",
                bootstrap_servers,
        stack("SCHEMA_REGISTRY_URL"),
        stack("AWS_REGION"),
                stack("AWS_ENDPOINT_URL"),
        rest_address(),
    )
}

/// An address for a worker's REST API: a port that was free a moment ago, so that tests running side by side do not
/// collide on Kafka Connect's 8083.
pub fn rest_address() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Produces `count` records whose values are `{"n": <n>}`, with n counting from 0: queued at once (the idempotent
/// producer keeps their order), then each acknowledgement awaited. Where they go is the producer's choice, which may
/// leave partitions empty; [`produce_numbered_across`] fills each.
pub async fn produce_numbered(topic: &str, count: u64) {
    produce_numbered_to(topic, count, None).await;
}

/// `produce_numbered`, record n to partition n % `partitions`, so that every partition holds records.
pub async fn produce_numbered_across(topic: &str, count: u64, partitions: i32) {
    produce_numbered_to(topic, count, Some(partitions)).await;
}

async fn produce_numbered_to(topic: &str, count: u64, partitions: Option<i32>) {
    let producer = producer();
    let mut acknowledgements = Vec::new();
    for n in 0..count {
        let value = serde_json::json!({ "n": n }).to_string();
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).payload(value.as_bytes());
        if let Some(partitions) = partitions {
            record = record.partition((n % partitions as u64) as i32);
        }
        acknowledgements.push(producer.send_result(record).map_err(|(error, _)| error).unwrap());
    }
    for acknowledgement in acknowledgements {
        acknowledgement.await.unwrap().unwrap();
    }
}

/// `worker_yaml`, with AWS calls going to `endpoint` (a fault-injecting endpoint) instead of the emulator.
pub fn worker_yaml_with_endpoint(endpoint: &str, extra: &str) -> String {
    worker_yaml(extra).replace(&stack("AWS_ENDPOINT_URL"), endpoint)
}

/// `worker_yaml`, with SQS calls going to `sqs_endpoint` (`aws.service_endpoints.sqs`) and the others to the
/// endpoint the environment names (`AWS_ENDPOINT_URL`, the emulator, which the file's SQS endpoint must win over).
pub fn worker_yaml_with_sqs(sqs_endpoint: &str) -> String {
    worker_yaml("").replacen(
        &format!("  endpoint_url: {}\n", stack("AWS_ENDPOINT_URL")),
        &format!("  service_endpoints:\n    sqs: {sqs_endpoint}\n"),
        1,
    )
}

/// Writes the worker file and connector files into a temporary directory.
pub struct ConfigDir {
    pub dir: tempfile::TempDir,
}

impl ConfigDir {
    pub fn new(worker: &str, connectors: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("worker.yaml"), worker).unwrap();
        std::fs::create_dir(dir.path().join("connectors")).unwrap();
        for (name, text) in connectors {
            std::fs::write(dir.path().join("connectors").join(name), text).unwrap();
        }
        Self { dir }
    }

    pub fn worker(&self) -> std::path::PathBuf {
        self.dir.path().join("worker.yaml")
    }

    pub fn connectors(&self) -> std::path::PathBuf {
        self.dir.path().join("connectors")
    }

    /// The worker file's `rest.listen`.
    pub fn rest_address(&self) -> String {
        std::fs::read_to_string(self.worker())
            .unwrap()
            .lines()
            .find_map(|line| line.trim().strip_prefix("listen: "))
            .unwrap()
            .to_owned()
    }
}

/// The `ebconnect` binary built for these tests.
pub fn ebconnect() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_ebconnect"))
}

/// Sends SIGTERM to a child process.
pub fn terminate(child: &std::process::Child) {
    signal(child, "TERM");
}

pub fn signal(child: &std::process::Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Starts `ebconnect run` on a configuration directory, logging to a file in it.
pub fn spawn_worker(config: &ConfigDir, log_name: &str) -> std::process::Child {
    spawn_worker_with_env(config, log_name, &[])
}

/// `spawn_worker` with more environment variables (e.g. `RUST_LOG=trace`).
pub fn spawn_worker_with_env(config: &ConfigDir, log_name: &str, variables: &[(&str, &str)]) -> std::process::Child {
    worker_command(config, log_name)
        .envs(variables.iter().copied())
        .spawn()
        .unwrap()
}

/// The command `spawn_worker` runs, for a test that sets its environment further.
pub fn worker_command(config: &ConfigDir, log_name: &str) -> std::process::Command {
    let log = std::fs::File::create(config.dir.path().join(log_name)).unwrap();
    let mut command = ebconnect();
    command
        .args(["run", "--worker"])
        .arg(config.worker())
        .arg("--connectors")
        .arg(config.connectors())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    command
}

pub mod fault_server;

/// Waits until the consumer group has `members` members and no rebalance under way: records produced after it are
/// read by the partitions' settled owners.
pub async fn wait_for_stable_group(group: &str, members: usize) {
    wait_for(
        &format!("{group} to settle with {members} members"),
        Duration::from_secs(60),
        || async move {
            use rdkafka::consumer::Consumer;
            let consumer: rdkafka::consumer::BaseConsumer = kafka_config().create().unwrap();
            let list = consumer.fetch_group_list(Some(group), Duration::from_secs(5)).ok()?;
            let found = list.groups().first()?;
            (found.state() == "Stable" && found.members().len() == members).then_some(())
        },
    )
    .await;
}

/// A worker running in this process, on configuration files as a user writes them.
pub struct RunningWorker {
    pub config: ConfigDir,
    pub status: ebconnect::runtime::StatusRegistry,
    shutdown: tokio_util::sync::CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), ebconnect::runtime::WorkerError>>,
}

impl RunningWorker {
    pub fn start(worker: &str, connectors: &[(&str, &str)]) -> Self {
        let config = ConfigDir::new(worker, connectors);
        let worker = ebconnect::config::load_worker(&config.worker()).unwrap();
        let (connectors, errors) = ebconnect::connectors::load_connectors(&[config.connectors()], Some(&worker));
        assert!(errors.is_empty(), "{errors:?}");
        let rest = worker.rest.listen;
        let worker = ebconnect::runtime::Worker::new(worker, connectors).watching(vec![config.connectors()]);
        let status = worker.status();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let handle = tokio::spawn(worker.run(shutdown.clone()));
        // Tests call the REST API right away: return once it listens (the worker binds it first thing).
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(rest).is_err() {
            assert!(!handle.is_finished(), "the worker stopped while starting");
            assert!(
                Instant::now() < deadline,
                "the worker's REST API did not listen on {rest}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            config,
            status,
            shutdown,
            handle,
        }
    }

    pub fn state(&self, connector: &str) -> Option<ebconnect::runtime::ConnectorStatus> {
        let name = ebconnect::config::ConnectorName::try_from(connector.to_owned()).unwrap();
        self.status.get(&name)
    }

    /// Orderly shutdown, as on SIGTERM; fails the test if it does not finish cleanly.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.unwrap().unwrap();
    }
}

/// A sink connector file: `config_extra` lines go under `config:` (indented by two), `tail` after it.
pub fn sink_yaml(name: &str, topic: &str, bus: &str, config_extra: &str, tail: &str) -> String {
    let extra: String = config_extra.lines().map(|line| format!("  {line}\n")).collect();
    format!("name: {name}\ntype: eventbridge-sink\nconfig:\n  topics: [{topic}]\n  event_bus: {bus}\n{extra}{tail}")
}

/// Writes Avro records with confluent-kafka's AvroSerializer (`tests/support/produce_avro.py`); returns the
/// registered schema id.
pub async fn produce_avro(case: &str, topic: &str, count: usize) -> u32 {
    let output = stack_python("produce_avro.py", &[case, topic, &count.to_string()]).await;
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    summary["schema_id"].as_u64().unwrap() as u32
}

/// One record read back by `tests/support/consume_avro.py`.
#[derive(Debug, serde::Deserialize)]
pub struct AvroConsumed {
    pub key: Option<String>,
    pub value: Value,
    pub schema_id: u32,
    pub headers: BTreeMap<String, String>,
}

/// Reads `count` Avro records from `topic` with confluent-kafka's AvroDeserializer (an independent client).
pub async fn consume_avro(topic: &str, count: usize) -> Vec<AvroConsumed> {
    let output = stack_python("consume_avro.py", &[topic, &count.to_string(), "60"]).await;
    output
        .stdout
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).unwrap())
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A single-node Kafka of the test's own (KRaft, the stack's jars, free ports), which the test may kill and start
/// again on the same log directory to make an outage the shared broker must not have.
pub struct PrivateKafka {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<std::process::Child>,
}

impl PrivateKafka {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let controller = free_port();
        let properties = dir.path().join("server.properties");
        std::fs::write(
            &properties,
            format!(
                "process.roles=broker,controller\nnode.id=1\ncontroller.quorum.bootstrap.servers=127.0.0.1:{controller}\nlisteners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\nadvertised.listeners=PLAINTEXT://127.0.0.1:{port}\ncontroller.listener.names=CONTROLLER\nlog.dirs={}\noffsets.topic.replication.factor=1\noffsets.topic.num.partitions=1\ntransaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\ngroup.initial.rebalance.delay.ms=0\nauto.create.topics.enable=false\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let format = Self::java()
            .args([
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                "K3W8ZsmVRlyYx1ZyxfBvxA",
                "-c",
            ])
            .arg(&properties)
            .output()
            .unwrap();
        assert!(format.status.success(), "{}", String::from_utf8_lossy(&format.stderr));
        let mut kafka = Self { dir, port, child: None };
        kafka.resume();
        kafka
    }

    fn java() -> std::process::Command {
        let mut command = std::process::Command::new("java");
        command.args([
            "-Xms128m",
            "-Xmx512m",
            "-cp",
            &format!("{}/*", stack("EBCONNECT_KAFKA_LIBS")),
        ]);
        command
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the broker and waits until it answers metadata requests.
    pub fn resume(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("kafka.log")).unwrap();
        let child = Self::java()
            .arg("kafka.Kafka")
            .arg(self.dir.path().join("server.properties"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let probe: BaseConsumer = self.client_config().create().unwrap();
        let deadline = Instant::now() + Duration::from_secs(90);
        while probe.fetch_metadata(None, Duration::from_secs(2)).is_err() {
            assert!(Instant::now() < deadline, "the private Kafka did not start");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Kills the broker (SIGKILL): an outage, not an orderly shutdown.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.bootstrap());
        config
    }
}

impl Drop for PrivateKafka {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A CloudTrail record as EventBridge delivers it.
pub fn cloudtrail_envelope(record: &Value) -> Value {
    let service = record["eventSource"]
        .as_str()
        .unwrap_or("unknown")
        .trim_end_matches(".amazonaws.com");
    let detail_type = match record["eventType"].as_str() {
        Some("AwsServiceEvent") => "AWS Service Event via CloudTrail",
        Some("AwsConsoleSignIn") => "AWS Console Sign In via CloudTrail",
        _ => "AWS API Call via CloudTrail",
    };
    serde_json::json!({
        "version": "0",
        "id": record["eventID"],
        "detail-type": detail_type,
        "source": format!("aws.{service}"),
        "account": record["recipientAccountId"],
        "time": record["eventTime"],
        "region": record["awsRegion"],
        "resources": [],
        "detail": record,
    })
}
