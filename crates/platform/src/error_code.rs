//! The one error-code vocabulary: each code knows its `tonic::Code` and its
//! HTTP status, and the gRPC -> HTTP table is grpc-gateway v2's, so a service
//! error means the same thing over gRPC, REST and gRPC-Web.

use http::StatusCode;

/// The failures services report. Domain errors map onto these; the gRPC
/// adapter and the gateway map these onto the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    Unauthenticated,
    PermissionDenied,
    ResourceExhausted,
    Aborted,
    DeadlineExceeded,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn grpc(self) -> tonic::Code {
        match self {
            Self::InvalidArgument => tonic::Code::InvalidArgument,
            Self::NotFound => tonic::Code::NotFound,
            Self::AlreadyExists => tonic::Code::AlreadyExists,
            Self::FailedPrecondition => tonic::Code::FailedPrecondition,
            Self::Unauthenticated => tonic::Code::Unauthenticated,
            Self::PermissionDenied => tonic::Code::PermissionDenied,
            Self::ResourceExhausted => tonic::Code::ResourceExhausted,
            Self::Aborted => tonic::Code::Aborted,
            Self::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            Self::Unavailable => tonic::Code::Unavailable,
            Self::Internal => tonic::Code::Internal,
        }
    }

    pub fn http(self) -> StatusCode {
        http_status(self.grpc())
    }

    /// A status with this code and message.
    pub fn status(self, message: impl Into<String>) -> tonic::Status {
        tonic::Status::new(self.grpc(), message)
    }
}

/// A refusal the caller may retry after `wait`: the status carries a
/// `google.rpc.RetryInfo` detail, which the gateway turns into `Retry-After`.
pub fn retry_later(code: ErrorCode, message: impl Into<String>, wait: std::time::Duration) -> tonic::Status {
    use tonic_types::{ErrorDetails, StatusExt};
    tonic::Status::with_error_details(code.grpc(), message, ErrorDetails::with_retry_info(Some(wait)))
}

/// grpc-gateway v2's mapping of every gRPC code to an HTTP status.
pub fn http_status(code: tonic::Code) -> StatusCode {
    use tonic::Code;
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).expect("499 is a valid status"),
        Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::BAD_REQUEST,
        Code::Aborted => StatusCode::CONFLICT,
        Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_map_to_grpc_gateway_statuses() {
        let table = [
            (0, 200),
            (1, 499),
            (2, 500),
            (3, 400),
            (4, 504),
            (5, 404),
            (6, 409),
            (7, 403),
            (8, 429),
            (9, 400),
            (10, 409),
            (11, 400),
            (12, 501),
            (13, 500),
            (14, 503),
            (15, 500),
            (16, 401),
            (99, 500),
        ];
        for (grpc, http) in table {
            assert_eq!(http_status(tonic::Code::from_i32(grpc)).as_u16(), http, "grpc code {grpc}");
        }
    }

    #[test]
    fn error_codes_agree_with_the_table() {
        assert_eq!(ErrorCode::AlreadyExists.http(), StatusCode::CONFLICT);
        assert_eq!(ErrorCode::FailedPrecondition.grpc(), tonic::Code::FailedPrecondition);
        assert_eq!(ErrorCode::NotFound.status("no user").code(), tonic::Code::NotFound);
    }
}
