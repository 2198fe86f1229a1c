//! The REST produce receiver.

use tracing::{debug, info, warn};

use super::metrics::{metrics, ConnectorMetrics, StatusLabels};
use super::{count_error, InternalEvent};

pub struct ReceiverListening<'a> {
    pub(crate) connector: &'a str,
    pub(crate) address: std::net::SocketAddr,
}

impl InternalEvent for ReceiverListening<'_> {
    fn emit(self) {
        info!(connector = self.connector, address = %self.address, "produce endpoint listening");
    }
}

/// A record or request the receiver answered with an error. The sender has the answer, so this is not a loss;
/// 5xx answers are warnings, since they point at Kafka or the registry rather than the sender.
pub struct ReceiverRecordRejected<'a> {
    pub(crate) connector: &'a str,
    pub(crate) status: u16,
    pub(crate) error_code: u32,
    pub(crate) message: &'a str,
}

impl InternalEvent for ReceiverRecordRejected<'_> {
    fn emit(self) {
        metrics()
            .receiver_records
            .get_or_create(&StatusLabels {
                connector: self.connector.to_owned(),
                status: self.status,
            })
            .inc();
        if self.status >= 500 {
            count_error(self.connector, "receiver", &format!("http_{}", self.status));
            warn!(
                connector = self.connector,
                status = self.status,
                error_code = self.error_code,
                message = self.message,
                "record not written"
            );
        } else {
            debug!(
                connector = self.connector,
                status = self.status,
                error_code = self.error_code,
                message = self.message,
                "record rejected"
            );
        }
    }
}

/// The receiver could not accept a connection (out of file descriptors, or reset before it was accepted).
pub struct ReceiverAcceptFailed<'a> {
    pub(crate) connector: &'a str,
    pub(crate) error: &'a std::io::Error,
}

impl InternalEvent for ReceiverAcceptFailed<'_> {
    fn emit(self) {
        count_error(self.connector, "receiver", "accept");
        warn!(connector = self.connector, error = %self.error, "cannot accept a connection");
    }
}

/// A receiver answered a record with its delivery report.
pub struct ReceiverRecordWritten<'a> {
    pub(crate) metrics: &'a ConnectorMetrics,
}

impl InternalEvent for ReceiverRecordWritten<'_> {
    fn emit(self) {
        self.metrics.receiver_written.inc();
        self.metrics.records_written.inc();
    }
}
