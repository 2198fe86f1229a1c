//! Kafka Connect's own clients against the real `ebconnect` binary on the local stack: Kafka's REST entity classes
//! read with a mapper as strict as its RestClient's (tests/oracle/ConnectRestOracle.java), and the PyPI client
//! libraries kafka-connect-py and kafka-connect-api (tests/clients/connect_clients.py). Each drives a connector
//! through create, read, update, pause, resume, stop, restart, tasks, topics, offsets, plugins, validate and
//! loggers, and prints one line per check; every check must pass, against a worker in file mode and one in cluster
//! mode.

use crate::support;

use std::process::Command;
use std::time::Duration;

use crate::support::{stack, unique, worker_yaml, ConfigDir};

const ORACLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle/ConnectRestOracle.java");
const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/connect_clients.py");

/// Runs a client program to its end; fails the test with its output unless every check passed.
fn run_client(what: &str, command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{what} does not start: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{what}:\n{stdout}");
    assert!(
        output.status.success() && stdout.contains(" checks passed") && !stdout.contains("FAIL "),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_connect_clients_work_unchanged() {
    drive_with_clients("").await;
}

/// The same clients against a worker in cluster mode, where every change goes through the config topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_connect_clients_work_unchanged_in_cluster_mode() {
    drive_with_clients(&format!("cluster:\n  group_id: {}\n", unique("clients-cluster"))).await;
}

/// Runs both clients against a worker with `worker_extra` in its file.
async fn drive_with_clients(worker_extra: &str) {
    let topic = unique("clients");
    support::create_topic(&topic, 1).await;
    support::produce_numbered(&topic, 3).await;
    let config = ConfigDir::new(&worker_yaml(worker_extra), &[]);
    let address = config.rest_address();
    let mut child = support::spawn_worker(&config, "worker.log");
    let base = format!("http://{address}");
    let client = reqwest::Client::new();
    support::wait_for("the REST API", Duration::from_secs(30), || async {
        client
            .get(format!("{base}/health"))
            .send()
            .await
            .ok()
            .filter(|answer| answer.status().is_success())
    })
    .await;

    let libs = stack("EBCONNECT_CONNECT_REST_LIBS");
    let java = stack("EBCONNECT_ORACLE_JAVA");
    run_client(
        "Kafka's REST entities",
        Command::new(java)
            .arg("-cp")
            .arg(format!("{libs}/*"))
            .arg(ORACLE)
            .args([&base, &topic]),
    );
    run_client(
        "kafka-connect-py and kafka-connect-api",
        Command::new(stack("EBCONNECT_STACK_PYTHON"))
            .arg(CLIENTS)
            .args([&base, &topic]),
    );

    support::terminate(&child);
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(config.dir.path().join("worker.log")).unwrap_or_default();
    assert!(status.success(), "the worker did not stop cleanly: {status}\n{log}");
}
