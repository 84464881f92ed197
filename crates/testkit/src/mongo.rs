//! A fresh MongoDB database per test on the server at
//! `MESHWORK_TEST_MONGO_URL` (CI: SecantusDB), dropped when the test ends.

use mongodb::Client;

pub struct TestMongo {
    url: String,
    name: String,
    client: Client,
}

impl TestMongo {
    /// `None` (test skipped) when no server is configured; see [`crate::service_url`].
    pub async fn create(test: &str) -> Option<Self> {
        let url = crate::service_url("MESHWORK_TEST_MONGO_URL", test)?;
        let name = format!("meshwork_test_{}", uuid::Uuid::new_v4().simple());
        let client = Client::with_uri_str(&url).await.expect("MESHWORK_TEST_MONGO_URL is a MongoDB URL");
        Some(Self { url, name, client })
    }

    pub fn database(&self) -> mongodb::Database {
        self.client.database(&self.name)
    }

    /// A URL naming this test's database, as a service would be configured.
    pub fn url(&self) -> String {
        let (base, query) = self.url.split_once('?').map_or((self.url.as_str(), None), |(b, q)| (b, Some(q)));
        let rest_start = base.find("://").map_or(0, |i| i + 3);
        let host_end = base[rest_start..].find('/').map_or(base.len(), |i| rest_start + i);
        let url = format!("{}/{}", &base[..host_end], self.name);
        match query {
            Some(query) => format!("{url}?{query}"),
            None => url,
        }
    }

    /// The server's `host:port`, for a [`crate::proxy::TcpProxy`] in front of it.
    pub async fn server_address(&self) -> std::net::SocketAddr {
        let rest = self.url.split_once("://").map_or(self.url.as_str(), |(_, rest)| rest);
        let authority = rest.split(['/', '?']).next().unwrap_or(rest);
        let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        let host = if host.contains(':') { host.to_owned() } else { format!("{host}:27017") };
        tokio::net::lookup_host(host).await.expect("resolve the MongoDB host").next().expect("an address")
    }

    /// This test's database URL, reaching the server through `address`.
    /// `directConnection` keeps the driver from following the server's own
    /// idea of its address around the proxy.
    pub fn url_via(&self, address: std::net::SocketAddr) -> String {
        format!("mongodb://{address}/{}?directConnection=true&serverSelectionTimeoutMS=2000", self.name)
    }
}

impl Drop for TestMongo {
    fn drop(&mut self) {
        // A client of its own on a runtime of its own: the test's client
        // needs the test's runtime, which this thread is blocking (a
        // current-thread runtime would never get to run it).
        let (url, name) = (self.url.clone(), self.name.clone());
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                if let Ok(client) = Client::with_uri_str(&url).await {
                    let _ = client.database(&name).drop().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}
