//! Groups entries into PutEvents requests: at most `max_entries`, and entry sizes summed strictly under `max_bytes`
//! (EventBridge wants a request less than its limit, not at it).

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

    /// Adds an item of `size` bytes (under `max_bytes`; larger entries are rejected before they get here) and
    /// returns the batches this closed: the open one if the item did not fit, and the new one if it is now full.
    pub(crate) fn push(&mut self, item: T, size: usize) -> Vec<Vec<T>> {
        let mut closed = Vec::new();
        if !self.items.is_empty() && self.bytes + size >= self.max_bytes {
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
        // A batch exactly at the limit is not sent: the item that would reach it opens the next batch.
        assert_eq!(batcher.push('c', 50), vec![vec!['b']]);
        assert!(batcher.push('d', 49).is_empty());
        assert_eq!(batcher.take(), Some(vec!['c', 'd']));
    }

    #[test]
    fn a_large_item_closes_the_open_batch() {
        let mut batcher = Batcher::new(10, 100);
        batcher.push('a', 30);
        assert_eq!(batcher.push('b', 99), vec![vec!['a']]);
        assert_eq!(batcher.take(), Some(vec!['b']));
    }

    /// Whatever the sizes (each under the limit, as the preparer lets through), no batch reaches the limit.
    #[test]
    fn no_batch_reaches_the_byte_limit() {
        let mut batcher = Batcher::new(10, 1000);
        let mut seed = 7u64;
        let mut closed = Vec::new();
        for _ in 0..5000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let size = 1 + (seed >> 33) as usize % 999;
            closed.extend(batcher.push(size, size));
        }
        closed.extend(batcher.take());
        assert!(closed
            .iter()
            .all(|batch| batch.iter().sum::<usize>() < 1000 && batch.len() <= 10));
        assert_eq!(closed.iter().map(Vec::len).sum::<usize>(), 5000);
    }
}
