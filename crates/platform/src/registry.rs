//! Service registration in etcd: an instance puts `{prefix}{component}/{id}
//! = {url}` under a lease it keeps alive, so the key vanishes by itself when
//! the instance dies, and it revokes the lease when it shuts down. The
//! gateway watches the prefix (see the gateway's discovery).

use std::time::Duration;

use etcd_client::{Client, PutOptions};
use tokio_util::sync::CancellationToken;

/// Where and how to register.
#[derive(Debug, Clone)]
pub struct Registration {
    pub etcd_endpoints: Vec<String>,
    /// Key prefix, such as `/meshwork/services/`.
    pub prefix: String,
    /// The component (`products`): the directory the instance registers in.
    pub component: String,
    /// The URL the others reach this instance at.
    pub url: String,
    /// Lease time to live: how long a dead instance stays listed.
    pub ttl: Duration,
}

impl Registration {
    fn key(&self, instance: &str) -> String {
        format!("{}{}/{instance}", self.prefix, self.component)
    }
}

/// Keeps the instance registered until `shutdown`, re-registering after any
/// etcd outage; deregisters on shutdown.
pub async fn register_until(registration: Registration, shutdown: CancellationToken) {
    let instance = uuid::Uuid::new_v4().simple().to_string();
    let mut delay = Duration::from_millis(200);
    loop {
        match keep_registered(&registration, &instance, &shutdown).await {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(%error, component = %registration.component, "etcd registration lost; retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

async fn keep_registered(
    registration: &Registration,
    instance: &str,
    shutdown: &CancellationToken,
) -> Result<(), etcd_client::Error> {
    let mut client = Client::connect(&registration.etcd_endpoints, None).await?;
    let ttl = registration.ttl.as_secs().max(2) as i64;
    let lease = client.lease_grant(ttl, None).await?.id();
    let key = registration.key(instance);
    client.put(key.as_str(), registration.url.as_str(), Some(PutOptions::new().with_lease(lease))).await?;
    tracing::info!(%key, url = %registration.url, "registered in etcd");
    let (mut keeper, mut answers) = client.lease_keep_alive(lease).await?;
    let every = Duration::from_secs((ttl / 3).max(1) as u64);
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {
                keeper.keep_alive().await?;
                match answers.message().await? {
                    Some(answer) if answer.ttl() > 0 => {}
                    _ => return Err(etcd_client::Error::LeaseKeepAliveError("the lease expired".to_owned())),
                }
            }
            () = shutdown.cancelled() => {
                let _ = client.lease_revoke(lease).await;
                tracing::info!(%key, "deregistered from etcd");
                return Ok(());
            }
        }
    }
}
