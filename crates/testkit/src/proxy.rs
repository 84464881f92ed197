//! A loopback TCP proxy in front of a real server. `cut()` drops every open
//! connection and refuses new ones, as a network partition or a server crash
//! would look to the client; `restore()` heals it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpProxy {
    address: SocketAddr,
    up: Arc<watch::Sender<bool>>,
    accept: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Starts forwarding `127.0.0.1:<random port>` to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().unwrap();
        let up = Arc::new(watch::channel(true).0);
        let accept = tokio::spawn(accept_loop(listener, upstream, up.clone()));
        Self { address, up, accept }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Closes every forwarded connection and refuses new ones.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, up: Arc<watch::Sender<bool>>) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        if !*up.borrow() {
            drop(client); // refused: the client sees the connection close at once
            continue;
        }
        tokio::spawn(forward(client, upstream, up.subscribe()));
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr, mut up: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = up.wait_for(|up| !*up) => {}
    }
}
