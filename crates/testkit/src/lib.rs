//! Test support shared by meshwork's suites: the real servers the tests talk
//! to (found through `MESHWORK_TEST_*` variables, each test isolated in its
//! own database), a TCP proxy a test can cut to simulate an outage, and
//! servers on loopback ports.
#![forbid(unsafe_code)]

mod access;
pub mod amqp;
pub mod mongo;
pub mod otlp;
pub mod postgres;
pub mod proxy;
mod serve;

pub use access::{SERVICE_SECRET, as_service, as_service_with, settings, settings_with};
pub use serve::serve;

/// The URL in `variable`, or `None` after printing that the test skipped.
/// Under `MESHWORK_REQUIRE_SERVICES=1` (CI) a missing URL fails the test
/// instead, so a skipped real-server test can never pass unnoticed.
pub fn service_url(variable: &str, test: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("MESHWORK_REQUIRE_SERVICES").is_ok_and(|v| v == "1") => {
            panic!("{test}: {variable} is not set, and MESHWORK_REQUIRE_SERVICES=1 requires it")
        }
        _ => {
            eprintln!("{test}: skipped, {variable} is not set (`source scripts/services` sets it)");
            None
        }
    }
}

/// Polls `condition` every 20 ms until it holds, failing the test with
/// `what` after `limit`. For waiting on a state change, never for timing.
pub async fn eventually<F, Fut>(what: &str, limit: std::time::Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Runs each test function once per backend, in one module per backend:
///
/// ```text
/// testkit::backend_tests!(crate::helpers::Backend { sqlite => Sqlite, postgres => Postgres }: [
///     inserted_record_reads_back,
///     duplicate_email_is_refused,
/// ]);
/// ```
///
/// Each `async fn test(backend: Backend, test: &str)` gets the backend and
/// its own name (for naming the test's database and its skip message).
#[macro_export]
macro_rules! backend_tests {
    ($backend:path { $($module:ident => $variant:ident),+ $(,)? }: $tests:tt) => {
        $( $crate::backend_tests!(@module $backend, $module, $variant, $tests); )+
    };
    (@module $backend:path, $module:ident, $variant:ident, [$($test:ident),* $(,)?]) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $test() {
                    super::$test(<$backend>::$variant, stringify!($test)).await
                }
            )*
        }
    };
}
