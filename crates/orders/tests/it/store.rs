//! The orders store suite, run against SQLite and PostgreSQL: orders and
//! their events are written together, the outbox is read in order.

use contract::events::OrderCreated;
use events::Event;
use orders::domain::{Order, OrderId, OrderItem, OrderStatus, now};
use orders::store::{OrderQuery, StoreError};

use crate::helpers::{Backend, order_store};

fn order(user_id: uuid::Uuid) -> Order {
    let at = now();
    Order {
        id: OrderId::generate(),
        user_id,
        items: vec![OrderItem {
            product_id: "p".to_owned(),
            product_name: "P".to_owned(),
            quantity: 2,
            unit_price_minor: 150,
        }],
        status: OrderStatus::Pending,
        currency: orders::domain::Currency::parse("EUR").unwrap(),
        created_at: at,
        updated_at: at,
    }
}

fn event(order: &Order) -> Event {
    Event::new(uuid::Uuid::now_v7(), &OrderCreated { order_id: order.id.to_string(), ..Default::default() })
}

async fn an_order_and_its_event_are_written_together(backend: Backend, test: &str) {
    let Some((store, _db)) = order_store(backend, test).await else { return };
    let order = order(uuid::Uuid::now_v7());
    let created = event(&order);
    store.create(&order, Some("key-1"), &created).await.unwrap();
    assert_eq!(store.get(order.id).await.unwrap(), Some(order.clone()));
    assert_eq!(store.find_by_idempotency_key(order.user_id, "key-1").await.unwrap(), Some(order.clone()));
    assert_eq!(store.find_by_idempotency_key(uuid::Uuid::now_v7(), "key-1").await.unwrap(), None, "keys are per user");
    let unsent = store.unsent(10).await.unwrap();
    assert_eq!(unsent.iter().map(|e| &e.event).collect::<Vec<_>>(), [&created]);

    let mut twin = self::order(order.user_id);
    twin.id = OrderId::generate();
    let error = store.create(&twin, Some("key-1"), &event(&twin)).await.unwrap_err();
    assert!(matches!(error, StoreError::DuplicateKey), "{error:?}");
    assert_eq!(store.get(twin.id).await.unwrap(), None, "nothing of the refused order was written");
    assert_eq!(store.unsent(10).await.unwrap().len(), 1, "nor its event");
}

async fn the_outbox_is_read_in_order_and_marked_sent(backend: Backend, test: &str) {
    let Some((store, _db)) = order_store(backend, test).await else { return };
    let mut written = Vec::new();
    for _ in 0..5 {
        let order = order(uuid::Uuid::now_v7());
        let created = event(&order);
        store.create(&order, None, &created).await.unwrap();
        written.push(created.id);
    }
    let backlog = store.backlog().await.unwrap();
    assert_eq!(backlog.unsent, 5);
    assert!(backlog.oldest.is_some());
    let unsent = store.unsent(3).await.unwrap();
    assert_eq!(unsent.iter().map(|e| e.event.id).collect::<Vec<_>>(), written[..3]);
    // Exactly the rows named: the first stays, as one that committed late would.
    store.mark_sent(&[unsent[1].seq, unsent[2].seq]).await.unwrap();
    let rest: Vec<uuid::Uuid> = store.unsent(10).await.unwrap().into_iter().map(|e| e.event.id).collect();
    assert_eq!(rest, [written[0], written[3], written[4]]);
    store.mark_sent(&[]).await.unwrap();
    assert_eq!(store.backlog().await.unwrap().unsent, 3);
}

async fn a_status_change_is_compare_and_set(backend: Backend, test: &str) {
    let Some((store, _db)) = order_store(backend, test).await else { return };
    let order = order(uuid::Uuid::now_v7());
    store.create(&order, None, &event(&order)).await.unwrap();
    let at = now();
    assert!(store.change_status(order.id, OrderStatus::Pending, OrderStatus::Paid, at, &event(&order)).await.unwrap());
    assert!(
        !store.change_status(order.id, OrderStatus::Pending, OrderStatus::Cancelled, at, &event(&order)).await.unwrap()
    );
    let stored = store.get(order.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.updated_at), (OrderStatus::Paid, at));
    assert_eq!(store.unsent(10).await.unwrap().len(), 2, "only the change that happened wrote an event");
}

async fn lists_filter_by_status_and_user_newest_first(backend: Backend, test: &str) {
    let Some((store, _db)) = order_store(backend, test).await else { return };
    let (alice, bob) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let mut orders = Vec::new();
    for user in [alice, bob, alice] {
        let order = order(user);
        store.create(&order, None, &event(&order)).await.unwrap();
        orders.push(order);
    }
    store
        .change_status(orders[1].id, OrderStatus::Pending, OrderStatus::Paid, now(), &event(&orders[1]))
        .await
        .unwrap();
    let ids = |found: Vec<Order>| found.into_iter().map(|o| o.id).collect::<Vec<_>>();
    let all = store.list(&OrderQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(ids(all), [orders[2].id, orders[1].id, orders[0].id]);
    let alices = store.list(&OrderQuery { user_id: Some(alice), limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(ids(alices), [orders[2].id, orders[0].id]);
    let paid =
        store.list(&OrderQuery { status: Some(OrderStatus::Paid), limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(ids(paid), [orders[1].id]);
    let older = store.list(&OrderQuery { before: Some(orders[2].id), limit: 1, ..Default::default() }).await.unwrap();
    assert_eq!(ids(older), [orders[1].id]);
}

async fn one_relay_holds_the_lease_at_a_time(backend: Backend, test: &str) {
    let Some((store, db)) = order_store(backend, test).await else { return };
    let mut first = store.relay_lease().await.unwrap().expect("the first relay gets the lease");
    assert!(first.still_held().await);
    if let Some(db) = db {
        assert!(store.relay_lease().await.unwrap().is_none(), "a second relay waits");
        // The lease is its session's: once the session is gone, the
        // holder learns it has lost it.
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(db.url()).await.unwrap();
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .execute(&mut admin)
        .await
        .unwrap();
        assert!(!first.still_held().await, "a lease whose session was ended is not held");
        drop(first);
        let mut again = None;
        for _ in 0..50 {
            again = store.relay_lease().await.unwrap();
            if again.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(again.is_some(), "the lease is free once its holder is gone");
    }
}

testkit::backend_tests!(crate::helpers::Backend { sqlite => Sqlite, postgres => Postgres }: [
    an_order_and_its_event_are_written_together,
    the_outbox_is_read_in_order_and_marked_sent,
    a_status_change_is_compare_and_set,
    lists_filter_by_status_and_user_newest_first,
    one_relay_holds_the_lease_at_a_time,
]);
