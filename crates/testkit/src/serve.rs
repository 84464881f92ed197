//! Serving a platform server on a loopback port of the system's choosing.

use std::net::SocketAddr;

use platform::CancellationToken;
use tokio::net::TcpListener;

/// Serves `server` on `127.0.0.1:0` until `shutdown`; its address.
pub async fn serve(server: platform::Server, shutdown: &CancellationToken) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let address = listener.local_addr().expect("a bound listener has an address");
    tokio::spawn(server.serve(listener, shutdown.clone()));
    address
}
