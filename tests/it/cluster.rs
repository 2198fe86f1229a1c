//! Cluster mode against the real broker, with three worker processes sharing one config and one status topic:
//! what is written through one worker's REST API takes effect on all of them.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::fault_server::{FaultServer, Faults};
use crate::support::{self, unique, ConfigDir};

/// One worker process of the cluster; killed when dropped, so that a failing test leaves none behind.
struct Node {
    id: String,
    config: ConfigDir,
    child: Option<Child>,
    runs: usize,
    env: Vec<(&'static str, &'static str)>,
}

impl Node {
    fn start(id: &str, worker: &str) -> Self {
        Self::with_files(id, worker, &[])
    }

    fn with_files(id: &str, worker: &str, connectors: &[(&str, &str)]) -> Self {
        Self::with_env(id, worker, connectors, Vec::new())
    }

    fn with_env(id: &str, worker: &str, connectors: &[(&str, &str)], env: Vec<(&'static str, &'static str)>) -> Self {
        let mut node = Self {
            id: id.to_owned(),
            config: ConfigDir::new(worker, connectors),
            child: None,
            runs: 0,
            env,
        };
        node.spawn();
        node
    }

    fn spawn(&mut self) {
        self.runs += 1;
        self.child = Some(support::spawn_worker_with_env(
            &self.config,
            &format!("{}-{}.log", self.id, self.runs),
            &self.env,
        ));
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.config.rest_address())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            support::signal(&child, "KILL");
            let _ = child.wait();
        }
    }

    fn logs(&self) -> String {
        (1..=self.runs)
            .map(|run| {
                let path = self.config.dir.path().join(format!("{}-{run}.log", self.id));
                std::fs::read_to_string(path).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// How many times this worker has started `connector`, by its logs.
    fn starts(&self, connector: &str) -> usize {
        self.logs()
            .matches(&format!("connector started connector=\"{connector}\""))
            .count()
    }

    /// Stops the worker as systemd would, and checks that it stopped cleanly.
    fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            support::terminate(&child);
            let status = child.wait().unwrap();
            assert!(
                status.success(),
                "worker {} stopped with {status}:\n{}",
                self.id,
                self.logs()
            );
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Cluster {
    nodes: Vec<Node>,
    http: reqwest::Client,
    config_topic: String,
}

impl Cluster {
    /// Three workers, `a`, `b` and `c`, of a new cluster, sending PutEvents to `endpoint`.
    async fn start(endpoint: &str, static_membership: bool) -> Self {
        let group = unique("cluster");
        let nodes: Vec<Node> = ["a", "b", "c"]
            .into_iter()
            .map(|id| {
                Node::start(
                    id,
                    &worker_file(id, &group, endpoint, &format!("static_membership: {static_membership}")),
                )
            })
            .collect();
        Self::of(nodes, &group).await
    }

    /// The cluster `group` of `nodes`, once every one is ready.
    async fn of(nodes: Vec<Node>, group: &str) -> Self {
        let cluster = Self {
            nodes,
            http: reqwest::Client::new(),
            config_topic: format!("{group}-configs"),
        };
        for node in 0..cluster.nodes.len() {
            cluster.wait_ready(node).await;
        }
        cluster
    }

    async fn wait_ready(&self, node: usize) {
        let url = self.nodes[node].url("/ready");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let last = match self.http.get(&url).send().await {
                Ok(answer) if answer.status().is_success() => return,
                Ok(answer) => answer.text().await.unwrap_or_default(),
                Err(error) => error.to_string(),
            };
            assert!(
                Instant::now() < deadline,
                "worker {} is not ready: {last}\n{}",
                self.nodes[node].id,
                self.nodes[node].logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn call(&self, node: usize, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, self.nodes[node].url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.unwrap();
        let status = answer.status().as_u16();
        let text = answer.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Creates a connector through `node`.
    async fn create(&self, node: usize, document: Value) {
        let (code, created) = self
            .call(node, reqwest::Method::POST, "/connectors", Some(document))
            .await;
        assert_eq!(code, 201, "{created}");
    }

    /// Calls `path` with no body through `node`, expecting `code`.
    async fn expect(&self, node: usize, method: reqwest::Method, path: &str, code: u16) {
        let (answered, answer) = self.call(node, method, path, None).await;
        assert_eq!(answered, code, "{answer}\n{}", self.logs());
    }

    /// The connector's status as `node` answers it: the state of each task, by worker id.
    async fn task_states(&self, node: usize, connector: &str) -> Option<Vec<(String, String)>> {
        let (code, status) = self
            .call(
                node,
                reqwest::Method::GET,
                &format!("/connectors/{connector}/status"),
                None,
            )
            .await;
        if code != 200 {
            return None;
        }
        Some(
            status["tasks"]
                .as_array()?
                .iter()
                .map(|task| {
                    (
                        task["worker_id"].as_str().unwrap_or_default().to_owned(),
                        task["state"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
        )
    }

    /// Waits until `node` shows the connector in `state` on all three workers.
    async fn wait_everywhere(&self, node: usize, connector: &str, state: &str) {
        let wanted: Vec<(String, String)> = ["a", "b", "c"]
            .into_iter()
            .map(|id| (id.to_owned(), state.to_owned()))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = self.task_states(node, connector).await;
            if seen.as_ref() == Some(&wanted) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "worker {} shows {connector} as {seen:?}, not {state} on a, b and c\n{}",
                self.nodes[node].id,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("--- worker {} ---\n{}", node.id, node.logs()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A worker file of cluster `group`, with `cluster_extra` under `cluster:`.
fn worker_file(id: &str, group: &str, endpoint: &str, cluster_extra: &str) -> String {
    let extra = format!(
        "worker_id: {id}\ncluster:\n  group_id: {group}\n  status_interval: 500ms\n  worker_timeout: 5s\n  \
         {cluster_extra}\n"
    );
    support::worker_yaml_with_endpoint(endpoint, &extra)
}

fn sink_document(name: &str, topic: &str, session_timeout_ms: u64) -> Value {
    json!({
        "name": name,
        "type": "eventbridge-sink",
        "config": {
            "topics": [topic],
            "event_bus": "cluster-bus",
            "detail": "value",
            "auto_offset_reset": "earliest",
            "consumer_override": {"session.timeout.ms": session_timeout_ms.to_string()},
        },
    })
}

/// How many distinct records the endpoint acknowledged, and how many sends it saw in all.
fn delivered(server: &FaultServer) -> (usize, usize) {
    let observed = server.observed.lock().unwrap();
    (observed.acknowledged.len(), observed.entries_sent)
}

async fn wait_delivered(server: &FaultServer, count: usize, cluster: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while delivered(server).0 < count {
        assert!(
            Instant::now() < deadline,
            "{} of {count} records delivered\n{}",
            delivered(server).0,
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Values `{"n": from..to}`, spread over every partition.
async fn produce_range(topic: &str, from: u64, to: u64, partitions: i32) {
    let producer = support::producer();
    for n in from..to {
        let value = json!({ "n": n }).to_string();
        let record = rdkafka::producer::FutureRecord::<[u8], [u8]>::to(topic)
            .payload(value.as_bytes())
            .partition((n % partitions as u64) as i32);
        producer.send(record, Duration::from_secs(10)).await.unwrap();
    }
}

/// A connector created through worker a runs on b and c; paused through b, no worker sends; resumed through c,
/// all send again; restarted through b, each restarts it once; deleted through a, it is gone everywhere. Any worker
/// lists all three in its status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_any_worker_takes_effect_on_every_worker() {
    let server = FaultServer::start(Faults::default()).await;
    let topic = unique("cluster-life");
    support::create_topic(&topic, 6).await;
    let cluster = Cluster::start(&server.url, true).await;
    let name = unique("shared");

    cluster.create(0, sink_document(&name, &topic, 6000)).await;
    let started = Instant::now();
    for node in [1, 2] {
        cluster.wait_everywhere(node, &name, "RUNNING").await;
    }
    eprintln!("created through a, RUNNING on a, b and c after {:?}", started.elapsed());
    for node in [1, 2] {
        let (code, listed) = cluster.call(node, reqwest::Method::GET, "/connectors", None).await;
        assert_eq!((code, listed), (200, json!([name])));
        // The connector's info and task list name as many tasks as its status, one per worker.
        let task = |task: usize| json!({"connector": name, "task": task});
        let (_, info) = cluster
            .call(node, reqwest::Method::GET, &format!("/connectors/{name}"), None)
            .await;
        assert_eq!(info["tasks"], json!([task(0), task(1), task(2)]), "{info}");
        let (_, tasks) = cluster
            .call(node, reqwest::Method::GET, &format!("/connectors/{name}/tasks"), None)
            .await;
        let ids: Vec<&Value> = tasks.as_array().into_iter().flatten().map(|task| &task["id"]).collect();
        assert_eq!(ids, [&task(0), &task(1), &task(2)], "{tasks}");
    }
    support::wait_for_stable_group(&format!("connect-{name}"), 3).await;
    produce_range(&topic, 0, 600, 6).await;
    wait_delivered(&server, 600, &cluster).await;

    cluster
        .expect(1, reqwest::Method::PUT, &format!("/connectors/{name}/pause"), 202)
        .await;
    cluster.wait_everywhere(2, &name, "PAUSED").await;
    let before = delivered(&server);
    produce_range(&topic, 600, 900, 6).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        delivered(&server),
        before,
        "a worker sent while the connector was paused"
    );

    cluster
        .expect(2, reqwest::Method::PUT, &format!("/connectors/{name}/resume"), 202)
        .await;
    cluster.wait_everywhere(0, &name, "RUNNING").await;
    wait_delivered(&server, 900, &cluster).await;

    // A restart through b restarts the connector on every worker, once each.
    let starts = |node: &Node| node.starts(&name);
    let before: Vec<usize> = cluster.nodes.iter().map(starts).collect();
    cluster
        .expect(1, reqwest::Method::POST, &format!("/connectors/{name}/restart"), 204)
        .await;
    support::wait_for(
        "every worker to restart the connector",
        Duration::from_secs(30),
        || async {
            let after: Vec<usize> = cluster.nodes.iter().map(starts).collect();
            (after.iter().zip(&before).all(|(after, before)| *after == before + 1)).then_some(())
        },
    )
    .await;
    cluster.wait_everywhere(2, &name, "RUNNING").await;

    cluster
        .expect(0, reqwest::Method::DELETE, &format!("/connectors/{name}"), 204)
        .await;
    for node in [1, 2] {
        support::wait_for(
            &format!("{name} to be gone from worker {}", cluster.nodes[node].id),
            Duration::from_secs(30),
            || async {
                let (code, listed) = cluster.call(node, reqwest::Method::GET, "/connectors", None).await;
                (code == 200 && listed == json!([])).then_some(())
            },
        )
        .await;
    }
    // Every key of the deleted connector ends in a tombstone, so that compaction keeps nothing of it.
    let topic = cluster.config_topic.clone();
    let written = usize::try_from(support::end_offsets(&topic, 1)[&0]).unwrap();
    let records = tokio::task::spawn_blocking(move || support::consume_all(&topic, written, Duration::from_secs(30)))
        .await
        .unwrap();
    let mut last: BTreeMap<String, bool> = BTreeMap::new();
    for record in records {
        let key = String::from_utf8(record.key.unwrap()).unwrap();
        if ["connector-", "target-state-", "restart-"]
            .iter()
            .any(|prefix| key == format!("{prefix}{name}"))
        {
            last.insert(key, record.value.is_some());
        }
    }
    assert_eq!(last.len(), 3, "{last:?}");
    assert!(
        last.values().all(|has_value| !has_value),
        "a key kept a value: {last:?}"
    );
    let observed = server.observed.lock().unwrap();
    let resent: Vec<_> = observed.acknowledged.iter().filter(|(_, count)| **count > 1).collect();
    assert!(resent.len() < 50, "records delivered more than once: {resent:?}");
    let expected: BTreeSet<String> = (0..900).map(|n| json!({ "n": n }).to_string()).collect();
    let seen: BTreeSet<String> = observed.acknowledged.keys().cloned().collect();
    assert_eq!(seen, expected);
}

/// KIP-875 through the cluster: the offsets of a connector stopped through b are reset through c once every worker
/// reports it STOPPED (static members leave the group when stopped, or it would not empty); resumed through a,
/// every worker reads again from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_reset_through_any_worker_once_stopped_everywhere() {
    let server = FaultServer::start(Faults::default()).await;
    let topic = unique("cluster-offsets");
    support::create_topic(&topic, 6).await;
    let cluster = Cluster::start(&server.url, true).await;
    let name = unique("reset");
    let group = format!("connect-{name}");
    cluster.create(0, sink_document(&name, &topic, 6000)).await;
    cluster.wait_everywhere(0, &name, "RUNNING").await;
    support::wait_for_stable_group(&group, 3).await;
    produce_range(&topic, 0, 300, 6).await;
    wait_delivered(&server, 300, &cluster).await;
    support::wait_for("the offsets to be committed", Duration::from_secs(30), || async {
        let committed: i64 = support::committed_offsets(&group, &topic, 6).values().sum();
        (committed == 300).then_some(())
    })
    .await;

    let path = format!("/connectors/{name}/offsets");
    let (code, refused) = cluster.call(2, reqwest::Method::DELETE, &path, None).await;
    assert_eq!(code, 400, "a running connector's offsets were reset: {refused}");

    cluster
        .expect(1, reqwest::Method::PUT, &format!("/connectors/{name}/stop"), 204)
        .await;
    cluster.wait_everywhere(2, &name, "STOPPED").await;
    cluster.expect(2, reqwest::Method::DELETE, &path, 200).await;
    assert!(support::committed_offsets(&group, &topic, 6).is_empty());

    cluster
        .expect(0, reqwest::Method::PUT, &format!("/connectors/{name}/resume"), 202)
        .await;
    cluster.wait_everywhere(1, &name, "RUNNING").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let twice = {
            let observed = server.observed.lock().unwrap();
            observed.acknowledged.values().filter(|count| **count == 2).count()
        };
        if twice == 300 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{twice} of 300 records read again after the reset\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    support::wait_for_stable_group(&group, 3).await;
}

const SESSION_TIMEOUT: Duration = Duration::from_secs(15);

/// A killed worker's partitions go to the others once its session times out, and nothing is lost. A worker
/// killed and restarted at once with its worker id: how long until records on every partition are delivered again.
async fn kill_and_restart(static_membership: bool) -> Duration {
    let server = FaultServer::start(Faults::default()).await;
    let topic = unique("cluster-kill");
    support::create_topic(&topic, 6).await;
    let mut cluster = Cluster::start(&server.url, static_membership).await;
    let name = unique("kill");
    let document = sink_document(&name, &topic, SESSION_TIMEOUT.as_millis() as u64);
    cluster.create(0, document).await;
    cluster.wait_everywhere(0, &name, "RUNNING").await;
    support::wait_for_stable_group(&format!("connect-{name}"), 3).await;
    produce_range(&topic, 0, 600, 6).await;
    wait_delivered(&server, 600, &cluster).await;

    cluster.nodes[1].kill();
    produce_range(&topic, 600, 1200, 6).await;
    wait_delivered(&server, 1200, &cluster).await;
    // Quiet for longer than `worker_timeout` (5 s), the killed worker is shown as gone.
    let status_path = format!("/connectors/{name}/status");
    support::wait_for("a to show b as gone", Duration::from_secs(30), || async {
        let (_, status) = cluster.call(0, reqwest::Method::GET, &status_path, None).await;
        let b = status["tasks"]
            .as_array()?
            .iter()
            .find(|task| task["worker_id"] == "b")?
            .clone();
        let gone = b["state"] == "UNASSIGNED" && b["trace"].as_str()?.contains("it is gone");
        gone.then_some(())
    })
    .await;

    cluster.nodes[2].kill();
    cluster.nodes[2].spawn();
    let restarted = Instant::now();
    produce_range(&topic, 1200, 1800, 6).await;
    wait_delivered(&server, 1800, &cluster).await;
    let took = restarted.elapsed();
    cluster.nodes[0].terminate();
    cluster.nodes[2].terminate();
    took
}

/// SIGKILL one worker: its partitions move and nothing is lost. Restarted at once with the same worker id, a static
/// member gets its partitions back without waiting for its session to time out; a dynamic one waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_static_member_gets_its_partitions_back_without_a_session_timeout() {
    let with_static = kill_and_restart(true).await;
    let without = kill_and_restart(false).await;
    eprintln!(
        "records on every partition delivered again {with_static:?} after the restart with static membership, \
         {without:?} without (session.timeout.ms {})",
        SESSION_TIMEOUT.as_millis()
    );
    assert!(with_static < SESSION_TIMEOUT, "{with_static:?} with static membership");
    assert!(without >= SESSION_TIMEOUT / 2, "{without:?} without static membership");
}

/// The config topic deleted: every worker keeps running what it has and reports not ready; once the topic is
/// back, they are ready again, the connector they run is written back to it, and a change through the API takes
/// effect everywhere again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_config_topic_the_cluster_keeps_running_and_recovers() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    let server = FaultServer::start(Faults::default()).await;
    let topic = unique("cluster-outage");
    support::create_topic(&topic, 3).await;
    let cluster = Cluster::start(&server.url, true).await;
    let name = unique("outage");
    cluster.create(0, sink_document(&name, &topic, 6000)).await;
    cluster.wait_everywhere(0, &name, "RUNNING").await;
    produce_range(&topic, 0, 300, 3).await;
    wait_delivered(&server, 300, &cluster).await;

    let admin: AdminClient<_> = support::kafka_config().create().unwrap();
    let deleted = admin
        .delete_topics(&[&cluster.config_topic], &AdminOptions::new())
        .await
        .unwrap();
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");
    for node in 0..3 {
        let url = cluster.nodes[node].url("/ready");
        support::wait_for("the worker to report not ready", Duration::from_secs(30), || async {
            let answer = cluster.http.get(&url).send().await.ok()?;
            let code = answer.status().as_u16();
            let report: Value = answer.json().await.ok()?;
            let named = report["problems"].to_string().contains(&cluster.config_topic);
            (code == 503 && named).then_some(())
        })
        .await;
    }
    // A change is refused rather than written where no worker reads it, and creates no topic with Kafka's defaults.
    let (code, refused) = cluster
        .call(0, reqwest::Method::PUT, &format!("/connectors/{name}/pause"), None)
        .await;
    assert_eq!(code, 500, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&cluster.config_topic),
        "{refused}"
    );
    produce_range(&topic, 300, 600, 3).await;
    wait_delivered(&server, 600, &cluster).await;

    // Kafka refuses to create a topic again while its deletion is still under way.
    support::wait_for(
        "the config topic to be created again",
        Duration::from_secs(60),
        || async {
            let new =
                rdkafka::admin::NewTopic::new(&cluster.config_topic, 1, rdkafka::admin::TopicReplication::Fixed(1))
                    .set("cleanup.policy", "compact");
            let created = admin.create_topics([&new], &AdminOptions::new()).await.ok()?;
            created.into_iter().all(|result| result.is_ok()).then_some(())
        },
    )
    .await;
    for node in 0..3 {
        cluster.wait_ready(node).await;
    }
    // Its target state, then its document: written back by each worker that found them missing.
    let key = format!("connector-{name}");
    support::wait_for(
        &format!("{key} to be written back"),
        Duration::from_secs(30),
        || async {
            let end = support::end_offsets(&cluster.config_topic, 1)
                .get(&0)
                .copied()
                .unwrap_or_default();
            let records = support::consume_all(&cluster.config_topic, end as usize, Duration::from_secs(10));
            records
                .iter()
                .any(|record| record.key.as_deref() == Some(key.as_bytes()))
                .then_some(())
        },
    )
    .await;
    cluster
        .expect(2, reqwest::Method::PUT, &format!("/connectors/{name}/pause"), 202)
        .await;
    cluster.wait_everywhere(1, &name, "PAUSED").await;
}

/// Connector files in cluster mode: a worker writes its files to the config topic at start, so that a worker
/// without them (`files: ignore`, which reads none of its own) runs them too; a change through the API reaches every
/// worker, and an edit of the file is written again and wins over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_files_go_to_the_config_topic_and_an_edited_file_wins_over_the_api() {
    let server = FaultServer::start(Faults::default()).await;
    let topic = unique("cluster-files");
    support::create_topic(&topic, 2).await;
    let group = unique("cluster");
    let name = unique("from-file");
    let file = |bus: &str| support::sink_yaml(&name, &topic, bus, "detail: value", "");
    let ignored = support::sink_yaml(&unique("ignored"), &topic, "ignored-bus", "", "");
    let nodes = vec![
        Node::with_files(
            "a",
            &worker_file("a", &group, &server.url, "files: write"),
            &[("sink.yaml", &file("file-bus"))],
        ),
        Node::with_files(
            "b",
            &worker_file("b", &group, &server.url, "files: ignore"),
            &[("other.yaml", &ignored)],
        ),
    ];
    let cluster = Cluster::of(nodes, &group).await;
    let bus_on = |node: usize| {
        let cluster = &cluster;
        let path = format!("/connectors/{name}/config");
        async move {
            let (code, config) = cluster.call(node, reqwest::Method::GET, &path, None).await;
            (code == 200).then(|| config["event_bus"].as_str().unwrap_or_default().to_owned())
        }
    };
    support::wait_for("b to run a's file", Duration::from_secs(30), || async {
        (bus_on(1).await.as_deref() == Some("file-bus")).then_some(())
    })
    .await;
    let (code, listed) = cluster.call(1, reqwest::Method::GET, "/connectors", None).await;
    assert_eq!(
        (code, listed),
        (200, json!([name])),
        "b ran its own file despite `files: ignore`"
    );

    let mut changed = sink_document(&name, &topic, 6000);
    changed["config"]["event_bus"] = json!("api-bus");
    let (code, answer) = cluster
        .call(
            1,
            reqwest::Method::PUT,
            &format!("/connectors/{name}/config"),
            Some(changed),
        )
        .await;
    assert_eq!(code, 200, "{answer}");
    support::wait_for("a to take the API's change", Duration::from_secs(30), || async {
        (bus_on(0).await.as_deref() == Some("api-bus")).then_some(())
    })
    .await;

    std::fs::write(
        cluster.nodes[0].config.connectors().join("sink.yaml"),
        file("edited-bus"),
    )
    .unwrap();
    support::wait_for("b to take the edited file", Duration::from_secs(30), || async {
        (bus_on(1).await.as_deref() == Some("edited-bus")).then_some(())
    })
    .await;
}

/// A config topic that exists with settings that would lose the cluster's state or its order stops the worker at
/// start, naming the setting, the topic and the problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_topic_with_wrong_settings_is_refused_at_start() {
    let group = unique("cluster-wrong");
    for (settings, partitions, problem) in [
        (
            vec![("cleanup.policy", "delete")],
            1,
            "its cleanup.policy is `delete`; it must be `compact`",
        ),
        (
            vec![("cleanup.policy", "compact")],
            3,
            "it has 3 partitions; it must have 1",
        ),
    ] {
        let topic = unique(&format!("{group}-configs"));
        support::create_topic_configured(support::kafka_config(), &topic, partitions, &settings).await;
        let worker = support::worker_yaml(&format!("cluster:\n  group_id: {group}\n  config_topic: {topic}\n"));
        let config = ConfigDir::new(&worker, &[]);
        let output = support::ebconnect()
            .args(["run", "--worker"])
            .arg(config.worker())
            .arg("--connectors")
            .arg(config.connectors())
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "the worker ran on {topic}:\n{log}");
        let expected = format!("cluster.config_topic `{topic}`: {problem}");
        assert!(log.contains(&expected), "expected `{expected}` in:\n{log}");
    }
}

/// Updates of one connector sent at once through all three workers: every worker ends with the same
/// configuration, the one last written to the config topic, whatever order the API calls ran in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_through_different_workers_converge_on_the_last_write() {
    let server = FaultServer::start(Faults::default()).await;
    let topic = unique("cluster-race");
    support::create_topic(&topic, 3).await;
    let cluster = Cluster::start(&server.url, true).await;
    let name = unique("race");
    cluster.create(0, sink_document(&name, &topic, 6000)).await;
    cluster.wait_everywhere(0, &name, "RUNNING").await;

    let path = format!("/connectors/{name}/config");
    let updates = (0..30).map(|n| {
        let mut document = sink_document(&name, &topic, 6000);
        document["config"]["event_bus"] = json!(format!("bus-{n}"));
        let (cluster, path) = (&cluster, &path);
        async move {
            let (code, answer) = cluster.call(n % 3, reqwest::Method::PUT, path, Some(document)).await;
            assert_eq!(code, 200, "update {n}: {answer}");
        }
    });
    futures::future::join_all(updates).await;

    let end = support::end_offsets(&cluster.config_topic, 1)[&0];
    let records = support::consume_all(&cluster.config_topic, end as usize, Duration::from_secs(30));
    let key = format!("connector-{name}");
    let last = records
        .iter()
        .rev()
        .find(|record| record.key.as_deref() == Some(key.as_bytes()))
        .and_then(|record| serde_json::from_slice::<Value>(record.value.as_deref()?).ok())
        .unwrap();
    let last_bus = last["document"]["config"]["event_bus"].clone();
    support::wait_for(
        "every worker to show the last write",
        Duration::from_secs(30),
        || async {
            for node in 0..3 {
                let (_, config) = cluster.call(node, reqwest::Method::GET, &path, None).await;
                if config["event_bus"] != last_bus {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    for node in 0..3 {
        cluster.wait_everywhere(node, &name, "RUNNING").await;
    }
}

/// A document that loads on one worker but not on the others (a variable only that worker has): it runs there, and
/// every worker's status shows the others FAILED with the reason. A worker that cannot load it still answers its
/// status and acts on it for the cluster through its API (pause, resume, restart, delete), as any worker does;
/// deleted, it is gone from all, and they are ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_another_worker_cannot_load_shows_failed_there_with_the_reason() {
    let server = FaultServer::start(Faults::default()).await;
    let topic = unique("cluster-partial");
    support::create_topic(&topic, 3).await;
    let group = unique("cluster");
    let nodes = ["a", "b", "c"]
        .into_iter()
        .map(|id| {
            let env = if id == "a" {
                vec![("EBCONNECT_TEST_CLUSTER_ONLY_A", "bus-of-a")]
            } else {
                Vec::new()
            };
            Node::with_env(id, &worker_file(id, &group, &server.url, "files: write"), &[], env)
        })
        .collect();
    let cluster = Cluster::of(nodes, &group).await;
    let name = unique("partial");
    let mut document = sink_document(&name, &topic, 6000);
    document["config"]["event_bus"] = json!("${env:EBCONNECT_TEST_CLUSTER_ONLY_A}");
    cluster.create(0, document).await;

    let path = format!("/connectors/{name}/status");
    support::wait_for("a to show b and c FAILED", Duration::from_secs(30), || async {
        let (_, status) = cluster.call(0, reqwest::Method::GET, &path, None).await;
        let tasks = status["tasks"].as_array()?.clone();
        let state = |id: &str| tasks.iter().find(|task| task["worker_id"] == id).cloned();
        let failed_with_reason = |task: Option<Value>| {
            task.is_some_and(|task| {
                task["state"] == "FAILED"
                    && task["trace"]
                        .as_str()
                        .is_some_and(|trace| trace.contains("EBCONNECT_TEST_CLUSTER_ONLY_A"))
            })
        };
        let shown =
            state("a")?["state"] == "RUNNING" && failed_with_reason(state("b")) && failed_with_reason(state("c"));
        shown.then_some(())
    })
    .await;
    let (code, _) = cluster.call(1, reqwest::Method::GET, "/ready", None).await;
    assert_eq!(
        code, 503,
        "b cannot run a connector the cluster has, yet says it is ready"
    );
    // Tasks are the workers' instances, in the order of their ids: b's is task 1, and there is no task 3.
    let (code, task) = cluster
        .call(
            0,
            reqwest::Method::GET,
            &format!("/connectors/{name}/tasks/1/status"),
            None,
        )
        .await;
    assert_eq!(
        (code, &task["worker_id"], &task["state"]),
        (200, &json!("b"), &json!("FAILED"))
    );
    cluster
        .expect(
            0,
            reqwest::Method::POST,
            &format!("/connectors/{name}/tasks/1/restart"),
            204,
        )
        .await;
    cluster
        .expect(
            0,
            reqwest::Method::GET,
            &format!("/connectors/{name}/tasks/3/status"),
            404,
        )
        .await;

    // b, which cannot load it, answers its status as a does, with the type its document names.
    let expected: Vec<(String, String)> = [("a", "RUNNING"), ("b", "FAILED"), ("c", "FAILED")]
        .map(|(worker, state)| (worker.to_owned(), state.to_owned()))
        .into();
    support::wait_for("b to show every instance", Duration::from_secs(30), || async {
        (cluster.task_states(1, &name).await? == expected).then_some(())
    })
    .await;
    let (code, status) = cluster.call(1, reqwest::Method::GET, &path, None).await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["type"], "sink", "{status}");
    assert!(
        status["connector"]["trace"]
            .as_str()
            .is_some_and(|trace| trace.contains("EBCONNECT_TEST_CLUSTER_ONLY_A")),
        "{status}"
    );
    let (code, task) = cluster
        .call(
            1,
            reqwest::Method::GET,
            &format!("/connectors/{name}/tasks/0/status"),
            None,
        )
        .await;
    assert_eq!(
        (code, &task["worker_id"], &task["state"]),
        (200, &json!("a"), &json!("RUNNING"))
    );

    // Through b: a's instance follows.
    let state_of_a = |wanted: &'static str| {
        let (cluster, name) = (&cluster, &name);
        async move {
            support::wait_for(
                &format!("a's instance to be {wanted}"),
                Duration::from_secs(30),
                || async {
                    let states = cluster.task_states(0, name).await?;
                    states
                        .iter()
                        .any(|(worker, state)| worker == "a" && state == wanted)
                        .then_some(())
                },
            )
            .await;
        }
    };
    cluster
        .expect(1, reqwest::Method::PUT, &format!("/connectors/{name}/pause"), 202)
        .await;
    state_of_a("PAUSED").await;
    cluster
        .expect(1, reqwest::Method::PUT, &format!("/connectors/{name}/resume"), 202)
        .await;
    state_of_a("RUNNING").await;
    cluster
        .expect(1, reqwest::Method::POST, &format!("/connectors/{name}/restart"), 204)
        .await;
    // Failed on b, so restarted by `onlyFailed`: Kafka Connect's answer, its state RESTARTING.
    let (code, restarting) = cluster
        .call(
            1,
            reqwest::Method::POST,
            &format!("/connectors/{name}/restart?includeTasks=true&onlyFailed=true"),
            None,
        )
        .await;
    assert_eq!(
        (code, &restarting["connector"]["state"], &restarting["type"]),
        (202, &json!("RESTARTING"), &json!("sink")),
        "{restarting}"
    );
    cluster
        .expect(1, reqwest::Method::DELETE, &format!("/connectors/{name}"), 204)
        .await;
    support::wait_for("a to remove it", Duration::from_secs(30), || async {
        let (code, _) = cluster
            .call(0, reqwest::Method::GET, &format!("/connectors/{name}"), None)
            .await;
        (code == 404).then_some(())
    })
    .await;
    for node in 1..3 {
        cluster.wait_ready(node).await;
    }
}

/// A connector created, deleted and created again at once through one worker runs as the config topic orders it,
/// on that worker as on the others: started twice (once per creation), not a third time when the worker reads its
/// own writes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_applies_its_own_writes_in_the_topics_order() {
    let server = FaultServer::start(Faults::default()).await;
    let topic = unique("cluster-order");
    support::create_topic(&topic, 1).await;
    let cluster = Cluster::start(&server.url, true).await;
    let name = unique("order");
    cluster.create(0, sink_document(&name, &topic, 6000)).await;
    cluster
        .expect(0, reqwest::Method::DELETE, &format!("/connectors/{name}"), 204)
        .await;
    cluster.create(0, sink_document(&name, &topic, 6000)).await;
    let (code, _) = cluster
        .call(0, reqwest::Method::GET, &format!("/connectors/{name}"), None)
        .await;
    assert_eq!(code, 200, "the connector written last is not there right after its 201");
    cluster.wait_everywhere(1, &name, "RUNNING").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let starts: Vec<usize> = cluster.nodes.iter().map(|node| node.starts(&name)).collect();
    assert_eq!(starts, [2, 2, 2], "starts on a, b and c\n{}", cluster.logs());
}

/// A second running worker with the same `worker_id`: each worker sees the other's reports under its id, and says
/// so in its log and through `/ready` (their reports would overwrite each other, and static membership fences one).
/// A worker that restarts under its id is no such problem: the first one's reports stop before it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_running_workers_with_one_id_are_not_ready_and_say_why() {
    let server = FaultServer::start(Faults::default()).await;
    let group = unique("cluster-same-id");
    let mut cluster = Cluster::of(
        vec![Node::start("a", &worker_file("a", &group, &server.url, ""))],
        &group,
    )
    .await;
    cluster.nodes[0].kill();
    cluster.nodes[0].spawn();
    cluster.wait_ready(0).await;
    // Longer than the grace a report must come after a worker's start to count, at several reports a second.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (code, report) = cluster.call(0, reqwest::Method::GET, "/ready", None).await;
    assert_eq!(code, 200, "a worker restarted under its id is not ready: {report}");

    cluster
        .nodes
        .push(Node::start("a", &worker_file("a", &group, &server.url, "")));
    let problem = "worker_id `a` is also used by another running worker";
    for node in 0..2 {
        support::wait_for(
            &format!("worker {node} to say that its id is used twice"),
            Duration::from_secs(30),
            || async {
                let (code, report) = cluster.call(node, reqwest::Method::GET, "/ready", None).await;
                (code == 503 && report.to_string().contains(problem)).then_some(())
            },
        )
        .await;
        assert!(
            cluster.nodes[node].logs().contains(problem),
            "{}",
            cluster.nodes[node].logs()
        );
    }
}
