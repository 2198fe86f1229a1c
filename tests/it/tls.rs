//! Kafka over TLS, against the local broker's own listeners (`scripts/stack`): an `SSL` listener that requires a
//! client certificate, and a `SASL_SSL` listener with PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER (the broker
//! validates the JWTs against the stack's identity provider's JWKS, with Kafka's OAuthBearerValidatorCallbackHandler;
//! librdkafka fetches them from its token endpoint with client credentials). The sink and the source move records
//! over each; a client without a certificate, with one from another CA, that reaches the broker by a name its
//! certificate does not hold, or whose password or OAuth client secret is wrong is refused, and the connector goes
//! FAILED with the broker's or the TLS library's reason instead of retrying unseen.

use crate::support;

use std::time::Duration;

use crate::support::{stack, unique, worker_yaml_for_kafka, BusCapture, RunningWorker};
use serde_json::json;

fn tls_file(name: &str) -> String {
    format!("{}/{name}", stack("KAFKA_TLS_DIR"))
}

/// A worker file for `bootstrap` with `security` (the lines after `kafka.bootstrap_servers`).
fn worker(bootstrap: &str, security: &str) -> String {
    let base = worker_yaml_for_kafka(bootstrap, "");
    base.replacen(
        &format!("  bootstrap_servers: {bootstrap}\n"),
        &format!("  bootstrap_servers: {bootstrap}\n{security}"),
        1,
    )
}

fn mutual_tls(certificate: &str, key: &str, password: Option<&str>) -> String {
    let password = password.map_or(String::new(), |password| format!("    key_password: {password}\n"));
    format!(
        "  security_protocol: ssl\n  tls:\n    ca_location: {}\n    certificate_location: {}\n    key_location: {}\n{password}",
        tls_file("ca.pem"),
        tls_file(certificate),
        tls_file(key),
    )
}

fn sasl_over_tls(mechanism: &str, password: &str) -> String {
    format!(
        "  security_protocol: sasl_ssl\n  sasl:\n    mechanism: {mechanism}\n    username: {}\n    password: {password}\n  tls:\n    ca_location: {}\n",
        stack("KAFKA_SASL_USERNAME"),
        tls_file("ca.pem"),
    )
}

fn oauth_over_tls(client_secret: &str) -> String {
    format!(
        "  security_protocol: sasl_ssl\n  sasl:\n    mechanism: OAUTHBEARER\n    oauth:\n      token_endpoint_url: {}\n      client_id: {}\n      client_secret: {client_secret}\n      scope: kafka\n      extensions:\n        logicalCluster: lkc-stack\n        identityPoolId: pool-stack\n  tls:\n    ca_location: {}\n",
        stack("OAUTH_TOKEN_ENDPOINT_URL"),
        stack("OAUTH_CLIENT_ID"),
        tls_file("ca.pem"),
    )
}

/// A sink reads over the listener, and a source writes over it, end to end.
async fn sink_and_source_move_records(worker_file: &str, prefix: &str) {
    let topic = unique(&format!("{prefix}-in"));
    let out = unique(&format!("{prefix}-out"));
    support::create_topic(&topic, 1).await;
    support::create_topic(&out, 1).await;
    support::produce_numbered(&topic, 5).await;
    let capture = BusCapture::new(prefix, &json!({"source": [format!("ebconnect.test.{prefix}")]})).await;
    let sink = unique(&format!("{prefix}-sink"));
    let sink_file = support::sink_yaml(
        &sink,
        &topic,
        &capture.bus,
        &format!("source: ebconnect.test.{prefix}"),
        "",
    );
    let sqs = aws_sdk_sqs::Client::new(&support::aws_config().await);
    let queue_url = support::create_queue(&sqs, &unique(prefix)).await;
    for n in 0..3 {
        let event = json!({"id": format!("e-{n}"), "source": "custom", "detail": {"n": n}});
        sqs.send_message()
            .queue_url(&queue_url)
            .message_body(event.to_string())
            .send()
            .await
            .unwrap();
    }
    let source = unique(&format!("{prefix}-source"));
    let source_file = format!(
        "name: {source}\ntype: eventbridge-source\nconfig:\n  queue_url: {queue_url}\n  topic: {out}\n  wait_time: 1s\n"
    );
    let worker = RunningWorker::start(worker_file, &[("sink.yaml", &sink_file), ("source.yaml", &source_file)]);
    let events = capture.receive(5, Duration::from_secs(60)).await;
    assert_eq!(events.len(), 5);
    let written = tokio::task::spawn_blocking(move || support::consume_all(&out, 3, Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(written.len(), 3);
    assert_eq!(worker.state(&sink).map(|status| status.state.as_str()), Some("RUNNING"));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_move_over_mutual_tls() {
    std::env::set_var("EBCONNECT_TEST_CLIENT_KEY_PASSWORD", stack("KAFKA_CLIENT_KEY_PASSWORD"));
    let security = mutual_tls(
        "client.pem",
        "client.key",
        Some("${env:EBCONNECT_TEST_CLIENT_KEY_PASSWORD}"),
    );
    sink_and_source_move_records(&worker(&stack("KAFKA_SSL_BOOTSTRAP_SERVERS"), &security), "mtls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_move_over_scram_on_tls() {
    for (mechanism, prefix) in [("SCRAM-SHA-512", "scram512-tls"), ("SCRAM-SHA-256", "scram256-tls")] {
        let security = sasl_over_tls(mechanism, "${env:KAFKA_SASL_PASSWORD}");
        sink_and_source_move_records(&worker(&stack("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"), &security), prefix).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_move_over_plain_on_tls() {
    let security = sasl_over_tls("PLAIN", "${env:KAFKA_SASL_PASSWORD}");
    sink_and_source_move_records(
        &worker(&stack("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"), &security),
        "plain-tls",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_move_over_oauthbearer_with_oidc_client_credentials() {
    let security = oauth_over_tls("${env:OAUTH_CLIENT_SECRET}");
    sink_and_source_move_records(&worker(&stack("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"), &security), "oauth").await;
}

/// Refused credentials fail the connector too, with the broker's or the identity provider's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_fail_with_the_reason() {
    let topic = unique("sasl-refused");
    support::create_topic(&topic, 1).await;
    let sasl_ssl = stack("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS");
    let cases = [
        (
            "a wrong SCRAM password",
            sasl_over_tls("SCRAM-SHA-256", "not-the-password"),
            "Authentication failed",
        ),
        (
            "a wrong OAuth client secret",
            oauth_over_tls("not-the-secret"),
            "Failed to acquire SASL OAUTHBEARER token",
        ),
    ];
    for (case, security, expected) in cases {
        let name = unique("refused");
        let sink = support::sink_yaml(&name, &topic, "b", "", "");
        let worker = RunningWorker::start(&worker(&sasl_ssl, &security), &[("sink.yaml", &sink)]);
        let status = support::wait_for(case, Duration::from_secs(90), || async {
            worker.state(&name).filter(|status| status.state.as_str() == "FAILED")
        })
        .await;
        let trace = status.trace.unwrap_or_default();
        assert!(
            trace.contains("Kafka refuses this client") && trace.contains(expected),
            "{case}: {trace}"
        );
        assert!(!trace.contains("not-the-"), "{case} shows the secret: {trace}");
        worker.stop().await;
    }
}

/// Each refusal fails the connector, and its status says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_fails_with_the_reason() {
    let topic = unique("tls-refused");
    support::create_topic(&topic, 1).await;
    let ssl = stack("KAFKA_SSL_BOOTSTRAP_SERVERS");
    let port = ssl.rsplit(':').next().unwrap().to_owned();
    let no_certificate = format!(
        "  security_protocol: ssl\n  tls:\n    ca_location: {}\n",
        tls_file("ca.pem")
    );
    let cases = [
        ("no client certificate", worker(&ssl, &no_certificate)),
        (
            "a certificate from another CA",
            worker(&ssl, &mutual_tls("stranger.pem", "stranger.key", None)),
        ),
        (
            "a host name the broker's certificate does not name",
            worker(
                &format!("localhost:{port}"),
                &mutual_tls("client.pem", "client.key", Some(&stack("KAFKA_CLIENT_KEY_PASSWORD"))),
            ),
        ),
    ];
    for (case, worker_file) in cases {
        let name = unique("refused");
        let sink = support::sink_yaml(&name, &topic, "b", "", "");
        let worker = RunningWorker::start(&worker_file, &[("sink.yaml", &sink)]);
        let status = support::wait_for(case, Duration::from_secs(90), || async {
            worker.state(&name).filter(|status| status.state.as_str() == "FAILED")
        })
        .await;
        let trace = status.trace.unwrap_or_default();
        assert!(
            trace.contains("Kafka refuses this client") && trace.contains("SSL"),
            "{case}: {trace}"
        );
        worker.stop().await;
    }
}

#[test]
fn tls_settings_are_checked_when_the_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "  tls:\n    ca_location: /nonexistent/ca.pem\n",
            "ssl",
            "kafka.tls.ca_location: cannot read `/nonexistent/ca.pem`",
        ),
        (
            "  tls:\n    certificate_location: /etc/hostname\n",
            "ssl",
            "kafka.tls.key_location: required with kafka.tls.certificate_location",
        ),
        (
            "  tls:\n    verify_hostname: false\n",
            "plaintext",
            "kafka.tls is set but kafka.security_protocol is `plaintext`",
        ),
        (
            "  sasl:\n    mechanism: OAUTHBEARER\n",
            "sasl_ssl",
            "kafka.sasl.oauth: required with mechanism OAUTHBEARER",
        ),
        (
            "  sasl:\n    mechanism: SCRAM-SHA-256\n    username: u\n",
            "sasl_ssl",
            "kafka.sasl.password: required with mechanism SCRAM-SHA-256",
        ),
        (
            "  sasl:\n    mechanism: AWS_MSK_IAM\n",
            "sasl_plaintext",
            "kafka.security_protocol: AWS_MSK_IAM needs `sasl_ssl`",
        ),
        (
            "  sasl:\n    mechanism: AWS_MSK_IAM\n    username: u\n",
            "sasl_ssl",
            "kafka.sasl: mechanism AWS_MSK_IAM takes no username",
        ),
        (
            "  sasl:\n    mechanism: OAUTHBEARER\n    oauth:\n      token_endpoint_url: https://idp/token\n      client_id: c\n      client_secret: s\n      extensions: {logical_cluster: lkc-1}\n",
            "sasl_ssl",
            "kafka.sasl.oauth.extensions.logical_cluster: an extension's name is letters only",
        ),
    ];
    for (tls, protocol, expected) in cases {
        let file = dir.path().join("worker.yaml");
        std::fs::write(
            &file,
            format!("kafka:\n  bootstrap_servers: b:9093\n  security_protocol: {protocol}\n{tls}"),
        )
        .unwrap();
        let message = ebconnect::config::load_worker(&file).unwrap_err().message;
        assert!(message.contains(expected), "{message}\n  expected: {expected}");
    }
}
