//! category-repository-service: the hierarchical categories of each PrismicX tenant — a forest
//! of ordered trees with materialized paths.
//!
//! Data flow: a request passes the shared HTTP shell (auth, tenant resolution) into a handler in
//! [`routes`], which validates its input with [`domain`] and calls the tree operations in
//! [`repo`]. Every change to the tree (create, rename, move, reorder, delete) runs in one MongoDB
//! transaction through [`MongoStore::transaction`] on the tenant's `categories` collection,
//! reached only through a tenant-scoped [`TenantCollection`](prismicx_service_common::mongo::TenantCollection):
//! `standard` tenants share the collections of the `category_repository` database on
//! mongodb-system, `dedicated` tenants have the same collections in their own database
//! `category_repository__<slug>` on mongodb-tenant. Reads are single queries (the ancestors path
//! reads in a transaction, for one snapshot).
//!
//! A node stores its `parent_id`, its `ancestors` (ids root-first), `depth` and `position`
//! among its siblings; [`repo`] keeps them consistent. Sibling sets are serialized by a counter
//! on the parent (or, for the roots, on the tenant's document in `category_forests`) that every
//! change of the set bumps, so concurrent changes conflict in the database and run again.

pub mod config;
pub mod domain;
pub mod openapi;
pub mod repo;
pub mod routes;

use std::sync::Arc;

use axum::extract::FromRef;
use axum::Router;
use prismicx_service_common::http::ReadinessCheck;
use prismicx_service_common::mongo::MongoStore;
use prismicx_service_common::service;
pub use prismicx_service_common::service::AppSettings;
use prismicx_service_common::tenancy::Tenancy;

pub use config::Config;

/// The name in logs and metrics (the Kubernetes name of the service).
pub const SERVICE: &str = "category-repository-service";

/// The service's data layout (declared with the tenancy contract, which the operator provisions).
pub use prismicx_tenancy::services::category_repository::{CATEGORIES, FORESTS, MONGO};

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: MongoStore,
    pub tenancy: Tenancy,
}

impl FromRef<AppState> for Tenancy {
    fn from_ref(s: &AppState) -> Tenancy {
        s.tenancy.clone()
    }
}

/// The whole application, callable without a socket (tests drive it with `oneshot`).
pub fn app(state: AppState, settings: AppSettings) -> Router {
    let tenancy = state.tenancy.clone();
    let readiness: Vec<Arc<dyn ReadinessCheck>> = vec![Arc::new(state.store.clone())];
    service::application(
        SERVICE,
        openapi::document(),
        routes::router().with_state(state),
        &tenancy,
        readiness,
        settings,
    )
}

/// Runs the service until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> anyhow::Result<()> {
    service::init_process(&config.log_level, &config.common.log_format);
    let tenancy = service::tenancy(&config.common)?;
    let mut settings = AppSettings::from_args(&config.common);
    settings.extra_readiness = service::lifecycle(&config.common, &tenancy)?;
    let store = service::mongo_store(&config.mongo, MONGO, SERVICE).await?;
    let state = AppState { store, tenancy };
    let addr = service::listen_addr(&config.common, config::DEFAULT_PORT)?;
    prismicx_service_common::http::serve(app(state, settings), addr).await?;
    Ok(())
}
