//! The orders service's dependencies over gRPC ([`Dependencies`] for the
//! users and products services): their generated clients, each call on the
//! one guarded call path ([`resilience::Upstream`]: deadline, retries for
//! what is safe to repeat, a breaker per endpoint, endpoints followed as
//! their `*_SERVICE_URL` says), the caller's trace propagated, this
//! service's token on every call (reserving stock is for services only),
//! and every status turned into the domain's terms here.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use contract::money::Currency;
use contract::products::product_service_client::ProductServiceClient;
use contract::products::{ReleaseStockRequest, ReserveStockRequest, ReserveStockResponse, StockItem};
use contract::users::GetUserRequest;
use contract::users::user_service_client::UserServiceClient;
use platform::access::ServiceTokens;
use platform::telemetry::TracePropagation;
use resilience::Upstream;

use crate::dependencies::{Dependencies, DependencyError, HeldItem, Refusal, ReserveError, StockHold};

#[derive(Clone)]
pub struct GrpcDependencies {
    users: Arc<Upstream>,
    products: Arc<Upstream>,
    service: Arc<ServiceTokens>,
}

/// An attempt's request: the gRPC deadline is what is left of the call's,
/// and this service's token proves it is a service.
fn request<T>(message: T, remaining: Duration, service: &ServiceTokens) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    platform::grpc_timeout::set(&mut request, remaining);
    service.attach(&mut request);
    request
}

impl GrpcDependencies {
    pub fn new(users: Arc<Upstream>, products: Arc<Upstream>, service: Arc<ServiceTokens>) -> Self {
        Self { users, products, service }
    }

    /// Whether the user exists (a read: retried).
    async fn check_user(&self, user_id: &str) -> Result<bool, tonic::Status> {
        let outcome = self
            .users
            .call("shop.users.v1.UserService/GetUser", true, None, |channel, remaining| {
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
    async fn reserve_stock(
        &self,
        reservation_id: &str,
        items: &[(String, i32)],
    ) -> Result<ReserveStockResponse, tonic::Status> {
        let items: Vec<StockItem> = items
            .iter()
            .map(|(product_id, quantity)| StockItem { product_id: product_id.clone(), quantity: *quantity })
            .collect();
        self.products
            .call("shop.products.v1.ProductService/ReserveStock", true, None, |channel, remaining| {
                let mut client = ProductServiceClient::with_interceptor(channel, TracePropagation);
                let message = ReserveStockRequest { reservation_id: reservation_id.to_owned(), items: items.clone() };
                let request = request(message, remaining, &self.service);
                async move { client.reserve_stock(request).await.map(tonic::Response::into_inner) }
            })
            .await
            .map_err(|error| error.into_status(&self.products.name))
    }

    /// Releases a reservation (idempotent: retried).
    async fn release_stock(&self, reservation_id: &str) -> Result<bool, tonic::Status> {
        self.products
            .call("shop.products.v1.ProductService/ReleaseStock", true, None, |channel, remaining| {
                let mut client = ProductServiceClient::with_interceptor(channel, TracePropagation);
                let message = ReleaseStockRequest { reservation_id: reservation_id.to_owned() };
                let request = request(message, remaining, &self.service);
                async move { client.release_stock(request).await.map(|r| r.into_inner().released) }
            })
            .await
            .map_err(|error| error.into_status(&self.products.name))
    }
}

#[async_trait]
impl Dependencies for GrpcDependencies {
    async fn user_exists(&self, user_id: &str) -> Result<bool, DependencyError> {
        self.check_user(user_id).await.map_err(|status| failure("users", &status))
    }

    async fn reserve(&self, reservation_id: &str, items: &[(String, i32)]) -> Result<StockHold, ReserveError> {
        let reserved = self.reserve_stock(reservation_id, items).await.map_err(|status| match status.code() {
            tonic::Code::NotFound => ReserveError::Refused(Refusal::UnknownProduct(status.message().to_owned())),
            tonic::Code::FailedPrecondition => {
                ReserveError::Refused(Refusal::InsufficientStock(status.message().to_owned()))
            }
            tonic::Code::InvalidArgument => ReserveError::Refused(Refusal::Invalid(status.message().to_owned())),
            _ => ReserveError::Failed(failure("products", &status)),
        })?;
        stock_hold(reserved).map_err(ReserveError::Failed)
    }

    async fn release(&self, reservation_id: &str) -> Result<bool, DependencyError> {
        self.release_stock(reservation_id).await.map_err(|status| failure("products", &status))
    }
}

/// A status that is no answer about the request itself.
fn failure(service: &'static str, status: &tonic::Status) -> DependencyError {
    match status.code() {
        tonic::Code::DeadlineExceeded => DependencyError::TimedOut { service },
        _ => DependencyError::Unavailable { service, why: status.message().to_owned() },
    }
}

/// The products service's answer as a hold, its prices in minor units.
fn stock_hold(reserved: ReserveStockResponse) -> Result<StockHold, DependencyError> {
    let bad = |why: String| DependencyError::BadAnswer { service: "products", why };
    let items = reserved
        .items
        .into_iter()
        .map(|item| {
            let currency = Currency::parse(&item.currency).map_err(|why| {
                bad(format!("product {} has the currency {:?}: {why}", item.product_id, item.currency))
            })?;
            // A products service from before prices were sent in minor units
            // sends no currency, and the price only as a decimal.
            #[allow(deprecated)]
            let unit_price_minor = if item.currency.is_empty() {
                contract::money::to_minor(item.unit_price).map_err(|_| {
                    bad(format!("product {} has the invalid price {}", item.product_id, item.unit_price))
                })?
            } else if item.unit_price_minor < 0 {
                return Err(bad(format!("product {} has the price {} cents", item.product_id, item.unit_price_minor)));
            } else {
                item.unit_price_minor
            };
            Ok(HeldItem {
                product_id: item.product_id,
                product_name: item.product_name,
                quantity: item.quantity,
                unit_price_minor,
                currency,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let held_for = reserved.held_for.and_then(|held_for| Duration::try_from(held_for).ok());
    Ok(StockHold { items, held_for })
}

#[cfg(test)]
mod tests {
    use contract::products::ReservedItem;
    use platform::ErrorCode;

    use super::*;
    use crate::error::OrderError;

    /// As a products service from before minor units answers.
    #[allow(deprecated)]
    fn reserved(unit_price: f64) -> ReserveStockResponse {
        ReserveStockResponse {
            reservation_id: "r".to_owned(),
            items: vec![ReservedItem {
                product_id: "p".to_owned(),
                quantity: 2,
                unit_price,
                product_name: "P".to_owned(),
                ..Default::default()
            }],
            held_for: Some(prost_types::Duration { seconds: 300, nanos: 0 }),
        }
    }

    #[test]
    fn a_hold_is_priced_in_minor_units_and_keeps_its_bound() {
        let hold = stock_hold(reserved(29.99)).unwrap();
        assert_eq!(hold.items[0].unit_price_minor, 2999);
        assert_eq!(hold.held_for, Some(Duration::from_secs(300)));
    }

    #[test]
    fn a_hold_in_minor_units_is_taken_as_it_is_with_its_currency() {
        let mut answer = reserved(0.0);
        answer.items[0].unit_price_minor = 1999;
        answer.items[0].currency = "EUR".to_owned();
        let hold = stock_hold(answer).unwrap();
        assert_eq!((hold.items[0].unit_price_minor, hold.items[0].currency.as_str()), (1999, "EUR"));
        let legacy = stock_hold(reserved(19.99)).unwrap();
        assert_eq!((legacy.items[0].unit_price_minor, legacy.items[0].currency.as_str()), (1999, "USD"));
    }

    #[test]
    fn a_price_that_cannot_be_right_is_a_fault_not_a_reason_to_retry() {
        let error = stock_hold(reserved(f64::NAN)).unwrap_err();
        assert!(matches!(error, DependencyError::BadAnswer { service: "products", .. }), "{error:?}");
        assert_eq!(OrderError::Dependency(error).code(), ErrorCode::Internal);
    }

    #[test]
    fn statuses_become_the_domains_terms() {
        let timed_out = failure("users", &tonic::Status::deadline_exceeded("late"));
        assert_eq!(timed_out, DependencyError::TimedOut { service: "users" });
        assert_eq!(OrderError::Dependency(timed_out).code(), ErrorCode::DeadlineExceeded);
        let down = failure("products", &tonic::Status::unavailable("down"));
        assert_eq!(OrderError::Dependency(down).code(), ErrorCode::Unavailable);
    }
}
