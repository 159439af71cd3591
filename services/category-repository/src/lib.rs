//! category-repository-service: hierarchical categories of a tenant (MongoDB category_repository).
//!
//! This crate holds the service's data layout, which the operator provisions for every tenant:
//! the MongoDB collections and indexes in [`MONGO`] (shared collections for `standard` tenants,
//! the same collections in the tenant's own database for `dedicated` ones). //! The HTTP service itself is not built yet.

use prismicx_service_common::mongo::{CollectionLayout, IndexLayout, MongoLayout};

/// The service's MongoDB layout; every index leads with `tenant_id`.
pub const MONGO: MongoLayout = MongoLayout {
    database: "category_repository",
    collections: &[CollectionLayout {
        name: "categories",
        indexes: &[
            IndexLayout {
                name: "categories_tenant_parent_position",
                keys: &[("parent_id", 1), ("position", 1)],
                unique: false,
            },
            IndexLayout {
                name: "categories_tenant_parent_name",
                keys: &[("parent_id", 1), ("name", 1)],
                unique: true,
            },
            IndexLayout {
                name: "categories_tenant_ancestors",
                keys: &[("ancestors", 1)],
                unique: false,
            },
        ],
    }],
};
