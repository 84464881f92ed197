//! Readiness follows the database: NOT_SERVING while PostgreSQL is
//! unreachable (a proxy in between is cut), SERVING again once it is back.

use std::sync::Arc;
use std::time::Duration;

use testkit::postgres::TestDatabase;
use testkit::proxy::TcpProxy;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use users::store::PostgresUserStore;

use crate::helpers::{TestApp, serve};

async fn status(app: &TestApp) -> ServingStatus {
    let mut client = HealthClient::new(app.channel().await);
    let request = HealthCheckRequest { service: "shop.users.v1.UserService".to_owned() };
    client.check(request).await.unwrap().into_inner().status()
}

async fn http_ready(app: &TestApp) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(b"GET /health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_is_lost_while_postgres_is_unreachable_and_recovers() {
    platform::telemetry::init_for_tests();
    let Some(database) = TestDatabase::create("readiness_follows_postgres").await else { return };
    let proxy = TcpProxy::start(database.server_address().await).await;
    let store = PostgresUserStore::connect_lazy(&database.url_via(proxy.address())).unwrap();
    store.migrate().await.unwrap();
    let app = serve(Arc::new(store), Some(database), Duration::from_millis(50)).await;

    assert_eq!(status(&app).await, ServingStatus::Serving);
    assert_eq!(http_ready(&app).await, 200);

    proxy.cut();
    testkit::eventually("NOT_SERVING while the database is cut off", Duration::from_secs(15), || async {
        status(&app).await == ServingStatus::NotServing
    })
    .await;
    assert_eq!(http_ready(&app).await, 503);

    proxy.restore();
    testkit::eventually("SERVING once the database is back", Duration::from_secs(15), || async {
        status(&app).await == ServingStatus::Serving
    })
    .await;
    assert_eq!(http_ready(&app).await, 200);
}
