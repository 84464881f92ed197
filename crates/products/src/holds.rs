//! Holds that expire. Stock reserved for an order that is never written
//! (its caller crashed between reserving and writing, or never meant to
//! order) goes back on the shelf: every few seconds the sweeper takes the
//! reservations whose hold ran out unconfirmed and asks the orders service
//! about each. An order with that id confirms the hold (its OrderCreated
//! event, which confirms it too, has not arrived yet); no such order
//! releases it; no answer leaves it for the next round, so an outage of the
//! orders service or of the bus never costs a written order its stock.
//!
//! The other half of the bargain is on the orders side: it does not write an
//! order once half of the hold (`held_for` in the contract) has passed, so a
//! hold released here never belongs to an order written later.
//!
//! The same rounds drop what a store kept to make cancelled sales
//! exactly-once, an hour after the cancellation
//! (`ProductStore::drop_cancelled_sale_markers`), and forget the order
//! events applied a week ago (`ProductStore::forget_applied_events`), so
//! that neither grows with every order for good.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use contract::orders::GetOrderRequest;
use contract::orders::order_service_client::OrderServiceClient;
use platform::CancellationToken;
use platform::access::ServiceTokens;
use resilience::Upstream;

use crate::domain::ReservationId;
use crate::store::{ProductStore, StoreError};

/// Expired holds looked at per batch.
const BATCH: u32 = 100;
/// Batches per round at most: a backlog drains over a few rounds instead of
/// holding the store in one long burst.
const MAX_BATCHES: usize = 20;
/// How long a cancelled sale's markers are kept. They stop an OrderCreated
/// that was being applied when its order was cancelled from counting the
/// sale (one event's handling: seconds); a creation applied later finds the
/// cancellation on the order's reservation instead.
pub const CANCELLED_SALE_MARKERS_KEPT: Duration = Duration::from_secs(60 * 60);
/// How long the consumer's inbox remembers an event it applied: beyond any
/// redelivery or retry, so that the inbox, not the idempotent effect,
/// answers one. A dead-lettered event replayed later is applied again, to
/// no effect.
pub const APPLIED_EVENTS_KEPT: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Whether an order was written under a reservation's id.
#[async_trait]
pub trait OrderLedger: Send + Sync + 'static {
    async fn has_order(&self, order_id: &str) -> Result<bool, String>;
}

/// The orders service, asked as a service (its GetOrder answers a service
/// about any order) on the guarded call path.
pub struct OrdersService {
    orders: Arc<Upstream>,
    service: Arc<ServiceTokens>,
}

impl OrdersService {
    pub fn new(orders: Arc<Upstream>, service: Arc<ServiceTokens>) -> Self {
        Self { orders, service }
    }
}

#[async_trait]
impl OrderLedger for OrdersService {
    async fn has_order(&self, order_id: &str) -> Result<bool, String> {
        let answer = self
            .orders
            .call("shop.orders.v1.OrderService/GetOrder", true, None, |channel, remaining| {
                let mut request = tonic::Request::new(GetOrderRequest { id: order_id.to_owned() });
                platform::grpc_timeout::set(&mut request, remaining);
                self.service.attach(&mut request);
                async move { OrderServiceClient::new(channel).get_order(request).await }
            })
            .await
            .map_err(|error| error.into_status(&self.orders.name));
        match answer {
            Ok(_) => Ok(true),
            // Not an order id at all: no order can hold it.
            Err(status) if matches!(status.code(), tonic::Code::NotFound | tonic::Code::InvalidArgument) => Ok(false),
            Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
        }
    }
}

/// What one round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub released: usize,
    pub confirmed: usize,
    /// Left for a later round: the orders service did not answer.
    pub undecided: usize,
    /// Releases whose caller died part-way, finished (see
    /// `ProductStore::finish_interrupted_releases`).
    pub finished: usize,
    /// Cancelled orders whose sale markers were dropped (see
    /// `ProductStore::drop_cancelled_sale_markers`).
    pub cancelled_sale_markers_dropped: usize,
    /// Inbox entries forgotten (see `ProductStore::forget_applied_events`).
    pub events_forgotten: u64,
}

pub struct HoldExpiry {
    store: Arc<dyn ProductStore>,
    ledger: Arc<dyn OrderLedger>,
    interval: Duration,
}

impl HoldExpiry {
    /// Sweeps ten times per hold TTL (between every 100 ms and every 30 s),
    /// so stock returns within about 1.1 TTL of being reserved.
    pub fn new(store: Arc<dyn ProductStore>, ledger: Arc<dyn OrderLedger>, hold_ttl: Duration) -> Self {
        let interval = (hold_ttl / 10).clamp(Duration::from_millis(100), Duration::from_secs(30));
        Self { store, ledger, interval }
    }

    /// Sweeps until `shutdown`; a failed round is logged and retried.
    pub async fn run(self, shutdown: CancellationToken) {
        metrics::describe_counter!(
            "products_holds_expired_total",
            "Stock holds released because no order was written for them within the hold's lifetime."
        );
        metrics::counter!("products_holds_expired_total").absolute(0);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.interval) => {}
            }
            match self.sweep().await {
                Ok(swept) if swept == Swept::default() => {}
                Ok(swept) => tracing::info!(?swept, "expired stock holds swept"),
                Err(error) => tracing::warn!(%error, "cannot sweep expired stock holds; retrying"),
            }
        }
    }

    /// One round over the holds that have run out.
    pub async fn sweep(&self) -> Result<Swept, StoreError> {
        let finished = self.store.finish_interrupted_releases(crate::domain::now(), BATCH).await?;
        let cancelled_before = crate::domain::now() - CANCELLED_SALE_MARKERS_KEPT;
        let cancelled_sale_markers_dropped = self.store.drop_cancelled_sale_markers(cancelled_before, BATCH).await?;
        let events_forgotten = self.store.forget_applied_events(crate::domain::now() - APPLIED_EVENTS_KEPT).await?;
        let mut swept = Swept {
            finished: finished as usize,
            cancelled_sale_markers_dropped: cancelled_sale_markers_dropped as usize,
            events_forgotten,
            ..Swept::default()
        };
        for _ in 0..MAX_BATCHES {
            let expired = self.store.expired_holds(crate::domain::now(), BATCH).await?;
            let full = expired.len() == BATCH as usize;
            let undecided_before = swept.undecided;
            for id in expired {
                self.settle(&id, &mut swept).await?;
            }
            // Undecided holds would come back in the next batch: stop there.
            if !full || swept.undecided > undecided_before {
                break;
            }
        }
        Ok(swept)
    }

    async fn settle(&self, id: &ReservationId, swept: &mut Swept) -> Result<(), StoreError> {
        match self.ledger.has_order(id.as_str()).await {
            Ok(true) => {
                self.store.confirm(id).await?;
                swept.confirmed += 1;
            }
            Ok(false) => match self.store.release(id).await {
                Ok(released) => {
                    if released {
                        metrics::counter!("products_holds_expired_total").increment(1);
                        tracing::info!(reservation_id = id.as_str(), "released stock no order holds");
                    }
                    swept.released += 1;
                }
                // Its reserving call is still at work (or only just died).
                Err(StoreError::ReservationBusy(_)) => swept.undecided += 1,
                Err(error) => return Err(error),
            },
            Err(error) => {
                tracing::warn!(reservation_id = id.as_str(), %error, "cannot ask the orders service about a hold");
                swept.undecided += 1;
            }
        }
        Ok(())
    }
}
