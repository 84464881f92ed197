//! Readiness follows MongoDB: NOT_SERVING while it is unreachable (a proxy
//! in between is cut), SERVING again once it is back.

use std::sync::Arc;
use std::time::Duration;

use products::store::MongoProductStore;
use testkit::mongo::TestMongo;
use testkit::proxy::TcpProxy;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::{TestApp, serve};

async fn status(app: &TestApp) -> ServingStatus {
    let mut client = HealthClient::new(app.channel().await);
    let request = HealthCheckRequest { service: "shop.products.v1.ProductService".to_owned() };
    client.check(request).await.unwrap().into_inner().status()
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_is_lost_while_mongodb_is_unreachable_and_recovers() {
    platform::telemetry::init_for_tests();
    let Some(database) = TestMongo::create("readiness_follows_mongodb").await else { return };
    let proxy = TcpProxy::start(database.server_address().await).await;
    let store = MongoProductStore::connect(&database.url_via(proxy.address())).await.unwrap();
    let app = serve(Arc::new(store), Some(database), Duration::from_millis(50)).await;

    testkit::eventually("SERVING with MongoDB reachable", Duration::from_secs(15), || async {
        status(&app).await == ServingStatus::Serving
    })
    .await;
    proxy.cut();
    testkit::eventually("NOT_SERVING while MongoDB is cut off", Duration::from_secs(15), || async {
        status(&app).await == ServingStatus::NotServing
    })
    .await;
    proxy.restore();
    testkit::eventually("SERVING once MongoDB is back", Duration::from_secs(30), || async {
        status(&app).await == ServingStatus::Serving
    })
    .await;
}
