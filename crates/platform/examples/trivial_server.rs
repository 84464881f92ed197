//! One trivial unary RPC (`grpc.health.v1.Health/Check`) served two ways,
//! for `scripts/bench-peers`: by tonic's own server (`bare`), and by
//! `platform::Server` with every layer a meshwork service has (`platform`:
//! access rules, grpc-timeout, RPC metrics and spans, edge limits).
//!
//!   cargo run --release -p meshwork-platform --example trivial_server -- bare|platform 127.0.0.1:PORT

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let address: SocketAddr = args.next().ok_or("usage: trivial_server bare|platform ADDRESS")?.parse()?;
    match mode.as_str() {
        "bare" => {
            let (_, health) = tonic_health::server::health_reporter();
            tonic::transport::Server::builder().add_service(health).serve(address).await?;
        }
        "platform" => {
            let listener = tokio::net::TcpListener::bind(address).await?;
            let shutdown = platform::CancellationToken::new();
            platform::Server::new("trivial").serve(listener, shutdown).await?;
        }
        other => return Err(format!("unknown mode {other:?}: bare or platform").into()),
    }
    Ok(())
}
