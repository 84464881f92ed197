//! Nothing is lost to a crash: `meshwork up` is killed (SIGKILL) while
//! orders are being placed; after the restart every acknowledged order is
//! there, and once the events drain and a hold reserved for an order that
//! was never written has run out, every unit of every product is either on
//! the shelf or sold to a written order (`stock + units sold = initial`),
//! and stays so.

use std::time::Duration;

use contract::orders::order_service_client::OrderServiceClient;
use contract::orders::{CreateOrderRequest, GetOrderRequest, ListOrdersRequest, OrderStatus};
use contract::products::product_service_client::ProductServiceClient;
use contract::products::{CreateProductRequest, GetProductRequest, ReserveStockRequest, StockItem};
use contract::users::CreateUserRequest;
use contract::users::user_service_client::UserServiceClient;
use tonic::transport::Channel;

use crate::harness::Running;

const STOCK: i32 = 10_000;
const HOLD_TTL: &str = "2s";
const PRODUCTS: [&str; 3] = ["crash-0", "crash-1", "crash-2"];

async fn channel(address: &str) -> Channel {
    Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap()
}

fn up(data_dir: &std::path::Path) -> (Running, Vec<(String, String)>) {
    let env = [("MESHWORK_DATA_DIR", data_dir.to_str().unwrap()), ("PRODUCTS_HOLD_TTL", HOLD_TTL)];
    let mut running = Running::start(&["up", "--base-port", "0"], &env);
    let banner = running.read_up_banner();
    (running, banner)
}

/// Units of `product` in written orders that still hold their stock (not cancelled).
async fn units_ordered(orders: &mut OrderServiceClient<Channel>, product: &str) -> i64 {
    let (mut units, mut page_token) = (0, String::new());
    loop {
        let request = ListOrdersRequest { page_size: 100, page_token, ..Default::default() };
        let page = orders.list_orders(request).await.unwrap().into_inner();
        for order in page.orders.iter().filter(|order| order.status() != OrderStatus::Cancelled) {
            let items = order.items.iter().filter(|item| item.product_id == product);
            units += items.map(|item| i64::from(item.quantity)).sum::<i64>();
        }
        if page.next_page_token.is_empty() {
            return units;
        }
        page_token = page.next_page_token;
    }
}

/// Stock on the shelf and units sold (as the consumer of order events counted them).
async fn stock_and_sold(products: &mut ProductServiceClient<Channel>, product: &str) -> (i64, i64) {
    let product = products.get_product(GetProductRequest { id: product.to_owned() }).await.unwrap();
    let product = product.into_inner().product.unwrap();
    (i64::from(product.stock), product.units_sold)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_mid_load_loses_no_acknowledged_order_and_no_stock_for_good() {
    let data_dir = std::env::temp_dir().join(format!("meshwork-holds-{}", uuid::Uuid::new_v4()));
    let (mut running, banner) = up(&data_dir);
    let mut users = UserServiceClient::new(channel(&banner[1].1).await);
    let mut products = ProductServiceClient::new(channel(&banner[2].1).await);
    let user = CreateUserRequest { email: "crash@example.com".to_owned(), name: "Crash".to_owned(), password: None };
    let user_id = users.create_user(user).await.unwrap().into_inner().user.unwrap().id;
    for id in PRODUCTS {
        let product = CreateProductRequest {
            id: id.to_owned(),
            name: "Crash test".to_owned(),
            description: String::new(),
            price: 1.0,
            stock: STOCK,
        };
        products.create_product(product).await.unwrap();
    }

    // A reservation whose order is certainly never written, as if orders
    // died right after reserving...
    let secret = std::fs::read_to_string(data_dir.join("service-secret")).unwrap();
    let orphan = ReserveStockRequest {
        reservation_id: uuid::Uuid::now_v7().to_string(),
        items: vec![StockItem { product_id: PRODUCTS[0].to_owned(), quantity: 7 }],
    };
    products.reserve_stock(testkit::as_service_with(secret.trim(), "orders", orphan)).await.unwrap();

    // ...and orders being placed, each acknowledgement noted, when the
    // whole process is killed.
    let orders = OrderServiceClient::new(channel(&banner[3].1).await);
    let placing: Vec<_> = (0..16)
        .map(|client| {
            let (mut orders, user_id) = (orders.clone(), user_id.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in 0..500 {
                    let product = PRODUCTS[(client + n) % PRODUCTS.len()];
                    let request = CreateOrderRequest {
                        user_id: user_id.clone(),
                        product_id: product.to_owned(),
                        quantity: 1,
                        ..Default::default()
                    };
                    match orders.create_order(request).await {
                        Ok(created) => acknowledged.push((created.into_inner().order.unwrap().id, product)),
                        Err(_) => break,
                    }
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    running.kill();
    let mut acknowledged = Vec::new();
    for task in placing {
        acknowledged.extend(task.await.unwrap());
    }
    assert!(!acknowledged.is_empty(), "orders were acknowledged before the kill");

    let (mut running, banner) = up(&data_dir);
    let mut products = ProductServiceClient::new(channel(&banner[2].1).await);
    let mut orders = OrderServiceClient::new(channel(&banner[3].1).await);
    for (id, product) in &acknowledged {
        let order = orders.get_order(GetOrderRequest { id: id.clone() }).await;
        let order = order.unwrap_or_else(|status| panic!("acknowledged order {id} lost: {status}"));
        let items = order.into_inner().order.unwrap().items;
        assert_eq!((items.len(), items[0].product_id.as_str()), (1, *product), "order {id} as acknowledged");
    }

    // Once the events drain and the orphan's hold runs out, every unit of
    // every product is on the shelf or sold, and sold exactly once per
    // written order.
    for product in PRODUCTS {
        let accounted = || {
            let (mut products, mut orders) = (products.clone(), orders.clone());
            async move {
                let (stock, sold) = stock_and_sold(&mut products, product).await;
                stock + sold == i64::from(STOCK) && sold == units_ordered(&mut orders, product).await
            }
        };
        testkit::eventually("every unit on the shelf or sold to a written order", Duration::from_secs(30), accounted)
            .await;
    }

    // Three hold lifetimes later, no written order has lost its stock.
    tokio::time::sleep(Duration::from_secs(6)).await;
    for product in PRODUCTS {
        let (stock, sold) = stock_and_sold(&mut products, product).await;
        assert_eq!((stock + sold, sold), (i64::from(STOCK), units_ordered(&mut orders, product).await), "{product}");
    }

    assert!(running.terminate().success());
    std::fs::remove_dir_all(data_dir).unwrap();
}
