//! The outbox relay: publishes committed outbox rows in sequence order and
//! marks each sent only after the bus has confirmed it. It survives bus
//! outages (it retries the same row, so order is kept) and its own restarts
//! (unsent rows are still there). An event can therefore go out twice,
//! never zero times; consumers dedupe on the event id.

use std::sync::Arc;
use std::time::Duration;

use events::Publisher;
use platform::CancellationToken;
use resilience::Backoff;
use tokio::sync::Notify;

use crate::store::OrderStore;

/// Rows fetched per round.
const BATCH: u32 = 100;

pub struct OutboxRelay {
    store: Arc<dyn OrderStore>,
    publisher: Arc<dyn Publisher>,
    /// Rung after each commit, so events go out at once instead of at the next poll.
    wake: Arc<Notify>,
    poll: Duration,
}

impl OutboxRelay {
    pub fn new(store: Arc<dyn OrderStore>, publisher: Arc<dyn Publisher>, wake: Arc<Notify>) -> Self {
        Self { store, publisher, wake, poll: Duration::from_millis(500) }
    }

    /// Relays until `shutdown`; only while holding the relay lease, so that
    /// replicas of the service do not publish the same rows side by side.
    pub async fn run(self, shutdown: CancellationToken) {
        let backoff = Backoff { base: Duration::from_millis(50), max: Duration::from_secs(5) };
        let mut failures = 0;
        while !shutdown.is_cancelled() {
            let lease = match self.store.relay_lease().await {
                Ok(Some(lease)) => lease,
                Ok(None) => {
                    // Another replica relays; check again later.
                    if sleep_or_shutdown(Duration::from_secs(2), &shutdown).await {
                        return;
                    }
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "outbox relay cannot take its lease");
                    failures += 1;
                    if sleep_or_shutdown(backoff.ceiling(failures), &shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            match self.relay_batch().await {
                Ok(0) => {
                    failures = 0;
                    drop(lease);
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(self.poll) => {}
                        () = shutdown.cancelled() => return,
                    }
                }
                Ok(_) => failures = 0,
                Err(error) => {
                    drop(lease);
                    failures += 1;
                    let delay = backoff.ceiling(failures.min(10));
                    tracing::warn!(%error, ?delay, "outbox relay paused");
                    if sleep_or_shutdown(delay, &shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    /// Publishes one batch in order; stops at the first failure so that a
    /// later event never overtakes an earlier one. Returns how many went out.
    async fn relay_batch(&self) -> Result<usize, String> {
        let entries = self.store.unsent(BATCH).await.map_err(|e| e.to_string())?;
        metrics::gauge!("outbox_unsent_batch").set(entries.len() as f64);
        for (sent, entry) in entries.iter().enumerate() {
            if let Err(error) = self.publisher.publish(&entry.event).await {
                metrics::counter!("outbox_publish_failures_total").increment(1);
                return if sent > 0 { Ok(sent) } else { Err(error.to_string()) };
            }
            // A failure here means the event goes out again: at least once.
            self.store.mark_sent(entry.seq).await.map_err(|e| e.to_string())?;
            metrics::counter!("outbox_events_published_total", "kind" => entry.event.kind.clone()).increment(1);
        }
        Ok(entries.len())
    }
}

/// Sleeps for `delay`; true if shutdown came first.
async fn sleep_or_shutdown(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => false,
        () = shutdown.cancelled() => true,
    }
}
