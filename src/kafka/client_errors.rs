//! Client-level errors that no retry by librdkafka will fix: a certificate or credentials the broker refuses, a
//! broker certificate that does not verify. librdkafka reports them to a client's error callback, not to the
//! records, and keeps retrying; a connector that waited on them would look RUNNING while moving nothing. The callback
//! raises them here, and the connector's loop fails on the first, so the supervisor restarts it with backoff and, if
//! it persists, shows it FAILED with the message.

use std::sync::{Arc, Mutex};

use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientConfig, ClientContext};
use tokio::sync::Notify;

use crate::telemetry::{emit, KafkaClientError};

/// Shared by a client's context and its connector's loop.
#[derive(Debug, Clone, Default)]
pub struct FatalClientError(Arc<(Mutex<Option<String>>, Notify)>);

impl FatalClientError {
    /// Keeps the first error raised.
    pub(crate) fn raise(&self, message: String) {
        let (slot, notify) = &*self.0;
        let mut slot = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot.is_none() {
            *slot = Some(message);
            notify.notify_one();
        }
    }

    /// The first error raised, if any: a consumer's own error (librdkafka's bare `Authentication failure`) comes
    /// after the callback raised the broker's reason for it.
    pub(crate) fn first(&self) -> Option<String> {
        let (slot, _) = &*self.0;
        slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Waits for the first error raised.
    pub(crate) async fn raised(&self) -> String {
        let (slot, notify) = &*self.0;
        loop {
            if let Some(message) = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone() {
                return message;
            }
            notify.notified().await;
        }
    }

    /// What a client's error callback does with an error: reports it, and raises it if no retry will fix it.
    pub(crate) fn report(&self, connector: &str, error: &KafkaError, reason: &str) {
        emit(KafkaClientError {
            connector,
            error: &error.to_string(),
            reason,
        });
        if is_fatal_client_error(error, reason) {
            self.raise(format!("{error}: {reason}"));
        }
    }
}

/// TLS failures (a certificate refused or unverifiable, a host name the broker's certificate does not name) and
/// refused credentials. Brokers that are down or unreachable are not among them: librdkafka's retries fix those.
///
/// Under TLS 1.3 the broker refuses a client certificate after the client has finished its handshake, so
/// librdkafka reports a transport failure, not an SSL error, with OpenSSL's reason: a TLS alert the broker sent
/// (`sslv3 alert bad certificate`, `tlsv13 alert certificate required`) or a failed verification. A connection that
/// is merely cut (`unexpected eof`, `Connection reset`) carries neither.
pub(crate) fn is_fatal_client_error(error: &KafkaError, reason: &str) -> bool {
    match error {
        KafkaError::Global(
            RDKafkaErrorCode::SSL | RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed,
        ) => true,
        KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure) => {
            reason.contains("SSL routines")
                && (reason.contains(" alert ") || reason.contains("certificate verify failed"))
        }
        _ => false,
    }
}

/// The context of a connector's producer: its client errors reported, and raised when fatal.
pub struct ProducerErrors {
    connector: String,
    fatal: FatalClientError,
}

impl ProducerErrors {
    /// A connector's producer whose fatal client errors are raised on `fatal`.
    pub(crate) fn producer(
        config: &ClientConfig,
        connector: &str,
        fatal: &FatalClientError,
    ) -> KafkaResult<FutureProducer<ProducerErrors>> {
        config.create_with_context(ProducerErrors {
            connector: connector.to_owned(),
            fatal: fatal.clone(),
        })
    }
}

impl ClientContext for ProducerErrors {
    crate::msk_iam_tokens!();

    fn error(&self, error: KafkaError, reason: &str) {
        self.fatal.report(&self.connector, &error, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_fatal_and_outages_are_not() {
        let transport = KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure);
        let refused = "ssl://127.0.0.1:9095/bootstrap: Receive failed: error:0A000412:SSL routines::sslv3 alert bad \
                       certificate: SSL alert number 42 (after 0ms in state APIVERSION_QUERY)";
        assert!(is_fatal_client_error(&transport, refused));
        let unverified = "ssl://localhost:9095/bootstrap: error:0A000086:SSL routines::certificate verify failed";
        assert!(is_fatal_client_error(&transport, unverified));
        for outage in [
            "ssl://127.0.0.1:9095/bootstrap: Connect to ipv4#127.0.0.1:9095 failed: Connection refused",
            "ssl://127.0.0.1:9095/1: Receive failed: error:0A000126:SSL routines::unexpected eof while reading",
            "ssl://127.0.0.1:9095/1: Disconnected (after 5000ms in state UP)",
        ] {
            assert!(!is_fatal_client_error(&transport, outage), "{outage}");
        }
        assert!(is_fatal_client_error(&KafkaError::Global(RDKafkaErrorCode::SSL), ""));
        assert!(!is_fatal_client_error(
            &KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
            refused
        ));
    }
}
