//! The orders service over real gRPC, against real users and products
//! services: the saga, idempotency, the status machine, and the events'
//! effect on stock.

use std::sync::Arc;

use async_trait::async_trait;
use contract::events::{OrderCreated, OrderStatusChanged};
use contract::orders::{
    CancelOrderRequest, CreateOrderRequest, DeliverOrderRequest, GetOrderRequest, LineItem, ListOrdersRequest,
    ListUserOrdersRequest, OrderStatus, PayOrderRequest, ShipOrderRequest,
};
use orders::domain::{Order, OrderId};
use orders::store::{OrderStore, RelayLease, StoreError};
use prost::Name;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{Backend, Shop, channel, orders_service, shop};

fn order_for(user_id: &str, product_id: &str, quantity: i32) -> CreateOrderRequest {
    CreateOrderRequest {
        user_id: user_id.to_owned(),
        product_id: product_id.to_owned(),
        quantity,
        ..Default::default()
    }
}

fn violated_fields(status: &tonic::Status) -> Vec<String> {
    let details = status.get_error_details();
    let bad_request = details.bad_request().unwrap_or_else(|| panic!("no BadRequest details in {status:?}"));
    bad_request.field_violations.iter().map(|v| v.field.clone()).collect()
}

async fn create(shop: &Shop, request: CreateOrderRequest) -> Result<contract::orders::Order, tonic::Status> {
    shop.orders.clone().create_order(request).await.map(|r| r.into_inner().order.unwrap())
}

async fn template_order_reserves_stock_and_prices_from_the_catalog(backend: Backend, test: &str) {
    let Some(shop) = shop(backend, test).await else { return };
    let user = shop.user().await;
    shop.product("prod-123", 29.99, 100).await;
    shop.product("prod-9", 0.1, 10).await;

    let mut request = order_for(&user, "prod-123", 2);
    request.items = vec![LineItem { product_id: "prod-9".to_owned(), quantity: 3 }];
    let order = create(&shop, request).await.unwrap();
    assert_eq!(order.status(), OrderStatus::Pending);
    assert_eq!(order.user_id, user);
    assert_eq!(order.total, 60.28, "2 × 29.99 + 3 × 0.10, summed in cents");
    assert_eq!(order.currency, "USD");
    let lines: Vec<(&str, i32, f64, f64)> =
        order.items.iter().map(|i| (i.product_id.as_str(), i.quantity, i.unit_price, i.line_total)).collect();
    assert_eq!(lines, [("prod-123", 2, 29.99, 59.98), ("prod-9", 3, 0.1, 0.3)]);
    assert_eq!(order.items[0].product_name, "Product prod-123");

    // OrderCreated went through the outbox to the products consumer.
    testkit::eventually("units sold to be counted", std::time::Duration::from_secs(10), || async {
        shop.stock("prod-123").await == (98, 2)
    })
    .await;
    let fetched = shop.orders.clone().get_order(GetOrderRequest { id: order.id.clone() }).await.unwrap();
    assert_eq!(fetched.into_inner().order, Some(order));
}

async fn refusals_name_the_problem_and_take_no_stock(backend: Backend, test: &str) {
    let Some(shop) = shop(backend, test).await else { return };
    let user = shop.user().await;
    shop.product("prod-123", 29.99, 5).await;

    let status = create(&shop, order_for(&uuid::Uuid::now_v7().to_string(), "prod-123", 1)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("user"), "{status:?}");

    let status = create(&shop, order_for(&user, "prod-123", 6)).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("prod-123"), "{status:?}");

    let status = create(&shop, order_for(&user, "prod-404", 1)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("prod-404"), "{status:?}");
    assert_eq!(shop.stock("prod-123").await, (5, 0));

    shop.product_in("prod-eur", 10.0, "EUR", 5).await;
    let mut mixed = order_for(&user, "prod-123", 1);
    mixed.items = vec![LineItem { product_id: "prod-eur".to_owned(), quantity: 1 }];
    let status = create(&shop, mixed).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("different currencies (EUR, USD)"), "{status:?}");
    assert_eq!((shop.stock("prod-123").await, shop.stock("prod-eur").await), ((5, 0), (5, 0)), "released");

    let status = create(&shop, order_for("not-a-user", "", 0)).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["user_id", "items"]);
    let status = create(&shop, order_for(&user, "prod-123", 0)).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["quantity"]);
    let status = create(&shop, order_for(&user, "", 2)).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["product_id"]);
    let mut bad_items = order_for(&user, "", 0);
    bad_items.items = vec![LineItem { product_id: "prod-123".to_owned(), quantity: -1 }];
    assert_eq!(violated_fields(&create(&shop, bad_items).await.unwrap_err()), ["items[0].quantity"]);

    // An order lists at most 100 lines: 100 are read (and merged, here into
    // more than the stock), 101 are refused unread.
    let line = LineItem { product_id: "prod-123".to_owned(), quantity: 1 };
    let mut hundred = order_for(&user, "", 0);
    hundred.items = vec![line.clone(); 100];
    assert_eq!(create(&shop, hundred).await.unwrap_err().code(), Code::FailedPrecondition);
    let mut long = order_for(&user, "", 0);
    long.items = vec![line; 101];
    let status = create(&shop, long).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["items"]);
    assert!(status.message().contains("at most 100 lines, not 101"), "{status:?}");
    // 350,000 empty lines (700 kB): one small error, and the connection,
    // which an error naming each line would have broken, still serves.
    let mut flood = order_for(&user, "", 0);
    flood.items = vec![LineItem::default(); 350_000];
    let status = create(&shop, flood).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["items"]);
    assert!(status.message().len() < 200, "{status:?}");
    // Past 1 MiB a request is not read at all (gRPC's default is 4 MiB).
    let mut larger = order_for(&user, "", 0);
    larger.items = vec![LineItem::default(); 600_000];
    let status = create(&shop, larger).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");
    assert_eq!(create(&shop, order_for(&user, "prod-123", 6)).await.unwrap_err().code(), Code::FailedPrecondition);
    assert_eq!(shop.stock("prod-123").await, (5, 0));
}

async fn a_repeated_idempotency_key_returns_the_first_order(backend: Backend, test: &str) {
    let Some(shop) = shop(backend, test).await else { return };
    let user = shop.user().await;
    shop.product("prod-123", 29.99, 100).await;

    let mut request = order_for(&user, "prod-123", 2);
    request.idempotency_key = "checkout-1".to_owned();
    let first = create(&shop, request.clone()).await.unwrap();
    let again = create(&shop, request.clone()).await.unwrap();
    assert_eq!(first, again);
    // The same order in another form is the same request.
    let mut as_items = order_for(&user, "", 0);
    as_items.idempotency_key = "checkout-1".to_owned();
    as_items.items = vec![LineItem { product_id: "prod-123".to_owned(), quantity: 1 }; 2];
    assert_eq!(create(&shop, as_items).await.unwrap(), first);
    // Other items under the same key are refused, not answered with the first order.
    let mut other = request;
    other.quantity = 3;
    let status = create(&shop, other).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert!(status.message().contains("checkout-1") && status.message().contains(&first.id), "{}", status.message());
    assert_eq!(shop.stock("prod-123").await.0, 98, "no stock taken for it");

    // The same key as metadata, ten times at once: one order.
    let attempts = (0..10).map(|_| {
        let mut client = shop.orders.clone();
        let user = user.clone();
        tokio::spawn(async move {
            let mut request = tonic::Request::new(order_for(&user, "prod-123", 1));
            request.metadata_mut().insert("idempotency-key", "checkout-2".parse().unwrap());
            client.create_order(request).await.map(|r| r.into_inner().order.unwrap().id)
        })
    });
    let ids: Vec<String> = futures::future::join_all(attempts).await.into_iter().map(|r| r.unwrap().unwrap()).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_ne!(ids[0], first.id);
    assert_eq!(shop.stock("prod-123").await.0, 97, "stock taken once per key");
}

/// Keeps every event the bus delivers.
#[derive(Default)]
struct Recorded(std::sync::Mutex<Vec<events::Event>>);

#[async_trait]
impl events::Handler for Recorded {
    async fn handle(&self, event: &events::Event) -> Result<(), events::HandlerError> {
        self.0.lock().unwrap().push(event.clone());
        Ok(())
    }
}

impl Recorded {
    fn decoded<M: prost::Message + prost::Name + Default>(&self) -> Vec<M> {
        self.0.lock().unwrap().iter().filter(|e| e.is::<M>()).map(|e| e.decode::<M>().unwrap()).collect()
    }
}

async fn events_carry_minor_units_the_currency_and_status_enums(backend: Backend, test: &str) {
    let Some(shop) = shop(backend, test).await else { return };
    let recorded = Arc::new(Recorded::default());
    let kinds = vec![OrderCreated::full_name(), OrderStatusChanged::full_name()];
    shop.bus.subscribe(events::Subscription::new("recorder", kinds, recorded.clone()));
    let user = shop.user().await;
    shop.product_in("prod-gbp", 0.1 + 0.2, "GBP", 10).await;
    let order = create(&shop, order_for(&user, "prod-gbp", 3)).await.unwrap();
    assert_eq!((order.total, order.currency.as_str()), (0.9, "GBP"));
    shop.orders.clone().pay_order(PayOrderRequest { id: order.id.clone(), ..Default::default() }).await.unwrap();

    testkit::eventually("both events delivered", std::time::Duration::from_secs(10), || async {
        recorded.0.lock().unwrap().len() == 2
    })
    .await;
    let created = &recorded.decoded::<OrderCreated>()[0];
    assert_eq!((created.total_minor, created.currency.as_str()), (90, "GBP"));
    assert_eq!(created.items[0].unit_price_minor, 30);
    let changed = &recorded.decoded::<OrderStatusChanged>()[0];
    assert_eq!((changed.old_status(), changed.new_status()), (OrderStatus::Pending, OrderStatus::Paid));
    #[allow(deprecated)]
    let (total, unit_price, to_status) = (created.total, created.items[0].unit_price, changed.to_status.as_str());
    assert_eq!((total, unit_price, to_status), (0.9, 0.3, "PAID"), "still sent for consumers written before");
}

async fn the_status_machine_is_enforced(backend: Backend, test: &str) {
    let Some(shop) = shop(backend, test).await else { return };
    let user = shop.user().await;
    shop.product("prod-123", 1.0, 10).await;
    let mut orders = shop.orders.clone();
    let id = create(&shop, order_for(&user, "prod-123", 1)).await.unwrap().id;

    let status = orders.ship_order(ShipOrderRequest { id: id.clone(), ..Default::default() }).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("PENDING") && status.message().contains("SHIPPED"), "{status:?}");

    let paid = orders.pay_order(PayOrderRequest { id: id.clone(), ..Default::default() }).await.unwrap();
    assert_eq!(paid.into_inner().order.unwrap().status(), OrderStatus::Paid);
    let shipped = orders.ship_order(ShipOrderRequest { id: id.clone(), ..Default::default() }).await.unwrap();
    assert_eq!(shipped.into_inner().order.unwrap().status(), OrderStatus::Shipped);
    let status =
        orders.cancel_order(CancelOrderRequest { id: id.clone(), reason: "late".to_owned() }).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "no cancelling after shipping");
    let delivered = orders.deliver_order(DeliverOrderRequest { id: id.clone() }).await.unwrap();
    assert_eq!(delivered.into_inner().order.unwrap().status(), OrderStatus::Delivered);
    assert_eq!(
        orders.pay_order(PayOrderRequest { id: id.clone(), ..Default::default() }).await.unwrap_err().code(),
        Code::FailedPrecondition
    );

    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        orders.pay_order(PayOrderRequest { id: unknown, ..Default::default() }).await.unwrap_err().code(),
        Code::NotFound
    );
    let status = orders.get_order(GetOrderRequest { id: "nope".to_owned() }).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["id"]);
}

async fn cancelling_returns_the_stock_through_the_event(backend: Backend, test: &str) {
    let Some(shop) = shop(backend, test).await else { return };
    let user = shop.user().await;
    shop.product("prod-123", 29.99, 10).await;
    let id = create(&shop, order_for(&user, "prod-123", 4)).await.unwrap().id;
    testkit::eventually("the sale to be counted", std::time::Duration::from_secs(10), || async {
        shop.stock("prod-123").await == (6, 4)
    })
    .await;

    let cancelled =
        shop.orders.clone().cancel_order(CancelOrderRequest { id, reason: "changed my mind".to_owned() }).await;
    assert_eq!(cancelled.unwrap().into_inner().order.unwrap().status(), OrderStatus::Cancelled);
    testkit::eventually("the stock to come back", std::time::Duration::from_secs(10), || async {
        shop.stock("prod-123").await == (10, 0)
    })
    .await;
    assert!(shop.bus.dead_letters().is_empty());
}

async fn lists_are_newest_first_filtered_and_paginated(backend: Backend, test: &str) {
    let Some(shop) = shop(backend, test).await else { return };
    let (alice, bob) = (shop.user().await, shop.user().await);
    shop.product("prod-123", 1.0, 100).await;
    let mut ids = Vec::new();
    for user in [&alice, &bob, &alice, &alice, &bob] {
        ids.push(create(&shop, order_for(user, "prod-123", 1)).await.unwrap().id);
    }
    let mut orders = shop.orders.clone();
    orders.pay_order(PayOrderRequest { id: ids[2].clone(), ..Default::default() }).await.unwrap();

    let page = orders.list_orders(ListOrdersRequest { page_size: 3, ..Default::default() }).await.unwrap().into_inner();
    let next = orders
        .list_orders(ListOrdersRequest { page_size: 3, page_token: page.next_page_token.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let listed: Vec<String> = page.orders.iter().chain(&next.orders).map(|o| o.id.clone()).collect();
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first);
    assert!(next.next_page_token.is_empty());

    let paid = ListOrdersRequest { status: OrderStatus::Paid as i32, ..Default::default() };
    let paid: Vec<String> =
        orders.list_orders(paid).await.unwrap().into_inner().orders.into_iter().map(|o| o.id).collect();
    assert_eq!(paid, [ids[2].clone()]);

    let bobs = ListUserOrdersRequest { user_id: bob.clone(), ..Default::default() };
    let bobs: Vec<String> =
        orders.list_user_orders(bobs).await.unwrap().into_inner().orders.into_iter().map(|o| o.id).collect();
    assert_eq!(bobs, [ids[4].clone(), ids[1].clone()]);
    let status = orders.list_orders(ListOrdersRequest { status: 42, ..Default::default() }).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["status"]);
}

/// Delegates to a real store but fails to record new orders: the write
/// after the reservation fails, as a database failure at that moment would.
struct FailingCreates(Arc<dyn OrderStore>);

#[async_trait]
impl OrderStore for FailingCreates {
    async fn create(&self, _: &Order, _: Option<&str>, _: &events::Event) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("injected failure".to_owned()))
    }
    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.0.get(id).await
    }
    async fn find_by_idempotency_key(&self, user: uuid::Uuid, key: &str) -> Result<Option<Order>, StoreError> {
        self.0.find_by_idempotency_key(user, key).await
    }
    async fn list(&self, query: &orders::store::OrderQuery) -> Result<Vec<Order>, StoreError> {
        self.0.list(query).await
    }
    async fn change_status(
        &self,
        id: OrderId,
        from: orders::domain::OrderStatus,
        to: orders::domain::OrderStatus,
        at: chrono::DateTime<chrono::Utc>,
        event: &events::Event,
    ) -> Result<bool, StoreError> {
        self.0.change_status(id, from, to, at, event).await
    }
    async fn unsent(&self, limit: u32) -> Result<Vec<orders::store::OutboxEntry>, StoreError> {
        self.0.unsent(limit).await
    }
    async fn mark_sent(&self, seqs: &[i64]) -> Result<(), StoreError> {
        self.0.mark_sent(seqs).await
    }
    async fn backlog(&self) -> Result<orders::store::Backlog, StoreError> {
        self.0.backlog().await
    }
    async fn relay_lease(&self) -> Result<Option<Box<dyn RelayLease>>, StoreError> {
        self.0.relay_lease().await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.0.ping().await
    }
}

async fn a_failed_order_write_releases_the_reservation(backend: Backend, test: &str) {
    let Some(shop) = shop(backend, test).await else { return };
    let user = shop.user().await;
    shop.product("prod-123", 29.99, 10).await;
    let failing = Arc::new(FailingCreates(shop.order_store.clone()));
    let address = orders_service(failing, &shop.upstreams, Arc::new(shop.bus.clone()), &shop.shutdown).await;
    let mut orders = contract::orders::order_service_client::OrderServiceClient::new(channel(address).await);

    let status = orders.create_order(order_for(&user, "prod-123", 3)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(shop.stock("prod-123").await, (10, 0), "the reservation was released");
}

testkit::backend_tests!(crate::helpers::Backend { sqlite => Sqlite, postgres => Postgres }: [
    template_order_reserves_stock_and_prices_from_the_catalog,
    refusals_name_the_problem_and_take_no_stock,
    a_repeated_idempotency_key_returns_the_first_order,
    the_status_machine_is_enforced,
    cancelling_returns_the_stock_through_the_event,
    lists_are_newest_first_filtered_and_paginated,
    a_failed_order_write_releases_the_reservation,
    events_carry_minor_units_the_currency_and_status_enums,
]);
