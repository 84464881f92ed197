//! One trivial unary RPC (`grpc.health.v1.Health/Check`) served three ways,
//! for `scripts/bench-peers`: by tonic's own server (`bare`), and by
//! `platform::Server` with every layer a meshwork service has (`platform`:
//! access rules, grpc-timeout, RPC metrics and spans, edge limits) and its
//! telemetry as a service starts it (with no subscriber, tracing formats
//! every span for the `log` crate instead: 87,800 instructions per call
//! under callgrind against 78,700, work no service does), on the
//! shared runtime as a service's default is, or on a serving thread per
//! core as the gateway's is (`platform-threads`).
//!
//!   cargo run --release -p meshwork-platform --example trivial_server -- bare|platform|platform-threads 127.0.0.1:PORT

use std::net::SocketAddr;

// The allocator every meshwork process runs with (crates/meshwork/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let address: SocketAddr =
        args.next().ok_or("usage: trivial_server bare|platform|platform-threads ADDRESS")?.parse()?;
    match mode.as_str() {
        "bare" => {
            // Without a subscriber, tracing hands every span h2 and tower
            // open to the `log` crate, formatting its fields: work a bare
            // server need not do, so none is done here.
            tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default())?;
            let (_, health) = tonic_health::server::health_reporter();
            tonic::transport::Server::builder().add_service(health).serve(address).await?;
        }
        "platform" | "platform-threads" => {
            // As a service runs in the bench: logs at warn, no span export.
            let settings = platform::telemetry::TelemetrySettings {
                service_name: None,
                log_format: platform::telemetry::LogFormat::Json,
                log_filter: "warn".to_owned(),
                otlp_endpoint: None,
            };
            let _telemetry = platform::telemetry::init(&settings, "trivial")?;
            let listener = tokio::net::TcpListener::bind(address).await?;
            let shutdown = platform::CancellationToken::new();
            let threads = if mode == "platform" { 0 } else { platform::serving_threads::per_core() };
            platform::Server::new("trivial").serving_threads(threads).serve(listener, shutdown).await?;
        }
        other => return Err(format!("unknown mode {other:?}: bare, platform or platform-threads").into()),
    }
    Ok(())
}
