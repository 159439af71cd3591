//! The garbage rule: engine data of a collection that has no metadata document is removed, once
//! the collection is older than [`MIN_AGE`].
//!
//! A create writes the document first and the engine data second, a delete drops the engine
//! data first and the document second, so in normal operation every collection on disk has its
//! document. Data without one is left by a create whose engine step failed after the document
//! was removed again, a crash between the two steps of a delete, or a tenant deleted with the
//! `Delete` policy (the operator drops the documents, the service drops the files; with
//! `Retain` the documents stay, so the data stays). Collection ids are UUIDv7, so a
//! collection's age is its id's timestamp; younger ones are skipped, since their create may
//! still be in flight (its document written after the sweep read the documents).
//!
//! When it runs:
//! - for one tenant, when [`Vectors::prepare`] first sees it after start-up or a tier change
//!   (both tiers: the tenant's placement names its database);
//! - for every `standard` tenant with data under `shared/` at start-up ([`sweep_at_start`]),
//!   but only for a tenant that still has at least one document in `vector_store_system`: a
//!   tenant with none may have moved to `dedicated` while the service was down (its documents
//!   are then in its own database, which the start-up cannot name without the slug), and is
//!   swept on its first request instead;
//! - on a tenant's `deleted` lifecycle event ([`SweepOnDelete`]), for both scopes.
//!
//! The documents are always read after the engine's list, and a document that cannot be read
//! (the database is unreachable, the service's grant on a dedicated database was revoked)
//! stops the sweep: nothing is removed on a guess.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use prismicx_service_common::events::{EventHook, TenantEvent, TenantEventKind};
use prismicx_service_common::mongo::{MongoStore, TenantCollection};
use prismicx_service_common::tenancy::{TenantPlacement, TenantState, Tier};
use uuid::Uuid;

use crate::catalog::{Catalog, CollectionDoc};
use crate::engine::{CollectionKey, Scope};
use crate::vectors::{api_error, scope_of, Vectors};
use crate::COLLECTIONS;

/// Collections younger than this are never swept.
pub const MIN_AGE: Duration = Duration::from_secs(60);

/// Whether collection `id` is older than [`MIN_AGE`] at `now` (ids without a timestamp, which
/// the service never makes, count as old).
pub fn old_enough(id: Uuid, now: std::time::SystemTime) -> bool {
    let Some(ts) = id.get_timestamp() else {
        return true;
    };
    let (secs, nanos) = ts.to_unix();
    let created = std::time::UNIX_EPOCH + Duration::new(secs, nanos);
    now.duration_since(created).is_ok_and(|age| age >= MIN_AGE)
}

/// Removes the engine data of `tenant`'s collections (in its tier's scope) that have no
/// document; returns how many.
pub async fn sweep(
    vectors: &Vectors,
    store: &MongoStore,
    tenant: &TenantPlacement,
) -> anyhow::Result<u64> {
    let scope = scope_of(tenant.tier);
    let on_disk = collections_on_disk(vectors, scope, tenant.id).await?;
    if on_disk.is_empty() {
        return Ok(0);
    }
    let documented = Catalog::ids(store, tenant).await?;
    drop_orphans(vectors, scope, tenant.id, on_disk, &documented).await
}

async fn collections_on_disk(
    vectors: &Vectors,
    scope: Scope,
    tenant: Uuid,
) -> anyhow::Result<Vec<Uuid>> {
    vectors
        .run(move |e| {
            e.collections_of(scope, tenant)
                .map_err(|err| api_error(err, ""))
        })
        .await
        .map_err(|e| anyhow::anyhow!("listing the tenant's collections: {e}"))
}

async fn drop_orphans(
    vectors: &Vectors,
    scope: Scope,
    tenant: Uuid,
    on_disk: Vec<Uuid>,
    documented: &std::collections::HashSet<Uuid>,
) -> anyhow::Result<u64> {
    let now = std::time::SystemTime::now();
    let orphans: Vec<Uuid> = on_disk
        .into_iter()
        .filter(|id| !documented.contains(id) && old_enough(*id, now))
        .collect();
    let mut dropped = 0;
    for collection in orphans {
        let key = CollectionKey {
            scope,
            tenant,
            collection,
        };
        let outcome = vectors
            .run(move |e| match e.drop_collection(&key) {
                Ok(()) => Ok(true),
                Err(crate::engine::EngineError::NotFound) => Ok(false),
                Err(err) => Err(api_error(err, "")),
            })
            .await;
        match outcome {
            Ok(true) => {
                dropped += 1;
                tracing::info!(%tenant, %collection, "dropped the data of a collection without metadata");
            }
            Ok(false) => {}
            Err(e) => anyhow::bail!("dropping collection {collection}: {e}"),
        }
    }
    Ok(dropped)
}

/// The tenant ids with a directory under `<data_dir>/shared/` (the engine's documented layout).
fn shared_tenants(data_dir: &std::path::Path) -> Vec<Uuid> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("shared")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| Uuid::parse_str(n).ok()))
        .collect()
}

/// The start-up sweep of every `standard` tenant with data (see the module docs); returns how
/// many collections it dropped.
pub async fn sweep_at_start(
    vectors: &Vectors,
    store: &MongoStore,
    data_dir: &std::path::Path,
) -> anyhow::Result<u64> {
    let dir = data_dir.to_path_buf();
    let tenants = tokio::task::spawn_blocking(move || shared_tenants(&dir)).await?;
    let mut dropped = 0;
    for tenant in tenants {
        let on_disk = collections_on_disk(vectors, Scope::Shared, tenant).await?;
        if on_disk.is_empty() {
            continue;
        }
        let docs: TenantCollection<CollectionDoc> =
            TenantCollection::new(&store.system_database(), COLLECTIONS, tenant);
        let documented: std::collections::HashSet<Uuid> = docs
            .find(mongodb::bson::doc! {}, None)
            .await?
            .into_iter()
            .map(|d| Uuid::from_bytes(d.id.bytes()))
            .collect();
        if documented.is_empty() {
            continue;
        }
        dropped += drop_orphans(vectors, Scope::Shared, tenant, on_disk, &documented).await?;
    }
    Ok(dropped)
}

/// On a tenant's `deleted` event: forgets the tenant and sweeps both of its scopes. Any other
/// event only forgets what is cached of it (a tier change is prepared on its next request).
#[derive(Debug, Clone)]
pub struct SweepOnDelete {
    pub vectors: Arc<Vectors>,
    pub store: MongoStore,
}

#[async_trait]
impl EventHook for SweepOnDelete {
    async fn on_event(&self, event: &TenantEvent) {
        self.vectors.forget_tenant(event.tenant_id);
        if event.kind != TenantEventKind::Deleted {
            return;
        }
        for tier in [Tier::Standard, Tier::Dedicated] {
            let placement = TenantPlacement {
                id: event.tenant_id,
                slug: event.slug.clone(),
                tier,
                state: TenantState::Deleting,
            };
            match sweep(&self.vectors, &self.store, &placement).await {
                Ok(n) => {
                    tracing::info!(tenant = %event.slug, ?tier, dropped = n, "deleted tenant swept")
                }
                Err(e) => {
                    tracing::warn!(tenant = %event.slug, ?tier, error = format!("{e:#}"), "deleted tenant not swept; its data stays")
                }
            }
        }
    }
}
