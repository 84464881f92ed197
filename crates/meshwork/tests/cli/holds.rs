//! Stock is never lost to a crash: `meshwork up` is killed (SIGKILL) while
//! orders are being placed, and once a hold reserved for an order that was
//! never written has run out, every unit is either on the shelf or in a
//! written order, and stays so.

use std::time::Duration;

use contract::orders::order_service_client::OrderServiceClient;
use contract::orders::{CreateOrderRequest, ListOrdersRequest, OrderStatus};
use contract::products::product_service_client::ProductServiceClient;
use contract::products::{CreateProductRequest, GetProductRequest, ReserveStockRequest, StockItem};
use contract::users::CreateUserRequest;
use contract::users::user_service_client::UserServiceClient;
use tonic::transport::Channel;

use crate::harness::Running;

const STOCK: i32 = 10_000;
const HOLD_TTL: &str = "2s";

async fn channel(address: &str) -> Channel {
    Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap()
}

fn up(data_dir: &std::path::Path) -> (Running, Vec<(String, String)>) {
    let env = [("MESHWORK_DATA_DIR", data_dir.to_str().unwrap()), ("PRODUCTS_HOLD_TTL", HOLD_TTL)];
    let mut running = Running::start(&["up", "--base-port", "0"], &env);
    let banner = running.read_up_banner();
    (running, banner)
}

/// Units in written orders that still hold their stock (not cancelled).
async fn units_ordered(orders: &mut OrderServiceClient<Channel>) -> i64 {
    let (mut units, mut page_token) = (0, String::new());
    loop {
        let request = ListOrdersRequest { page_size: 100, page_token, ..Default::default() };
        let page = orders.list_orders(request).await.unwrap().into_inner();
        for order in page.orders.iter().filter(|order| order.status() != OrderStatus::Cancelled) {
            units += order.items.iter().map(|item| i64::from(item.quantity)).sum::<i64>();
        }
        if page.next_page_token.is_empty() {
            return units;
        }
        page_token = page.next_page_token;
    }
}

async fn stock(products: &mut ProductServiceClient<Channel>) -> i64 {
    let product = products.get_product(GetProductRequest { id: "crash-test".to_owned() }).await.unwrap();
    i64::from(product.into_inner().product.unwrap().stock)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_between_reserving_and_writing_loses_no_stock_for_good() {
    let data_dir = std::env::temp_dir().join(format!("meshwork-holds-{}", uuid::Uuid::new_v4()));
    let (mut running, banner) = up(&data_dir);
    let mut users = UserServiceClient::new(channel(&banner[1].1).await);
    let mut products = ProductServiceClient::new(channel(&banner[2].1).await);
    let user = CreateUserRequest { email: "crash@example.com".to_owned(), name: "Crash".to_owned(), password: None };
    let user_id = users.create_user(user).await.unwrap().into_inner().user.unwrap().id;
    let product = CreateProductRequest {
        id: "crash-test".to_owned(),
        name: "Crash test".to_owned(),
        description: String::new(),
        price: 1.0,
        stock: STOCK,
    };
    products.create_product(product).await.unwrap();

    // A reservation whose order is certainly never written, as if orders
    // died right after reserving...
    let secret = std::fs::read_to_string(data_dir.join("service-secret")).unwrap();
    let orphan = ReserveStockRequest {
        reservation_id: uuid::Uuid::now_v7().to_string(),
        items: vec![StockItem { product_id: "crash-test".to_owned(), quantity: 7 }],
    };
    products.reserve_stock(testkit::as_service_with(secret.trim(), "orders", orphan)).await.unwrap();

    // ...and orders being placed when the whole process is killed.
    let orders = OrderServiceClient::new(channel(&banner[3].1).await);
    let placing: Vec<_> = (0..8)
        .map(|_| {
            let (mut orders, user_id) = (orders.clone(), user_id.clone());
            tokio::spawn(async move {
                for _ in 0..500 {
                    let request = CreateOrderRequest {
                        user_id: user_id.clone(),
                        product_id: "crash-test".to_owned(),
                        quantity: 1,
                        ..Default::default()
                    };
                    if orders.create_order(request).await.is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.kill();
    for task in placing {
        task.await.unwrap();
    }

    let (mut running, banner) = up(&data_dir);
    let mut products = ProductServiceClient::new(channel(&banner[2].1).await);
    let mut orders = OrderServiceClient::new(channel(&banner[3].1).await);
    let ordered = units_ordered(&mut orders).await;
    assert!(ordered > 0, "orders were written before the kill");
    let accounted = || {
        let (mut products, mut orders) = (products.clone(), orders.clone());
        async move { stock(&mut products).await + units_ordered(&mut orders).await == i64::from(STOCK) }
    };
    testkit::eventually("every unit on the shelf or in a written order", Duration::from_secs(20), accounted).await;
    let held_back = i64::from(STOCK) - stock(&mut products).await;
    assert_eq!(held_back, ordered, "only written orders hold stock");

    // Three hold lifetimes later, no written order has lost its stock.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(stock(&mut products).await + units_ordered(&mut orders).await, i64::from(STOCK));

    assert!(running.terminate().success());
    std::fs::remove_dir_all(data_dir).unwrap();
}
