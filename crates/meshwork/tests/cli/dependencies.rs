//! Serve first, then depend: each service binds its port at once, reports
//! not ready (gRPC NOT_SERVING, HTTP 503 naming the dependency) while its
//! database or broker cannot be reached, and becomes ready when they come
//! back, without a restart. The dependencies sit behind proxies the test
//! cuts and restores.

use std::io::{Read, Write};
use std::time::Duration;

use testkit::amqp::TestBroker;
use testkit::postgres::TestDatabase;
use testkit::proxy::TcpProxy;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::harness::{Running, health};

/// `/health/ready` over plain HTTP/1.1: its status code and body.
fn ready(address: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "GET /health/ready HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    (code, response)
}

async fn becomes(address: &str, serving: ServingStatus, what: &str) {
    testkit::eventually(what, Duration::from_secs(30), || {
        let address = address.to_owned();
        async move { health(&address).await == serving }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn users_serves_while_its_database_is_down_and_is_ready_once_it_returns() {
    let Some(database) = TestDatabase::create("users_serves_first").await else { return };
    let proxy = TcpProxy::start(database.server_address().await).await;
    proxy.cut();
    let key_file = std::env::temp_dir().join(format!("meshwork-key-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&key_file, crate::harness::run(&["users", "keygen"], &[]).stdout).unwrap();
    let url = database.url_via(proxy.address());
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("JWT_SIGNING_KEY_FILE", key_file.to_str().unwrap()),
        ("PORT", "0"),
        ("MESHWORK_HOST", "127.0.0.1"),
        ("MESHWORK_SERVICE_SECRET", testkit::SERVICE_SECRET),
        ("MESHWORK_READINESS_INTERVAL", "200ms"),
    ];
    let mut running = Running::start(&["users"], &env);
    let address = running.listening("users");
    assert_eq!(health(&address).await, ServingStatus::NotServing);
    let (code, body) = ready(&address);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("migrations") && body.contains("database"), "{body}");

    proxy.restore();
    becomes(&address, ServingStatus::Serving, "users to migrate and be ready").await;
    assert_eq!(ready(&address).0, 200);
    assert!(running.terminate().success());
    std::fs::remove_file(key_file).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn orders_is_not_ready_without_its_database_or_its_broker() {
    let test = "orders_serves_first";
    let Some(database) = TestDatabase::create(test).await else { return };
    let Some(broker) = TestBroker::create(test) else { return };
    let postgres = TcpProxy::start(database.server_address().await).await;
    let rabbit = TcpProxy::start(broker.address().await).await;
    postgres.cut();
    rabbit.cut();
    let (database_url, rabbit_url) = (database.url_via(postgres.address()), broker.url_via(rabbit.address()));
    let env = [
        ("DATABASE_URL", database_url.as_str()),
        ("RABBITMQ_URL", rabbit_url.as_str()),
        ("RABBITMQ_PREFIX", broker.prefix.as_str()),
        ("USER_SERVICE_URL", "http://127.0.0.1:9"),
        ("PRODUCT_SERVICE_URL", "http://127.0.0.1:9"),
        ("PORT", "0"),
        ("MESHWORK_HOST", "127.0.0.1"),
        ("MESHWORK_SERVICE_SECRET", testkit::SERVICE_SECRET),
        ("MESHWORK_READINESS_INTERVAL", "200ms"),
    ];
    let mut running = Running::start(&["orders"], &env);
    let address = running.listening("orders");
    assert_eq!(health(&address).await, ServingStatus::NotServing);

    postgres.restore();
    testkit::eventually("the schema to be migrated", Duration::from_secs(30), || {
        let address = address.clone();
        async move { !ready(&address).1.contains("not migrated") }
    })
    .await;
    let (code, body) = ready(&address);
    assert_eq!(code, 503, "still not ready without the broker: {body}");
    assert!(body.contains("broker"), "{body}");

    rabbit.restore();
    becomes(&address, ServingStatus::Serving, "orders to be ready with its broker back").await;
    rabbit.cut();
    becomes(&address, ServingStatus::NotServing, "orders to notice its broker is gone").await;
    assert!(running.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn products_is_not_ready_while_its_broker_is_unreachable() {
    let test = "products_serves_first";
    let Some(catalog) = testkit::mongo::TestMongo::create(test).await else { return };
    let Some(broker) = TestBroker::create(test) else { return };
    for suffix in ["", ".retry", ".dlq"] {
        broker.track(format!("{}products.order-events{suffix}", broker.prefix));
    }
    let rabbit = TcpProxy::start(broker.address().await).await;
    rabbit.cut();
    let (mongo_url, rabbit_url) = (catalog.url(), broker.url_via(rabbit.address()));
    let env = [
        ("MONGO_URL", mongo_url.as_str()),
        ("RABBITMQ_URL", rabbit_url.as_str()),
        ("RABBITMQ_PREFIX", broker.prefix.as_str()),
        ("USER_SERVICE_URL", "http://127.0.0.1:9"),
        ("ORDER_SERVICE_URL", "http://127.0.0.1:9"),
        ("PORT", "0"),
        ("MESHWORK_HOST", "127.0.0.1"),
        ("MESHWORK_SERVICE_SECRET", testkit::SERVICE_SECRET),
        ("MESHWORK_READINESS_INTERVAL", "200ms"),
    ];
    let mut running = Running::start(&["products"], &env);
    let address = running.listening("products");
    let (code, body) = ready(&address);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("broker"), "{body}");
    rabbit.restore();
    becomes(&address, ServingStatus::Serving, "products to be ready with its broker back").await;
    assert!(running.terminate().success());
}
