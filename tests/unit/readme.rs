//! The README's configuration reference against the code, both ways: every key of the worker file and of each
//! connector type, as the configuration serializes with every default filled in, is named in that type's section of
//! the README, and every key the section's tables name is one of them. These tests need no running service.

use serde::Serialize;
use serde_json::Value;

const README: &str = include_str!("../../README.md");

/// The README from `heading` to the next heading of the same or a higher level.
fn section(heading: &str) -> &'static str {
    let start = README
        .find(heading)
        .unwrap_or_else(|| panic!("the README has no {heading:?}"));
    let body = &README[start + heading.len()..];
    let end = ["\n### ", "\n## "]
        .iter()
        .filter_map(|next| body.find(next))
        .min()
        .unwrap_or(body.len());
    &body[..end]
}

/// Every key path of `value`: each key, and below an object each of its keys joined with a dot.
fn key_paths(value: &Value, prefix: &str, paths: &mut Vec<String>) {
    let Value::Object(map) = value else {
        return;
    };
    for (key, child) in map {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        // Maps whose keys are the user's (librdkafka settings, rate-limit groups, patterns, output fields), and
        // values whose forms the README writes out inline (`{json_path, by_topic, default}`), are checked by their
        // own name.
        let by_name = key.ends_with("_override")
            || [
                "consumer",
                "producer",
                "rate_limits",
                "event_pattern",
                "filter",
                "group_by",
                "detail_type",
                "time",
                "event_time",
                "extensions",
            ]
            .contains(&key.as_str());
        if !by_name {
            key_paths(child, &path, paths);
        }
        paths.push(path);
    }
}

/// The key paths of `config` that `section` does not name, either in full (`` `retry.max_attempts` ``) or in the
/// README's shorthand after a full one (`` `retry.initial_backoff`, `.max_backoff` ``).
fn missing(config: &impl Serialize, section: &str) -> Vec<String> {
    let mut paths = Vec::new();
    key_paths(&serde_json::to_value(config).unwrap(), "", &mut paths);
    paths
        .into_iter()
        .filter(|path| {
            let (parent, last) = path.rsplit_once('.').unwrap_or(("", path));
            let full = section.contains(&format!("`{path}`")) || section.contains(&format!("`{path}."));
            let shorthand = !parent.is_empty()
                && section.contains(&format!("`.{last}`"))
                && section.contains(&format!("`{parent}."));
            !(full || shorthand)
        })
        .collect()
}

/// The keys the tables of `section` name (the first cell of each row: `` `a.b` ``, or the shorthand `` `.c` `` after
/// a full one) that `config` does not have. A key below one that holds the user's own names (`rate_limits.<group>`,
/// `detail_type.by_topic`) counts as the parent's.
fn unknown(config: &impl Serialize, section: &str) -> Vec<String> {
    let mut paths = Vec::new();
    key_paths(&serde_json::to_value(config).unwrap(), "", &mut paths);
    let mut named = Vec::new();
    for row in section.lines().filter(|line| line.starts_with("| `")) {
        let first_cell = row.trim_start_matches('|').split(" |").next().unwrap_or_default();
        let mut parent = String::new();
        for key in first_cell.split('`').skip(1).step_by(2) {
            let key = match key.strip_prefix('.') {
                Some(last) => format!("{parent}.{last}"),
                None => key.to_owned(),
            };
            parent = key
                .rsplit_once('.')
                .map_or(String::new(), |(parent, _)| parent.to_owned());
            named.push(key);
        }
    }
    named
        .into_iter()
        .filter(|key| {
            // A path the key paths do not go below: a value, or a map of the user's own names.
            let leaf = |path: &String| !paths.iter().any(|other| other.starts_with(&format!("{path}.")));
            let known = |path: &String| key == path || (key.starts_with(&format!("{path}.")) && leaf(path));
            !paths.iter().any(known)
        })
        .collect()
}

/// A shipped connector file's `config`, as its type reads it.
fn shipped<T: serde::de::DeserializeOwned>(file: &str) -> T {
    let text = std::fs::read_to_string(format!("{}/connectors/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let document: Value = serde_norway::from_str(&text).unwrap();
    serde_json::from_value(document["config"].clone()).unwrap()
}

#[test]
fn every_worker_key_is_in_the_reference() {
    // Every optional section present, so that its keys are checked too.
    let worker: ebconnect::config::WorkerConfig = serde_norway::from_str(
        "kafka:
  bootstrap_servers: k:9092
  security_protocol: sasl_ssl
  sasl:
    mechanism: OAUTHBEARER
    username: u
    password: p
    oauth: {token_endpoint_url: 'https://i/t', client_id: c, client_secret: s, scope: k, extensions: {a: b}}
  tls: {ca_location: /ca.pem}
schema_registry:
  url: http://r
  basic_auth: {username: u, password: p}
  bearer_token: t
  oauth:
    token_endpoint_url: 'https://i/t'
    client_id: c
    client_secret: s
    scope: k
    logical_cluster: lsrc-1
    identity_pool_id: pool-1
  ca_location: /ca.pem
aws:
  region: us-east-1
  endpoint_url: http://a
  service_endpoints: {events: http://e, sqs: http://q, s3: http://s, secretsmanager: http://m, ssm: http://p}
  profile: p
  assume_role: {role_arn: 'arn:aws:iam::1:role/r', session_name: s, external_id: e}
rest:
  listen: 127.0.0.1:8083
  basic_auth: {username: u, password: p}
rate_limits:
  group: {requests_per_second: 1, entries_per_second: 10}
cluster: {group_id: g, config_topic: c, status_topic: s, replication_factor: 3}
",
    )
    .unwrap();
    let missing = missing(&worker, section("### Worker file"));
    assert!(
        missing.is_empty(),
        "keys missing from the README's worker table: {missing:?}"
    );
    let unknown = unknown(&worker, section("### Worker file"));
    assert!(
        unknown.is_empty(),
        "keys in the README's worker table that the worker file does not have: {unknown:?}"
    );
}

/// What the API shows of a connector's time setting is what a user writes, so it can be sent back.
#[test]
fn the_time_setting_round_trips() {
    for written in ["record_timestamp", "none", "{json_path: $.eventTime}"] {
        let time: ebconnect::connectors::settings::TimeConfig = serde_norway::from_str(written).unwrap();
        let shown = serde_json::to_value(&time).unwrap();
        let again: ebconnect::connectors::settings::TimeConfig = serde_json::from_value(shown.clone()).unwrap();
        assert_eq!(serde_json::to_value(&again).unwrap(), shown, "{written}");
    }
}

#[test]
fn every_connector_key_is_in_the_reference() {
    use ebconnect::connectors::{processor, receiver, sink, source, threshold};
    let cases: [(&str, Value); 5] = [
        (
            "### `type: eventbridge-sink`",
            serde_json::to_value(shipped::<sink::SinkConfig>("flagged-to-bus.yaml")).unwrap(),
        ),
        (
            "### `type: eventbridge-source`",
            serde_json::to_value(shipped::<source::SourceConfig>("cloudtrail-from-bus.yaml")).unwrap(),
        ),
        (
            "### `type: rest-produce-receiver`",
            serde_json::to_value(shipped::<receiver::ReceiverConfig>("api-destination-receiver.yaml")).unwrap(),
        ),
        (
            "### `type: threshold-alert`",
            serde_json::to_value(shipped::<threshold::ThresholdConfig>(
                "s3-principals-over-threshold.yaml",
            ))
            .unwrap(),
        ),
        (
            "### `type: topic-processor`",
            serde_json::to_value(shipped::<processor::ProcessorConfig>("mask-flagged.yaml")).unwrap(),
        ),
    ];
    let mut gaps = Vec::new();
    for (heading, config) in &cases {
        let missing = missing(config, section(heading));
        if !missing.is_empty() {
            gaps.push(format!("{heading}: missing from the README: {missing:?}"));
        }
        let unknown = unknown(config, section(heading));
        if !unknown.is_empty() {
            gaps.push(format!("{heading}: in the README but not in the type: {unknown:?}"));
        }
    }
    assert!(gaps.is_empty(), "{gaps:#?}");
}

/// The example of a connector file in Kafka Connect's form loads, as the same sink as its nested equivalent.
#[test]
fn the_kafka_connect_form_example_loads() {
    let section = section("### Kafka Connect's form");
    let example = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the section has a YAML example");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flat.yaml");
    std::fs::write(&file, example).unwrap();
    let loaded = ebconnect::connectors::load_connector(&file, None).unwrap_or_else(|error| panic!("{error}"));
    let settings = serde_json::to_value(&loaded.settings).unwrap();
    assert_eq!(settings["topics"], serde_json::json!(["cloudtrail", "audit"]));
    assert_eq!(settings["detail_type"]["json_path"], "$.eventName");
    assert_eq!(settings["consumer_override"]["session.timeout.ms"], "45000");
    assert_eq!(loaded.written["tasks.max"], "1");
}
