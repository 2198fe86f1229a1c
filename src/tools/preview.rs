//! `ebconnect preview`: a connector's record path over real records, printed one line per record, then a summary.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};

use crate::config::WorkerConfig;
use crate::connectors::preview::{Outcome, Preview, PutEventsEntry, Then};
use crate::connectors::{load_connector, ConnectorConfig};
use crate::kafka::peek::peek;
pub use crate::kafka::peek::Peek;
use crate::record::{Position, Record, TimestampType};

/// How long reading a topic up to its end may take.
const PEEK_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the records come from.
#[derive(Debug, Clone)]
pub enum Input {
    /// One record value per line (JSON lines); for a source, one event (the SQS message's body) per line; for a
    /// receiver, one produce record.
    File(PathBuf),
    /// A topic, read without joining or committing for any group.
    Topic { topic: String, peek: Peek },
}

#[derive(Debug, Clone)]
pub struct Options {
    pub connector: PathBuf,
    pub input: Input,
    /// JSON lines instead of text.
    pub json: bool,
    /// Send the entries to the connector's bus (a sink's only).
    pub send: bool,
}

/// A record with where it came from, as the output names it.
pub(crate) struct Labelled {
    pub(crate) label: String,
    pub(crate) record: Record,
}

/// Runs the preview; exits 0 when every record was previewed (whatever its outcome), 1 when `--send` could not
/// deliver an entry, 2 when the files, the input or the services are not usable.
pub async fn run(options: Options, worker: &WorkerConfig) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match preview(&options, worker, &mut out).await {
        Ok(code) => code,
        Err(message) => {
            let _ = out.flush();
            eprintln!("{}", crate::redact::scrub(&message));
            ExitCode::from(2)
        }
    }
}

async fn preview(options: &Options, worker: &WorkerConfig, out: &mut impl Write) -> Result<ExitCode, String> {
    let connector = load_connector(&options.connector, Some(worker)).map_err(|error| error.to_string())?;
    let mut preview = Preview::build(&connector, worker)
        .await
        .map_err(|error| format!("{}: {error}", options.connector.display()))?;
    if options.send && connector.kind != crate::config::ConnectorType::EventbridgeSink {
        return Err(format!(
            "--send: `{}` is a {}; only an eventbridge-sink sends to EventBridge",
            connector.name,
            connector.kind.as_str()
        ));
    }
    let records = read_input(&options.input, &connector, worker)?;
    let mut tally = Tally::default();
    let mut entries: Vec<(String, PutEventsEntry)> = Vec::new();
    for Labelled { label, record } in &records {
        let outcomes = preview.record(record).await.map_err(|error| error.to_string())?;
        tally.records += 1;
        for outcome in outcomes {
            show(out, Some(label), &outcome, options.json)?;
            tally.add(&outcome);
            if let Outcome::Entry { entry, .. } = outcome {
                entries.push((label.clone(), *entry));
            }
        }
    }
    for outcome in preview.finish() {
        show(out, None, &outcome, options.json)?;
        tally.add(&outcome);
    }
    let summary = tally.summary(&connector);
    let line = if options.json {
        json!({ "summary": summary }).to_string()
    } else {
        tally.text(&connector)
    };
    writeln!(out, "{line}").map_err(|error| error.to_string())?;
    if !options.send {
        return Ok(ExitCode::SUCCESS);
    }
    let sent = preview
        .send(&entries.iter().map(|(_, entry)| entry).collect::<Vec<_>>())
        .await
        .map_err(|error| error.to_string())?;
    let mut failed = false;
    for ((label, _), result) in entries.iter().zip(sent) {
        let line = match (&result, options.json) {
            (Ok(id), true) => json!({"input": label, "sent": id}).to_string(),
            (Err(reason), true) => json!({"input": label, "not_sent": reason}).to_string(),
            (Ok(id), false) => format!("{label:<28} sent      event id {id}"),
            (Err(reason), false) => format!("{label:<28} not sent  {reason}"),
        };
        failed |= result.is_err();
        writeln!(out, "{line}").map_err(|error| error.to_string())?;
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The records to preview, each labelled `FILE:LINE` or `topic/partition@offset`.
fn read_input(input: &Input, connector: &ConnectorConfig, worker: &WorkerConfig) -> Result<Vec<Labelled>, String> {
    let group = connector.settings.consumer_group(&connector.name);
    match input {
        Input::File(file) => records_of_file(file, &Preview::default_topic(connector)),
        Input::Topic { topic, peek: how } => {
            let no_overrides = BTreeMap::new();
            let overrides = group.as_ref().map_or(&no_overrides, |group| group.overrides);
            let records =
                peek(&worker.kafka, overrides, topic, *how, PEEK_TIMEOUT).map_err(|error| error.to_string())?;
            Ok(records
                .into_iter()
                .map(|record| Labelled {
                    label: format!(
                        "{}/{}@{}",
                        record.position.topic, record.position.partition, record.position.offset
                    ),
                    record,
                })
                .collect())
        }
    }
}

/// One record per non-blank line, its value the line's text, placed on `topic`'s partition 0 at the line's index;
/// such a record has no key, headers or timestamp.
pub(crate) fn records_of_file(file: &Path, topic: &str) -> Result<Vec<Labelled>, String> {
    let text = std::fs::read_to_string(file).map_err(|error| format!("{}: cannot read: {error}", file.display()))?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| Labelled {
            label: format!("{}:{}", file.display(), index + 1),
            record: Record {
                position: Position {
                    topic: topic.to_owned(),
                    partition: 0,
                    offset: i64::try_from(index).unwrap_or(i64::MAX),
                },
                timestamp: None,
                timestamp_type: TimestampType::NotAvailable,
                key: None,
                value: Some(line.trim().as_bytes().to_vec()),
                headers: Vec::new(),
            },
        })
        .collect())
}

fn show(out: &mut impl Write, label: Option<&str>, outcome: &Outcome, json: bool) -> Result<(), String> {
    let label = label.unwrap_or("(end of input)");
    let line = if json {
        let mut object = serde_json::to_value(outcome).map_err(|error| error.to_string())?;
        if let Value::Object(fields) = &mut object {
            fields.insert("input".into(), Value::String(label.to_owned()));
        }
        object.to_string()
    } else {
        format!("{label:<28} {}", describe(outcome))
    };
    writeln!(out, "{line}").map_err(|error| error.to_string())
}

/// Longer details are cut here in the text output (`--json` shows everything).
const ABRIDGED: usize = 160;

fn abridged(text: &str) -> String {
    match text.char_indices().nth(ABRIDGED) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// One outcome as a line of text, after the record's label.
pub(crate) fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Entry { entry, size, offloaded } => {
            let mut text = format!(
                "entry     Source={} DetailType={} Time={} Resources={} size={size}",
                entry.source,
                entry.detail_type,
                entry.time.as_deref().unwrap_or("(time of the call)"),
                serde_json::to_string(&entry.resources).unwrap_or_default(),
            );
            if let Some(offloaded) = offloaded {
                text.push_str(&format!(
                    " offloaded={} bytes to s3://{}/{}",
                    offloaded.bytes, offloaded.bucket, offloaded.key
                ));
            }
            text.push_str(&format!(" Detail={}", abridged(&entry.detail.to_string())));
            text
        }
        Outcome::Filtered => "filtered".to_owned(),
        Outcome::Unmatched => {
            "unmatched the rule's event pattern: EventBridge does not deliver it to the queue".to_owned()
        }
        Outcome::Error {
            stage,
            kind,
            reason,
            then,
        } => format!("error     {stage} {kind}: {reason} → {}", then_text(then)),
        Outcome::Counted { group, windows } => {
            let windows: Vec<String> = windows
                .iter()
                .map(|window| {
                    format!(
                        "[{}, {}) count {}",
                        window.window_start, window.window_end, window.count
                    )
                })
                .collect();
            format!(
                "counted   group {} in {}",
                Value::Object(group.clone()),
                windows.join(", ")
            )
        }
        Outcome::Late { reason } => format!("late      {reason}; dropped (late_records: drop)"),
        Outcome::Alert {
            topic,
            key,
            value,
            emitted,
        } => format!(
            "alert     to {topic} ({}) key={key} value={}",
            serde_json::to_value(emitted)
                .ok()
                .and_then(|emitted| emitted.as_str().map(str::to_owned))
                .unwrap_or_default()
                .replace('_', " "),
            abridged(&value.to_string())
        ),
        Outcome::Rejected {
            status,
            error_code,
            message,
        } => format!("rejected  HTTP {status} (error_code {error_code}): {message}"),
        Outcome::Record {
            topic,
            key,
            headers,
            value,
            timestamp,
        } => format!(
            "record    to {topic} key={} headers={}{} value={}",
            key.as_deref().unwrap_or("(none)"),
            serde_json::to_string(headers).unwrap_or_default(),
            timestamp
                .as_deref()
                .map(|timestamp| format!(" timestamp={timestamp}"))
                .unwrap_or_default(),
            abridged(&value.to_string())
        ),
    }
}

fn then_text(then: &Then) -> String {
    match then {
        Then::DeadLetter(topic) => format!("dead-letter topic {topic}"),
        Then::Fail => "the connector fails here (errors.tolerance: none)".to_owned(),
    }
}

/// The outcomes counted for the summary line.
#[derive(Default)]
struct Tally {
    records: usize,
    outcomes: BTreeMap<&'static str, usize>,
    entry_bytes: usize,
    errors_fail: bool,
}

impl Tally {
    fn add(&mut self, outcome: &Outcome) {
        *self.outcomes.entry(outcome.name()).or_default() += 1;
        match outcome {
            Outcome::Entry { size, .. } => self.entry_bytes += size,
            Outcome::Error { then: Then::Fail, .. } => self.errors_fail = true,
            _ => {}
        }
    }

    fn summary(&self, connector: &ConnectorConfig) -> Value {
        let mut summary = json!({
            "connector": connector.name.as_str(),
            "type": connector.kind.as_str(),
            "records": self.records,
        });
        for (name, count) in &self.outcomes {
            summary[*name] = json!(count);
        }
        if self.outcomes.contains_key("entry") {
            summary["entry_bytes"] = json!(self.entry_bytes);
        }
        summary
    }

    fn text(&self, connector: &ConnectorConfig) -> String {
        let counts: Vec<String> = self
            .outcomes
            .iter()
            .map(|(name, count)| match *name {
                "entry" => format!("{count} entry ({} bytes)", self.entry_bytes),
                other => format!("{count} {other}"),
            })
            .collect();
        let mut text = format!(
            "summary: connector `{}` ({}), {} records: {}",
            connector.name,
            connector.kind.as_str(),
            self.records,
            if counts.is_empty() {
                "nothing".to_owned()
            } else {
                counts.join(", ")
            }
        );
        if self.errors_fail {
            text.push_str("; with errors.tolerance `none` the connector stops at the first error");
        }
        text
    }
}
