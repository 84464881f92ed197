//! The order flow under `meshwork up`, as a user checks it: create a user
//! and the template's product, order it (with an idempotency key), see the
//! stock drop and the sale counted, cancel, see the stock return.

use std::time::Duration;

use contract::orders::order_service_client::OrderServiceClient;
use contract::orders::{CancelOrderRequest, CreateOrderRequest};
use contract::products::product_service_client::ProductServiceClient;
use contract::products::{CreateProductRequest, GetProductRequest};
use contract::users::CreateUserRequest;
use contract::users::user_service_client::UserServiceClient;
use tonic::transport::Channel;

use crate::harness::{Running, run};

async fn channel(address: &str) -> Channel {
    Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap()
}

async fn stock_and_sold(products: &mut ProductServiceClient<Channel>) -> (i32, i64) {
    let product = products.get_product(GetProductRequest { id: "prod-123".to_owned() }).await.unwrap();
    let product = product.into_inner().product.unwrap();
    (product.stock, product.units_sold)
}

#[tokio::test(flavor = "multi_thread")]
async fn up_runs_the_whole_order_flow() {
    let data_dir = std::env::temp_dir().join(format!("meshwork-up-{}", uuid::Uuid::new_v4()));
    let mut running = Running::start(&["up", "--base-port", "0"], &[("MESHWORK_DATA_DIR", data_dir.to_str().unwrap())]);
    let banner = running.read_up_banner();
    let mut users = UserServiceClient::new(channel(&banner[1].1).await);
    let mut products = ProductServiceClient::new(channel(&banner[2].1).await);
    let mut orders = OrderServiceClient::new(channel(&banner[3].1).await);

    let user = CreateUserRequest { email: "user@example.com".to_owned(), name: "John Doe".to_owned(), password: None };
    let user_id = users.create_user(user).await.unwrap().into_inner().user.unwrap().id;
    let product = CreateProductRequest {
        id: "prod-123".to_owned(),
        name: "Widget".to_owned(),
        description: String::new(),
        price: 29.99,
        stock: 100,
        currency: String::new(),
    };
    products.create_product(product).await.unwrap();

    let order = || {
        let mut request = tonic::Request::new(CreateOrderRequest {
            user_id: user_id.clone(),
            product_id: "prod-123".to_owned(),
            quantity: 2,
            ..Default::default()
        });
        request.metadata_mut().insert("idempotency-key", "checkout-1".parse().unwrap());
        request
    };
    let created = orders.create_order(order()).await.unwrap().into_inner().order.unwrap();
    assert_eq!(created.total, 59.98);
    let again = orders.create_order(order()).await.unwrap().into_inner().order.unwrap();
    assert_eq!(again.id, created.id, "the same idempotency key gives the same order");

    testkit::eventually("stock to drop and the sale to be counted", Duration::from_secs(10), || {
        let mut products = products.clone();
        async move { stock_and_sold(&mut products).await == (98, 2) }
    })
    .await;
    orders.cancel_order(CancelOrderRequest { id: created.id, reason: String::new() }).await.unwrap();
    testkit::eventually("stock to return", Duration::from_secs(10), || {
        let mut products = products.clone();
        async move { stock_and_sold(&mut products).await == (100, 0) }
    })
    .await;

    assert!(running.terminate().success());
    std::fs::remove_dir_all(data_dir).unwrap();
}

#[test]
fn orders_without_its_dependencies_exits_64_naming_them() {
    let output = run(&["orders"], &[]);
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8(output.stderr).unwrap().contains("DATABASE_URL"));
    let output = run(&["orders"], &[("DATABASE_URL", "postgres://127.0.0.1:1/none")]);
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8(output.stderr).unwrap().contains("RABBITMQ_URL"));
    let env = [("DATABASE_URL", "postgres://127.0.0.1:1/none"), ("RABBITMQ_URL", "amqp://127.0.0.1:1/%2f")];
    let output = run(&["orders"], &env);
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8(output.stderr).unwrap().contains("USER_SERVICE_URL"));
}
