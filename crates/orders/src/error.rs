//! What can go wrong in the orders service, and what each failure means to
//! a caller.

use platform::ErrorCode;
use platform::validation::Violations;

use crate::dependencies::{DependencyError, Refusal};
use crate::domain::{OrderId, OrderStatus};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error(transparent)]
    Invalid(#[from] Violations),
    #[error("order {0} not found")]
    NotFound(OrderId),
    #[error("user {0} not found")]
    UnknownUser(String),
    /// A signed-in user acting for another user.
    #[error("{0}")]
    NotYours(&'static str),
    /// The idempotency key already names an order of other items.
    #[error("idempotency key {key:?} was used for order {order}, of other items; a new order needs a new key")]
    KeyReused { key: String, order: OrderId },
    #[error("order {id} is {from} and cannot become {to}")]
    InvalidTransition { id: OrderId, from: &'static str, to: &'static str },
    /// The products service refused the reservation, and said why.
    #[error(transparent)]
    Reservation(Refusal),
    /// A dependency did not answer usefully.
    #[error(transparent)]
    Dependency(DependencyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OrderError {
    pub fn invalid_transition(id: OrderId, from: OrderStatus, to: OrderStatus) -> Self {
        Self::InvalidTransition { id, from: from.as_str(), to: to.as_str() }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) => ErrorCode::InvalidArgument,
            Self::NotFound(_) | Self::UnknownUser(_) => ErrorCode::NotFound,
            Self::InvalidTransition { .. } => ErrorCode::FailedPrecondition,
            Self::KeyReused { .. } => ErrorCode::AlreadyExists,
            Self::NotYours(_) => ErrorCode::PermissionDenied,
            Self::Reservation(Refusal::UnknownProduct(_)) => ErrorCode::NotFound,
            Self::Reservation(Refusal::Invalid(_)) => ErrorCode::InvalidArgument,
            Self::Reservation(Refusal::InsufficientStock(_) | Refusal::MixedCurrencies(_)) => {
                ErrorCode::FailedPrecondition
            }
            Self::Dependency(DependencyError::TimedOut { .. }) => ErrorCode::DeadlineExceeded,
            Self::Dependency(DependencyError::Unavailable { .. }) | Self::Store(StoreError::Unavailable(_)) => {
                ErrorCode::Unavailable
            }
            // A wrong answer is a fault, not something a retry fixes.
            Self::Dependency(DependencyError::BadAnswer { .. }) | Self::Store(_) => ErrorCode::Internal,
        }
    }
}

impl From<OrderError> for tonic::Status {
    fn from(error: OrderError) -> Self {
        let code = error.code();
        match error {
            OrderError::Invalid(violations) => violations.into_status(),
            OrderError::Store(_) | OrderError::Dependency(_) => {
                tracing::error!(%error, "orders request failed");
                let message = match &error {
                    OrderError::Dependency(DependencyError::TimedOut { service }) => {
                        format!("the {service} service did not answer in time")
                    }
                    OrderError::Dependency(DependencyError::Unavailable { service, .. }) => {
                        format!("the {service} service is unavailable; try again")
                    }
                    OrderError::Store(StoreError::Unavailable(_)) => {
                        "the orders database is unavailable; try again".to_owned()
                    }
                    _ => "internal error".to_owned(),
                };
                code.status(message)
            }
            other => code.status(other.to_string()),
        }
    }
}
