//! A bulkhead: at most `max_in_flight` calls at once to one upstream, a few
//! more waiting in a small queue, and everything beyond refused at once, so
//! one slow upstream cannot take every task and connection of the caller.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkheadConfig {
    pub max_in_flight: usize,
    pub max_queued: usize,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        Self { max_in_flight: 256, max_queued: 64 }
    }
}

#[derive(Clone)]
pub struct Bulkhead {
    permits: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
    max_queued: usize,
}

/// Refused: the bulkhead and its queue are full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many calls in flight")]
pub struct Full;

/// A place in the bulkhead, released when dropped.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

impl Bulkhead {
    pub fn new(config: BulkheadConfig) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(config.max_in_flight)),
            queued: Arc::new(AtomicUsize::new(0)),
            max_queued: config.max_queued,
        }
    }

    /// A slot now, or after waiting in the queue, or [`Full`] at once.
    pub async fn enter(&self) -> Result<Slot, Full> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(Slot(permit));
        }
        let waiting = self.queued.fetch_add(1, Ordering::SeqCst);
        let _leave = Leave(&self.queued);
        if waiting >= self.max_queued {
            return Err(Full);
        }
        self.permits.clone().acquire_owned().await.map(Slot).map_err(|_| Full)
    }

    /// Calls in flight now.
    pub fn in_flight(&self, max_in_flight: usize) -> usize {
        max_in_flight - self.permits.available_permits()
    }

    /// Calls waiting for a slot now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }
}

/// Leaves the queue however the wait ends.
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_beyond_the_slots_and_the_queue_are_refused_at_once() {
        let bulkhead = Bulkhead::new(BulkheadConfig { max_in_flight: 2, max_queued: 1 });
        let first = bulkhead.enter().await.unwrap();
        let _second = bulkhead.enter().await.unwrap();
        let queued = {
            let bulkhead = bulkhead.clone();
            tokio::spawn(async move { bulkhead.enter().await.map(|_| ()) })
        };
        tokio::task::yield_now().await;
        while bulkhead.queued.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(bulkhead.enter().await.unwrap_err(), Full, "slots and queue are full");
        drop(first);
        queued.await.unwrap().expect("the queued call gets the freed slot");
        assert_eq!(bulkhead.in_flight(2), 1);
    }
}
