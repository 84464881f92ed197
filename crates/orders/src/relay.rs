//! The outbox relay: publishes committed outbox rows in sequence order, in
//! batches (woken by each commit, polling only as a fallback), and deletes
//! each row only after the bus has confirmed its event. It survives bus
//! outages (it retries the same row, so order is kept) and its own restarts
//! (unsent rows are still there). An event can therefore go out twice,
//! never zero times; consumers dedupe on the event id.

use std::sync::Arc;
use std::time::{Duration, Instant};

use events::{Event, PartialPublish, Publisher};
use platform::CancellationToken;
use resilience::Backoff;
use tokio::sync::Notify;

use crate::store::{OrderStore, RelayLease};

/// Rows fetched, and published as one batch, per round.
const BATCH: u32 = 100;
/// How often the backlog gauges are refreshed.
const BACKLOG_EVERY: Duration = Duration::from_millis(500);

pub struct OutboxRelay {
    store: Arc<dyn OrderStore>,
    publisher: Arc<dyn Publisher>,
    /// Rung after each commit, so events go out at once instead of at the next poll.
    wake: Arc<Notify>,
    poll: Duration,
    backlog_reported: Option<Instant>,
}

impl OutboxRelay {
    pub fn new(store: Arc<dyn OrderStore>, publisher: Arc<dyn Publisher>, wake: Arc<Notify>) -> Self {
        Self { store, publisher, wake, poll: Duration::from_millis(500), backlog_reported: None }
    }

    /// Relays until `shutdown`; only while holding the relay lease, so that
    /// replicas of the service do not publish the same rows side by side.
    /// The lease is kept from round to round and checked before each (on
    /// PostgreSQL it is a session: taking it anew each round was a new
    /// connection per batch, and the ~100 ms that costs before an idle
    /// relay's first publish).
    pub async fn run(mut self, shutdown: CancellationToken) {
        let backoff = Backoff { base: Duration::from_millis(50), max: Duration::from_secs(5) };
        let mut failures = 0;
        let mut lease: Option<Box<dyn RelayLease>> = None;
        while !shutdown.is_cancelled() {
            let held = match lease.as_mut() {
                Some(lease) => lease.still_held().await,
                None => false,
            };
            if !held {
                lease = None;
                match self.store.relay_lease().await {
                    Ok(Some(taken)) => lease = Some(taken),
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
                }
            }
            match self.relay_batch().await {
                Ok(0) => {
                    failures = 0;
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(self.poll) => {}
                        () = shutdown.cancelled() => return,
                    }
                }
                Ok(_) => failures = 0,
                Err(error) => {
                    // The database may be what failed: take the lease anew.
                    lease = None;
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

    /// Publishes one batch in order, as one batch on the bus (its round
    /// trips overlap), and forgets what the bus took. Returns how many went
    /// out; an error only if none did.
    async fn relay_batch(&mut self) -> Result<usize, String> {
        self.report_backlog().await;
        let entries = self.store.unsent(BATCH).await.map_err(|e| e.to_string())?;
        if entries.is_empty() {
            return Ok(0);
        }
        let (seqs, events): (Vec<i64>, Vec<Event>) = entries.into_iter().map(|entry| (entry.seq, entry.event)).unzip();
        let (taken, failure) = match self.publisher.publish_batch(&events).await {
            Ok(()) => (events.len(), None),
            Err(PartialPublish { taken, error }) => (taken, Some(error)),
        };
        // A failure to forget them means they go out again: at least once.
        self.store.mark_sent(&seqs[..taken]).await.map_err(|e| e.to_string())?;
        metrics::counter!("outbox_events_published_total").increment(taken as u64);
        match failure {
            None => Ok(taken),
            Some(error) => {
                metrics::counter!("outbox_publish_failures_total").increment(1);
                if taken > 0 { Ok(taken) } else { Err(error.to_string()) }
            }
        }
    }

    /// Sets the backlog gauges, at most every [`BACKLOG_EVERY`]: a count
    /// per round would cost more than the round under load.
    async fn report_backlog(&mut self) {
        if self.backlog_reported.is_some_and(|at| at.elapsed() < BACKLOG_EVERY) {
            return;
        }
        self.backlog_reported = Some(Instant::now());
        match self.store.backlog().await {
            Ok(backlog) => {
                metrics::gauge!("outbox_unsent_events").set(backlog.unsent as f64);
                let age = backlog.oldest.map_or(0.0, |oldest| (crate::domain::now() - oldest).as_seconds_f64());
                metrics::gauge!("outbox_oldest_unsent_age_seconds").set(age.max(0.0));
            }
            Err(error) => tracing::debug!(%error, "cannot read the outbox backlog"),
        }
    }
}

/// Sleeps for `delay`; true if shutdown came first.
async fn sleep_or_shutdown(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => false,
        () = shutdown.cancelled() => true,
    }
}
