//! The products service through the binary, as a user checks it: on
//! MongoDB (`meshwork products`), and under `meshwork up` across a restart.

use contract::products::product_service_client::ProductServiceClient;
use contract::products::{
    CreateProductRequest, GetProductRequest, ReleaseStockRequest, ReserveStockRequest, SearchProductsRequest, StockItem,
};
use testkit::mongo::TestMongo;
use tonic::transport::Channel;

use crate::harness::Running;

async fn client(address: &str) -> ProductServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
    ProductServiceClient::new(channel)
}

fn template_product() -> CreateProductRequest {
    CreateProductRequest {
        id: "prod-123".to_owned(),
        name: "Widget".to_owned(),
        description: String::new(),
        price: 29.99,
        stock: 100,
        currency: String::new(),
    }
}

async fn stock(client: &mut ProductServiceClient<Channel>) -> i32 {
    let product = client.get_product(GetProductRequest { id: "prod-123".to_owned() }).await.unwrap();
    product.into_inner().product.unwrap().stock
}

/// Reserves as the orders service does: with a service token signed with `secret`.
async fn reserve(client: &mut ProductServiceClient<Channel>, secret: &str, reservation: &str, quantity: i32) {
    let items = vec![StockItem { product_id: "prod-123".to_owned(), quantity }];
    let request = ReserveStockRequest { reservation_id: reservation.to_owned(), items };
    client.reserve_stock(testkit::as_service_with(secret, "orders", request)).await.unwrap();
}

async fn release(client: &mut ProductServiceClient<Channel>, secret: &str, reservation: &str) -> bool {
    let request = ReleaseStockRequest { reservation_id: reservation.to_owned() };
    client.release_stock(testkit::as_service_with(secret, "orders", request)).await.unwrap().into_inner().released
}

#[tokio::test(flavor = "multi_thread")]
async fn products_serves_on_mongodb() {
    let Some(database) = TestMongo::create("products_serves_on_mongodb").await else { return };
    let Some(broker) = testkit::amqp::TestBroker::create("products_serves_on_mongodb") else { return };
    for suffix in ["", ".retry", ".dlq"] {
        broker.track(format!("{}products.order-events{suffix}", broker.prefix));
    }
    let url = database.url();
    let env = [
        ("MONGO_URL", url.as_str()),
        ("RABBITMQ_URL", broker.url.as_str()),
        ("RABBITMQ_PREFIX", broker.prefix.as_str()),
        ("PORT", "0"),
        ("MESHWORK_HOST", "127.0.0.1"),
        // Users' tokens are verified there; this test sends none.
        ("USER_SERVICE_URL", "http://127.0.0.1:9"),
        // Asked only about holds that run out, and none does while this test lasts.
        ("ORDER_SERVICE_URL", "http://127.0.0.1:9"),
        ("MESHWORK_SERVICE_SECRET", testkit::SERVICE_SECRET),
        ("MESHWORK_AUTH", "optional"),
    ];
    let mut running = Running::start(&["products"], &env);
    let address = running.listening("products");
    let mut products = client(&address).await;
    products.create_product(template_product()).await.unwrap();
    let internal = ReserveStockRequest { reservation_id: "order-0".to_owned(), items: Vec::new() };
    let refused = products.reserve_stock(internal).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::PermissionDenied,
        "internal: for services only, even when auth is optional"
    );
    reserve(&mut products, testkit::SERVICE_SECRET, "order-1", 3).await;
    assert_eq!(stock(&mut products).await, 97);
    assert!(running.terminate().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn up_keeps_the_catalog_and_reservations_across_a_restart() {
    let data_dir = std::env::temp_dir().join(format!("meshwork-up-{}", uuid::Uuid::new_v4()));
    let env = [("MESHWORK_DATA_DIR", data_dir.to_str().unwrap())];

    let mut first = Running::start(&["up", "--base-port", "0"], &env);
    let address = first.read_up_banner().remove(2).1;
    let secret = std::fs::read_to_string(data_dir.join("service-secret")).unwrap();
    let mut products = client(&address).await;
    products.create_product(template_product()).await.unwrap();
    let search = SearchProductsRequest { q: "widg".to_owned(), ..Default::default() };
    let found = products.search_products(search.clone()).await.unwrap().into_inner().products;
    assert_eq!(found.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["prod-123"]);
    reserve(&mut products, &secret, "order-1", 2).await;
    reserve(&mut products, &secret, "order-2", 5).await;
    assert!(release(&mut products, &secret, "order-2").await);
    assert_eq!(stock(&mut products).await, 98);
    assert!(first.terminate().success());
    drop(products);

    let mut second = Running::start(&["up", "--base-port", "0"], &env);
    let address = second.read_up_banner().remove(2).1;
    let mut products = client(&address).await;
    assert_eq!(stock(&mut products).await, 98, "stock survived the restart");
    assert_eq!(products.search_products(search).await.unwrap().into_inner().products.len(), 1);
    // The reservation survived too: releasing it now gives its two units back.
    assert_eq!(std::fs::read_to_string(data_dir.join("service-secret")).unwrap(), secret, "the secret is kept");
    assert!(release(&mut products, &secret, "order-1").await);
    assert_eq!(stock(&mut products).await, 100);
    assert!(second.terminate().success());
    std::fs::remove_dir_all(data_dir).unwrap();
}
