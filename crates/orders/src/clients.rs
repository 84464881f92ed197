//! The orders service's view of its dependencies: the users and products
//! services through their generated gRPC clients, each call under one
//! deadline with retries for what is safe to repeat, each dependency behind
//! a circuit breaker, and the caller's trace propagated.

use std::time::Duration;

use contract::products::product_service_client::ProductServiceClient;
use contract::products::{ReleaseStockRequest, ReserveStockRequest, ReserveStockResponse, StockItem};
use contract::users::GetUserRequest;
use contract::users::user_service_client::UserServiceClient;
use platform::telemetry::TracePropagation;
use resilience::{BreakerConfig, CircuitBreaker, Retry, RetryPolicy};
use tonic::codegen::InterceptedService;
use tonic::transport::{Channel, Endpoint};

type Traced = InterceptedService<Channel, TracePropagation>;

#[derive(Clone)]
pub struct Dependencies {
    users: UserServiceClient<Traced>,
    products: ProductServiceClient<Traced>,
    users_breaker: CircuitBreaker,
    products_breaker: CircuitBreaker,
    retry: Retry,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid service URL {url}: {reason}")]
    Url { url: String, reason: String },
}

/// A lazily connecting channel: the service starts even if a dependency is
/// not up yet. 2 s to connect (DESIGN §6). Several endpoints
/// (`http://a,http://b`) are balanced by tonic; `dns://name:port` connects to
/// what the name resolves to at connect time.
pub fn channel(urls: &str) -> Result<Channel, ClientError> {
    let endpoints = urls
        .split(',')
        .map(|url| {
            let url = url.trim();
            let http = url.strip_prefix("dns://").map_or_else(|| url.to_owned(), |rest| format!("http://{rest}"));
            Endpoint::from_shared(http)
                .map(|endpoint| endpoint.connect_timeout(Duration::from_secs(2)).tcp_nodelay(true))
                .map_err(|e| ClientError::Url { url: url.to_owned(), reason: e.to_string() })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(match <[Endpoint; 1]>::try_from(endpoints) {
        Ok([endpoint]) => endpoint.connect_lazy(),
        Err(endpoints) => Channel::balance_list(endpoints.into_iter()),
    })
}

/// Sets the attempt's gRPC deadline to what is left of the call's.
fn with_deadline<T>(message: T, remaining: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(remaining);
    request
}

impl Dependencies {
    pub fn new(users: Channel, products: Channel, retry: Retry) -> Self {
        Self {
            users: UserServiceClient::with_interceptor(users, TracePropagation),
            products: ProductServiceClient::with_interceptor(products, TracePropagation),
            users_breaker: CircuitBreaker::new(BreakerConfig::default()),
            products_breaker: CircuitBreaker::new(BreakerConfig::default()),
            retry,
        }
    }

    /// Whether the user exists (a read: retried).
    pub async fn user_exists(&self, user_id: &str) -> Result<bool, tonic::Status> {
        let outcome = self
            .retry
            .call(RetryPolicy::Idempotent, |remaining| {
                let mut client = self.users.clone();
                let request = with_deadline(GetUserRequest { id: user_id.to_owned() }, remaining);
                self.users_breaker.call(|| async move { client.get_user(request).await })
            })
            .await;
        match outcome {
            Ok(_) => Ok(true),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(false),
            Err(status) => Err(status),
        }
    }

    /// Reserves stock under `reservation_id` (idempotent by that id: retried).
    pub async fn reserve(
        &self,
        reservation_id: &str,
        items: &[(String, i32)],
    ) -> Result<ReserveStockResponse, tonic::Status> {
        let items: Vec<StockItem> = items
            .iter()
            .map(|(product_id, quantity)| StockItem { product_id: product_id.clone(), quantity: *quantity })
            .collect();
        self.retry
            .call(RetryPolicy::Idempotent, |remaining| {
                let mut client = self.products.clone();
                let message = ReserveStockRequest { reservation_id: reservation_id.to_owned(), items: items.clone() };
                let request = with_deadline(message, remaining);
                self.products_breaker
                    .call(|| async move { client.reserve_stock(request).await.map(tonic::Response::into_inner) })
            })
            .await
    }

    /// Releases a reservation (idempotent: retried).
    pub async fn release(&self, reservation_id: &str) -> Result<bool, tonic::Status> {
        self.retry
            .call(RetryPolicy::Idempotent, |remaining| {
                let mut client = self.products.clone();
                let request =
                    with_deadline(ReleaseStockRequest { reservation_id: reservation_id.to_owned() }, remaining);
                self.products_breaker
                    .call(|| async move { client.release_stock(request).await.map(|r| r.into_inner().released) })
            })
            .await
    }
}
