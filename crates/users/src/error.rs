//! What can go wrong in the users service, and what each failure means to a
//! caller (the platform's error-code table does the rest).

use platform::ErrorCode;
use platform::validation::Violations;

use crate::domain::UserId;
use crate::store::StoreError;
use crate::tokens::TokenError;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(transparent)]
    Invalid(#[from] Violations),
    #[error("user {0} not found")]
    NotFound(UserId),
    #[error("a user with this email already exists")]
    EmailTaken,
    /// Deliberately the same for an unknown email, a wrong password and an
    /// account without one: the answer must not reveal which accounts exist.
    #[error("invalid email or password")]
    BadCredentials,
    /// A signed-in user acting on another user's account.
    #[error("a user can only read and change their own account")]
    NotYours,
    /// A signed-in user who is not an administrator listing every account.
    #[error("only administrators may list every account")]
    AdminsOnly,
    /// Too many failed logins for this account lately.
    #[error("too many failed logins for this account; try again in {} s", .0.as_secs().max(1))]
    Throttled(std::time::Duration),
    #[error(transparent)]
    Store(StoreError),
    #[error("cannot issue a token: {0}")]
    Token(#[from] TokenError),
    #[error("password hashing failed: {0}")]
    Hashing(#[from] crate::password::HashError),
}

impl From<StoreError> for UserError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::EmailTaken => Self::EmailTaken,
            other => Self::Store(other),
        }
    }
}

impl UserError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) => ErrorCode::InvalidArgument,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::EmailTaken => ErrorCode::AlreadyExists,
            Self::BadCredentials => ErrorCode::Unauthenticated,
            Self::NotYours | Self::AdminsOnly => ErrorCode::PermissionDenied,
            Self::Throttled(_) | Self::Hashing(crate::password::HashError::Busy) => ErrorCode::ResourceExhausted,
            Self::Store(StoreError::Unavailable(_)) => ErrorCode::Unavailable,
            Self::Store(_) | Self::Token(_) | Self::Hashing(_) => ErrorCode::Internal,
        }
    }
}

impl From<UserError> for tonic::Status {
    fn from(error: UserError) -> Self {
        let code = error.code();
        match error {
            UserError::Invalid(violations) => violations.into_status(),
            UserError::Throttled(wait) => platform::error_code::retry_later(code, error.to_string(), wait),
            UserError::Hashing(crate::password::HashError::Busy) => {
                platform::error_code::retry_later(code, error.to_string(), std::time::Duration::from_secs(1))
            }
            // Internal details go to the log, not to the client.
            UserError::Store(_) | UserError::Token(_) | UserError::Hashing(_) => {
                tracing::error!(error = %error, "users request failed");
                let message = match code {
                    ErrorCode::Unavailable => "the users database is unavailable; try again",
                    _ => "internal error",
                };
                code.status(message)
            }
            other => code.status(other.to_string()),
        }
    }
}
