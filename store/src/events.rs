//! Tenant lifecycle events on Redis: what the operator (and tenant-mgmt) publish when a tenant
//! is provisioned, changed, suspended, resumed or deleted, or its keys change.
//!
//! Channel [`TENANT_EVENTS_CHANNEL`]; payload: [`TenantEvent`] as JSON. The subscriber that
//! drops a service's caches on each event lives in the services' HTTP layer
//! (prismicx-service-common's `events`), next to the caches it drops.

use chrono::{DateTime, Utc};
use prismicx_tenancy::TenantSlug;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
    /// On `deleted`: whether the tenant's data was kept (`Retain`) or is to be removed
    /// (`Delete`) — the services that keep data outside the databases (vector-store's files)
    /// remove theirs on `deleted`. Absent on every other event, and from publishers that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataDisposition>,
}

/// What becomes of a deleted tenant's data (its `deletionPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DataDisposition {
    Retained,
    Deleted,
}

impl TenantEvent {
    pub fn new(kind: TenantEventKind, tenant_id: Uuid, slug: TenantSlug) -> Self {
        TenantEvent {
            kind,
            tenant_id,
            slug,
            at: Utc::now(),
            data: None,
        }
    }

    /// The `deleted` event of a tenant whose data was kept or removed.
    pub fn deleted(tenant_id: Uuid, slug: TenantSlug, data: DataDisposition) -> Self {
        TenantEvent {
            data: Some(data),
            ..TenantEvent::new(TenantEventKind::Deleted, tenant_id, slug)
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
