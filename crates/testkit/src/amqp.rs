//! A name prefix of its own on the RabbitMQ broker at
//! `MESHWORK_TEST_AMQP_URL`, so tests never see each other's exchanges and
//! queues; what a test declared under it is deleted when it ends.

use std::net::SocketAddr;
use std::sync::Mutex;

use lapin::options::{BasicGetOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};

pub struct TestBroker {
    pub url: String,
    /// Prefix for every exchange and queue name of this test.
    pub prefix: String,
    queues: Mutex<Vec<String>>,
}

impl TestBroker {
    /// `None` (test skipped) when no broker is configured; see [`crate::service_url`].
    pub fn create(test: &str) -> Option<Self> {
        let url = crate::service_url("MESHWORK_TEST_AMQP_URL", test)?;
        let prefix = format!("test.{}.", uuid::Uuid::new_v4().simple());
        Some(Self { url, prefix, queues: Mutex::new(Vec::new()) })
    }

    /// Deletes `queue` (a full name) when the test ends.
    pub fn track(&self, queue: impl Into<String>) {
        self.queues.lock().unwrap().push(queue.into());
    }

    /// The broker's `host:port`, for a [`crate::proxy::TcpProxy`] in front of it.
    pub async fn address(&self) -> SocketAddr {
        let rest = self.url.split_once("://").map_or(self.url.as_str(), |(_, rest)| rest);
        let authority = rest.split('/').next().unwrap_or(rest);
        let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        let host = if host.contains(':') { host.to_owned() } else { format!("{host}:5672") };
        tokio::net::lookup_host(host).await.expect("resolve the broker").next().expect("an address")
    }

    /// The broker URL, reaching it through `address` instead.
    pub fn url_via(&self, address: SocketAddr) -> String {
        let (scheme, rest) = self.url.split_once("://").unwrap_or(("amqp", &self.url));
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        let credentials = authority.rsplit_once('@').map(|(c, _)| format!("{c}@")).unwrap_or_default();
        format!("{scheme}://{credentials}{address}/{path}")
    }

    async fn connect(&self) -> Connection {
        Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .expect("connect to MESHWORK_TEST_AMQP_URL")
    }

    /// Waits until `queue` exists (a consumer has declared it).
    pub async fn wait_for_queue(&self, queue: &str) {
        let connection = std::sync::Arc::new(self.connect().await);
        crate::eventually(&format!("queue {queue} to be declared"), std::time::Duration::from_secs(10), || {
            let connection = connection.clone();
            let queue = queue.to_owned();
            // A failed passive declare closes its channel: one channel per check.
            async move {
                let Ok(channel) = connection.create_channel().await else { return false };
                let passive = QueueDeclareOptions { passive: true, ..Default::default() };
                channel.queue_declare(queue.into(), passive, Default::default()).await.is_ok()
            }
        })
        .await;
    }

    /// Messages waiting in `queue` (0 if it does not exist).
    pub async fn queue_len(&self, queue: &str) -> u32 {
        let connection = self.connect().await;
        let channel = connection.create_channel().await.unwrap();
        let passive = QueueDeclareOptions { passive: true, ..Default::default() };
        match channel.queue_declare(queue.into(), passive, Default::default()).await {
            Ok(queue) => queue.message_count(),
            Err(_) => 0,
        }
    }

    /// Takes every message waiting in `queue` off it.
    pub async fn drain(&self, queue: &str) -> Vec<lapin::message::BasicGetMessage> {
        let connection = self.connect().await;
        let channel = connection.create_channel().await.unwrap();
        let mut messages = Vec::new();
        while let Ok(Some(message)) = channel.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await {
            messages.push(message);
        }
        messages
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let url = self.url.clone();
        let exchange = format!("{}events", self.prefix);
        let queues = std::mem::take(&mut *self.queues.lock().unwrap());
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let cleanup = async {
                let Ok(connection) = Connection::connect(&url, ConnectionProperties::default()).await else { return };
                let Ok(channel) = connection.create_channel().await else { return };
                for queue in queues {
                    let _ = channel.queue_delete(queue.into(), QueueDeleteOptions::default()).await;
                }
                let _ = channel.exchange_delete(exchange.into(), ExchangeDeleteOptions::default()).await;
            };
            // Bounded: a cleanup must never hang the test that is ending. The
            // timer is made inside the runtime (its clock is the runtime's).
            runtime.block_on(async {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(10), cleanup).await;
            });
        });
        let _ = cleanup.join();
    }
}
