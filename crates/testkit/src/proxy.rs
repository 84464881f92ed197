//! A loopback TCP proxy in front of a real server. `cut()` drops every open
//! connection and refuses new ones, as a network partition or a server crash
//! would look to the client; `restore()` heals it. It counts the connections
//! it accepted, to prove what reached the server, and those still open, to
//! know when a cut has closed them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Forward,
    Refuse,
}

pub struct TcpProxy {
    address: SocketAddr,
    mode: Arc<watch::Sender<Mode>>,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    accept: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Starts forwarding `127.0.0.1:<random port>` to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().unwrap();
        let mode = Arc::new(watch::channel(Mode::Forward).0);
        let (accepted, open) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let accept = tokio::spawn(accept_loop(listener, upstream, mode.clone(), accepted.clone(), open.clone()));
        Self { address, mode, accepted, open, accept }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Closes every forwarded connection and refuses new ones.
    pub fn cut(&self) {
        self.mode.send_replace(Mode::Refuse);
    }

    pub fn restore(&self) {
        self.mode.send_replace(Mode::Forward);
    }

    /// Connections accepted so far (refused ones included).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections being forwarded now: none once a cut has closed them.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mode: Arc<watch::Sender<Mode>>,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        accepted.fetch_add(1, Ordering::SeqCst);
        match *mode.borrow() {
            // Refused: the client sees the connection close at once.
            Mode::Refuse => drop(client),
            Mode::Forward => {
                open.fetch_add(1, Ordering::SeqCst);
                let (open, mode) = (Open(open.clone()), mode.subscribe());
                tokio::spawn(async move {
                    forward(client, upstream, mode).await;
                    drop(open);
                });
            }
        }
    }
}

/// One forwarded connection, counted in `open` until it ends.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = mode.wait_for(|mode| *mode != Mode::Forward) => {}
    }
}
