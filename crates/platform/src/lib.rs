//! Process plumbing shared by every meshwork binary: layered configuration,
//! telemetry (logs, OTLP traces, W3C propagation), Prometheus metrics, health
//! and readiness, the one-port gRPC + HTTP server with reflection, graceful
//! shutdown, and the error-code table.
#![forbid(unsafe_code)]

pub mod access;
pub mod call_policy;
pub mod config;
pub mod connections;
#[cfg(feature = "database")]
pub mod database;
pub mod db_trace;
pub mod discovery;
pub mod error_code;
pub mod forwarded_grpc;
pub mod grpc_timeout;
pub mod health;
pub mod id;
mod json_log;
pub mod metrics;
pub mod pagination;
pub mod reflection;
#[cfg(feature = "etcd")]
pub mod registry;
pub mod rpc_telemetry;
pub mod server;
pub mod serving_threads;
pub mod settings;
pub mod shutdown;
pub mod start;
pub mod telemetry;
mod trace_ids;
pub mod validation;
mod watched;

pub use config::{ConfigError, EXIT_INVALID_CONFIG, Env};
pub use error_code::ErrorCode;
pub use server::{ServeError, Server};
pub use settings::Settings;
pub use start::StartError;
pub use tokio_util::sync::CancellationToken;
