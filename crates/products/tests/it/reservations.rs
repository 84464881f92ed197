//! The inventory half of the store suite: stock is never oversold, a
//! reservation is all-or-nothing and idempotent, a release gives back
//! exactly what was taken, once. Run against SQLite and MongoDB.

use std::sync::Arc;

use products::domain::{ProductId, ReservationId, ReservationRefused};
use products::store::{ProductStore, ReserveOutcome, StoreError};

use crate::helpers::{Backend, held, product, store};

fn rid(id: &str) -> ReservationId {
    ReservationId::parse(id).unwrap()
}

fn pid(id: &str) -> ProductId {
    ProductId::parse(id).unwrap()
}

async fn stock_of(store: &Arc<dyn ProductStore>, id: &str) -> i32 {
    store.get(&pid(id)).await.unwrap().unwrap().stock
}

/// Reserves, retrying while another call holds the same reservation id.
async fn reserve(store: &Arc<dyn ProductStore>, id: &str, items: &[(&str, i32)]) -> ReserveOutcome {
    let items: Vec<(ProductId, i32)> = items.iter().map(|(p, q)| (pid(p), *q)).collect();
    for _ in 0..100 {
        match store.reserve(&rid(id), &items, held()).await {
            Err(StoreError::ReservationBusy(_)) => tokio::task::yield_now().await,
            other => return other.unwrap(),
        }
    }
    panic!("reservation {id} stayed busy")
}

async fn fifty_concurrent_reservations_on_twenty_units_sell_exactly_twenty(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    store.insert(&product("hot", "Hot Item", 500, 20)).await.unwrap();
    let attempts = (0..50).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { reserve(&store, &format!("order-{i}"), &[("hot", 1)]).await })
    });
    let outcomes = futures::future::join_all(attempts).await;
    let mut reserved = 0;
    for outcome in outcomes {
        match outcome.unwrap() {
            ReserveOutcome::Reserved(reservation) => {
                assert_eq!(reservation.items.len(), 1);
                reserved += 1;
            }
            ReserveOutcome::Refused(ReservationRefused::InsufficientStock { product, .. }) => {
                assert_eq!(product, "hot")
            }
            ReserveOutcome::Refused(other) => panic!("unexpected refusal {other:?}"),
        }
    }
    assert_eq!(reserved, 20);
    assert_eq!(stock_of(&store, "hot").await, 0, "stock ends at zero, never below");
}

async fn a_reservation_takes_every_item_or_none(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    store.insert(&product("a", "A", 100, 10)).await.unwrap();
    store.insert(&product("b", "B", 250, 1)).await.unwrap();

    let refused = reserve(&store, "r1", &[("a", 3), ("b", 2)]).await;
    assert!(
        matches!(&refused, ReserveOutcome::Refused(ReservationRefused::InsufficientStock { product, requested: 2, available: 1 }) if product == "b"),
        "{refused:?}"
    );
    assert_eq!((stock_of(&store, "a").await, stock_of(&store, "b").await), (10, 1), "nothing was taken");

    let unknown = reserve(&store, "r2", &[("a", 1), ("ghost", 1)]).await;
    assert!(matches!(unknown, ReserveOutcome::Refused(ReservationRefused::UnknownProduct(ref p)) if p == "ghost"));
    assert_eq!(stock_of(&store, "a").await, 10);

    let ReserveOutcome::Reserved(reservation) = reserve(&store, "r3", &[("a", 3), ("b", 1)]).await else {
        panic!("enough stock for both");
    };
    let lines: Vec<(&str, i32, i64, &str)> = reservation
        .items
        .iter()
        .map(|i| (i.product_id.as_str(), i.quantity, i.unit_price.minor(), i.product_name.as_str()))
        .collect();
    assert_eq!(lines, [("a", 3, 100, "A"), ("b", 1, 250, "B")]);
    assert_eq!((stock_of(&store, "a").await, stock_of(&store, "b").await), (7, 0));
}

async fn repeating_a_reservation_takes_nothing_more(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    store.insert(&product("a", "A", 100, 10)).await.unwrap();
    let ReserveOutcome::Reserved(first) = reserve(&store, "r1", &[("a", 4)]).await else { panic!("reserved") };
    let ReserveOutcome::Reserved(again) = reserve(&store, "r1", &[("a", 4)]).await else { panic!("same answer") };
    assert_eq!(first, again);
    assert_eq!(stock_of(&store, "a").await, 6);

    // Ten concurrent retries of one new reservation: one takes the stock.
    let retries = (0..10).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { reserve(&store, "r2", &[("a", 2)]).await })
    });
    for outcome in futures::future::join_all(retries).await {
        assert!(matches!(outcome.unwrap(), ReserveOutcome::Reserved(_)));
    }
    assert_eq!(stock_of(&store, "a").await, 4);
}

async fn a_release_gives_back_exactly_what_was_taken_once(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    store.insert(&product("a", "A", 100, 10)).await.unwrap();
    store.insert(&product("b", "B", 100, 10)).await.unwrap();
    reserve(&store, "r1", &[("a", 3), ("b", 5)]).await;
    assert!(store.release(&rid("r1")).await.unwrap());
    assert!(!store.release(&rid("r1")).await.unwrap(), "a second release changes nothing");
    assert_eq!((stock_of(&store, "a").await, stock_of(&store, "b").await), (10, 10));

    let refused = reserve(&store, "r1", &[("a", 3)]).await;
    assert!(matches!(refused, ReserveOutcome::Refused(ReservationRefused::AlreadyReleased(_))), "{refused:?}");
    assert_eq!(stock_of(&store, "a").await, 10);
}

async fn concurrent_releases_release_once(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    store.insert(&product("a", "A", 100, 10)).await.unwrap();
    reserve(&store, "r1", &[("a", 6)]).await;
    let releases = (0..10).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..100 {
                match store.release(&rid("r1")).await {
                    Err(StoreError::ReservationBusy(_)) => tokio::task::yield_now().await,
                    other => return other.unwrap(),
                }
            }
            panic!("release stayed busy")
        })
    });
    let released: Vec<bool> = futures::future::join_all(releases).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(released.iter().filter(|r| **r).count(), 1, "{released:?}");
    assert_eq!(stock_of(&store, "a").await, 10);
}

async fn a_release_before_the_reservation_blocks_it(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    store.insert(&product("a", "A", 100, 10)).await.unwrap();
    assert!(!store.release(&rid("late")).await.unwrap(), "nothing to release");
    let refused = reserve(&store, "late", &[("a", 1)]).await;
    assert!(matches!(refused, ReserveOutcome::Refused(ReservationRefused::AlreadyReleased(_))));
    assert_eq!(stock_of(&store, "a").await, 10);
}

testkit::backend_tests!(crate::helpers::Backend { sqlite => Sqlite, mongo => Mongo }: [
    fifty_concurrent_reservations_on_twenty_units_sell_exactly_twenty,
    a_reservation_takes_every_item_or_none,
    repeating_a_reservation_takes_nothing_more,
    a_release_gives_back_exactly_what_was_taken_once,
    concurrent_releases_release_once,
    a_release_before_the_reservation_blocks_it,
]);
