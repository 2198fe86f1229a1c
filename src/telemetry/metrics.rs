//! The Prometheus metrics, fed only by the events in `telemetry` (an event updates its metric when it is emitted),
//! labelled by connector. Names follow Kafka Connect's task metrics (`sink-record-read-total` becomes
//! `ebconnect_sink_record_read_total`), so dashboards and habits carry over.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, LazyLock, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectorLabels {
    pub(crate) connector: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StageLabels {
    pub(crate) connector: String,
    pub(crate) stage: String,
}

/// An error event's labels: the connector (empty for the worker's own), the part of the pipeline, and what went
/// wrong there.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ErrorLabels {
    pub(crate) connector: String,
    pub(crate) stage: String,
    pub(crate) kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabels {
    pub(crate) connector: String,
    pub(crate) status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PartitionLabels {
    pub(crate) connector: String,
    pub(crate) topic: String,
    pub(crate) partition: i32,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StateLabels {
    pub(crate) connector: String,
    pub(crate) state: String,
}

type Seconds = Counter<f64, AtomicU64>;
type Ratio = Gauge<f64, AtomicU64>;

pub struct Metrics {
    registry: Registry,
    pub(crate) sink_records_read: Family<ConnectorLabels, Counter>,
    pub(crate) sink_records_sent: Family<ConnectorLabels, Counter>,
    pub(crate) source_records_polled: Family<ConnectorLabels, Counter>,
    pub(crate) source_records_written: Family<ConnectorLabels, Counter>,
    pub(crate) records_skipped: Family<ConnectorLabels, Counter>,
    pub(crate) duplicates_dropped: Family<ConnectorLabels, Counter>,
    pub(crate) seen_keys_evicted: Family<ConnectorLabels, Counter>,
    pub(crate) transactions: Family<ConnectorLabels, Counter>,
    pub(crate) record_errors: Family<StageLabels, Counter>,
    pub(crate) errors: Family<ErrorLabels, Counter>,
    pub(crate) dead_lettered: Family<ConnectorLabels, Counter>,
    pub(crate) retried_entries: Family<ConnectorLabels, Counter>,
    pub registry_waits: Family<ConnectorLabels, Counter>,
    pub(crate) putevents_duration: Family<ConnectorLabels, Histogram, fn() -> Histogram>,
    pub(crate) putevents_batch_entries: Family<ConnectorLabels, Histogram, fn() -> Histogram>,
    pub(crate) rate_limit_wait: Family<ConnectorLabels, Seconds>,
    pub(crate) concurrency_limit: Family<ConnectorLabels, Gauge>,
    pub(crate) rate_limit: Family<ConnectorLabels, Ratio>,
    pub(crate) send_rate: Family<ConnectorLabels, Ratio>,
    pub(crate) throttle_ratio: Family<ConnectorLabels, Ratio>,
    pub(crate) consumer_lag: Family<PartitionLabels, Gauge>,
    pub(crate) sqs_messages_in_flight: Family<ConnectorLabels, Gauge>,
    pub(crate) receiver_records: Family<StatusLabels, Counter>,
    pub(crate) connector_state: Family<StateLabels, Gauge>,
    pub(crate) config_rejections: Counter,
    /// Each connector's largest partition lag in the last statistics, for the summary line.
    max_lag: Mutex<HashMap<String, i64>>,
}

fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

fn batch_buckets() -> Histogram {
    Histogram::new([1.0, 2.0, 3.0, 5.0, 8.0, 10.0])
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("ebconnect");
        let metrics = Self {
            sink_records_read: Family::default(),
            sink_records_sent: Family::default(),
            source_records_polled: Family::default(),
            source_records_written: Family::default(),
            records_skipped: Family::default(),
            duplicates_dropped: Family::default(),
            seen_keys_evicted: Family::default(),
            transactions: Family::default(),
            record_errors: Family::default(),
            errors: Family::default(),
            dead_lettered: Family::default(),
            retried_entries: Family::default(),
            registry_waits: Family::default(),
            putevents_duration: Family::new_with_constructor(latency_buckets),
            putevents_batch_entries: Family::new_with_constructor(batch_buckets),
            rate_limit_wait: Family::default(),
            concurrency_limit: Family::default(),
            rate_limit: Family::default(),
            send_rate: Family::default(),
            throttle_ratio: Family::default(),
            consumer_lag: Family::default(),
            sqs_messages_in_flight: Family::default(),
            receiver_records: Family::default(),
            connector_state: Family::default(),
            config_rejections: Counter::default(),
            max_lag: Mutex::default(),
            registry: Registry::default(),
        };
        registry.register(
            "sink_record_read",
            "Records read from Kafka by a sink",
            metrics.sink_records_read.clone(),
        );
        registry.register(
            "sink_record_send",
            "Records a sink delivered to EventBridge",
            metrics.sink_records_sent.clone(),
        );
        registry.register(
            "source_record_poll",
            "Events a source received (SQS messages, or records posted to a receiver)",
            metrics.source_records_polled.clone(),
        );
        registry.register(
            "source_record_write",
            "Records a source wrote to Kafka, acknowledged",
            metrics.source_records_written.clone(),
        );
        registry.register(
            "records_skipped",
            "Records a filter dropped; they count as settled",
            metrics.records_skipped.clone(),
        );
        registry.register(
            "dedupe_dropped",
            "Records the dedupe transform dropped as duplicates; they count as settled",
            metrics.duplicates_dropped.clone(),
        );
        registry.register(
            "dedupe_evicted_early",
            "Keys the dedupe transform forgot before their window ended, because of max_keys",
            metrics.seen_keys_evicted.clone(),
        );
        registry.register(
            "transactions_committed",
            "Kafka transactions a topic-processor or threshold-alert committed (exactly-once processing)",
            metrics.transactions.clone(),
        );
        registry.register(
            "errors",
            "Every warning and error the worker logs, by connector (empty for the worker's own), stage and kind: \
             the one counter to alert on",
            metrics.errors.clone(),
        );
        registry.register(
            "record_errors",
            "Records that failed, by stage; each went to the errors policy",
            metrics.record_errors.clone(),
        );
        registry.register(
            "deadletterqueue_produce_requests",
            "Records written to the dead-letter topic",
            metrics.dead_lettered.clone(),
        );
        registry.register(
            "putevents_retried_entries",
            "PutEvents entries sent again after a retryable failure",
            metrics.retried_entries.clone(),
        );
        registry.register(
            "schema_registry_waits",
            "Waits for an unreachable Schema Registry before decoding again",
            metrics.registry_waits.clone(),
        );
        registry.register(
            "putevents_duration_seconds",
            "Time of one PutEvents request",
            metrics.putevents_duration.clone(),
        );
        registry.register(
            "putevents_batch_entries",
            "Entries in one PutEvents request",
            metrics.putevents_batch_entries.clone(),
        );
        registry.register(
            "rate_limit_wait_seconds",
            "Time PutEvents requests waited for the rate limiter",
            metrics.rate_limit_wait.clone(),
        );
        registry.register(
            "putevents_concurrency_limit",
            "PutEvents requests a sink may have in flight now, as adaptive concurrency set it",
            metrics.concurrency_limit.clone(),
        );
        registry.register(
            "putevents_rate_limit",
            "PutEvents requests per second a sink may send now, as adaptive concurrency set it after a throttle (0: none)",
            metrics.rate_limit.clone(),
        );
        registry.register(
            "putevents_send_rate",
            "Entries per second EventBridge answered in the last adaptive concurrency window",
            metrics.send_rate.clone(),
        );
        registry.register(
            "putevents_throttle_ratio",
            "Throttled PutEvents answers over all answers in the last adaptive concurrency window",
            metrics.throttle_ratio.clone(),
        );
        registry.register(
            "consumer_lag",
            "Records behind the end of each assigned partition, as librdkafka last reported",
            metrics.consumer_lag.clone(),
        );
        registry.register(
            "sqs_messages_in_flight",
            "SQS messages received and not yet settled",
            metrics.sqs_messages_in_flight.clone(),
        );
        registry.register(
            "receiver_records",
            "Records a receiver answered, by HTTP status",
            metrics.receiver_records.clone(),
        );
        registry.register(
            "connector_state",
            "1 for the connector's current state, 0 for the others",
            metrics.connector_state.clone(),
        );
        registry.register(
            "connector_file_rejections",
            "Connector files that did not load on reload or write",
            metrics.config_rejections.clone(),
        );
        Self { registry, ..metrics }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Totals for one connector, for the periodic summary.
    pub(crate) fn summary(&self, connector: &str) -> Summary {
        let labels = ConnectorLabels {
            connector: connector.to_owned(),
        };
        let read = self.sink_records_read.get_or_create(&labels).get()
            + self.source_records_polled.get_or_create(&labels).get();
        let written = self.sink_records_sent.get_or_create(&labels).get()
            + self.source_records_written.get_or_create(&labels).get();
        let errors = crate::record::Stage::ALL
            .iter()
            .map(|stage| {
                self.record_errors
                    .get_or_create(&StageLabels {
                        connector: connector.to_owned(),
                        stage: stage.as_str().to_owned(),
                    })
                    .get()
            })
            .sum();
        let max_lag = self.max_lag.lock().ok().and_then(|lags| lags.get(connector).copied());
        Summary {
            read,
            written,
            retried: self.retried_entries.get_or_create(&labels).get(),
            errors,
            max_lag,
        }
    }

    pub(crate) fn set_max_lag(&self, connector: &str, lag: i64) {
        if let Ok(mut lags) = self.max_lag.lock() {
            lags.insert(connector.to_owned(), lag);
        }
    }
}

/// A connector's running totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) read: u64,
    pub(crate) written: u64,
    /// PutEvents entries sent again (throttled, failed in passing).
    pub(crate) retried: u64,
    pub(crate) errors: u64,
    pub(crate) max_lag: Option<i64>,
}

pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// One connector's series for what it reports on every record or request, resolved once when it starts: bumping
/// a handle costs an atomic add, where looking the series up costs a label string allocated and hashed each time.
#[derive(Clone)]
pub struct ConnectorMetrics {
    name: Arc<str>,
    pub(super) records_read: Counter,
    pub(super) records_sent: Counter,
    pub(super) records_polled: Counter,
    pub(super) records_written: Counter,
    pub(super) records_skipped: Counter,
    pub(super) retried_entries: Counter,
    pub(super) putevents_duration: Histogram,
    pub(super) putevents_batch_entries: Histogram,
    pub(super) rate_limit_wait: Seconds,
    pub(super) concurrency_limit: Gauge,
    pub(super) rate_limit: Ratio,
    pub(super) send_rate: Ratio,
    pub(super) throttle_ratio: Ratio,
    pub(super) sqs_messages_in_flight: Gauge,
    pub(super) receiver_written: Counter,
}

impl ConnectorMetrics {
    pub(crate) fn new(name: &str) -> Self {
        let metrics = metrics();
        let labels = connector(name);
        Self {
            name: name.into(),
            records_read: metrics.sink_records_read.get_or_create(&labels).clone(),
            records_sent: metrics.sink_records_sent.get_or_create(&labels).clone(),
            records_polled: metrics.source_records_polled.get_or_create(&labels).clone(),
            records_written: metrics.source_records_written.get_or_create(&labels).clone(),
            records_skipped: metrics.records_skipped.get_or_create(&labels).clone(),
            retried_entries: metrics.retried_entries.get_or_create(&labels).clone(),
            putevents_duration: metrics.putevents_duration.get_or_create(&labels).clone(),
            putevents_batch_entries: metrics.putevents_batch_entries.get_or_create(&labels).clone(),
            rate_limit_wait: metrics.rate_limit_wait.get_or_create(&labels).clone(),
            concurrency_limit: metrics.concurrency_limit.get_or_create(&labels).clone(),
            rate_limit: metrics.rate_limit.get_or_create(&labels).clone(),
            send_rate: metrics.send_rate.get_or_create(&labels).clone(),
            throttle_ratio: metrics.throttle_ratio.get_or_create(&labels).clone(),
            sqs_messages_in_flight: metrics.sqs_messages_in_flight.get_or_create(&labels).clone(),
            receiver_written: metrics
                .receiver_records
                .get_or_create(&StatusLabels {
                    connector: name.to_owned(),
                    status: 200,
                })
                .clone(),
        }
    }

    /// The connector's name, for the events' log lines.
    pub(crate) fn connector(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Debug for ConnectorMetrics {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_tuple("ConnectorMetrics").field(&self.name).finish()
    }
}

pub fn connector(name: &str) -> ConnectorLabels {
    ConnectorLabels {
        connector: name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The metric names a scrape shows once every family has a series (a family without one is not shown at all),
    /// as samples are named: a counter's with `_total`, a histogram's with `_bucket`, `_sum` and `_count`.
    fn served_names() -> BTreeSet<String> {
        let metrics = Metrics::new();
        let labels = connector("c");
        let stage = StageLabels {
            connector: "c".into(),
            stage: "s".into(),
        };
        metrics.sink_records_read.get_or_create_owned(&labels);
        metrics.sink_records_sent.get_or_create_owned(&labels);
        metrics.source_records_polled.get_or_create_owned(&labels);
        metrics.source_records_written.get_or_create_owned(&labels);
        metrics.records_skipped.get_or_create_owned(&labels);
        metrics.record_errors.get_or_create_owned(&stage);
        metrics.errors.get_or_create_owned(&ErrorLabels {
            connector: "c".into(),
            stage: "s".into(),
            kind: "k".into(),
        });
        metrics.dead_lettered.get_or_create_owned(&labels);
        metrics.retried_entries.get_or_create_owned(&labels);
        metrics.registry_waits.get_or_create_owned(&labels);
        metrics.putevents_duration.get_or_create_owned(&labels);
        metrics.putevents_batch_entries.get_or_create_owned(&labels);
        metrics.rate_limit_wait.get_or_create_owned(&labels);
        metrics.concurrency_limit.get_or_create_owned(&labels);
        metrics.rate_limit.get_or_create_owned(&labels);
        metrics.send_rate.get_or_create_owned(&labels);
        metrics.throttle_ratio.get_or_create_owned(&labels);
        metrics.consumer_lag.get_or_create_owned(&PartitionLabels {
            connector: "c".into(),
            topic: "t".into(),
            partition: 0,
        });
        metrics.sqs_messages_in_flight.get_or_create_owned(&labels);
        metrics.receiver_records.get_or_create_owned(&StatusLabels {
            connector: "c".into(),
            status: 200,
        });
        metrics.connector_state.get_or_create_owned(&StateLabels {
            connector: "c".into(),
            state: "RUNNING".into(),
        });
        metrics
            .render()
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .flat_map(|line| {
                let mut words = line.split_whitespace();
                let name = words.next().unwrap_or_default().to_owned();
                match words.next() {
                    Some("counter") => vec![format!("{name}_total")],
                    Some("histogram") => ["_bucket", "_sum", "_count"]
                        .map(|part| format!("{name}{part}"))
                        .to_vec(),
                    _ => vec![name],
                }
            })
            .collect()
    }

    /// `deploy/prometheus/ebconnect-alerts.yaml` names only metrics the worker serves: a renamed metric would leave
    /// an alert that never fires.
    #[test]
    fn the_alert_rules_name_only_metrics_the_worker_serves() {
        let served = served_names();
        let rules = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/prometheus/ebconnect-alerts.yaml"
        ))
        .unwrap();
        let rules: serde_json::Value = serde_norway::from_str(&rules).unwrap();
        let metric = regex::Regex::new(r"\bebconnect_[a-z_]+").unwrap();
        let mut named = BTreeSet::new();
        for rule in rules["groups"][0]["rules"].as_array().unwrap() {
            for used in metric.find_iter(rule["expr"].as_str().unwrap()) {
                assert!(
                    served.contains(used.as_str()),
                    "alert {} uses {}, which the worker does not serve; it serves {served:?}",
                    rule["alert"],
                    used.as_str()
                );
                named.insert(used.as_str().to_owned());
            }
        }
        assert!(named.len() >= 7, "the rules' metrics were not found: {named:?}");
    }
}
