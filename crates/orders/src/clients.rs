//! The orders service's view of its dependencies: the users and products
//! services through their generated gRPC clients, each call on the one
//! guarded call path ([`resilience::Upstream`]: deadline, retries for what
//! is safe to repeat, a breaker per endpoint, endpoints followed as their
//! `*_SERVICE_URL` says), the caller's trace propagated, and this service's
//! token on every call (reserving stock is for services only).

use std::sync::Arc;
use std::time::Duration;

use contract::products::product_service_client::ProductServiceClient;
use contract::products::{ReleaseStockRequest, ReserveStockRequest, ReserveStockResponse, StockItem};
use contract::users::GetUserRequest;
use contract::users::user_service_client::UserServiceClient;
use platform::access::ServiceTokens;
use platform::telemetry::TracePropagation;
use resilience::Upstream;

#[derive(Clone)]
pub struct Dependencies {
    users: Arc<Upstream>,
    products: Arc<Upstream>,
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
    pub fn new(users: Arc<Upstream>, products: Arc<Upstream>, service: Arc<ServiceTokens>) -> Self {
        Self { users, products, service }
    }

    /// Whether the user exists (a read: retried).
    pub async fn user_exists(&self, user_id: &str) -> Result<bool, tonic::Status> {
        let outcome = self
            .users
            .call(true, None, |channel, remaining| {
                let mut client = UserServiceClient::with_interceptor(channel, TracePropagation);
                let request = request(GetUserRequest { id: user_id.to_owned() }, remaining, &self.service);
                async move { client.get_user(request).await }
            })
            .await
            .map_err(|error| error.into_status(&self.users.name));
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
        self.products
            .call(true, None, |channel, remaining| {
                let mut client = ProductServiceClient::with_interceptor(channel, TracePropagation);
                let message = ReserveStockRequest { reservation_id: reservation_id.to_owned(), items: items.clone() };
                let request = request(message, remaining, &self.service);
                async move { client.reserve_stock(request).await.map(tonic::Response::into_inner) }
            })
            .await
            .map_err(|error| error.into_status(&self.products.name))
    }

    /// Releases a reservation (idempotent: retried).
    pub async fn release(&self, reservation_id: &str) -> Result<bool, tonic::Status> {
        self.products
            .call(true, None, |channel, remaining| {
                let mut client = ProductServiceClient::with_interceptor(channel, TracePropagation);
                let message = ReleaseStockRequest { reservation_id: reservation_id.to_owned() };
                let request = request(message, remaining, &self.service);
                async move { client.release_stock(request).await.map(|r| r.into_inner().released) }
            })
            .await
            .map_err(|error| error.into_status(&self.products.name))
    }
}
