//! Transforms that hold state: what the dedupe transform drops and forgets.

use tracing::warn;

use super::metrics::{connector as labels, metrics};
use super::{count_error, InternalEvent};

/// A record dropped as a duplicate of one seen within the window: counted, like a filtered record.
pub struct DuplicateDropped<'a> {
    pub(crate) connector: &'a str,
}

impl InternalEvent for DuplicateDropped<'_> {
    fn emit(self) {
        metrics()
            .duplicates_dropped
            .get_or_create(&labels(self.connector))
            .inc();
    }
}

/// Keys forgotten before their window ended because the seen set reached `max_keys`: their duplicates would pass.
pub struct SeenKeyEvicted<'a> {
    pub(crate) connector: &'a str,
    pub(crate) count: u64,
}

impl InternalEvent for SeenKeyEvicted<'_> {
    fn emit(self) {
        let evicted = metrics().seen_keys_evicted.get_or_create(&labels(self.connector));
        // Warned once per thousand, not per key: a set at its bound evicts on every new record.
        let before = evicted.inc_by(self.count);
        if before / 1000 != (before + self.count) / 1000 || before == 0 {
            count_error(self.connector, "transform", "dedupe_evicted_early");
            warn!(
                connector = self.connector,
                evicted = before + self.count,
                "dedupe forgot keys before their window ended (max_keys reached); raise max_keys or shorten window"
            );
        }
    }
}
