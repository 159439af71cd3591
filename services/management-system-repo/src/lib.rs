//! management-system-repo: the registry of a PrismicX tenant's management systems — systems,
//! their versions and the relations between them (PostgreSQL `management_system_repository`) —
//! and each system's versioned configurations (MongoDB `config_db`).
//!
//! Data flow: a request passes the shared HTTP shell (auth, tenant resolution) into a handler in
//! [`routes`], which validates its input with [`domain`] and then:
//!
//! - for systems, versions and relations, opens the tenant's transaction on
//!   `management_system_repository` through PgBouncer ([`TenantDb::begin`]), runs the SQL in
//!   `repo` and commits; the whole unit of work is retried on serialization failures and
//!   connection errors ([`retry`](prismicx_service_common::pg::retry)). Tenant rows live in the tenant's schema `tenant_<slug>` under
//!   forced row-level security; [`migrations`] is the schema the operator applies.
//! - for configurations, first locks the system's row in PostgreSQL (`FOR SHARE`: the system
//!   exists, belongs to the tenant, and cannot be deleted meanwhile), checks its `configSchema`
//!   is the one the configuration was validated against beforehand (with [`schema`], on the
//!   blocking pool, outside any transaction), then writes the new version
//!   to the tenant's `configurations` collection through a
//!   [`TenantCollection`](prismicx_service_common::mongo::TenantCollection) (`configs`): the
//!   shared collection of `config_db` for `standard` tenants, the tenant's own database
//!   `config_db__<slug>` on mongodb-tenant for `dedicated` ones. A unique index on
//!   `(tenant_id, system_id, version)` keeps version numbers unique and gapless.
//!
//! Deleting a system deletes its configurations first, then the row, while holding the row's
//! lock (see `docs/services/management-system-repo.md`).
//!
//! Ids: every id is a UUID. PostgreSQL stores them as `uuid`; MongoDB stores `tenant_id` and
//! `system_id` as BSON UUIDs (binary subtype 4).

pub mod config;
mod configs;
pub mod diff;
pub mod domain;
pub mod migrations;
pub mod openapi;
mod repo;
pub mod routes;
pub mod schema;

use std::sync::Arc;

use prismicx_service_common::http::ReadinessCheck;
use prismicx_service_common::mongo::MongoStore;
use prismicx_service_common::pg::TenantDb;
pub use prismicx_service_common::service::AppSettings;
use prismicx_service_common::service::{self, ServiceState};
use prismicx_service_common::tenancy::Tenancy;

pub use config::Config;
pub use schema::gate::{GateSettings, SchemaGate};

/// The service's Kubernetes name, also its name in logs and metrics.
pub const SERVICE: &str = "management-system-repo";

/// The service's MongoDB layout (declared with the tenancy contract, which the operator provisions).
pub use prismicx_tenancy::services::management_system_repo::{CONFIGURATIONS, MONGO};

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub db: Arc<TenantDb>,
    pub store: MongoStore,
    pub tenancy: Tenancy,
    /// Where configuration schemas are compiled and configurations validated.
    pub schemas: Arc<SchemaGate>,
}

impl ServiceState for AppState {
    fn tenancy(&self) -> &Tenancy {
        &self.tenancy
    }

    fn readiness(&self) -> Vec<Arc<dyn ReadinessCheck>> {
        vec![self.db.clone(), Arc::new(self.store.clone())]
    }

    async fn close(&self) {
        self.db.close().await;
    }
}

prismicx_service_common::service_entry_points!(ManagementSystemRepo, connect: |config, tenancy| connect(&config, tenancy));

/// The state of a running service: the tenant database pools (opened lazily), the MongoDB store
/// and the schema gate.
async fn connect(config: &Config, tenancy: Tenancy) -> anyhow::Result<AppState> {
    Ok(AppState {
        db: Arc::new(TenantDb::connect_lazy(config.db.settings())),
        store: service::mongo_store(&config.mongo, MONGO, SERVICE).await?,
        tenancy,
        schemas: Arc::new(SchemaGate::new(config.schema_gate())),
    })
}
