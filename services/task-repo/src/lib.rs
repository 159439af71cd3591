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

#[cfg(doc)]
use prismicx_service_common::mongo::MongoStore;
use prismicx_service_common::service;
pub use prismicx_service_common::service::AppSettings;

pub use config::Config;

/// The name in logs and metrics (the Kubernetes service name).
pub const SERVICE: &str = "task-repo-service";

/// The service's data layout (declared with the tenancy contract, which the operator provisions).
pub use prismicx_tenancy::services::task_repo::{MONGO, TASKS};

/// What handlers share: the service's [`MongoStore`] and tenancy.
pub type AppState = service::MongoState;

prismicx_service_common::service_entry_points!(TaskRepo, connect: |config, tenancy| service::MongoState::connect(&config.mongo, MONGO, SERVICE, tenancy));
