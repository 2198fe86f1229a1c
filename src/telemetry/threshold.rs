//! threshold-alert.

use tracing::warn;

use super::metrics::{connector as labels, metrics};
use super::{count_error, InternalEvent};

/// A record later than every window it falls in, dropped under `late_records: drop`: counted and logged, not lost
/// silently.
pub struct LateRecordDropped<'a> {
    pub(crate) connector: &'a str,
    pub(crate) position: &'a crate::record::Position,
    pub(crate) reason: &'a str,
}

impl InternalEvent for LateRecordDropped<'_> {
    fn emit(self) {
        count_error(self.connector, "threshold", "late_record");
        metrics().records_skipped.get_or_create(&labels(self.connector)).inc();
        warn!(
            connector = self.connector,
            topic = %self.position.topic,
            partition = self.position.partition,
            offset = self.position.offset,
            reason = self.reason,
            "late record dropped"
        );
    }
}
