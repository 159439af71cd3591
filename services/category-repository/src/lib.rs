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
use prismicx_service_common::mongo::{CollectionLayout, IndexLayout, MongoLayout};
use prismicx_service_common::service;
pub use prismicx_service_common::service::AppSettings;

pub use config::Config;

/// The name in logs and metrics (the Kubernetes name of the service).
pub const SERVICE: &str = "category-repository-service";

/// The collection of category nodes.
pub const CATEGORIES: &str = "categories";
/// One document per tenant: the lock and version counter of the tenant's set of roots.
pub const FORESTS: &str = "category_forests";

/// The service's MongoDB layout; every index leads with `tenant_id`.
pub const MONGO: MongoLayout = MongoLayout {
    database: "category_repository",
    collections: &[
        CollectionLayout {
            name: CATEGORIES,
            indexes: &[
                // Children of a node (and the roots: parent_id null) in sibling order; the
                // sibling shifts of inserts, moves and deletes; the last sibling's position.
                IndexLayout {
                    name: "categories_tenant_parent_position",
                    keys: &[("parent_id", 1), ("position", 1), ("_id", 1)],
                    unique: false,
                },
                // Names are unique among siblings, case-insensitively (name_key is the
                // lowercased name).
                IndexLayout {
                    name: "categories_tenant_parent_name",
                    keys: &[("parent_id", 1), ("name_key", 1)],
                    unique: true,
                },
                // Descendants of a node (multikey on the materialized path) in the order of
                // the descendants listing; subtree rewrites of moves and cascade deletes.
                IndexLayout {
                    name: "categories_tenant_ancestors",
                    keys: &[
                        ("ancestors", 1),
                        ("depth", 1),
                        ("parent_id", 1),
                        ("position", 1),
                        ("_id", 1),
                    ],
                    unique: false,
                },
            ],
        },
        CollectionLayout {
            name: FORESTS,
            indexes: &[IndexLayout {
                name: "category_forests_tenant",
                keys: &[],
                unique: true,
            }],
        },
    ],
};

/// What handlers share: the service's [`MongoStore`] and tenancy.
pub type AppState = service::MongoState;

prismicx_service_common::service_entry_points!(CategoryRepository, connect: |config, tenancy| service::MongoState::connect(&config.mongo, MONGO, SERVICE, tenancy));
