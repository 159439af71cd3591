//! Lifecycle events. Publishing: when a key is issued or revoked, every service must drop what it
//! cached about the tenant's keys at once rather than when the cache entry expires. Receiving:
//! [`RevokeOnDelete`] revokes every key of a tenant the operator deleted, so a tenant deleted
//! with `Retain` and created again under the same id does not get its old keys back.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use prismicx_service_common::config::Secret;
use prismicx_service_common::events::{self, EventHook, TenantEvent, TenantEventKind};
use prismicx_service_common::tenancy::Tenancy;

use crate::keys::ApiKeys;
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

/// On a `deleted` event, revokes the tenant's keys issued up to the event.
#[derive(Debug, Clone)]
pub struct RevokeOnDelete(pub ApiKeys);

#[async_trait]
impl EventHook for RevokeOnDelete {
    async fn on_event(&self, event: &TenantEvent) {
        if event.kind != TenantEventKind::Deleted {
            return;
        }
        // Every replica does this; revoking is idempotent. Should it fail, the key check against
        // the registry entry's creation still refuses the old keys.
        match self.0.revoke_all(event.tenant_id, event.at).await {
            Ok(n) => {
                tracing::info!(tenant = %event.slug, revoked = n, "deleted tenant's API keys revoked")
            }
            Err(e) => {
                tracing::warn!(tenant = %event.slug, error = %e, "deleted tenant's API keys not revoked")
            }
        }
    }
}

/// Subscribes `tenancy` to lifecycle events, with [`RevokeOnDelete`] over `keys`.
pub fn spawn_listener(
    redis_url: Secret<String>,
    tenancy: Tenancy,
    keys: ApiKeys,
    on_ready: Option<tokio::sync::mpsc::UnboundedSender<()>>,
) -> tokio::task::JoinHandle<()> {
    events::spawn_listener(
        redis_url,
        tenancy,
        on_ready,
        Some(Arc::new(RevokeOnDelete(keys))),
    )
}
