//! Groups entries into PutEvents requests: at most `max_entries` and at most `max_bytes` (entry sizes summed).

use std::time::Instant;

#[derive(Debug)]
pub struct Batcher<T> {
    max_entries: usize,
    max_bytes: usize,
    items: Vec<T>,
    bytes: usize,
    opened_at: Option<Instant>,
}

impl<T> Batcher<T> {
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            max_entries,
            max_bytes,
            items: Vec::with_capacity(max_entries),
            bytes: 0,
            opened_at: None,
        }
    }

    /// Adds an item of `size` bytes (at most `max_bytes`; larger entries are rejected before they get here) and
    /// returns the batches this closed: the open one if the item did not fit, and the new one if it is now full.
    pub(crate) fn push(&mut self, item: T, size: usize) -> Vec<Vec<T>> {
        let mut closed = Vec::new();
        if !self.items.is_empty() && self.bytes + size > self.max_bytes {
            closed.extend(self.take());
        }
        if self.items.is_empty() {
            self.opened_at = Some(Instant::now());
        }
        self.items.push(item);
        self.bytes += size;
        if self.items.len() >= self.max_entries || self.bytes >= self.max_bytes {
            closed.extend(self.take());
        }
        closed
    }

    /// When the open batch was started, if there is one.
    pub(crate) fn opened_at(&self) -> Option<Instant> {
        self.opened_at
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Closes the open batch, if any.
    pub(crate) fn take(&mut self) -> Option<Vec<T>> {
        if self.items.is_empty() {
            return None;
        }
        self.bytes = 0;
        self.opened_at = None;
        Some(std::mem::replace(&mut self.items, Vec::with_capacity(self.max_entries)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_at_the_entry_limit() {
        let mut batcher = Batcher::new(3, 1000);
        assert!(batcher.push(1, 10).is_empty());
        assert!(batcher.push(2, 10).is_empty());
        assert_eq!(batcher.push(3, 10), vec![vec![1, 2, 3]]);
        assert!(batcher.is_empty());
    }

    #[test]
    fn closes_before_the_byte_limit_is_passed() {
        let mut batcher = Batcher::new(10, 100);
        assert!(batcher.push('a', 60).is_empty());
        assert_eq!(batcher.push('b', 50), vec![vec!['a']]);
        assert_eq!(batcher.len(), 1);
        // Exactly at the limit is allowed, and closes the batch.
        assert_eq!(batcher.push('c', 50), vec![vec!['b', 'c']]);
        assert_eq!(batcher.push('d', 100), vec![vec!['d']]);
        assert_eq!(batcher.take(), None);
    }

    #[test]
    fn a_large_item_closes_the_open_batch_and_then_its_own() {
        let mut batcher = Batcher::new(10, 100);
        batcher.push('a', 30);
        assert_eq!(batcher.push('b', 100), vec![vec!['a'], vec!['b']]);
    }
}
