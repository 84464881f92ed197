//! The template's curl examples, verbatim, through the gateway: create a
//! user, the product, an order with that user's id; list and get each. The
//! JSON equals what the services return over gRPC (rendered with the same
//! proto3 JSON mapping).

use contract::orders::GetOrderRequest;
use contract::products::GetProductRequest;
use contract::users::GetUserRequest;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::Value as Json;

use crate::harness::start;

/// The proto3 JSON the gateway would render for `message` (a gRPC reply).
fn json_of<M: Message + prost::Name>(message: &M, field: &str) -> Json {
    let pool = DescriptorPool::decode(contract::FILE_DESCRIPTOR_SET).unwrap();
    let descriptor = pool.get_message_by_name(&M::full_name()).unwrap();
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice()).unwrap();
    gateway::transcode::to_json(&dynamic)[field].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_templates_curl_examples_work_verbatim() {
    let platform = start().await;

    let user = platform.rest("POST", "/users", Some(br#"{"email":"user@example.com","name":"John Doe"}"#)).await;
    assert_eq!(user.status, 200, "{:?}", String::from_utf8_lossy(&user.body));
    let user = user.json();
    let user_id = user["id"].as_str().unwrap().to_owned();

    let product = platform
        .rest("POST", "/products", Some(br#"{"id":"prod-123","name":"Widget","price":29.99,"stock":100}"#))
        .await;
    assert_eq!(product.status, 200, "{:?}", String::from_utf8_lossy(&product.body));

    let order_body = format!(r#"{{"userId":"{user_id}","productId":"prod-123","quantity":2}}"#);
    let order = platform.rest("POST", "/orders", Some(order_body.as_bytes())).await;
    assert_eq!(order.status, 200, "{:?}", String::from_utf8_lossy(&order.body));
    let order = order.json();
    let order_id = order["id"].as_str().unwrap().to_owned();
    assert_eq!(order["total"], 59.98);

    // Each resource through REST equals the service's own answer over gRPC.
    let mut users =
        contract::users::user_service_client::UserServiceClient::new(platform.channel(platform.users).await);
    let grpc_user = users.get_user(GetUserRequest { id: user_id.clone() }).await.unwrap().into_inner();
    let rest_user = platform.rest("GET", &format!("/users/{user_id}"), None).await.json();
    assert_eq!(rest_user, json_of(&grpc_user, "user"));
    assert_eq!(rest_user, user);

    let mut products = contract::products::product_service_client::ProductServiceClient::new(
        platform.channel(platform.products).await,
    );
    let grpc_product =
        products.get_product(GetProductRequest { id: "prod-123".to_owned() }).await.unwrap().into_inner();
    let rest_product = platform.rest("GET", "/products/prod-123", None).await.json();
    assert_eq!(rest_product, json_of(&grpc_product, "product"));
    assert_eq!(rest_product["stock"], 98);

    let mut orders =
        contract::orders::order_service_client::OrderServiceClient::new(platform.channel(platform.orders).await);
    let grpc_order = orders.get_order(GetOrderRequest { id: order_id.clone() }).await.unwrap().into_inner();
    let rest_order = platform.rest("GET", &format!("/orders/{order_id}"), None).await.json();
    assert_eq!(rest_order, json_of(&grpc_order, "order"));
    assert_eq!(rest_order, order);

    let listed = platform.rest("GET", "/users", None).await.json();
    assert_eq!(listed["users"][0], user);
    let listed = platform.rest("GET", "/products", None).await.json();
    assert_eq!(listed["products"][0], rest_product);
    let listed = platform.rest("GET", "/orders", None).await.json();
    assert_eq!(listed["orders"][0], order);
    let listed = platform.rest("GET", &format!("/orders/user/{user_id}"), None).await.json();
    assert_eq!(listed["orders"][0], order);
    let found = platform.rest("GET", "/products/search?q=widget", None).await.json();
    assert_eq!(found["products"][0]["id"], "prod-123");
}
