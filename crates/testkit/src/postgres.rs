//! A fresh PostgreSQL database per test, dropped when the test ends.

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// A database of its own on the server at `MESHWORK_TEST_POSTGRES_URL`.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// `None` (test skipped) when no server is configured; see [`crate::service_url`].
    pub async fn create(test: &str) -> Option<Self> {
        let admin_url = crate::service_url("MESHWORK_TEST_POSTGRES_URL", test)?;
        let name = format!("meshwork_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url).await.expect("connect to MESHWORK_TEST_POSTGRES_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let _ = admin.close().await;
        let url = with_database(&admin_url, &name);
        Some(Self { admin_url, name, url })
    }

    /// The URL of this test's database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's `host:port`, for putting a [`crate::proxy::TcpProxy`] in front of it.
    pub async fn server_address(&self) -> std::net::SocketAddr {
        let authority = authority(&self.url);
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        let host_port = if host_port.contains(':') { host_port.to_owned() } else { format!("{host_port}:5432") };
        tokio::net::lookup_host(&host_port).await.expect("resolve the PostgreSQL host").next().expect("an address")
    }

    /// This test's database URL, reaching the server through `address` instead.
    pub fn url_via(&self, address: std::net::SocketAddr) -> String {
        let authority = authority(&self.url);
        let replaced = match authority.rsplit_once('@') {
            Some((credentials, _)) => format!("{credentials}@{address}"),
            None => address.to_string(),
        };
        self.url.replacen(authority, &replaced, 1)
    }
}

/// The `user:pass@host:port` part of a URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // The name is generated above (no injection). Drop runs outside async code: a short-lived runtime on its own
        // thread does the cleanup. FORCE ends connections the test left open.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                        .execute(&mut admin)
                        .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// `admin_url` with its database replaced by `database`.
fn with_database(admin_url: &str, database: &str) -> String {
    let (base, query) = admin_url.split_once('?').map_or((admin_url, None), |(b, q)| (b, Some(q)));
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_is_replaced_in_the_url() {
        assert_eq!(with_database("postgres://u@h:5432/postgres", "t1"), "postgres://u@h:5432/t1");
        assert_eq!(with_database("postgres://u@h:5432", "t1"), "postgres://u@h:5432/t1");
        assert_eq!(with_database("postgres://u@h/db?sslmode=disable", "t1"), "postgres://u@h/t1?sslmode=disable");
    }
}
