//! Publishing lifecycle events: when a key is revoked, every service must drop it from its
//! cache at once rather than when the cache entry expires.

use std::time::Duration;

use prismicx_service_common::config::Secret;
use prismicx_service_common::events::{self, TenantEvent};
use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

/// Publishes [`TenantEvent`]s on Redis, connecting on first use and reconnecting as needed.
#[derive(Clone)]
pub struct EventPublisher {
    client: redis::Client,
    conn: std::sync::Arc<OnceCell<ConnectionManager>>,
}

impl std::fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPublisher").finish_non_exhaustive()
    }
}

/// How long a publish may take before the request goes on without it.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

impl EventPublisher {
    pub fn new(url: &Secret<String>) -> anyhow::Result<Self> {
        Ok(EventPublisher {
            client: redis::Client::open(url.expose().as_str())
                .map_err(|_| anyhow::anyhow!("REDIS_URL is not a valid Redis URL"))?,
            conn: std::sync::Arc::new(OnceCell::new()),
        })
    }

    /// Publishes `event`; a failure is logged, not returned: the change it announces has been
    /// made, and services still drop the stale entry when its TTL runs out.
    pub async fn publish(&self, event: TenantEvent) {
        let attempt = async {
            let conn = self
                .conn
                .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
                .await?;
            let mut conn = conn.clone();
            events::publish(&mut conn, &event).await
        };
        match tokio::time::timeout(PUBLISH_TIMEOUT, attempt).await {
            Ok(Ok(receivers)) => {
                tracing::info!(tenant = %event.slug, kind = ?event.kind, receivers, "lifecycle event published")
            }
            Ok(Err(e)) => {
                tracing::warn!(tenant = %event.slug, kind = ?event.kind, error = %e, "lifecycle event not published; caches expire by TTL")
            }
            Err(_) => {
                tracing::warn!(tenant = %event.slug, kind = ?event.kind, "lifecycle event timed out; caches expire by TTL")
            }
        }
    }
}
