//! The orders service's view of its dependencies: the users and products
//! services through their generated gRPC clients, each call under one
//! deadline with retries for what is safe to repeat, each dependency behind
//! a circuit breaker, the caller's trace propagated, and this service's
//! token on every call (reserving stock is for services only).

use std::sync::Arc;
use std::time::Duration;

use contract::products::product_service_client::ProductServiceClient;
use contract::products::{ReleaseStockRequest, ReserveStockRequest, ReserveStockResponse, StockItem};
use contract::users::GetUserRequest;
use contract::users::user_service_client::UserServiceClient;
use platform::access::ServiceTokens;
use platform::telemetry::TracePropagation;
use resilience::{BreakerConfig, CircuitBreaker, Retry, RetryPolicy};
use tonic::codegen::InterceptedService;
use tonic::transport::Channel;

type Traced = InterceptedService<Channel, TracePropagation>;

#[derive(Clone)]
pub struct Dependencies {
    users: UserServiceClient<Traced>,
    products: ProductServiceClient<Traced>,
    users_breaker: CircuitBreaker,
    products_breaker: CircuitBreaker,
    retry: Retry,
    service: Arc<ServiceTokens>,
}

/// An attempt's request: the gRPC deadline is what is left of the call's,
/// and this service's token proves it is a service.
fn request<T>(message: T, remaining: Duration, service: &ServiceTokens) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(remaining);
    service.attach(&mut request);
    request
}

impl Dependencies {
    pub fn new(users: Channel, products: Channel, retry: Retry, service: Arc<ServiceTokens>) -> Self {
        Self {
            users: UserServiceClient::with_interceptor(users, TracePropagation),
            products: ProductServiceClient::with_interceptor(products, TracePropagation),
            users_breaker: CircuitBreaker::new(BreakerConfig::default()),
            products_breaker: CircuitBreaker::new(BreakerConfig::default()),
            retry,
            service,
        }
    }

    /// Whether the user exists (a read: retried).
    pub async fn user_exists(&self, user_id: &str) -> Result<bool, tonic::Status> {
        let outcome = self
            .retry
            .call(RetryPolicy::Idempotent, |remaining| {
                let mut client = self.users.clone();
                let request = request(GetUserRequest { id: user_id.to_owned() }, remaining, &self.service);
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
                let request = request(message, remaining, &self.service);
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
                let request = request(
                    ReleaseStockRequest { reservation_id: reservation_id.to_owned() },
                    remaining,
                    &self.service,
                );
                self.products_breaker
                    .call(|| async move { client.release_stock(request).await.map(|r| r.into_inner().released) })
            })
            .await
    }
}
