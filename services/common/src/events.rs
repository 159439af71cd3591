//! Tenant lifecycle events on Redis (the event types and [`publish`] are prismicx-store's): the
//! operator (and tenant-mgmt) publish them, every service
//! subscribes and drops what it cached about the tenant, so a suspension or a revoked key takes
//! effect at once rather than when the cache TTL runs out.
//!
//! Channel [`TENANT_EVENTS_CHANNEL`]; payload: [`TenantEvent`] as JSON. After a (re)connection the
//! subscriber drops the whole cache, since events may have been missed while disconnected. A
//! service that must act on an event beyond its cache (tenant-mgmt revokes a deleted tenant's
//! keys) passes an [`EventHook`] to [`spawn_listener`]; the hook runs before the cache is dropped,
//! so nothing re-cached in between predates what the hook did.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;

use crate::config::Secret;
use crate::tenancy::Tenancy;

pub use prismicx_store::events::{
    publish, DataDisposition, TenantEvent, TenantEventKind, TENANT_EVENTS_CHANNEL,
};

/// What a service does with a lifecycle event besides dropping its caches.
#[async_trait]
pub trait EventHook: Send + Sync + 'static {
    async fn on_event(&self, event: &TenantEvent);
}

/// Subscribes to lifecycle events for as long as the returned task runs, invalidating
/// `tenancy`'s caches; reconnects with backoff. `on_ready` fires after each subscription.
pub fn spawn_invalidator(
    redis_url: Secret<String>,
    tenancy: Tenancy,
    on_ready: Option<tokio::sync::mpsc::UnboundedSender<()>>,
) -> tokio::task::JoinHandle<()> {
    spawn_listener(redis_url, tenancy, on_ready, None)
}

/// [`spawn_invalidator`] that also hands every event to `hook` (before invalidating).
pub fn spawn_listener(
    redis_url: Secret<String>,
    tenancy: Tenancy,
    on_ready: Option<tokio::sync::mpsc::UnboundedSender<()>>,
    hook: Option<Arc<dyn EventHook>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            match subscribe_once(&redis_url, &tenancy, on_ready.as_ref(), hook.as_deref()).await {
                Ok(()) => tracing::warn!("tenant event subscription ended; reconnecting"),
                Err(e) => tracing::warn!(error = %e, "tenant event subscription failed; retrying"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    })
}

async fn subscribe_once(
    redis_url: &Secret<String>,
    tenancy: &Tenancy,
    on_ready: Option<&tokio::sync::mpsc::UnboundedSender<()>>,
    hook: Option<&dyn EventHook>,
) -> redis::RedisResult<()> {
    let client = redis::Client::open(redis_url.expose().as_str())?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(TENANT_EVENTS_CHANNEL).await?;
    tenancy.invalidate_all();
    if let Some(tx) = on_ready {
        let _ = tx.send(());
    }
    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        let payload: String = match msg.get_payload() {
            Ok(p) => p,
            Err(_) => continue,
        };
        match serde_json::from_str::<TenantEvent>(&payload) {
            Ok(event) => {
                if let Some(hook) = hook {
                    hook.on_event(&event).await;
                }
                tracing::info!(tenant = %event.slug, kind = ?event.kind, "tenant event: cache invalidated");
                tenancy.invalidate(&event.slug);
            }
            Err(e) => tracing::warn!(error = %e, "ignoring malformed tenant event"),
        }
    }
    Ok(())
}
