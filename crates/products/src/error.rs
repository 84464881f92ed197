//! What can go wrong in the products service, and what each failure means
//! to a caller.

use platform::ErrorCode;
use platform::validation::Violations;

use crate::domain::ReservationRefused;
use crate::store::{AdjustError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ProductError {
    #[error(transparent)]
    Invalid(#[from] Violations),
    #[error("product {0} not found")]
    NotFound(String),
    #[error("a product with id {0} already exists")]
    DuplicateId(String),
    #[error("stock of product {product} cannot go below zero (stock {stock}, change {delta})")]
    StockWouldGoNegative { product: String, stock: i32, delta: i32 },
    #[error("stock of product {product} cannot go above {max} (stock {stock}, change {delta})", max = crate::domain::MAX_STOCK)]
    StockWouldExceedMax { product: String, stock: i32, delta: i32 },
    #[error(transparent)]
    Refused(#[from] ReservationRefused),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ProductError {
    pub fn from_adjust(product: &str, error: AdjustError) -> Self {
        match error {
            AdjustError::NotFound => Self::NotFound(product.to_owned()),
            AdjustError::WouldGoNegative { stock, delta } => {
                Self::StockWouldGoNegative { product: product.to_owned(), stock, delta }
            }
            AdjustError::WouldExceedMax { stock, delta } => {
                Self::StockWouldExceedMax { product: product.to_owned(), stock, delta }
            }
            AdjustError::Store(error) => Self::Store(error),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) => ErrorCode::InvalidArgument,
            Self::NotFound(_) | Self::Refused(ReservationRefused::UnknownProduct(_)) => ErrorCode::NotFound,
            Self::DuplicateId(_) => ErrorCode::AlreadyExists,
            Self::StockWouldGoNegative { .. } | Self::StockWouldExceedMax { .. } | Self::Refused(_) => {
                ErrorCode::FailedPrecondition
            }
            // Another call holds this reservation id: retrying is right.
            Self::Store(StoreError::ReservationBusy(_)) => ErrorCode::Aborted,
            Self::Store(StoreError::Unavailable(_)) => ErrorCode::Unavailable,
            Self::Store(_) => ErrorCode::Internal,
        }
    }
}

impl From<ProductError> for tonic::Status {
    fn from(error: ProductError) -> Self {
        let code = error.code();
        match error {
            ProductError::Invalid(violations) => violations.into_status(),
            ProductError::Store(StoreError::Unavailable(_) | StoreError::Other(_) | StoreError::DuplicateId) => {
                tracing::error!(%error, "products request failed");
                let message = match code {
                    ErrorCode::Unavailable => "the products database is unavailable; try again",
                    _ => "internal error",
                };
                code.status(message)
            }
            other => code.status(other.to_string()),
        }
    }
}
