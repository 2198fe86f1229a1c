//! The Schema Registry over HTTPS, as Confluent Cloud serves it: the stack's registry behind its HTTPS front
//! (scripts/auth_server.py), which takes HTTP Basic credentials or a bearer token from the stack's identity provider.
//! Avro written by confluent-kafka's serializer is decoded by the sink through the front with each way of
//! authenticating; wrong credentials fail the connector with the registry's answer.

use crate::support;

use std::time::Duration;

use crate::support::{sink_yaml, stack, unique, worker_yaml, BusCapture, RunningWorker};
use serde_json::json;

/// The worker file, its `schema_registry` section replaced by the HTTPS front with `auth` lines.
fn worker_with_registry(auth: &str) -> String {
    let plain = format!("schema_registry:\n  url: {}\n", stack("SCHEMA_REGISTRY_URL"));
    let https = format!(
        "schema_registry:\n  url: {}\n  ca_location: {}/ca.pem\n{auth}",
        stack("SCHEMA_REGISTRY_HTTPS_URL"),
        stack("KAFKA_TLS_DIR")
    );
    let worker = worker_yaml("");
    assert!(worker.contains(&plain));
    worker.replacen(&plain, &https, 1)
}

fn basic(password: &str) -> String {
    format!(
        "  basic_auth:\n    username: {}\n    password: {password}\n",
        stack("SCHEMA_REGISTRY_USERNAME")
    )
}

fn oauth(client_secret: &str) -> String {
    format!(
        "  oauth:\n    token_endpoint_url: {}\n    client_id: {}\n    client_secret: {client_secret}\n    scope: schema-registry\n    logical_cluster: lsrc-stack\n    identity_pool_id: pool-stack\n",
        stack("OAUTH_TOKEN_ENDPOINT_URL"),
        stack("OAUTH_CLIENT_ID"),
    )
}

/// A token from the identity provider, as an operator's own tooling would fetch one.
async fn fetched_token() -> String {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(stack("OAUTH_TOKEN_ENDPOINT_URL"))
        .basic_auth(stack("OAUTH_CLIENT_ID"), Some(stack("OAUTH_CLIENT_SECRET")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}

fn avro_sink(name: &str, topic: &str, bus: &str, source: &str) -> String {
    sink_yaml(
        name,
        topic,
        bus,
        &format!("source: {source}\ndetail: value\nvalue:\n  format: avro\ntime:\n  json_path: $.eventTime"),
        "",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_decodes_through_the_https_registry_with_each_way_of_authenticating() {
    let topic = unique("registry-https");
    support::create_topic(&topic, 1).await;
    support::produce_avro("logical", &topic, 2).await;
    let token = fetched_token().await;
    let ways = [
        ("basic", basic("${env:SCHEMA_REGISTRY_PASSWORD}")),
        ("bearer", format!("  bearer_token: {token}\n")),
        ("oauth", oauth("${env:OAUTH_CLIENT_SECRET}")),
    ];
    for (way, auth) in ways {
        let source = unique(&format!("ebconnect.test.registry.{way}"));
        let capture = BusCapture::new("registry", &json!({"source": [source]})).await;
        let name = unique(&format!("registry-{way}"));
        let worker = RunningWorker::start(
            &worker_with_registry(&auth),
            &[("sink.yaml", &avro_sink(&name, &topic, &capture.bus, &source))],
        );
        let events = capture.receive(2, Duration::from_secs(60)).await;
        assert_eq!(events.len(), 2, "{way}");
        for event in &events {
            assert_eq!(
                event["detail"]["id"], "6f1f3d4e-9d0c-4c59-9a0e-3f3b5f0a6c11",
                "{way}: {event}"
            );
        }
        worker.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_registry_credentials_fail_the_connector_with_the_answer() {
    let topic = unique("registry-refused");
    support::create_topic(&topic, 1).await;
    support::produce_avro("logical", &topic, 1).await;
    let cases = [
        ("a wrong password", basic("not-the-password"), "401"),
        ("a wrong OAuth client secret", oauth("not-the-secret"), "invalid_client"),
    ];
    for (case, auth, expected) in cases {
        let name = unique("registry-refused");
        let worker = RunningWorker::start(
            &worker_with_registry(&auth),
            &[("sink.yaml", &avro_sink(&name, &topic, "b", "ebconnect.test.refused"))],
        );
        let status = support::wait_for(case, Duration::from_secs(90), || async {
            worker.state(&name).filter(|status| status.state.as_str() == "FAILED")
        })
        .await;
        let trace = status.trace.unwrap_or_default();
        assert!(trace.contains(expected), "{case}: {trace}");
        assert!(!trace.contains("not-the-"), "{case} shows the secret: {trace}");
        worker.stop().await;
    }
}
