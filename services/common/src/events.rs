//! Tenant lifecycle events on Redis: the operator (and tenant-mgmt) publish them, every service
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
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::Secret;
use crate::tenancy::{Tenancy, TenantSlug};

/// The Redis channel of tenant lifecycle events.
pub const TENANT_EVENTS_CHANNEL: &str = "prismicx:tenant-events";

/// What happened to a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TenantEventKind {
    Provisioned,
    Updated,
    Suspended,
    Resumed,
    Deleted,
    KeysChanged,
}

/// A lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantEvent {
    pub kind: TenantEventKind,
    pub tenant_id: Uuid,
    pub slug: TenantSlug,
    pub at: DateTime<Utc>,
}

impl TenantEvent {
    pub fn new(kind: TenantEventKind, tenant_id: Uuid, slug: TenantSlug) -> Self {
        TenantEvent {
            kind,
            tenant_id,
            slug,
            at: Utc::now(),
        }
    }
}

/// Publishes `event`; returns how many subscribers received it.
pub async fn publish<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    event: &TenantEvent,
) -> redis::RedisResult<i64> {
    let payload = serde_json::to_string(event).unwrap_or_default();
    redis::cmd("PUBLISH")
        .arg(TENANT_EVENTS_CHANNEL)
        .arg(payload)
        .query_async(conn)
        .await
}

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
