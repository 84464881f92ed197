//! The user's check of the gateway's circuit breaker: `meshwork up` runs
//! all but products, products runs on its own (`up --only products`), and
//! stopping and restarting it moves `circuit_breaker_state` on the gateway's
//! /metrics from closed to open and back.

use std::net::TcpListener;
use std::time::Duration;

use crate::harness::Running;

/// A base port with the three after it free too.
fn free_block() -> u16 {
    for _ in 0..50 {
        let first = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = first.local_addr().unwrap().port();
        if base > 65000 {
            continue;
        }
        drop(first);
        if (0..4).all(|offset| TcpListener::bind(("127.0.0.1", base + offset)).is_ok()) {
            return base;
        }
    }
    panic!("no four free ports in a row");
}

async fn get(url: &str) -> (u16, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let response = client.get(url.parse().unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The products endpoint's breaker state on the gateway's /metrics.
async fn breaker_state(gateway: &str) -> Option<String> {
    let (_, metrics) = get(&format!("{gateway}/metrics")).await;
    metrics
        .lines()
        .find(|line| line.starts_with("circuit_breaker_state{") && line.contains(r#"upstream="products""#))
        .and_then(|line| line.rsplit(' ').next().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread")]
async fn stopping_products_opens_the_breaker_and_restarting_closes_it() {
    let base = free_block();
    let data_dir = std::env::temp_dir().join(format!("meshwork-breaker-{}", uuid::Uuid::new_v4()));
    let base_arg = base.to_string();
    let env =
        [("MESHWORK_DATA_DIR", data_dir.to_str().unwrap()), ("GATEWAY_BREAKER_OPEN", "1s"), ("GATEWAY_RETRIES", "0")];
    let mut rest = Running::start(&["up", "--base-port", &base_arg, "--only", "gateway,users,orders"], &env);
    rest.read_line();
    let products_args = ["up", "--base-port", &base_arg, "--only", "products"];
    let mut products = Running::start(&products_args, &env);
    products.read_line();
    let gateway = format!("http://127.0.0.1:{base}");
    let product = format!("{gateway}/products/prod-404");

    assert_eq!(get(&product).await.0, 404, "products answers through the gateway");
    assert_eq!(breaker_state(&gateway).await.as_deref(), Some("0"), "closed");

    assert!(products.terminate().success());
    for _ in 0..5 {
        assert_eq!(get(&product).await.0, 503);
    }
    assert_eq!(breaker_state(&gateway).await.as_deref(), Some("1"), "open after five failures");
    let (status, body) = get(&product).await;
    assert_eq!(status, 503);
    assert!(body.contains("circuit breaker"), "{body}");

    let mut products = Running::start(&products_args, &env);
    products.read_line();
    testkit::eventually("trial calls to close the breaker", Duration::from_secs(15), || async {
        get(&product).await.0 == 404 && breaker_state(&gateway).await.as_deref() == Some("0")
    })
    .await;
    assert!(products.terminate().success());
    assert!(rest.terminate().success());
    std::fs::remove_dir_all(data_dir).unwrap();
}
