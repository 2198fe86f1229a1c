//! The topics a connector uses, as Kafka Connect's `GET /connectors/{name}/topics` shows them.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

/// Kafka Connect's active topics of a connector: those it consumed from or produced to since it was created or
/// its topics were last reset. Cheap to clone; recording a topic already known takes only a read lock.
#[derive(Debug, Clone, Default)]
pub struct ActiveTopics(Arc<RwLock<BTreeSet<String>>>);

impl ActiveTopics {
    pub(crate) fn record(&self, topic: &str) {
        let known = self
            .0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(topic);
        if !known {
            self.0
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(topic.to_owned());
        }
    }

    pub(crate) fn list(&self) -> Vec<String> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    pub(crate) fn reset(&self) {
        self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
    }
}
