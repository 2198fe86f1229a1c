//! `ebconnect test`: connector unit tests, the way `vector test` and `rpk connect test` run them. A test file names
//! a connector file and cases; each case gives input records and the outcomes the connector must make of them, in
//! order, as `ebconnect preview --json` prints them. Expected fields are compared with the outcome's own (partly by
//! default, wholly with `exact: true`); a case that differs is shown field by field.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Deserialize;
use serde_json::Value;

use super::preview::describe;
use crate::config::WorkerConfig;
use crate::connectors::preview::Preview;
use crate::connectors::{is_yaml, load_connector, ConnectorConfig};
use crate::record::{Position, Record, TimestampType};
use crate::schema::encode::{AvroRecordEncoder, BinaryText, WriterSchema};

/// A test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    /// The connector file, relative to the test file.
    connector: PathBuf,
    /// The worker file, relative to the test file. Default: the one given to `ebconnect test --worker`, else
    /// config/worker.yaml.
    #[serde(default)]
    worker: Option<PathBuf>,
    tests: Vec<TestCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCase {
    name: String,
    /// Read in order by one connector, so a threshold-alert counts them together.
    records: Vec<TestRecord>,
    /// Every outcome, in order: a threshold-alert's alerts of the windows still open come last.
    expect: Vec<Value>,
}

/// A record. Its value is one of `value` (JSON, written as JSON text), `value_text` (the text itself) and
/// `value_avro` (a value given as JSON with its schema, written as Confluent-framed Avro through the worker's
/// registry), or none (a tombstone). For a source the value is the event, as the SQS message's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestRecord {
    /// A string is the key's text; any other JSON is written as JSON text.
    #[serde(default)]
    key: Option<Value>,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    value_text: Option<String>,
    #[serde(default)]
    value_avro: Option<AvroValue>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Milliseconds since the epoch, or RFC 3339. Default: none.
    #[serde(default)]
    timestamp: Option<Value>,
    /// Default: the connector's first topic.
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    partition: i32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AvroValue {
    schema: Value,
    value: Value,
}

const OUTCOMES: &[&str] = &[
    "entry",
    "filtered",
    "unmatched",
    "error",
    "counted",
    "late",
    "alert",
    "record",
    "rejected",
];

/// One expected outcome: its name, the fields to compare, and whether the outcome may have others.
#[derive(Debug)]
struct Expected {
    outcome: String,
    fields: serde_json::Map<String, Value>,
    exact: bool,
}

impl Expected {
    /// `filtered`, or `{entry: {Source: x}}`, or `{entry: {...}, exact: true}`.
    fn parse(item: &Value) -> Result<Self, String> {
        let known = |name: &str| {
            if OUTCOMES.contains(&name) {
                Ok(name.to_owned())
            } else {
                Err(format!(
                    "`{name}` is not an outcome; expected one of {}",
                    OUTCOMES.join(", ")
                ))
            }
        };
        match item {
            Value::String(name) => Ok(Self {
                outcome: known(name)?,
                fields: serde_json::Map::new(),
                exact: false,
            }),
            Value::Object(map) => {
                let exact = match map.get("exact") {
                    None => false,
                    Some(Value::Bool(exact)) => *exact,
                    Some(other) => return Err(format!("`exact` is {other}, not true or false")),
                };
                let mut names = map.keys().filter(|key| *key != "exact");
                let (Some(name), None) = (names.next(), names.next()) else {
                    return Err(
                        "an expected outcome names one outcome (e.g. `entry:`), and may add `exact: true`".into(),
                    );
                };
                let fields = match &map[name] {
                    Value::Object(fields) => fields.clone(),
                    Value::Null => serde_json::Map::new(),
                    other => return Err(format!("`{name}` holds {other}; its fields are a map")),
                };
                // No outcome has a field of that name: it is `exact: true` put one level too deep.
                if fields.contains_key("exact") {
                    return Err(format!("`exact` goes beside `{name}:`, not inside it"));
                }
                Ok(Self {
                    outcome: known(name)?,
                    fields,
                    exact,
                })
            }
            other => Err(format!(
                "{other} is not an outcome: write a name (`filtered`) or a map (`entry: {{...}}`)"
            )),
        }
    }

    /// What differs between this and `actual` (an outcome as JSON), one line each.
    fn differences(&self, actual: &Value) -> Vec<String> {
        let outcome = actual["outcome"].as_str().unwrap_or_default();
        if outcome != self.outcome {
            return vec![format!("expected {}, got {outcome}", self.outcome)];
        }
        let mut actual_fields = actual.as_object().cloned().unwrap_or_default();
        actual_fields.remove("outcome");
        let mut differences = Vec::new();
        compare_object(&self.fields, &actual_fields, self.exact, "", &mut differences);
        differences
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn compare_object(
    expected: &serde_json::Map<String, Value>,
    actual: &serde_json::Map<String, Value>,
    exact: bool,
    path: &str,
    differences: &mut Vec<String>,
) {
    for (key, want) in expected {
        let at = join(path, key);
        match actual.get(key) {
            Some(got) => compare(want, got, exact, &at, differences),
            None => differences.push(format!("{at}: expected {want}, absent")),
        }
    }
    if exact {
        for (key, got) in actual.iter().filter(|(key, _)| !expected.contains_key(*key)) {
            differences.push(format!("{}: not expected, got {got}", join(path, key)));
        }
    }
}

/// Objects compare field by field (only the expected fields, unless `exact`); arrays item by item; anything else
/// by equality.
fn compare(want: &Value, got: &Value, exact: bool, path: &str, differences: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(want), Value::Object(got)) => compare_object(want, got, exact, path, differences),
        (Value::Array(want_items), Value::Array(got_items)) if want_items.len() == got_items.len() => {
            for (index, (want, got)) in want_items.iter().zip(got_items).enumerate() {
                compare(want, got, exact, &format!("{path}[{index}]"), differences);
            }
        }
        (Value::Number(want_number), Value::Number(got_number)) if want_number.as_f64() == got_number.as_f64() => {}
        _ if want == got => {}
        _ => differences.push(format!("{path}: expected {want}, got {got}")),
    }
}

/// Runs every test file (directories: their `*.yaml` files); exits 0 when every case holds, 1 when one does not,
/// 2 when a file cannot be used.
pub async fn run(paths: &[PathBuf], default_worker: Option<&Path>, load_worker: &WorkerLoader) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            match std::fs::read_dir(path) {
                Ok(entries) => {
                    let mut found: Vec<PathBuf> = entries
                        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                        .filter(|path| is_yaml(path))
                        .collect();
                    found.sort();
                    files.extend(found);
                }
                Err(error) => {
                    eprintln!("{}: cannot list: {error}", path.display());
                    return ExitCode::from(2);
                }
            }
        } else {
            files.push(path.clone());
        }
    }
    if files.is_empty() {
        eprintln!("no test files (*.yaml) in {paths:?}");
        return ExitCode::from(2);
    }
    let mut tally = (0usize, 0usize);
    for file in &files {
        match run_file(file, default_worker, load_worker, &mut out).await {
            Ok((passed, failed)) => {
                tally.0 += passed;
                tally.1 += failed;
            }
            Err(message) => {
                let _ = out.flush();
                eprintln!("{}: {}", file.display(), crate::redact::scrub(&message));
                return ExitCode::from(2);
            }
        }
    }
    let _ = writeln!(
        out,
        "summary: {} test files, {} cases: {} passed, {} failed",
        files.len(),
        tally.0 + tally.1,
        tally.0,
        tally.1
    );
    if tally.1 == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Loads a worker file named by a test file (with its secrets), as `main` loads one.
pub type WorkerLoader = dyn Fn(&Path) -> Result<WorkerConfig, String>;

/// Runs one file's cases; returns how many passed and failed.
async fn run_file(
    file: &Path,
    default_worker: Option<&Path>,
    load_worker: &WorkerLoader,
    out: &mut impl Write,
) -> Result<(usize, usize), String> {
    let text = std::fs::read_to_string(file).map_err(|error| format!("cannot read: {error}"))?;
    let tests: TestFile = serde_norway::from_str(&text).map_err(|error| error.to_string())?;
    let base = file.parent().unwrap_or(Path::new("."));
    let worker_file = match &tests.worker {
        Some(path) => base.join(path),
        None => default_worker
            .ok_or("no worker file: name one with `worker:` in the test file, or with --worker".to_owned())?
            .to_owned(),
    };
    let worker = &load_worker(&worker_file).map_err(|error| format!("worker: {error}"))?;
    let connector_file = base.join(&tests.connector);
    let connector = load_connector(&connector_file, Some(worker)).map_err(|error| format!("connector: {error}"))?;
    let mut expected_by_case = Vec::with_capacity(tests.tests.len());
    for case in &tests.tests {
        let expected: Result<Vec<Expected>, String> = case
            .expect
            .iter()
            .enumerate()
            .map(|(index, item)| {
                Expected::parse(item).map_err(|error| format!("test `{}`: expect[{index}]: {error}", case.name))
            })
            .collect();
        expected_by_case.push(expected?);
    }
    let (mut passed, mut failed) = (0, 0);
    for (case, expected) in tests.tests.iter().zip(&expected_by_case) {
        let actual = outcomes(&connector, worker, case).await?;
        let differences = case_differences(expected, &actual);
        let write = |out: &mut dyn Write, line: String| writeln!(out, "{line}").map_err(|error| error.to_string());
        if differences.is_empty() {
            passed += 1;
            write(out, format!("ok    {}: {}", file.display(), case.name))?;
        } else {
            failed += 1;
            write(out, format!("FAIL  {}: {}", file.display(), case.name))?;
            for difference in &differences {
                write(out, format!("        {difference}"))?;
            }
            write(out, "      the connector made:".to_owned())?;
            for outcome in &actual {
                write(out, format!("        {}", outcome.1))?;
            }
        }
    }
    Ok((passed, failed))
}

/// Each outcome's differences, prefixed with its place, and a line for each outcome missing or not expected.
fn case_differences(expected: &[Expected], actual: &[(Value, String)]) -> Vec<String> {
    let mut differences = Vec::new();
    for (index, want) in expected.iter().enumerate() {
        match actual.get(index) {
            Some((got, _)) => differences.extend(
                want.differences(got)
                    .into_iter()
                    .map(|difference| format!("outcome {} ({}): {difference}", index + 1, want.outcome)),
            ),
            None => differences.push(format!(
                "outcome {} ({}): expected, but the connector made no more",
                index + 1,
                want.outcome
            )),
        }
    }
    for (index, (got, _)) in actual.iter().enumerate().skip(expected.len()) {
        differences.push(format!(
            "outcome {} ({}): not expected",
            index + 1,
            got["outcome"].as_str().unwrap_or_default()
        ));
    }
    differences
}

/// The case's outcomes, each as JSON and as its line of text.
async fn outcomes(
    connector: &ConnectorConfig,
    worker: &WorkerConfig,
    case: &TestCase,
) -> Result<Vec<(Value, String)>, String> {
    let in_case = |message: String| format!("test `{}`: {message}", case.name);
    let mut preview = Preview::build(connector, worker)
        .await
        .map_err(|error| in_case(error.to_string()))?;
    let default_topic = Preview::default_topic(connector);
    let mut made = Vec::new();
    let mut show = |outcome: &crate::connectors::preview::Outcome| -> Result<(), String> {
        let json = serde_json::to_value(outcome).map_err(|error| error.to_string())?;
        made.push((json, describe(outcome)));
        Ok(())
    };
    for (index, given) in case.records.iter().enumerate() {
        let record = record(given, index, &default_topic, worker)
            .await
            .map_err(|error| in_case(format!("records[{index}]: {error}")))?;
        for outcome in preview
            .record(&record)
            .await
            .map_err(|error| in_case(error.to_string()))?
        {
            show(&outcome)?;
        }
    }
    for outcome in preview.finish() {
        show(&outcome)?;
    }
    Ok(made)
}

async fn record(
    given: &TestRecord,
    index: usize,
    default_topic: &str,
    worker: &WorkerConfig,
) -> Result<Record, String> {
    let topic = given.topic.clone().unwrap_or_else(|| default_topic.to_owned());
    let value = match (&given.value, &given.value_text, &given.value_avro) {
        (None, None, None) => None,
        (Some(value), None, None) => Some(value.to_string().into_bytes()),
        (None, Some(text), None) => Some(text.clone().into_bytes()),
        (None, None, Some(avro)) => Some(avro_bytes(avro, &topic, worker).await?),
        _ => return Err("give one of `value`, `value_text` and `value_avro`".to_owned()),
    };
    let key = given.key.as_ref().map(|key| match key {
        Value::String(text) => text.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    });
    let timestamp = match &given.timestamp {
        None => None,
        Some(Value::Number(number)) => Some(
            number
                .as_i64()
                .ok_or_else(|| format!("timestamp: {number} is not a whole number of milliseconds"))?,
        ),
        Some(Value::String(text)) => Some(
            chrono::DateTime::parse_from_rfc3339(text)
                .map_err(|error| format!("timestamp: `{text}` is not RFC 3339: {error}"))?
                .timestamp_millis(),
        ),
        Some(other) => return Err(format!("timestamp: {other} is neither milliseconds nor RFC 3339")),
    };
    Ok(Record {
        position: Position {
            topic,
            partition: given.partition,
            offset: i64::try_from(index).unwrap_or(i64::MAX),
        },
        timestamp,
        timestamp_type: if timestamp.is_some() {
            TimestampType::CreateTime
        } else {
            TimestampType::NotAvailable
        },
        key,
        value,
        headers: given
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), Some(value.clone().into_bytes())))
            .collect(),
    })
}

/// The value as Confluent-framed Avro, its schema registered under `<topic>-value` in the worker's registry.
async fn avro_bytes(avro: &AvroValue, topic: &str, worker: &WorkerConfig) -> Result<Vec<u8>, String> {
    let registry = worker
        .schema_registry
        .as_ref()
        .ok_or("value_avro: the worker file has no schema_registry")?;
    let settings = crate::schema::registry::settings(registry).map_err(|error| format!("value_avro: {error}"))?;
    let schema = match &avro.schema {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    AvroRecordEncoder::new(settings, BinaryText::Base64)
        .encode(&avro.value, topic, false, &WriterSchema::Supplied(schema))
        .await
        .map_err(|error| format!("value_avro: {error}"))
}
