//! The service's side of the engine: every call runs on the blocking pool
//! ([`tokio::task::spawn_blocking`]), engine errors become problem documents, a tenant's scope
//! is made right before its first call ([`Vectors::prepare`]), and the metrics are kept.
//!
//! A tenant's scope is its tier (`standard` → [`Scope::Shared`], `dedicated` →
//! [`Scope::Dedicated`]). Before the first request of a tenant after start-up, and again after
//! its tier changed, [`Vectors::prepare`] moves its collections into that scope
//! ([`Engine::ensure_scope`]), drops the tenant's cached metadata, and sweeps its garbage
//! ([`crate::garbage`]); the scope it prepared is remembered until a lifecycle event of the
//! tenant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prismicx_service_common::mongo::MongoStore;
use prismicx_service_common::tenancy::{Tenancy, TenantPlacement, Tier};
use prismicx_service_common::ApiError;
use prismicx_tenancy::VectorQuota;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use uuid::Uuid;

use crate::catalog::{Catalog, CollectionMeta};
use crate::engine::{CollectionKey, Engine, EngineError, Quota, Scope, Usage};

/// The engine scope of a tenant's tier.
pub fn scope_of(tier: Tier) -> Scope {
    match tier {
        Tier::Standard => Scope::Shared,
        Tier::Dedicated => Scope::Dedicated,
    }
}

/// The engine key of a tenant's collection.
pub fn key_of(tenant: &TenantPlacement, meta: &CollectionMeta) -> CollectionKey {
    CollectionKey {
        scope: scope_of(tenant.tier),
        tenant: tenant.id,
        collection: meta.id,
    }
}

/// The quota field a refused write names.
fn quota_field(what: &str) -> &'static str {
    match what {
        w if w.contains("collection") => "quota.maxCollections",
        w if w.contains("point") => "quota.maxPoints",
        _ => "quota.maxBytes",
    }
}

/// An engine error as the client sees it; `collection` names the collection of the call.
pub fn api_error(e: EngineError, collection: &str) -> ApiError {
    match e {
        EngineError::NotFound => crate::catalog::not_found(collection),
        EngineError::Exists => ApiError::conflict(
            "name",
            format!("a collection named {collection} already exists"),
        ),
        EngineError::Dimension { expected, got } => ApiError::invalid(
            "vector",
            format!("has dimension {got}, the collection's is {expected}"),
        ),
        EngineError::NotFinite => ApiError::invalid("vector", "holds a value that is not finite"),
        EngineError::Quota {
            what,
            would_be,
            limit,
        } => ApiError::QuotaExceeded {
            detail: format!(
                "the tenant's quota is exceeded: {what} would be {would_be}, the limit is {limit}; nothing was written"
            ),
            field: quota_field(what).into(),
        },
        EngineError::Invalid(m) => ApiError::invalid("body", m),
        other => ApiError::internal(anyhow::anyhow!("vector engine: {other}")),
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PlanLabels {
    plan: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant_id: String,
}

/// The service's own metrics (registered in the shell's registry).
#[derive(Debug, Clone, Default)]
pub struct VectorMetrics {
    resident_collections: Gauge,
    resident_bytes: Gauge,
    queries: Family<PlanLabels, Counter>,
    tenant_points: Family<TenantLabels, Gauge>,
    tenant_bytes: Family<TenantLabels, Gauge>,
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl VectorMetrics {
    pub fn register(&self, m: &prismicx_service_common::metrics::Metrics) {
        m.register(
            "vector_resident_collections",
            "Collections whose index is in memory",
            self.resident_collections.clone(),
        );
        m.register(
            "vector_resident_bytes",
            "Bytes of the indexes in memory",
            self.resident_bytes.clone(),
        );
        m.register(
            "vector_queries",
            "Nearest-neighbour queries answered, by plan",
            self.queries.clone(),
        );
        m.register(
            "vector_tenant_points",
            "Points of a tenant across its collections (after its last write)",
            self.tenant_points.clone(),
        );
        m.register(
            "vector_tenant_bytes",
            "Bytes on disk of a tenant's collections (after its last write)",
            self.tenant_bytes.clone(),
        );
    }

    /// Counts a query answered by `plan`.
    pub fn query(&self, plan: &str) {
        self.queries
            .get_or_create(&PlanLabels { plan: plan.into() })
            .inc();
    }

    fn usage(&self, tenant: Uuid, usage: Usage) {
        let labels = TenantLabels {
            tenant_id: tenant.to_string(),
        };
        self.tenant_points
            .get_or_create(&labels)
            .set(gauge_value(usage.points));
        self.tenant_bytes
            .get_or_create(&labels)
            .set(gauge_value(usage.bytes));
    }
}

/// The engine, the metadata, and what the service remembers of each tenant.
#[derive(Debug)]
pub struct Vectors {
    pub engine: Arc<Engine>,
    pub catalog: Catalog,
    /// The scope each tenant was prepared in since start-up.
    prepared: Mutex<HashMap<Uuid, Scope>>,
    /// A tenant's quota when its own sets nothing.
    pub default_quota: VectorQuota,
    pub metrics: VectorMetrics,
}

impl Vectors {
    pub fn new(engine: Engine, default_quota: VectorQuota) -> Self {
        Vectors {
            engine: Arc::new(engine),
            catalog: Catalog::default(),
            prepared: Mutex::new(HashMap::new()),
            default_quota,
            metrics: VectorMetrics::default(),
        }
    }

    /// Runs `call` on the engine on the blocking pool, then refreshes the resident gauges.
    pub async fn run<T, F>(&self, call: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Engine) -> Result<T, ApiError> + Send + 'static,
    {
        let engine = self.engine.clone();
        let metrics = self.metrics.clone();
        tokio::task::spawn_blocking(move || {
            let out = call(&engine);
            let resident = engine.resident();
            metrics
                .resident_collections
                .set(gauge_value(resident.collections));
            metrics.resident_bytes.set(gauge_value(resident.bytes));
            out
        })
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("vector engine task: {e}")))?
    }

    /// Runs `call` on collection `meta` of `tenant`; its engine error names the collection.
    pub async fn on<T, F>(
        &self,
        tenant: &TenantPlacement,
        meta: &CollectionMeta,
        call: F,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Engine, &CollectionKey) -> Result<T, EngineError> + Send + 'static,
    {
        let key = key_of(tenant, meta);
        let name = meta.name.clone();
        self.run(move |e| call(e, &key).map_err(|err| api_error(err, &name)))
            .await
    }

    /// A write's call on collection `meta`, then the tenant's usage gauges.
    pub async fn write<T, F>(
        &self,
        tenant: &TenantPlacement,
        meta: &CollectionMeta,
        call: F,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Engine, &CollectionKey) -> Result<T, EngineError> + Send + 'static,
    {
        let out = self.on(tenant, meta, call).await?;
        self.refresh_usage(tenant).await;
        Ok(out)
    }

    /// Sets the tenant's usage gauges (a failure only leaves them as they were).
    pub async fn refresh_usage(&self, tenant: &TenantPlacement) {
        let (scope, id) = (scope_of(tenant.tier), tenant.id);
        if let Ok(usage) = self
            .run(move |e| e.usage(scope, id).map_err(|err| api_error(err, "")))
            .await
        {
            self.metrics.usage(id, usage);
        }
    }

    /// The tenant's quota: its own (from the directory) with unset limits taken from the
    /// service's default.
    pub async fn quota(
        &self,
        tenancy: &Tenancy,
        tenant: &TenantPlacement,
    ) -> Result<VectorQuota, ApiError> {
        let own = tenancy
            .resolve_record(&tenant.slug)
            .await?
            .and_then(|r| r.vector_quota)
            .unwrap_or_default();
        Ok(own.or(self.default_quota))
    }

    /// Makes sure `tenant`'s collections are in its scope before its first request after
    /// start-up or a tier change (see the module docs).
    pub async fn prepare(
        &self,
        store: &MongoStore,
        tenant: &TenantPlacement,
    ) -> Result<(), ApiError> {
        let scope = scope_of(tenant.tier);
        if self.prepared_scope(tenant.id) == Some(scope) {
            return Ok(());
        }
        let id = tenant.id;
        self.run(move |e| e.ensure_scope(id, scope).map_err(|err| api_error(err, "")))
            .await?;
        self.catalog.forget_tenant(id);
        if let Err(e) = crate::garbage::sweep(self, store, tenant).await {
            tracing::warn!(tenant = %tenant.slug, error = format!("{e:#}"), "garbage sweep of the tenant failed; it runs again on its next preparation");
        }
        self.prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, scope);
        Ok(())
    }

    fn prepared_scope(&self, tenant: Uuid) -> Option<Scope> {
        self.prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&tenant)
            .copied()
    }

    /// Forgets what is cached of `tenant` (its metadata and its prepared scope).
    pub fn forget_tenant(&self, tenant: Uuid) {
        self.catalog.forget_tenant(tenant);
        self.prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&tenant);
    }
}

/// The engine's quota of a tenant's [`VectorQuota`].
pub fn engine_quota(q: VectorQuota) -> Quota {
    Quota {
        max_collections: q.max_collections,
        max_points: q.max_points,
        max_bytes: q.max_bytes,
    }
}
