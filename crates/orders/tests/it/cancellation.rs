//! A saga reaches a consistent end whatever its caller does: callers that
//! give up at every point of CreateOrder (their deadlines 1 to 200 ms)
//! leave no stock reserved without an order. Every unit is on the shelf or
//! in a written order once the sagas have finished, long before any hold
//! could expire (5 minutes here).

use std::time::Duration;

use contract::orders::order_service_client::OrderServiceClient;
use contract::orders::{CreateOrderRequest, ListOrdersRequest, OrderStatus};

use crate::helpers::{Backend, channel, shop};

const STOCK: i32 = 1_000;

async fn callers_that_give_up_leave_no_stock_reserved_without_an_order(backend: Backend, test: &str) {
    let Some(shop) = shop(backend, test).await else { return };
    let user = shop.user().await;
    shop.product("patience", 1.0, STOCK).await;
    let calls: Vec<_> = (0..200_u64)
        .map(|i| {
            let (address, user) = (shop.orders_address, user.clone());
            tokio::spawn(async move {
                // A caller of its own: many resets on one connection look
                // like an HTTP/2 rapid-reset attack, which the server refuses.
                let mut orders = OrderServiceClient::new(channel(address).await);
                let mut request = tonic::Request::new(CreateOrderRequest {
                    user_id: user,
                    product_id: "patience".to_owned(),
                    quantity: 1,
                    ..Default::default()
                });
                // Wide enough that some finish even on a slow machine (at
                // most 60 ms, none did on one): both ends are checked.
                request.set_timeout(Duration::from_millis(1 + i));
                orders.create_order(request).await.is_ok()
            })
        })
        .collect();
    let mut acknowledged = 0;
    for call in calls {
        acknowledged += i32::from(call.await.unwrap());
    }

    let accounted = || {
        let shop = &shop;
        async move {
            let (stock, _) = shop.stock("patience").await;
            let ordered = units_in_live_orders(shop.orders.clone()).await;
            let accounted = stock + ordered == STOCK && ordered >= acknowledged;
            if !accounted {
                // Shown if the wait fails: what was missing, and where.
                eprintln!("{stock} on the shelf, {ordered} ordered, {acknowledged} acknowledged");
            }
            accounted
        }
    };
    testkit::eventually("every unit on the shelf or in a written order", Duration::from_secs(10), accounted).await;
}

/// The units in every order not cancelled, read page by page: on a fast
/// machine more calls finish than one page (at most 100) holds.
async fn units_in_live_orders(mut orders: OrderServiceClient<tonic::transport::Channel>) -> i32 {
    let (mut units, mut page_token) = (0, String::new());
    loop {
        let request = ListOrdersRequest { page_size: 100, page_token, ..Default::default() };
        let page = orders.list_orders(request).await.unwrap().into_inner();
        units += page
            .orders
            .iter()
            .filter(|order| order.status() != OrderStatus::Cancelled)
            .map(|order| order.items.iter().map(|item| item.quantity).sum::<i32>())
            .sum::<i32>();
        if page.next_page_token.is_empty() {
            return units;
        }
        page_token = page.next_page_token;
    }
}

testkit::backend_tests!(crate::helpers::Backend { sqlite => Sqlite, postgres => Postgres }: [
    callers_that_give_up_leave_no_stock_reserved_without_an_order,
]);
