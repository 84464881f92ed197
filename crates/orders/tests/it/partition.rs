//! The orders service's calls to products across a network partition (a
//! proxy between them, cut and healed): a dropped connection is made again
//! by the next call, an order placed while products cannot be reached is
//! refused whole, and orders go through again once the partition heals and
//! the breaker the failures opened lets a trial call through
//! (`MESHWORK_CALL_BREAKER_OPEN`, 1 s here, 60 s by default).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use contract::orders::CreateOrderRequest;
use contract::orders::order_service_client::OrderServiceClient;
use orders::start::Upstreams;
use resilience::EndpointSource;
use testkit::proxy::TcpProxy;
use tonic::Code;

use crate::helpers::{Backend, channel, orders_service_with, shop};

fn address_of(source: &EndpointSource) -> SocketAddr {
    let EndpointSource::Static(urls) = source else { panic!("the shop's services have fixed addresses") };
    urls[0].trim_start_matches("http://").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn orders_reconnects_to_products_refuses_whole_orders_while_cut_off_and_recovers() {
    let Some(shop) = shop(Backend::Sqlite, "products_partition").await else { return };
    let user = shop.user().await;
    shop.product("across-a-cut", 2.5, 5).await;
    let proxy = TcpProxy::start(address_of(&shop.upstreams.products)).await;
    let upstreams = Upstreams {
        users: shop.upstreams.users.clone(),
        products: EndpointSource::single(format!("http://{}", proxy.address())),
    };
    let settings = testkit::settings_with(&[("MESHWORK_AUTH", "optional"), ("MESHWORK_CALL_BREAKER_OPEN", "1s")]);
    let (store, bus) = (shop.order_store.clone(), Arc::new(shop.bus.clone()));
    let address = orders_service_with(&settings, store, &upstreams, bus, &shop.shutdown).await;
    let orders = OrderServiceClient::new(channel(address).await);
    let order = CreateOrderRequest {
        user_id: user.clone(),
        product_id: "across-a-cut".to_owned(),
        quantity: 1,
        ..Default::default()
    };
    orders.clone().create_order(order.clone()).await.expect("an order while products is reachable");
    assert_eq!(shop.stock("across-a-cut").await.0, 4);

    // The connection orders made is dropped: the next order makes another.
    let connections = proxy.accepted();
    proxy.cut();
    testkit::eventually("the cut to close the connection", Duration::from_secs(5), || async { proxy.open() == 0 })
        .await;
    proxy.restore();
    orders.clone().create_order(order.clone()).await.expect("an order on a new connection");
    assert!(proxy.accepted() > connections, "a new connection was made");
    assert_eq!(shop.stock("across-a-cut").await.0, 3);

    // Cut off: the order is refused, naming products, and takes nothing.
    proxy.cut();
    let refused = orders.clone().create_order(order.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("products"), "the refusal names the service: {refused:?}");
    assert_eq!(shop.stock("across-a-cut").await.0, 3, "no stock taken");
    let listed = orders
        .clone()
        .list_user_orders(contract::orders::ListUserOrdersRequest { user_id: user.clone(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(listed.into_inner().orders.len(), 2, "no order written for the refused one");

    // Healed: once the breaker's second has passed, orders go through again.
    proxy.restore();
    testkit::eventually("an order once products is reachable again", Duration::from_secs(10), || {
        let (mut orders, order) = (orders.clone(), order.clone());
        async move { orders.create_order(order).await.is_ok() }
    })
    .await;
    assert_eq!(shop.stock("across-a-cut").await.0, 2);
}
