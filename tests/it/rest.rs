//! The REST API, as Kafka Connect's tools call it: connector list, info and status (with the last error), version,
//! health. Configuration is shown as written: a secret from the environment never appears.

use crate::support;

use std::time::Duration;

use crate::support::{unique, worker_yaml, RunningWorker};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_each_connector_and_why_one_failed() {
    std::env::set_var("EBCONNECT_TEST_REST_SECRET", "s3cr3t-never-shown");
    let topic = unique("rest");
    support::create_topic(&topic, 1).await;
    let producer = support::producer();
    support::produce(&producer, &topic, None, None, Some(b"not json"), &[]).await;
    let healthy = unique("healthy");
    let strict = unique("strict");
    let connector = |name: &str, extra: &str| {
        format!("name: {name}\ntype: eventbridge-sink\nconfig:\n  topics: [{topic}]\n  event_bus: rest-bus\n{extra}")
    };
    let worker_file = worker_yaml("");
    let address = worker_file
        .lines()
        .find_map(|line| line.trim().strip_prefix("listen: "))
        .unwrap()
        .to_owned();
    let worker = RunningWorker::start(
        &worker_file,
        &[
            ("healthy.yaml", &connector(&healthy, "  auto_offset_reset: latest\n  consumer_override:\n    client.id: ${env:EBCONNECT_TEST_REST_SECRET}\n")),
            ("strict.yaml", &connector(&strict, "")),
        ],
    );
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = client.clone();
        let url = format!("http://{address}{path}");
        async move {
            let response = client.get(&url).send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, text)
        }
    };
    let status: Value = support::wait_for("the strict connector to fail", Duration::from_secs(60), || async {
        let (code, text) = get(format!("/connectors/{strict}/status")).await;
        let status: Value = serde_json::from_str(&text).ok()?;
        (code == 200 && status["connector"]["state"] == "FAILED").then_some(status)
    })
    .await;
    let trace = status["connector"]["trace"].as_str().unwrap();
    assert!(
        trace.contains(&format!("record {topic}/0@0 failed")) && trace.contains("errors.tolerance is `none`"),
        "{trace}"
    );
    assert_eq!(status["tasks"][0]["state"], "FAILED");
    assert_eq!(status["type"], "sink");

    let (code, text) = get(format!("/connectors/{healthy}/status")).await;
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["connector"]["state"],
        "RUNNING"
    );

    let (_, text) = get("/connectors".into()).await;
    let mut names: Vec<String> = serde_json::from_str(&text).unwrap();
    names.sort();
    let mut expected = vec![healthy.clone(), strict.clone()];
    expected.sort();
    assert_eq!(names, expected);

    let (_, text) = get("/connectors?expand=status&expand=info".into()).await;
    let expanded: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(expanded[&healthy]["status"]["connector"]["state"], "RUNNING");
    assert_eq!(expanded[&healthy]["info"]["config"]["event_bus"], "rest-bus");

    let (code, text) = get(format!("/connectors/{healthy}")).await;
    assert_eq!(code, 200);
    let info: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        info["config"]["consumer.override.client.id"],
        json!("${env:EBCONNECT_TEST_REST_SECRET}")
    );
    assert!(!text.contains("s3cr3t-never-shown"), "{text}");

    let (code, text) = get("/connectors/nope/status".into()).await;
    assert_eq!(code, 404);
    assert!(text.contains("Connector nope not found"), "{text}");
    let (code, text) = get("/".into()).await;
    assert_eq!(code, 200);
    let root: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        root["version"],
        format!("4.1.1-ebconnect.{}", env!("CARGO_PKG_VERSION"))
    );
    assert!(
        root["kafka_cluster_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{root}"
    );
    let (code, _) = get("/health".into()).await;
    assert_eq!(code, 200);
    worker.stop().await;
}
