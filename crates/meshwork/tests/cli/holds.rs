//! Nothing is lost to a crash: the process that takes orders is killed
//! (SIGKILL) while orders are being placed, once as `meshwork up` on its
//! embedded stores and once as `meshwork orders` alone on PostgreSQL and
//! RabbitMQ beside users and products. After the restart every acknowledged
//! order is there, and once the events drain and a hold reserved for an
//! order that was never written has run out, every unit of every product is
//! either on the shelf or sold to a written order (`stock + units sold =
//! initial`), and stays so.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use contract::orders::order_service_client::OrderServiceClient;
use contract::orders::{CreateOrderRequest, GetOrderRequest, ListOrdersRequest, OrderStatus};
use contract::products::product_service_client::ProductServiceClient;
use contract::products::{CreateProductRequest, GetProductRequest, ReserveStockRequest, StockItem};
use contract::users::CreateUserRequest;
use contract::users::user_service_client::UserServiceClient;
use testkit::amqp::TestBroker;
use testkit::mongo::TestMongo;
use testkit::postgres::TestDatabase;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::harness::{Running, health};

const STOCK: i32 = 10_000;
const HOLD_TTL: &str = "2s";
const PRODUCTS: [&str; 3] = ["crash-0", "crash-1", "crash-2"];

async fn channel(address: &str) -> Channel {
    Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_of_up_mid_load_loses_no_acknowledged_order_and_no_stock_for_good() {
    let data_dir = std::env::temp_dir().join(format!("meshwork-holds-{}", uuid::Uuid::new_v4()));
    let up = || {
        let env = [("MESHWORK_DATA_DIR", data_dir.to_str().unwrap()), ("PRODUCTS_HOLD_TTL", HOLD_TTL)];
        let mut running = Running::start(&["up", "--base-port", "0"], &env);
        let banner = running.read_up_banner();
        let address = |index: usize| banner[index].1.clone();
        (running, [address(1), address(2), address(3)])
    };
    let (mut running, [users, products, orders]) = up();
    let secret = std::fs::read_to_string(data_dir.join("service-secret")).unwrap();
    let user_id = stock_the_shelves(&users, &products, secret.trim()).await;
    let acknowledged = place_orders_until(&orders, &user_id, || running.kill()).await;

    let (mut running, [_, products, orders]) = up();
    every_acknowledged_order_is_there(&orders, &acknowledged).await;
    every_unit_is_on_the_shelf_or_sold(&products, &orders).await;
    assert!(running.terminate().success());
    std::fs::remove_dir_all(data_dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_of_orders_on_postgres_mid_load_loses_no_acknowledged_order_and_no_stock_for_good() {
    const TEST: &str = "orders_killed_on_postgres";
    let Some(users_db) = TestDatabase::create(TEST).await else { return };
    let Some(orders_db) = TestDatabase::create(TEST).await else { return };
    let Some(catalog) = TestMongo::create(TEST).await else { return };
    let Some(broker) = TestBroker::create(TEST) else { return };
    for suffix in ["", ".retry", ".dlq"] {
        broker.track(format!("{}products.order-events{suffix}", broker.prefix));
    }
    let key_file = std::env::temp_dir().join(format!("meshwork-key-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&key_file, crate::harness::run(&["users", "keygen"], &[]).stdout).unwrap();

    // Each component is told where the others are before any starts, so
    // they get ports chosen up front; orders comes back on its own.
    let [users, products, orders] = [free_address(), free_address(), free_address()];
    let (users_url, products_url, orders_url) =
        (format!("http://{users}"), format!("http://{products}"), format!("http://{orders}"));
    let mongo_url = catalog.url();
    let shared = [
        // Who may call what is tested elsewhere; here the test places orders itself.
        ("MESHWORK_AUTH", "optional"),
        ("MESHWORK_HOST", "127.0.0.1"),
        ("MESHWORK_SERVICE_SECRET", testkit::SERVICE_SECRET),
        ("MESHWORK_READINESS_INTERVAL", "200ms"),
        ("USER_SERVICE_URL", users_url.as_str()),
        ("PRODUCT_SERVICE_URL", products_url.as_str()),
        ("ORDER_SERVICE_URL", orders_url.as_str()),
        ("RABBITMQ_URL", broker.url.as_str()),
        ("RABBITMQ_PREFIX", broker.prefix.as_str()),
    ];
    let start = |component: &str, address: &str, own: &[(&str, &str)]| {
        let port = address.rsplit_once(':').unwrap().1;
        let mut env = shared.to_vec();
        env.push(("PORT", port));
        env.extend_from_slice(own);
        Running::start(&[component], &env)
    };
    let _users = start(
        "users",
        &users,
        &[("DATABASE_URL", users_db.url()), ("JWT_SIGNING_KEY_FILE", key_file.to_str().unwrap())],
    );
    let _products = start("products", &products, &[("MONGO_URL", &mongo_url), ("PRODUCTS_HOLD_TTL", HOLD_TTL)]);
    let orders_on_postgres = [("DATABASE_URL", orders_db.url())];
    let mut running = start("orders", &orders, &orders_on_postgres);
    for address in [&users, &products, &orders] {
        ready(address).await;
    }

    let user_id = stock_the_shelves(&users, &products, testkit::SERVICE_SECRET).await;
    let acknowledged = place_orders_until(&orders, &user_id, || running.kill()).await;

    let mut running = start("orders", &orders, &orders_on_postgres);
    ready(&orders).await;
    every_acknowledged_order_is_there(&orders, &acknowledged).await;
    every_unit_is_on_the_shelf_or_sold(&products, &orders).await;
    assert!(running.terminate().success());
    std::fs::remove_file(key_file).unwrap();
}

/// A loopback address no one listens on (the port is free once this returns).
fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

async fn ready(address: &str) {
    testkit::eventually("a component to be ready", Duration::from_secs(30), || async move {
        Channel::from_shared(format!("http://{address}")).unwrap().connect().await.is_ok()
            && health(address).await == ServingStatus::Serving
    })
    .await;
}

/// A customer, the products with `STOCK` units each, and a reservation
/// whose order is certainly never written, as if orders died right after
/// reserving. Returns the customer's id.
async fn stock_the_shelves(users: &str, products: &str, service_secret: &str) -> String {
    let mut users = UserServiceClient::new(channel(users).await);
    let mut products = ProductServiceClient::new(channel(products).await);
    let user = CreateUserRequest { email: "crash@example.com".to_owned(), name: "Crash".to_owned(), password: None };
    let user_id = users.create_user(user).await.unwrap().into_inner().user.unwrap().id;
    for id in PRODUCTS {
        let product = CreateProductRequest {
            id: id.to_owned(),
            name: "Crash test".to_owned(),
            description: String::new(),
            price: 1.0,
            stock: STOCK,
            currency: String::new(),
        };
        products.create_product(product).await.unwrap();
    }
    let orphan = ReserveStockRequest {
        reservation_id: uuid::Uuid::now_v7().to_string(),
        items: vec![StockItem { product_id: PRODUCTS[0].to_owned(), quantity: 7 }],
    };
    products.reserve_stock(testkit::as_service_with(service_secret, "orders", orphan)).await.unwrap();
    user_id
}

/// Sixteen clients place one-unit orders until `kill` stops the service
/// under them, mid-load: once orders are flowing (16 acknowledged, however
/// slow the backends) and 700 ms have passed. Every acknowledged order's id
/// and product.
async fn place_orders_until(orders: &str, user_id: &str, kill: impl FnOnce()) -> Vec<(String, &'static str)> {
    let orders = OrderServiceClient::new(channel(orders).await);
    let flowing = Arc::new(AtomicUsize::new(0));
    let placing: Vec<_> = (0..16)
        .map(|client| {
            let (mut orders, user_id, flowing) = (orders.clone(), user_id.to_owned(), flowing.clone());
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
                    flowing.fetch_add(1, Ordering::Relaxed);
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    testkit::eventually("orders to flow", Duration::from_secs(30), || {
        let flowing = flowing.clone();
        async move { flowing.load(Ordering::Relaxed) >= 16 }
    })
    .await;
    kill();
    let mut acknowledged = Vec::new();
    for task in placing {
        acknowledged.extend(task.await.unwrap());
    }
    assert!(!acknowledged.is_empty(), "orders were acknowledged before the kill");
    acknowledged
}

async fn every_acknowledged_order_is_there(orders: &str, acknowledged: &[(String, &str)]) {
    let mut orders = OrderServiceClient::new(channel(orders).await);
    for (id, product) in acknowledged {
        let order = orders.get_order(GetOrderRequest { id: id.clone() }).await;
        let order = order.unwrap_or_else(|status| panic!("acknowledged order {id} lost: {status}"));
        let items = order.into_inner().order.unwrap().items;
        assert_eq!((items.len(), items[0].product_id.as_str()), (1, *product), "order {id} as acknowledged");
    }
}

/// Once the events drain and the orphan's hold runs out, every unit of every
/// product is on the shelf or sold, and sold exactly once per written order;
/// three hold lifetimes later, no written order has lost its stock.
async fn every_unit_is_on_the_shelf_or_sold(products: &str, orders: &str) {
    let products = ProductServiceClient::new(channel(products).await);
    let orders = OrderServiceClient::new(channel(orders).await);
    // Slow backends (the MongoDB-wire test server) take their time to drain,
    // and products' breaker toward orders may have opened while orders was
    // down: an expired hold is then released only after its 60 s open
    // period. The last figures seen say where it stood if it never adds up.
    for product in PRODUCTS {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let (mut products, mut orders) = (products.clone(), orders.clone());
            let (stock, sold) = stock_and_sold(&mut products, product).await;
            let ordered = units_ordered(&mut orders, product).await;
            if stock + sold == i64::from(STOCK) && sold == ordered {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{product} never added up: stock {stock} + sold {sold} of {STOCK}, {ordered} units in written orders"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    tokio::time::sleep(Duration::from_secs(6)).await;
    for product in PRODUCTS {
        let (mut products, mut orders) = (products.clone(), orders.clone());
        let (stock, sold) = stock_and_sold(&mut products, product).await;
        assert_eq!((stock + sold, sold), (i64::from(STOCK), units_ordered(&mut orders, product).await), "{product}");
    }
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
