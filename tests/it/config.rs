//! `ebconnect validate` and the configuration rules, as a user meets them. These tests need no running service.

use crate::support;

use crate::support::{ebconnect, ConfigDir};

const GOOD_SINK: &str = "name: good\ntype: eventbridge-sink\nconfig:\n  topics: [t]\n  event_bus: b\n";
const WORKER: &str = "kafka:\n  bootstrap_servers: 127.0.0.1:9092\n";

fn validate(dir: &ConfigDir, with_worker: bool) -> (bool, String) {
    let mut command = ebconnect();
    command.arg("validate");
    if with_worker {
        command.arg("--worker").arg(dir.worker());
    }
    let output = command.arg(dir.connectors()).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    (output.status.success(), format!("{stdout}{stderr}"))
}

#[test]
fn the_shipped_examples_are_valid() {
    // The examples read the stack's addresses from the environment; any values do for validation.
    let output = ebconnect()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["validate", "--worker", "config/worker.yaml", "connectors"])
        .env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
        .env("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("connectors/s3-calls-to-bus.yaml (connector `s3-calls-to-bus`, type eventbridge-sink)"),
        "{text}"
    );
}

/// The container files: the compose stack's worker file validates with the example connectors, and the compose file
/// mounts files that exist. (`docker compose config` checks the rest in CI where a compose client exists.)
#[test]
fn the_compose_stack_mounts_a_valid_configuration() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = ebconnect()
        .current_dir(root)
        .args(["validate", "--worker", "deploy/worker.yaml", "connectors"])
        .env("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
        .env("SCHEMA_REGISTRY_URL", "http://schema-registry:8081")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", "http://aws:5000")
        .env("EBCONNECT_REST_USERNAME", "admin")
        .env("EBCONNECT_REST_PASSWORD", "compose-check")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    let compose = compose_file(root);
    let environment = &compose["services"]["ebconnect"]["environment"];
    assert!(
        environment["EBCONNECT_REST_PASSWORD"]
            .as_str()
            .is_some_and(|value| value.contains(":?")),
        "compose must refuse to start the worker without a REST password: {environment}"
    );
    let volumes = compose["services"]["ebconnect"]["volumes"].as_array().unwrap();
    for volume in volumes {
        let host = volume.as_str().unwrap().split(':').next().unwrap();
        assert!(root.join(host).exists(), "{host} is mounted but missing");
    }
}

fn compose_file(root: &std::path::Path) -> serde_json::Value {
    serde_norway::from_str(&std::fs::read_to_string(root.join("docker-compose.yml")).unwrap()).unwrap()
}

/// A REST API reachable from other machines needs credentials, or an explicit opt-out.
#[test]
fn a_worker_listening_beyond_loopback_needs_basic_auth() {
    let exposed = format!("{WORKER}rest:\n  listen: 0.0.0.0:18083\n");
    let dir = ConfigDir::new(&exposed, &[("good.yaml", GOOD_SINK)]);
    let (ok, output) = validate(&dir, true);
    assert!(!ok, "{output}");
    assert!(
        output.contains("rest.basic_auth: required when rest.listen is 0.0.0.0:18083"),
        "{output}"
    );
    let allowed = format!("{exposed}  allow_unauthenticated: true\n");
    let dir = ConfigDir::new(&allowed, &[("good.yaml", GOOD_SINK)]);
    let (ok, output) = validate(&dir, true);
    assert!(ok, "{output}");
}

#[test]
fn a_good_file_passes() {
    let dir = ConfigDir::new(WORKER, &[("good.yaml", GOOD_SINK)]);
    let (ok, output) = validate(&dir, true);
    assert!(ok, "{output}");
    assert!(output.contains("ok     "), "{output}");
}

/// Each bad file must fail with its file name, the key path and the problem; all are reported in one run.
#[test]
fn every_kind_of_bad_file_is_named_with_its_key_and_problem() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "unknown-key.yaml",
            "name: a\ntype: eventbridge-sink\nconfig:\n  topics: [t]\n  event_bus: b\n  batch:\n    max_entrys: 5\n",
            &["unknown-key.yaml", "config.batch", "unknown field `max_entrys`", "line 7 column 5"],
        ),
        (
            "wrong-type.yaml",
            "name: b\ntype: eventbridge-sink\nconfig:\n  topics: [t]\n  event_bus: b\n  request:\n    max_in_flight: lots\n",
            &["wrong-type.yaml", "config.request.max_in_flight", "invalid type: string \"lots\"", "line 7"],
        ),
        (
            "missing.yaml",
            "name: c\ntype: eventbridge-sink\nconfig:\n  topics: [t]\n",
            &["missing.yaml", "config: missing field `event_bus`"],
        ),
        (
            "unset-env.yaml",
            "name: d\ntype: eventbridge-sink\nconfig:\n  topics: [t]\n  event_bus: b\n  consumer_override:\n    client.id: ${env:EBCONNECT_TEST_SURELY_UNSET}\n",
            &["unset-env.yaml", "config.consumer_override", "EBCONNECT_TEST_SURELY_UNSET", "is not set"],
        ),
        (
            "empty-credentials.yaml",
            "name: g\ntype: rest-produce-receiver\nconfig:\n  listen: 0.0.0.0:8082\n  topics: [t]\n  auth:\n    api_key: ''\n    api_secret: ''\n",
            &["empty-credentials.yaml", "config.auth: api_key and api_secret must not be empty"],
        ),
        (
            "unknown-type.yaml",
            "name: e\ntype: eventbridge-snk\nconfig: {}\n",
            &["unknown-type.yaml", "type: unknown variant `eventbridge-snk`", "line 2 column 7"],
        ),
        (
            "syntax.yaml",
            "name: f\ntype: eventbridge-sink\nconfig:\n  topics: [t\n",
            &["syntax.yaml", "line 5"],
        ),
        (
            "no-dlq.yaml",
            "name: g\ntype: eventbridge-sink\nconfig:\n  topics: [t]\n  event_bus: b\nerrors:\n  tolerance: all\n",
            &["no-dlq.yaml", "errors.deadletterqueue.topic is not set"],
        ),
        (
            "both-topics.yaml",
            "name: h\ntype: eventbridge-sink\nconfig:\n  topics: [t]\n  topics_regex: 'x.*'\n  event_bus: b\n",
            &["both-topics.yaml", "`topics` and `topics_regex` exclude each other"],
        ),
        (
            "bad-path.yaml",
            "name: i\ntype: eventbridge-sink\nconfig:\n  topics: [t]\n  event_bus: b\n  time: {json_path: eventTime}\n",
            &["bad-path.yaml", "config.time", "must start with `$`"],
        ),
        (
            "batch-limit.yaml",
            "name: j\ntype: eventbridge-sink\nconfig:\n  topics: [t]\n  event_bus: b\n  batch: {max_entries: 11}\n",
            &["batch-limit.yaml", "config.batch.max_entries: 11 is outside 1..=10"],
        ),
        (
            "bad-name.yaml",
            "name: 'has space'\ntype: eventbridge-sink\nconfig:\n  topics: [t]\n  event_bus: b\n",
            &["bad-name.yaml", "name: invalid connector name `has space`", "line 1"],
        ),
        (
            "unknown-group.yaml",
            "name: k\ntype: eventbridge-sink\nconfig:\n  topics: [t]\n  event_bus: b\n  rate_limit: nope\n",
            &["unknown-group.yaml", "config.rate_limit: no group `nope`"],
        ),
                (
            "open-receiver.yaml",
            "name: l\ntype: rest-produce-receiver\nconfig:\n  listen: 0.0.0.0:8082\n  topics: [t]\n",
            &["open-receiver.yaml", "config.auth: required when listening on 0.0.0.0:8082"],
        ),
        (
            "receiver-transforms.yaml",
            "name: m\ntype: rest-produce-receiver\nconfig:\n  listen: 127.0.0.1:8082\n  topics: [t]\ntransforms:\n  - drop_fields: {paths: [$.a]}\n",
            &["receiver-transforms.yaml", "transforms: a rest-produce-receiver writes records as sent"],
        ),
        (
            "avro-schema-file.yaml",
            "name: n\ntype: eventbridge-source\nconfig:\n  queue_url: http://q\n  topic: t\n  value: {format: avro, schema_file: /surely/missing.avsc}\n",
            &["avro-schema-file.yaml", "config.value.schema_file: cannot read /surely/missing.avsc"],
        ),
                (
            "threshold-hop.yaml",
            "name: o\ntype: threshold-alert\nconfig:\n  topics: [t]\n  window: 1m\n  hop: 7s\n  group_by: {who: $.who}\n  threshold: {count: 3}\n  output: {topic: out}\n",
            &["threshold-hop.yaml", "config.hop: must be positive, at most `window`, and divide it"],
        ),
        (
            "threshold-op.yaml",
            "name: p\ntype: threshold-alert\nconfig:\n  topics: [t]\n  window: 1m\n  group_by: {who: $.who}\n  threshold: {count: 3, op: '=='}\n  output: {topic: out}\n",
            &["threshold-op.yaml", "config.threshold.op: unknown variant `==`"],
        ),
        (
            "sink-dedupe.yaml",
            "name: q\ntype: eventbridge-sink\nconfig:\n  topics: [t]\n  event_bus: b\ntransforms:\n  - dedupe: {key: $.id, window: 10m}\n",
            &["sink-dedupe.yaml", "transforms: `dedupe` runs only in topic-processor and eventbridge-source connectors, not in eventbridge-sink"],
        ),
        (
            "processor-two-dedupes.yaml",
            "name: r\ntype: topic-processor\nconfig:\n  topics: [t]\n  output: {topic: out}\ntransforms:\n  - dedupe: {key: $.id, window: 10m}\n  - dedupe: {key: $.other, window: 1m}\n",
            &["processor-two-dedupes.yaml", "transforms[1].dedupe: a connector has at most one dedupe"],
        ),
        (
            "processor-loop.yaml",
            "name: s\ntype: topic-processor\nconfig:\n  topics: [t]\n  output: {topic: t}\n",
            &["processor-loop.yaml", "config.output.topic: `t` is also an input topic"],
        ),
        ("zz-duplicate.yaml", GOOD_SINK, &["zz-duplicate.yaml", "connector `good` is already defined in"]),
    ];
    let mut files: Vec<(&str, &str)> = cases.iter().map(|(file, text, _)| (*file, *text)).collect();
    files.push(("good.yaml", GOOD_SINK));
    let dir = ConfigDir::new(WORKER, &files);
    let (ok, output) = validate(&dir, true);
    assert!(!ok, "validate must fail:\n{output}");
    for (file, _, expected) in cases {
        let line = output
            .lines()
            .find(|line| line.contains(&format!("/{file}:")))
            .unwrap_or_else(|| panic!("no error for {file}:\n{output}"));
        assert!(line.starts_with("error  "), "{line}");
        for fragment in *expected {
            assert!(line.contains(fragment), "expected `{fragment}` in: {line}");
        }
    }
    assert!(output.contains("good.yaml (connector `good`"), "{output}");
}

#[test]
fn worker_file_errors_are_reported() {
    let dir = ConfigDir::new(
        "kafka:\n  bootstrap_servers: x:1\n  security_protocol: sasl_ssl\n",
        &[("good.yaml", GOOD_SINK)],
    );
    let (ok, output) = validate(&dir, true);
    assert!(!ok);
    assert!(
        output.contains("worker.yaml: kafka.security_protocol is `sasl_ssl` but kafka.sasl"),
        "{output}"
    );

    let dir = ConfigDir::new(
        "kafka:\n  bootstrap_servers: x:1\nshutdown_timeout: soon\n",
        &[("good.yaml", GOOD_SINK)],
    );
    let (ok, output) = validate(&dir, true);
    assert!(!ok);
    assert!(output.contains("worker.yaml: shutdown_timeout: "), "{output}");

    for (cluster, expected) in [
        ("{}", "cluster: missing field `group_id`"),
        ("{group_id: 'a b'}", "cluster.group_id: must be 1 to 249 letters"),
        (
            "{group_id: g, config_topic: 'x/y'}",
            "cluster.config_topic: must be a Kafka topic name",
        ),
        (
            "{group_id: g, config_topic: t, status_topic: t}",
            "cluster.status_topic: must differ from cluster.config_topic",
        ),
        (
            "{group_id: g, status_interval: 0s}",
            "cluster.status_interval: must be more than 0s",
        ),
        (
            "{group_id: g, status_interval: 5s, worker_timeout: 5s}",
            "cluster.worker_timeout: must be longer than",
        ),
        (
            "{group_id: g, files: maybe}",
            "cluster.files: unknown variant `maybe`, expected `write` or `ignore`",
        ),
        ("{group_id: g, leader: w1}", "unknown field `leader`"),
    ] {
        let dir = ConfigDir::new(
            &format!("kafka:\n  bootstrap_servers: x:1\ncluster: {cluster}\n"),
            &[("good.yaml", GOOD_SINK)],
        );
        let (ok, output) = validate(&dir, true);
        assert!(!ok, "cluster: {cluster} was accepted");
        assert!(
            output.contains(expected),
            "expected `{expected}` for {cluster}:\n{output}"
        );
    }
}

#[test]
fn interpolation_resolves_env_and_file_values() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("bus");
    std::fs::write(&secret_file, "bus-from-file\n").unwrap();
    let worker = dir.path().join("worker.yaml");
    std::fs::write(
        &worker,
        "kafka:\n  bootstrap_servers: ${env:EBCONNECT_TEST_BOOTSTRAP}\n  security_protocol: sasl_plaintext\n  sasl:\n    username: u\n    password: ${file:SECRET}\n"
            .replace("SECRET", secret_file.to_str().unwrap()),
    )
    .unwrap();
    std::env::set_var("EBCONNECT_TEST_BOOTSTRAP", "broker-a:9092,broker-b:9092");
    let loaded = ebconnect::config::load_worker(&worker).unwrap();
    assert_eq!(loaded.kafka.bootstrap_servers.value(), "broker-a:9092,broker-b:9092");
    let sasl = loaded.kafka.sasl.unwrap();
    assert_eq!(sasl.password.as_ref().unwrap().expose(), "bus-from-file");
    assert!(!format!("{sasl:?}").contains("bus-from-file"));
}

/// `${env:}` and `${file:}` resolve in every setting, in both forms and in the worker file, whatever the setting's
/// type; a setting's own placeholders (`${topic}`) stay; an unset variable is an error naming it and the key.
#[test]
fn placeholders_resolve_in_every_setting() {
    let dir = tempfile::tempdir().unwrap();
    let bus_file = dir.path().join("bus");
    std::fs::write(&bus_file, "bus-from-file\n").unwrap();
    std::env::set_var("EBCONNECT_TEST_EVERY_TOPIC", "audit");
    std::env::set_var("EBCONNECT_TEST_EVERY_BATCH", "4");
    std::env::set_var("EBCONNECT_TEST_EVERY_PREFIX", "aws");
    std::env::set_var("EBCONNECT_TEST_EVERY_WORKER", "worker-7");
    let nested = dir.path().join("nested.yaml");
    std::fs::write(
        &nested,
        format!(
            "name: every\ntype: eventbridge-sink\nconfig:\n  topics: [\"${{env:EBCONNECT_TEST_EVERY_TOPIC}}\"]\n  \
             event_bus: ${{file:{}}}\n  detail_type: ${{env:EBCONNECT_TEST_EVERY_PREFIX}}-${{topic}}\n  \
             batch: {{max_entries: \"${{env:EBCONNECT_TEST_EVERY_BATCH}}\"}}\n  \
             consumer_override: {{client.id: \"${{env:EBCONNECT_TEST_EVERY_PREFIX}}\"}}\n",
            bus_file.display()
        ),
    )
    .unwrap();
    let flat = dir.path().join("flat.yaml");
    std::fs::write(
        &flat,
        format!(
            "name: every\nconfig:\n  connector.class: eventbridge-sink\n  topics: ${{env:EBCONNECT_TEST_EVERY_TOPIC}}\n  \
             event_bus: ${{file:{}}}\n  detail_type: ${{env:EBCONNECT_TEST_EVERY_PREFIX}}-${{topic}}\n  \
             batch.max_entries: ${{env:EBCONNECT_TEST_EVERY_BATCH}}\n  \
             consumer.override.client.id: ${{env:EBCONNECT_TEST_EVERY_PREFIX}}\n",
            bus_file.display()
        ),
    )
    .unwrap();
    for file in [&nested, &flat] {
        let loaded = ebconnect::connectors::load_connector(file, None).unwrap();
        let settings = serde_json::to_value(&loaded.settings).unwrap();
        assert_eq!(settings["topics"], serde_json::json!(["audit"]), "{}", file.display());
        assert_eq!(settings["event_bus"], "bus-from-file");
        assert_eq!(settings["detail_type"]["default"], "aws-${topic}");
        assert_eq!(settings["batch"]["max_entries"], 4);
        // A setting that resolves its own keeps the placeholder to show.
        assert_eq!(
            settings["consumer_override"]["client.id"],
            "${env:EBCONNECT_TEST_EVERY_PREFIX}"
        );
        assert_eq!(
            loaded.shown_config()["event_bus"],
            format!("${{file:{}}}", bus_file.display())
        );
    }
    let unset = dir.path().join("unset.yaml");
    std::fs::write(&unset, "name: u\nconfig:\n  connector.class: eventbridge-sink\n  topics: t\n  event_bus: ${env:EBCONNECT_TEST_SURELY_UNSET}\n").unwrap();
    let message = ebconnect::connectors::load_connector(&unset, None).unwrap_err().message;
    assert!(
        message.contains("event_bus: environment variable `EBCONNECT_TEST_SURELY_UNSET` is not set"),
        "{message}"
    );
    let worker = dir.path().join("worker.yaml");
    std::fs::write(
        &worker,
        "worker_id: ${env:EBCONNECT_TEST_EVERY_WORKER}\nkafka:\n  bootstrap_servers: b:9092\n",
    )
    .unwrap();
    assert_eq!(ebconnect::config::load_worker(&worker).unwrap().worker_id(), "worker-7");
}

/// A secret given through `${env:...}` shows up in no validate output and no log line, even at debug level and
/// even when the credentials are refused.
#[test]
fn secrets_appear_in_no_output() {
    const SECRET: &str = "Sup3r-S3cret-Passw0rd-0f-ebconnect";
    let worker = format!(
        "kafka:\n  bootstrap_servers: {}\n  security_protocol: sasl_plaintext\n  sasl:\n    mechanism: PLAIN\n    username: ebconnect\n    password: ${{env:EBCONNECT_TEST_SASL_PASSWORD}}\naws:\n  region: us-east-1\n  endpoint_url: http://127.0.0.1:9\nrest:\n  listen: {}\nshutdown_timeout: 5s\n",
                support::stack("KAFKA_SASL_BOOTSTRAP_SERVERS"),
        support::rest_address()
    );
    let broken = "name: broken\ntype: eventbridge-sink\nconfig:\n  topics: [t]\n  event_bus: b\n  consumer_override:\n    client.id: ${env:EBCONNECT_TEST_SASL_PASSWORD}\n  batch: {max_entries: 0}\n";
    let dir = ConfigDir::new(&worker, &[("broken.yaml", broken), ("good.yaml", GOOD_SINK)]);

    let output = ebconnect()
        .args(["validate", "--worker"])
        .arg(dir.worker())
        .arg(dir.connectors())
        .env("EBCONNECT_TEST_SASL_PASSWORD", SECRET)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("config.batch.max_entries"), "{text}");
    assert!(!text.contains(SECRET), "validate printed the secret:\n{text}");

    // Run the worker with a wrong secret against the SASL listener: authentication fails and is logged.
    std::fs::remove_file(dir.connectors().join("broken.yaml")).unwrap();
    let child = ebconnect()
        .args(["run", "--worker"])
        .arg(dir.worker())
        .arg("--connectors")
        .arg(dir.connectors())
        .env("EBCONNECT_TEST_SASL_PASSWORD", SECRET)
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(6));
    support::terminate(&child);
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("connector started"), "{text}");
    assert!(
        text.to_lowercase().contains("authentication"),
        "expected the SASL failure in the logs:\n{text}"
    );
    assert!(!text.contains(SECRET), "a log line carried the secret:\n{text}");
}

/// Hostile files are refused at once, naming the limit: a document nested 100,000 flow levels deep (the parser took
/// minutes on it), one over 1 MiB, and a `${file:}` pointing at a device that never ends.
#[test]
fn hostile_files_are_refused_quickly() {
    let deep = format!(
        "name: deep\ntype: eventbridge-sink\nconfig:\n  topics: {}{}\n  event_bus: b\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let large = format!(
        "name: large\ntype: eventbridge-sink\nconfig:\n  topics: [t]\n  event_bus: b\n#{}\n",
        "x".repeat(1 << 20)
    );
    let endless = "name: endless\ntype: eventbridge-sink\nconfig:\n  topics: [t]\n  event_bus: b\n  consumer_override:\n    sasl.password: ${file:/dev/zero}\n";
    let dir = ConfigDir::new(
        WORKER,
        &[("deep.yaml", &deep), ("large.yaml", &large), ("endless.yaml", endless)],
    );
    let started = std::time::Instant::now();
    let (ok, output) = validate(&dir, true);
    assert!(!ok, "{output}");
    // A generous bound for a debug build on a busy machine; the parser alone took over two minutes.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    for expected in [
        "deep.yaml: flow collections (`[`, `{`) nested more than 64 levels deep at line 4",
        "large.yaml: the document is larger than 1048576 bytes",
        "endless.yaml: config.consumer_override: cannot read `/dev/zero` (referenced as ${file:/dev/zero}): not a regular file",
    ] {
        assert!(output.contains(expected), "missing {expected:?} in:\n{output}");
    }
}
