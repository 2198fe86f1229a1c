//! One PutEvents call, its response mapped to an outcome per entry.

use std::time::Duration;

use aws_sdk_eventbridge::config::http::HttpResponse;
use aws_sdk_eventbridge::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_eventbridge::operation::put_events::PutEventsError;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_smithy_types::DateTime;

use super::entry::Entry;
use super::retry::{is_retryable_entry_error, is_retryable_request_error};

/// What became of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryOutcome {
    Delivered {
        event_id: String,
    },
    /// Worth sending again (throttled, internal failure).
    Retryable {
        code: String,
        message: String,
    },
    /// Will fail the same way again (malformed, not authorized, ...): a record error.
    Rejected {
        code: String,
        message: String,
    },
}

/// A failure of the whole request.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Throttled, 5xx, timed out, or the connection failed: send the same entries again.
    #[error("PutEvents failed, will retry: {0}")]
    Retryable(String),
    /// The request itself is wrong (no such bus, access denied, bad credentials): no entry can succeed, so this
    /// fails the connector instead of dead-lettering every record.
    #[error("PutEvents failed: {0}")]
    Fatal(String),
}

#[derive(Debug, Clone)]
pub struct PutEventsService {
    client: aws_sdk_eventbridge::Client,
    event_bus: String,
    endpoint_id: Option<String>,
    timeout: Duration,
}

impl PutEventsService {
    pub fn new(
        client: aws_sdk_eventbridge::Client,
        event_bus: String,
        endpoint_id: Option<String>,
        timeout: Duration,
    ) -> Self {
        Self {
            client,
            event_bus,
            endpoint_id,
            timeout,
        }
    }

    fn request_entry(&self, entry: &Entry) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.event_bus)
            .source(&entry.source)
            .detail_type(&entry.detail_type)
            .detail(&entry.detail)
            .set_time(entry.time.map(DateTime::from_millis))
            .set_resources((!entry.resources.is_empty()).then(|| entry.resources.clone()))
            .set_trace_header(entry.trace_header.clone())
            .build()
    }

    /// Sends `entries` (at most 10, within the size limit) and returns one outcome per entry, in order.
    pub async fn send(&self, entries: &[&Entry]) -> Result<Vec<EntryOutcome>, RequestError> {
        let request = self
            .client
            .put_events()
            .set_entries(Some(entries.iter().map(|entry| self.request_entry(entry)).collect()))
            .set_endpoint_id(self.endpoint_id.clone());
        let response = match tokio::time::timeout(self.timeout, request.send()).await {
            Err(_) => {
                return Err(RequestError::Retryable(format!(
                    "no response within {:?}",
                    self.timeout
                )))
            }
            Ok(Err(error)) => return Err(classify_request_error(&error)),
            Ok(Ok(response)) => response,
        };
        let results = response.entries();
        if results.len() != entries.len() {
            return Err(RequestError::Retryable(format!(
                "response has {} results for {} entries",
                results.len(),
                entries.len()
            )));
        }
        Ok(results
            .iter()
            .map(|result| match (result.event_id(), result.error_code()) {
                (_, Some(code)) => {
                    let code = code.to_owned();
                    let message = result.error_message().unwrap_or_default().to_owned();
                    if is_retryable_entry_error(&code) {
                        EntryOutcome::Retryable { code, message }
                    } else {
                        EntryOutcome::Rejected { code, message }
                    }
                }
                (Some(event_id), None) => EntryOutcome::Delivered {
                    event_id: event_id.to_owned(),
                },
                (None, None) => EntryOutcome::Retryable {
                    code: "MissingResult".into(),
                    message: "the response gave this entry neither an event id nor an error".into(),
                },
            })
            .collect())
    }
}

fn classify_request_error(error: &SdkError<PutEventsError, HttpResponse>) -> RequestError {
    let detail = crate::error_chain(error);
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            RequestError::Retryable(detail)
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = error.code().unwrap_or_default();
            if status >= 500 || status == 429 || is_retryable_request_error(code) {
                RequestError::Retryable(format!("HTTP {status}: {detail}"))
            } else {
                RequestError::Fatal(format!("HTTP {status}: {detail}"))
            }
        }
        _ => RequestError::Fatal(detail),
    }
}
