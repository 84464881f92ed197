//! The orders service finds users and products as its settings name them,
//! through the same discovery as the gateway: a DNS name is followed, each
//! address it resolves to an endpoint of its own (`localhost` may also
//! resolve to an address nothing listens on: a call there never reaches a
//! service, so it moves on to the next endpoint even when it is an order).

use std::sync::Arc;
use std::time::Duration;

use contract::orders::CreateOrderRequest;
use contract::orders::order_service_client::OrderServiceClient;
use orders::start::Upstreams;
use resilience::EndpointSource;

use crate::helpers::{Backend, channel, orders_service, shop};

/// `dns://localhost:<port>` for a service the shop serves at `source`.
fn by_name(source: &EndpointSource) -> EndpointSource {
    let EndpointSource::Static(urls) = source else { panic!("the shop's services have fixed addresses") };
    let port = urls[0].rsplit(':').next().unwrap().parse().unwrap();
    EndpointSource::Dns { host: "localhost".to_owned(), port }
}

#[tokio::test(flavor = "multi_thread")]
async fn users_and_products_named_by_dns_are_followed() {
    let Some(shop) = shop(Backend::Sqlite, "dns_discovery").await else { return };
    let user = shop.user().await;
    shop.product("by-name", 2.5, 5).await;
    let upstreams = Upstreams { users: by_name(&shop.upstreams.users), products: by_name(&shop.upstreams.products) };
    let address =
        orders_service(shop.order_store.clone(), &upstreams, Arc::new(shop.bus.clone()), &shop.shutdown).await;
    let orders = OrderServiceClient::new(channel(address).await);

    let order = |product: &str| CreateOrderRequest {
        user_id: user.clone(),
        product_id: product.to_owned(),
        quantity: 1,
        ..Default::default()
    };
    // Until the first resolution lands there is no endpoint; an unknown
    // product then answers NOT_FOUND from the products service itself.
    testkit::eventually("users and products to be resolved", Duration::from_secs(10), || {
        let (mut orders, request) = (orders.clone(), order("no-such-product"));
        async move { orders.create_order(request).await.is_err_and(|status| status.code() == tonic::Code::NotFound) }
    })
    .await;
    for _ in 0..4 {
        let placed = orders.clone().create_order(order("by-name")).await.expect("an order through resolved endpoints");
        assert_eq!(placed.into_inner().order.unwrap().total, 2.5);
    }
}
