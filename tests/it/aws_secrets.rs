//! `${aws-secretsmanager:}` and `${aws-ssm:}` against the emulator's Secrets Manager and SSM Parameter Store, through
//! the `ebconnect` binary as an operator runs it: the worker's Kafka SASL password from SSM, a receiver's API key and
//! secret from one Secrets Manager secret's JSON keys. The values work, never show (REST API, `validate`, the log at
//! trace level), a
//! rotated secret takes effect without a restart of the process, and a missing one is an error naming it.

use crate::support;

use std::time::Duration;

use crate::support::{stack, unique, ConfigDir};

struct Secrets {
    secrets_manager: aws_sdk_secretsmanager::Client,
    parameter_store: aws_sdk_ssm::Client,
}

impl Secrets {
    async fn new() -> Self {
        let sdk = support::aws_config().await;
        Self {
            secrets_manager: aws_sdk_secretsmanager::Client::new(&sdk),
            parameter_store: aws_sdk_ssm::Client::new(&sdk),
        }
    }

    async fn create_secret(&self, name: &str, value: &str) {
        self.secrets_manager
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }

    async fn rotate_secret(&self, name: &str, value: &str) {
        self.secrets_manager
            .put_secret_value()
            .secret_id(name)
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }

    async fn put_parameter(&self, name: &str, value: &str) {
        self.parameter_store
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .unwrap();
    }
}

fn api_key_secret(key: &str, secret: &str) -> String {
    serde_json::json!({"api_key": key, "api_secret": secret}).to_string()
}

/// The worker on the broker's SASL_PLAINTEXT listener, its password in SSM; the receiver's credentials in Secrets
/// Manager, re-read every second.
fn configuration(parameter: &str, secret: &str, topic: &str, receiver: std::net::SocketAddr) -> ConfigDir {
    let worker = support::worker_yaml_for_kafka(&stack("KAFKA_SASL_BOOTSTRAP_SERVERS"), "")
        .replacen(
            "kafka:\n",
            &format!(
                "kafka:\n  security_protocol: sasl_plaintext\n  sasl:\n    username: {}\n    password: ${{aws-ssm:{parameter}}}\n",
                stack("KAFKA_SASL_USERNAME")
            ),
            1,
        )
        .replacen("aws:\n", "aws:\n  secrets_refresh_interval: 1s\n", 1);
    let connector = format!(
        "name: secret-receiver\ntype: rest-produce-receiver\nconfig:\n  listen: {receiver}\n  cluster_id: lkc-secrets\n  topics: [{topic}]\n  auth:\n    api_key: ${{aws-secretsmanager:{secret}#api_key}}\n    api_secret: ${{aws-secretsmanager:{secret}#api_secret}}\n"
    );
    ConfigDir::new(&worker, &[("receiver.yaml", &connector)])
}

async fn post(receiver: std::net::SocketAddr, topic: &str, key: &str, secret: &str, n: u32) -> u16 {
    reqwest::Client::new()
        .post(format!(
            "http://{receiver}/kafka/v3/clusters/lkc-secrets/topics/{topic}/records"
        ))
        .basic_auth(key, Some(secret))
        .header("content-type", "application/json")
        .body(serde_json::json!({"value": {"type": "JSON", "data": {"n": n}}}).to_string())
        .send()
        .await
        .map_or(0, |response| response.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_from_aws_work_never_show_and_rotate_without_a_restart() {
    let secrets = Secrets::new().await;
    let parameter = format!("/ebconnect/{}/kafka-password", unique("test"));
    secrets.put_parameter(&parameter, &stack("KAFKA_SASL_PASSWORD")).await;
    let secret = unique("receiver-credentials");
    let first_secret = format!("first-{}", unique("s"));
    secrets
        .create_secret(&secret, &api_key_secret("receiver-key", &first_secret))
        .await;
    let topic = unique("secrets");
    support::create_topic(&topic, 1).await;
    let receiver = support::rest_address();
    let config = configuration(&parameter, &secret, &topic, receiver);

    let validated = support::ebconnect()
        .args(["validate", "--worker"])
        .arg(config.worker())
        .arg(config.connectors())
        .output()
        .unwrap();
    let validate_output = String::from_utf8_lossy(&validated.stdout).to_string();
    assert!(validated.status.success(), "{validate_output}");

    // At trace level, where the AWS SDK logs what it receives: the secrets' values pass through it.
    let mut child = support::spawn_worker_with_env(&config, "worker.log", &[("RUST_LOG", "trace")]);
    let rest = config.rest_address();
    support::wait_for("the receiver to take a record", Duration::from_secs(60), || async {
        (post(receiver, &topic, "receiver-key", &first_secret, 0).await == 200).then_some(())
    })
    .await;
    // The record went through the SASL listener with the password from SSM.
    let topic_read = topic.clone();
    let written = tokio::task::spawn_blocking(move || support::consume_all(&topic_read, 1, Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(written.len(), 1);

    let shown = reqwest::get(format!("http://{rest}/connectors/secret-receiver/config"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        shown.contains(&format!("${{aws-secretsmanager:{secret}#api_secret}}")),
        "{shown}"
    );

    let second_secret = format!("second-{}", unique("s"));
    secrets
        .rotate_secret(&secret, &api_key_secret("receiver-key", &second_secret))
        .await;
    support::wait_for("the rotated secret to be in use", Duration::from_secs(60), || async {
        (post(receiver, &topic, "receiver-key", &second_secret, 1).await == 200).then_some(())
    })
    .await;
    assert_eq!(post(receiver, &topic, "receiver-key", &first_secret, 2).await, 401);
    assert!(child.try_wait().unwrap().is_none(), "the worker process restarted");

    support::terminate(&child);
    child.wait().unwrap();
    let log = std::fs::read_to_string(config.dir.path().join("worker.log")).unwrap();
    assert!(log.contains("a secret changed in AWS"), "{log}");
    for value in [&first_secret, &second_secret, &stack("KAFKA_SASL_PASSWORD")] {
        for (what, text) in [
            ("the log", &log),
            ("validate", &validate_output),
            ("the REST API", &shown),
        ] {
            assert!(!text.contains(value.as_str()), "{what} shows a secret: {text}");
        }
    }
}

#[tokio::test]
async fn a_missing_secret_or_key_is_an_error_naming_it() {
    let secrets = Secrets::new().await;
    let parameter = format!("/ebconnect/{}/kafka-password", unique("test"));
    secrets.put_parameter(&parameter, &stack("KAFKA_SASL_PASSWORD")).await;
    let secret = unique("present");
    secrets.create_secret(&secret, &api_key_secret("k", "s")).await;
    let missing = unique("absent");
    let validate = |config: &ConfigDir| {
        let output = support::ebconnect()
            .args(["validate", "--worker"])
            .arg(config.worker())
            .arg(config.connectors())
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).to_string(),
        )
    };

    let config = configuration(&parameter, &missing, "t", support::rest_address());
    let (ok, output) = validate(&config);
    assert!(!ok, "{output}");
    assert!(
        output.contains(&format!("AWS Secrets Manager has no secret `{missing}`"))
            && output.contains("config.auth.api_"),
        "{output}"
    );

    let config = configuration(&parameter, &secret, "t", support::rest_address());
    let connector = config.connectors().join("receiver.yaml");
    let text = std::fs::read_to_string(&connector)
        .unwrap()
        .replace("#api_secret}", "#password}");
    std::fs::write(&connector, text).unwrap();
    let (ok, output) = validate(&config);
    assert!(!ok, "{output}");
    assert!(
        output.contains(&format!(
            "`{secret}` has no key `password` (its keys: api_key, api_secret)"
        )),
        "{output}"
    );

    let config = configuration("/ebconnect/surely/absent", &secret, "t", support::rest_address());
    let (ok, output) = validate(&config);
    assert!(!ok, "{output}");
    assert!(
        output.contains("SSM Parameter Store has no parameter `/ebconnect/surely/absent`")
            && output.contains("kafka.sasl"),
        "{output}"
    );
}

/// The README's worked examples for real clusters, each loaded as a worker file: their secrets from the emulator,
/// their certificate files the stack's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_worked_examples_load() {
    let secrets = Secrets::new().await;
    // Fixed names, as the README writes them: made once, whatever ran before.
    let _ = secrets
        .secrets_manager
        .create_secret()
        .name("confluent/kafka")
        .secret_string(r#"{"api_secret": "readme-kafka-secret"}"#)
        .send()
        .await;
    let _ = secrets
        .parameter_store
        .put_parameter()
        .name("/ebconnect/kafka/password")
        .value("readme-scram-password")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await;
    for variable in [
        "CONFLUENT_API_KEY",
        "SCHEMA_REGISTRY_API_KEY",
        "SCHEMA_REGISTRY_API_SECRET",
        "OAUTH_CLIENT_ID",
        "OAUTH_CLIENT_SECRET",
    ] {
        // The stack's own (OAUTH_CLIENT_ID, ...) stay as they are: other tests of this binary use them.
        if std::env::var(variable).is_err() {
            std::env::set_var(variable, format!("readme-{variable}"));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let key_password = dir.path().join("client-key-password");
    std::fs::write(&key_password, stack("KAFKA_CLIENT_KEY_PASSWORD")).unwrap();
    let aws = format!(
        "aws:\n  endpoint_url: {}\n  region: {}\n",
        stack("AWS_ENDPOINT_URL"),
        stack("AWS_REGION")
    );
    let emulator: ebconnect::config::AwsConfig = serde_json::from_value(serde_json::json!({
        "endpoint_url": stack("AWS_ENDPOINT_URL"),
        "region": stack("AWS_REGION"),
    }))
    .unwrap();
    let store = ebconnect::aws::secrets::AwsSecrets::new(&emulator);
    ebconnect::config::install_provider(store);

    let readme = include_str!("../../README.md");
    let section = &readme[readme.find("#### Connecting to the clusters users run").unwrap()..];
    let section = &section[..section.find("\n### ").unwrap()];
    let examples: Vec<&str> = section
        .split("```yaml\n")
        .skip(1)
        .map(|block| &block[..block.find("```").unwrap()])
        .collect();
    assert_eq!(examples.len(), 5);
    for example in examples {
        // The examples' own `aws` sections name real AWS; the emulator's stands in for them.
        let without_aws = match example.find("aws:\n") {
            Some(at) => &example[..at],
            None => example,
        };
        let text = without_aws
            .replace("/etc/ebconnect/", &format!("{}/", stack("KAFKA_TLS_DIR")))
            .replace("/run/secrets/client-key-password", &key_password.display().to_string());
        let file = dir.path().join("worker.yaml");
        std::fs::write(&file, format!("{text}{aws}")).unwrap();
        let loaded = tokio::task::spawn_blocking(move || ebconnect::config::load_worker(&file))
            .await
            .unwrap();
        assert!(loaded.is_ok(), "{example}\n{:?}", loaded.err());
    }
}
