//! Holds that expire, against both adapters: a hold no order confirms is
//! released once it runs out and the orders service knows no such order; a
//! confirmed hold, or one the orders service has an order for, never is;
//! while the orders service cannot answer, nothing is released.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use products::domain::{ProductId, ReservationId, now};
use products::holds::{HoldExpiry, OrderLedger, Swept};
use products::store::{ProductStore, ReserveOutcome};

use crate::helpers::{Backend, held, product, store};

fn rid(id: &str) -> ReservationId {
    ReservationId::parse(id).unwrap()
}

async fn stock_of(store: &Arc<dyn ProductStore>, id: &str) -> i32 {
    store.get(&ProductId::parse(id).unwrap()).await.unwrap().unwrap().stock
}

fn ran_out() -> chrono::DateTime<chrono::Utc> {
    now() - chrono::TimeDelta::seconds(1)
}

async fn hold(store: &Arc<dyn ProductStore>, id: &str, quantity: i32, until: chrono::DateTime<chrono::Utc>) {
    let items = [(ProductId::parse("a").unwrap(), quantity)];
    let outcome = store.reserve(&rid(id), &items, until).await.unwrap();
    assert!(matches!(outcome, ReserveOutcome::Reserved(ref r) if r.expires_at == until), "{outcome:?}");
}

/// The orders the orders service would report, or no answer at all. The
/// real service answers the system suite (tests/system/holds.rs in meshwork).
#[derive(Default)]
struct Ledger {
    orders: Mutex<BTreeSet<String>>,
    unreachable: Mutex<bool>,
}

#[async_trait]
impl OrderLedger for Ledger {
    async fn has_order(&self, order_id: &str) -> Result<bool, String> {
        if *self.unreachable.lock().unwrap() {
            return Err("orders service unavailable".to_owned());
        }
        Ok(self.orders.lock().unwrap().contains(order_id))
    }
}

async fn only_unconfirmed_holds_that_ran_out_are_expired(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    store.insert(&product("a", "A", 100, 10)).await.unwrap();
    hold(&store, "lost", 1, ran_out()).await;
    hold(&store, "ordered", 2, ran_out()).await;
    hold(&store, "fresh", 3, held()).await;
    assert!(store.confirm(&rid("ordered")).await.unwrap());
    assert!(store.confirm(&rid("ordered")).await.unwrap(), "confirming twice is the same");
    assert!(!store.confirm(&rid("never")).await.unwrap(), "nothing to confirm");

    let expired = store.expired_holds(now(), 100).await.unwrap();
    assert_eq!(expired, [rid("lost")]);

    // A confirmed hold is still released when its order is cancelled.
    assert!(store.release(&rid("ordered")).await.unwrap());
    assert_eq!(stock_of(&store, "a").await, 10 - 1 - 3);
    assert!(!store.confirm(&rid("ordered")).await.unwrap(), "a released hold cannot be confirmed");
}

async fn the_sweep_releases_what_no_order_holds_and_keeps_the_rest(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    store.insert(&product("a", "A", 100, 10)).await.unwrap();
    hold(&store, "crashed-before-writing", 4, ran_out()).await;
    hold(&store, "written-event-late", 3, ran_out()).await;
    hold(&store, "in-flight", 2, held()).await;
    let ledger = Arc::new(Ledger::default());
    ledger.orders.lock().unwrap().insert("written-event-late".to_owned());
    let expiry = HoldExpiry::new(store.clone(), ledger.clone(), Duration::from_secs(1));

    *ledger.unreachable.lock().unwrap() = true;
    assert_eq!(
        expiry.sweep().await.unwrap(),
        Swept {
            released: 0,
            confirmed: 0,
            undecided: 2,
            finished: 0,
            cancelled_sale_markers_dropped: 0,
            events_forgotten: 0
        }
    );
    assert_eq!(stock_of(&store, "a").await, 1, "nothing is released while orders cannot answer");

    *ledger.unreachable.lock().unwrap() = false;
    assert_eq!(
        expiry.sweep().await.unwrap(),
        Swept {
            released: 1,
            confirmed: 1,
            undecided: 0,
            finished: 0,
            cancelled_sale_markers_dropped: 0,
            events_forgotten: 0
        }
    );
    assert_eq!(stock_of(&store, "a").await, 5, "the crashed order's 4 units are back; the written order keeps 3");
    assert_eq!(expiry.sweep().await.unwrap(), Swept::default(), "a second sweep has nothing to do");
    let late = store.reserve(&rid("crashed-before-writing"), &[(ProductId::parse("a").unwrap(), 4)], held()).await;
    assert!(matches!(late, Ok(ReserveOutcome::Refused(_))), "a late retry of the dead call takes nothing: {late:?}");
}

testkit::backend_tests!(crate::helpers::Backend { sqlite => Sqlite, mongo => Mongo }: [
    only_unconfirmed_holds_that_ran_out_are_expired,
    the_sweep_releases_what_no_order_holds_and_keeps_the_rest,
]);
