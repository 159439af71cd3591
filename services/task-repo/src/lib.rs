//! task-repo-service: the tasks of each PrismicX tenant — CRUD, a status state machine,
//! assignment, due dates, labels, JSON attributes, filters and cursor pagination, with
//! optimistic concurrency (`ETag`/`If-Match` on a per-task revision).
//!
//! Data flow: a request passes the shared HTTP shell (auth, tenant resolution) into a handler in
//! [`routes`], which validates its input with [`domain`] (a 400/422 before any database work),
//! then reaches the tenant's `tasks` collection only through a
//! [`TenantCollection`](prismicx_service_common::mongo::TenantCollection) from the
//! [`MongoStore`]: the shared `task_repository.tasks` on mongodb-system for a `standard` tenant,
//! `task_repository__<slug>.tasks` on mongodb-tenant for a `dedicated` one. Every query and write
//! carries the tenant filter; every document carries `tenant_id`. Writes to an existing task are
//! single conditional updates (`{_id, revision: <If-Match>}`), so concurrent writers of one
//! revision cannot both win and no transaction is needed.
//!
//! [`MONGO`] is the data layout the operator provisions for every tenant.

pub mod config;
pub mod domain;
pub mod openapi;
mod repo;
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

/// The name in logs and metrics (the Kubernetes service name).
pub const SERVICE: &str = "task-repo-service";

/// The service's data layout (declared with the tenancy contract, which the operator provisions).
pub use prismicx_tenancy::services::task_repo::{MONGO, TASKS};

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
