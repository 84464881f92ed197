//! The products consumer of order events, against both stores: a sale is
//! counted once per order (shipped or not), taken back once, a cancellation
//! that arrives before its order's creation wins, and a redelivered event id
//! is skipped.

use std::sync::Arc;

use contract::events::{OrderCancelled, OrderCreated, OrderLine, OrderStatusChanged};
use contract::orders::OrderStatus;
use events::{Event, Handler};
use products::consumer::OrderEvents;
use products::domain::ProductId;
use products::store::ProductStore;

use crate::helpers::{Backend, held, product, store};

async fn sold(store: &Arc<dyn ProductStore>, id: &str) -> (i32, i64) {
    let product = store.get(&ProductId::parse(id).unwrap()).await.unwrap().unwrap();
    (product.stock, product.units_sold)
}

fn lines(quantity: i32) -> Vec<OrderLine> {
    vec![OrderLine { product_id: "a".to_owned(), quantity, unit_price_minor: 100, ..Default::default() }]
}

pub fn created(order: &str, quantity: i32) -> Event {
    let message = OrderCreated { order_id: order.to_owned(), items: lines(quantity), ..Default::default() };
    Event::new(uuid::Uuid::now_v7(), &message)
}

pub fn cancelled(order: &str, quantity: i32) -> Event {
    let message = OrderCancelled { order_id: order.to_owned(), items: lines(quantity), ..Default::default() };
    Event::new(uuid::Uuid::now_v7(), &message)
}

pub fn status_changed(order: &str, to: OrderStatus) -> Event {
    let message = OrderStatusChanged { order_id: order.to_owned(), new_status: to as i32, ..Default::default() };
    Event::new(uuid::Uuid::now_v7(), &message)
}

/// As the orders service wrote it before statuses were the enum: by name.
#[allow(deprecated)]
pub fn status_named(order: &str, to: &str) -> Event {
    let message = OrderStatusChanged { order_id: order.to_owned(), to_status: to.to_owned(), ..Default::default() };
    Event::new(uuid::Uuid::now_v7(), &message)
}

/// Reserves `quantity` of product `a` for `order` and counts the sale, as
/// placing an order does.
pub async fn place(store: &Arc<dyn ProductStore>, handler: &OrderEvents, order: &str, quantity: i32) {
    let items = vec![(ProductId::parse("a").unwrap(), quantity)];
    let reservation = products::domain::ReservationId::parse(order).unwrap();
    let outcome = store.reserve(&reservation, &items, held()).await.unwrap();
    assert!(matches!(outcome, products::store::ReserveOutcome::Reserved(_)));
    handler.handle(&created(order, quantity)).await.unwrap();
}

async fn a_redelivered_event_is_applied_once(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    store.insert(&product("a", "A", 100, 10)).await.unwrap();
    let handler = OrderEvents::new(store.clone());
    let event = created("order-1", 3);
    for _ in 0..3 {
        handler.handle(&event).await.unwrap();
    }
    assert_eq!(sold(&store, "a").await.1, 3);
    // A second event about the same order (a re-published duplicate with a
    // new id) is not counted either: the effect is idempotent by order.
    handler.handle(&created("order-1", 3)).await.unwrap();
    assert_eq!(sold(&store, "a").await.1, 3);
}

async fn a_cancellation_returns_the_stock_and_the_sale_once(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    store.insert(&product("a", "A", 100, 10)).await.unwrap();
    let items = vec![(ProductId::parse("a").unwrap(), 4)];
    assert!(matches!(
        store.reserve(&products::domain::ReservationId::parse("order-1").unwrap(), &items, held()).await.unwrap(),
        products::store::ReserveOutcome::Reserved(_)
    ));
    let handler = OrderEvents::new(store.clone());
    handler.handle(&created("order-1", 4)).await.unwrap();
    assert_eq!(sold(&store, "a").await, (6, 4));
    let cancel = cancelled("order-1", 4);
    handler.handle(&cancel).await.unwrap();
    handler.handle(&cancel).await.unwrap();
    handler.handle(&cancelled("order-1", 4)).await.unwrap();
    assert_eq!(sold(&store, "a").await, (10, 0));
}

async fn a_cancellation_before_the_creation_wins(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    store.insert(&product("a", "A", 100, 10)).await.unwrap();
    let handler = OrderEvents::new(store.clone());
    handler.handle(&cancelled("order-1", 2)).await.unwrap();
    handler.handle(&created("order-1", 2)).await.unwrap();
    assert_eq!(sold(&store, "a").await, (10, 0), "a cancelled order is never counted");
}

async fn shipping_settles_an_order_without_changing_any_count(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    store.insert(&product("a", "A", 100, 10)).await.unwrap();
    let handler = OrderEvents::new(store.clone());
    place(&store, &handler, "order-1", 3).await;
    for to in [OrderStatus::Paid, OrderStatus::Shipped, OrderStatus::Shipped, OrderStatus::Delivered] {
        handler.handle(&status_changed("order-1", to)).await.unwrap();
    }
    assert_eq!(sold(&store, "a").await, (7, 3));
    handler.handle(&status_changed("never-placed", OrderStatus::Shipped)).await.unwrap();
    // The order's bookkeeping may be gone, a duplicate of its creation
    // (published again with a new id) is still not counted.
    handler.handle(&created("order-1", 3)).await.unwrap();
    assert_eq!(sold(&store, "a").await, (7, 3), "a shipped order's sale is counted once");
}

async fn an_undecodable_event_is_a_permanent_failure(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    let handler = OrderEvents::new(store);
    let mut event = created("order-1", 1);
    event.payload = vec![0xff, 0xff];
    let error = handler.handle(&event).await.unwrap_err();
    assert!(error.permanent, "{error:?}");
}

/// What the in-process bus hands over per relay batch: applied in order,
/// each event once, however often the batch comes again.
async fn a_batch_is_applied_in_order_and_each_event_once(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    store.insert(&product("a", "A", 100, 10)).await.unwrap();
    let handler = OrderEvents::new(store.clone());
    for (order, quantity) in [("order-1", 2), ("order-2", 3)] {
        let items = vec![(ProductId::parse("a").unwrap(), quantity)];
        let reservation = products::domain::ReservationId::parse(order).unwrap();
        store.reserve(&reservation, &items, held()).await.unwrap();
    }
    let first = created("order-1", 2);
    let batch = [
        first.clone(),
        created("order-2", 3),
        cancelled("order-1", 2),
        first,
        status_changed("order-2", OrderStatus::Paid),
    ];
    let batch: Vec<&Event> = batch.iter().collect();
    for _ in 0..2 {
        handler.handle_batch(&batch).await.expect("the consumer applies batches").unwrap();
        assert_eq!(sold(&store, "a").await, (7, 3), "order-1 sold, then cancelled; order-2 sold");
    }
    let mut broken = created("order-3", 1);
    broken.payload = vec![0xff, 0xff];
    let error = handler.handle_batch(&[&broken]).await.unwrap().unwrap_err();
    assert!(error.permanent, "the bus then delivers one by one, dead-lettering only this one: {error:?}");
}

async fn events_applied_long_ago_are_forgotten_and_change_nothing_when_delivered_again(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    store.insert(&product("a", "A", 100, 10)).await.unwrap();
    let handler = OrderEvents::new(store.clone());
    let items = vec![(ProductId::parse("a").unwrap(), 2)];
    for order in ["order-1", "order-2"] {
        let reservation = products::domain::ReservationId::parse(order).unwrap();
        store.reserve(&reservation, &items, held()).await.unwrap();
    }
    let events = [
        created("order-1", 2),
        created("order-2", 2),
        cancelled("order-2", 2),
        status_changed("order-1", OrderStatus::Shipped),
    ];
    for event in &events {
        handler.handle(event).await.unwrap();
    }
    assert_eq!(sold(&store, "a").await, (8, 2));

    let consumer = products::consumer::CONSUMER;
    let hour_ago = products::domain::now() - chrono::TimeDelta::hours(1);
    assert_eq!(store.forget_applied_events(hour_ago).await.unwrap(), 0, "applied just now");
    let later = products::domain::now() + chrono::TimeDelta::seconds(1);
    assert_eq!(store.forget_applied_events(later).await.unwrap(), 4);
    assert!(!store.inbox_contains(consumer, &events[0].id.to_string()).await.unwrap());
    for event in &events {
        handler.handle(event).await.unwrap();
    }
    assert_eq!(sold(&store, "a").await, (8, 2), "each effect is idempotent without the inbox");
}

/// More than one batch of the stores that forget in batches.
async fn every_event_applied_before_is_forgotten_however_many(backend: Backend, test: &str) {
    let Some((store, _db)) = store(backend, test).await else { return };
    let consumer = products::consumer::CONSUMER;
    for n in 0..1_234 {
        store.inbox_record(consumer, &format!("event-{n}")).await.unwrap();
    }
    let later = products::domain::now() + chrono::TimeDelta::seconds(1);
    assert_eq!(store.forget_applied_events(later).await.unwrap(), 1_234);
    assert!(!store.inbox_contains(consumer, "event-1233").await.unwrap());
}

testkit::backend_tests!(crate::helpers::Backend { sqlite => Sqlite, mongo => Mongo }: [
    a_batch_is_applied_in_order_and_each_event_once,
    a_redelivered_event_is_applied_once,
    a_cancellation_returns_the_stock_and_the_sale_once,
    a_cancellation_before_the_creation_wins,
    shipping_settles_an_order_without_changing_any_count,
    an_undecodable_event_is_a_permanent_failure,
    events_applied_long_ago_are_forgotten_and_change_nothing_when_delivered_again,
    every_event_applied_before_is_forgotten_however_many,
]);
