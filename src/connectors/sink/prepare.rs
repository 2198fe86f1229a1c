//! A record to its PutEvents entry: decode key and value, apply the transforms, build the entry and check its
//! size. This is most of the sink's work per record, so the loop hands it out in chunks to tasks that run on
//! every core, and keeps only the offsets, the batching and the requests to itself.

use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::offload::Upload;
use super::request_builder::{BuildError, EntryBuilder};
use super::SinkError;
use crate::eventbridge::Entry;
use crate::kafka::offsets::Ticket;
use crate::record::Record;
use crate::record::{RecordFailure, Stage};
use crate::schema::avro::Capture;
use crate::schema::Decoder;
use crate::telemetry::{emit, SchemaRegistryWaiting};
use crate::transform::{Chain, Context as TransformContext, Decoded};

/// What became of one record here.
pub(crate) enum Prepared {
    Entry {
        entry: Entry,
        /// The offloaded part, written to S3 before the entry is sent.
        upload: Option<Upload>,
        /// As EventBridge counts it.
        size: usize,
    },
    /// A filter dropped it: its fate is decided.
    Filtered,
    /// A record error, for the errors policy.
    Failed(RecordFailure),
}

/// A chunk's records with their tracking tickets and what became of each, in the order they were read.
pub(crate) type PreparedChunk = Vec<(Ticket, Record, Prepared)>;

pub(crate) struct RecordPreparer {
    pub(crate) connector: String,
    pub(crate) key_decoder: Decoder,
    pub(crate) value_decoder: Decoder,
    pub(crate) transforms: Chain,
    pub(crate) builder: EntryBuilder,
    /// Set when each value is written straight as its detail's text, never built as a JSON value: the fields
    /// the entry's other parts are read from, kept as values.
    pub(crate) text_detail: Option<Capture>,
    pub(crate) max_bytes: usize,
    /// Cancelled when the connector stops: a wait for the registry ends, and the record stays unsettled.
    pub(crate) stopping: CancellationToken,
}

/// The first wait for an unreachable registry; each next one doubles, up to [`REGISTRY_MAX_WAIT`].
const REGISTRY_FIRST_WAIT: Duration = Duration::from_millis(100);
const REGISTRY_MAX_WAIT: Duration = Duration::from_secs(5);

impl RecordPreparer {
    /// Prepares each record of a chunk, in order. A registry that cannot be reached is waited for (the consumer
    /// pauses behind the chunks waiting); only stopping meanwhile ends the chunk, whose records are read again on
    /// the next start.
    pub(crate) async fn prepare_chunk(&self, chunk: Vec<(Ticket, Record)>) -> Result<PreparedChunk, SinkError> {
        let mut prepared = Vec::with_capacity(chunk.len());
        for (ticket, record) in chunk {
            let outcome = self.prepare(&record).await?;
            prepared.push((ticket, record, outcome));
        }
        Ok(prepared)
    }

    pub(crate) async fn prepare(&self, record: &Record) -> Result<Prepared, SinkError> {
        let key = match self.decode_part(&self.key_decoder, Stage::KeyConverter, record).await? {
            Ok(key) => key,
            Err(failure) => return Ok(Prepared::Failed(failure)),
        };
        if let (Some(capture), Some(bytes)) = (&self.text_detail, record.value.as_deref()) {
            // Anything but a record written as text (an error, a value that is not a record) is decoded again
            // below, which says what is wrong as it always has.
            if let Ok(Some(quoted)) = self.value_decoder.decode_quoted(bytes, capture).await {
                return Ok(self.checked(
                    self.builder
                        .build_from_text(record, capture, &quoted.captured, quoted.text)
                        .map(|entry| (entry, None)),
                ));
            }
        }
        let value = match self
            .decode_part(&self.value_decoder, Stage::ValueConverter, record)
            .await?
        {
            Ok(value) => value,
            Err(failure) => return Ok(Prepared::Failed(failure)),
        };
        let decoded = match self.transform(record, Decoded { key, value }) {
            Ok(Some(decoded)) => decoded,
            Ok(None) => return Ok(Prepared::Filtered),
            Err(failure) => return Ok(Prepared::Failed(failure)),
        };
        Ok(self.checked(self.builder.build(record, decoded.key, decoded.value)))
    }

    /// Decodes one part of a record. The outer error is a failure that is not the record's fault (the registry
    /// could not be reached); the inner one is a record error.
    async fn decode_part(
        &self,
        decoder: &Decoder,
        stage: Stage,
        record: &Record,
    ) -> Result<Result<Value, RecordFailure>, SinkError> {
        let (bytes, part) = match stage {
            Stage::KeyConverter => (record.key.as_deref(), "key"),
            _ => (record.value.as_deref(), "value"),
        };
        let mut wait = REGISTRY_FIRST_WAIT;
        loop {
            match decoder.decode(bytes).await {
                Ok(value) => return Ok(Ok(value)),
                Err(error) if error.is_record_error() => {
                    return Ok(Err(RecordFailure {
                        stage,
                        error_kind: "DecodeError".into(),
                        message: format!("{part}: {error}"),
                    }))
                }
                // An outage of the registry is waited out here, not counted as the connector's failure.
                Err(error) => {
                    emit(SchemaRegistryWaiting {
                        connector: &self.connector,
                        error: &error.to_string(),
                        delay: wait,
                    });
                    tokio::select! {
                        () = tokio::time::sleep(wait) => wait = (wait * 2).min(REGISTRY_MAX_WAIT),
                        () = self.stopping.cancelled() => {
                            return Err(SinkError::Registry {
                                topic: record.position.topic.clone(),
                                partition: record.position.partition,
                                offset: record.position.offset,
                                source: error,
                            })
                        }
                    }
                }
            }
        }
    }

    fn transform(&self, record: &Record, decoded: Decoded) -> Result<Option<Decoded>, RecordFailure> {
        if self.transforms.is_empty() {
            return Ok(Some(decoded));
        }
        let context = TransformContext {
            connector: &self.connector,
            topic: &record.position.topic,
            partition: record.position.partition,
            offset: record.position.offset,
            timestamp: record.timestamp,
        };
        self.transforms.apply(decoded, &context).map_err(|error| RecordFailure {
            stage: Stage::Transformation,
            error_kind: "TransformError".into(),
            message: error.to_string(),
        })
    }

    /// The entry built, if it was and its size can be sent; else the record's failure.
    fn checked(&self, built: Result<(Entry, Option<Upload>), BuildError>) -> Prepared {
        let (entry, upload) = match built {
            Ok(built) => built,
            Err(error) => {
                return Prepared::Failed(RecordFailure {
                    stage: Stage::TaskPut,
                    error_kind: "EntryBuildError".into(),
                    message: error.to_string(),
                })
            }
        };
        let size = entry.size();
        // A request must be less than the limit, so an entry that alone reaches it cannot be sent.
        if size >= self.max_bytes {
            return Prepared::Failed(RecordFailure {
                stage: Stage::TaskPut,
                error_kind: "EntryTooLarge".into(),
                message: format!(
                    "the entry is {size} bytes as EventBridge counts them, at or over the limit of {} (batch.max_bytes){}",
                    self.max_bytes,
                    if upload.is_some() {
                        " even after offloading to S3"
                    } else {
                        ""
                    }
                ),
            });
        }
        Prepared::Entry { entry, upload, size }
    }
}
