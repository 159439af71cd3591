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

#[cfg(doc)]
use prismicx_service_common::mongo::MongoStore;
use prismicx_service_common::service;
pub use prismicx_service_common::service::AppSettings;

pub use config::Config;

/// The name in logs and metrics (the Kubernetes name of the service).
pub const SERVICE: &str = "category-repository-service";

/// The service's data layout (declared with the tenancy contract, which the operator provisions).
pub use prismicx_tenancy::services::category_repository::{CATEGORIES, FORESTS, MONGO};

/// What handlers share: the service's [`MongoStore`] and tenancy.
pub type AppState = service::MongoState;

prismicx_service_common::service_entry_points!(CategoryRepository, connect: |config, tenancy| service::MongoState::connect(&config.mongo, MONGO, SERVICE, tenancy));
