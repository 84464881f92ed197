//! What can go wrong in the orders service, and what each failure means to
//! a caller.

use platform::ErrorCode;
use platform::validation::Violations;

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
    #[error("order {id} is {from} and cannot become {to}")]
    InvalidTransition { id: OrderId, from: &'static str, to: &'static str },
    /// The products service refused the reservation; its status says why
    /// (FAILED_PRECONDITION for stock, NOT_FOUND for a product).
    #[error("{}", .0.message())]
    Reservation(tonic::Status),
    /// A dependency did not answer usefully.
    #[error("the {service} service is unavailable: {status}")]
    Dependency { service: &'static str, status: tonic::Status },
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
            Self::NotYours(_) => ErrorCode::PermissionDenied,
            Self::Reservation(status) if status.code() == tonic::Code::NotFound => ErrorCode::NotFound,
            Self::Reservation(status) if status.code() == tonic::Code::InvalidArgument => ErrorCode::InvalidArgument,
            Self::Reservation(_) => ErrorCode::FailedPrecondition,
            Self::Dependency { status, .. } if status.code() == tonic::Code::DeadlineExceeded => {
                ErrorCode::DeadlineExceeded
            }
            Self::Dependency { .. } | Self::Store(StoreError::Unavailable(_)) => ErrorCode::Unavailable,
            Self::Store(_) => ErrorCode::Internal,
        }
    }
}

impl From<OrderError> for tonic::Status {
    fn from(error: OrderError) -> Self {
        let code = error.code();
        match error {
            OrderError::Invalid(violations) => violations.into_status(),
            OrderError::Store(_) | OrderError::Dependency { .. } => {
                tracing::error!(%error, "orders request failed");
                let message = match &error {
                    OrderError::Dependency { service, .. } => {
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
