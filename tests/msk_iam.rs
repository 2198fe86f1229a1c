//! `kafka.sasl.mechanism: AWS_MSK_IAM`, with no MSK here: the token every Kafka client's context hands librdkafka is
//! checked by botocore, the SigV4 implementation AWS's own Python MSK signer uses (tests/clients/
//! verify_msk_iam_token.py): host, action, expiry, the session token of temporary credentials, and the signature
//! recomputed from the credentials. The credentials come from a `credential_process` profile that issues new
//! temporary credentials valid 20 seconds, so the test also sees the token renewed, signed with new credentials,
//! when librdkafka asks again at 80% of its lifetime. Last, a sink with AWS_MSK_IAM against the local broker's
//! OAUTHBEARER listener shows the token leaving through the connector's own client: the broker, which validates JWTs,
//! refuses it, and the connector fails with the broker's answer.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::stack;

const REGION: &str = "eu-west-1";

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The credentials the process issued last.
fn last_issued(log: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(log).unwrap();
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

/// botocore's verdict on a token signed with `credentials`.
fn botocore_verdict(token: &str, credentials: &Value) -> Value {
    let field = |name: &str| credentials[name].as_str().unwrap().to_owned();
    let output = std::process::Command::new(stack("EBCONNECT_STACK_PYTHON"))
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/verify_msk_iam_token.py"
        ))
        .args([
            token.to_owned(),
            REGION.to_owned(),
            field("AccessKeyId"),
            field("SecretAccessKey"),
            field("SessionToken"),
        ])
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&output.stderr)))
}

fn verify(token: &str, credentials: &Value) -> Value {
    let answer = botocore_verdict(token, credentials);
    assert_eq!(answer["ok"], true, "{answer}");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_verify_with_botocore_and_are_renewed_before_their_credentials_expire() {
    let dir = tempfile::tempdir().unwrap();
    let issued = dir.path().join("issued.jsonl");
    let process = dir.path().join("credentials.sh");
    std::fs::write(
        &process,
        format!(
            "#!/bin/sh\nn=$(date +%s%N)\nexpires=$(date -u -d '+20 seconds' +%Y-%m-%dT%H:%M:%SZ)\nline=\"{{\\\"Version\\\": 1, \\\"AccessKeyId\\\": \\\"ASIAEBC$n\\\", \\\"SecretAccessKey\\\": \\\"secret-$n\\\", \\\"SessionToken\\\": \\\"session-$n\\\", \\\"Expiration\\\": \\\"$expires\\\"}}\"\necho \"$line\" >>{}\necho \"$line\"\n",
            issued.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&process)
        .status()
        .unwrap();
    let aws_config = dir.path().join("aws-config");
    std::fs::write(
        &aws_config,
        format!("[profile msk-short]\ncredential_process = {}\n", process.display()),
    )
    .unwrap();
    // The only test in this binary, so the environment is its own: the stack's static keys would come first in the
    // credential chain.
    for variable in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
    ] {
        std::env::remove_var(variable);
    }
    std::env::set_var("AWS_CONFIG_FILE", &aws_config);
    let worker_file = dir.path().join("worker.yaml");
    std::fs::write(
        &worker_file,
        format!(
            "kafka:\n  bootstrap_servers: b-1.orders.a1b2c3.c2.kafka.{REGION}.amazonaws.com:9098,b-2.orders.a1b2c3.c2.kafka.{REGION}.amazonaws.com:9098\n  security_protocol: sasl_ssl\n  sasl:\n    mechanism: AWS_MSK_IAM\naws:\n  profile: msk-short\n"
        ),
    )
    .unwrap();
    let worker = ebconnect::config::load_worker(&worker_file).unwrap();
    let signer = ebconnect::kafka::msk_iam::MskIamSigner::start(&worker).unwrap();
    assert_eq!(signer.region(), REGION);

    let asked = now_ms();
    let first = signer.token().unwrap();
    let first_credentials = last_issued(&issued);
    let checked = verify(&first.token, &first_credentials);
    let mut wrong_secret = first_credentials.clone();
    wrong_secret["SecretAccessKey"] = "not-the-secret".into();
    assert_eq!(
        botocore_verdict(&first.token, &wrong_secret)["problem"],
        "the signature is not the one botocore computes for these credentials and this time"
    );
    // The URL is valid 15 minutes; the credentials 20 seconds: the token lives as long as the shorter.
    assert!(checked["expires"].as_i64().unwrap() * 1000 > first.lifetime_ms);
    assert!(
        (asked + 10_000..=asked + 21_000).contains(&first.lifetime_ms),
        "lifetime {} ms from now",
        first.lifetime_ms - asked
    );

    // Every client asks as it starts: while the token has half its lifetime left, it is handed out again, without
    // fetching credentials or signing anew.
    let again = signer.token().unwrap();
    assert_eq!(again.token, first.token);
    assert_eq!(std::fs::read_to_string(&issued).unwrap().lines().count(), 1);

    // librdkafka asks again at 80% of the lifetime.
    let refresh_at = asked + (first.lifetime_ms - asked) * 8 / 10;
    tokio::time::sleep(Duration::from_millis((refresh_at - now_ms()).max(0) as u64)).await;
    let second = signer.token().unwrap();
    let second_credentials = last_issued(&issued);
    assert_ne!(
        first_credentials["AccessKeyId"], second_credentials["AccessKeyId"],
        "the credentials were not renewed"
    );
    assert!(second.lifetime_ms > first.lifetime_ms && second.lifetime_ms > now_ms());
    verify(&second.token, &second_credentials);

    let topic = support::unique("msk-iam");
    support::create_topic(&topic, 1).await;
    let name = support::unique("msk-iam");
    let worker_file = support::worker_yaml_for_kafka(&stack("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"), "")
        .replacen(
            "kafka:\n",
            &format!(
                "kafka:\n  security_protocol: sasl_ssl\n  sasl:\n    mechanism: AWS_MSK_IAM\n  tls:\n    ca_location: {}/ca.pem\n",
                stack("KAFKA_TLS_DIR")
            ),
            1,
        )
        .replacen("aws:\n", "aws:\n  profile: msk-short\n", 1);
    let worker = support::RunningWorker::start(
        &worker_file,
        &[("sink.yaml", &support::sink_yaml(&name, &topic, "b", "", ""))],
    );
    let status = support::wait_for(
        "the broker to refuse the MSK IAM token",
        Duration::from_secs(90),
        || async { worker.state(&name).filter(|status| status.state.as_str() == "FAILED") },
    )
    .await;
    let trace = status.trace.unwrap_or_default();
    assert!(
        trace.contains("Kafka refuses this client") && trace.contains("invalid_token"),
        "{trace}"
    );
    worker.stop().await;
}
