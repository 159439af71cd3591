//! management-system-repo: management systems, versions and relations (PostgreSQL management_system_repository) and their configurations (MongoDB config_db).
//!
//! This crate holds the service's data layout, which the operator provisions for every tenant:
//! the MongoDB collections and indexes in [`MONGO`] (shared collections for `standard` tenants,
//! the same collections in the tenant's own database for `dedicated` ones). Its PostgreSQL schema is in [`migrations`].
//! The HTTP service itself is not built yet.

pub mod migrations;

use prismicx_service_common::mongo::{CollectionLayout, IndexLayout, MongoLayout};

/// The service's MongoDB layout; every index leads with `tenant_id`.
pub const MONGO: MongoLayout = MongoLayout {
    database: "config_db",
    collections: &[CollectionLayout {
        name: "configurations",
        indexes: &[
            IndexLayout {
                name: "configurations_tenant_system_version",
                keys: &[("system_id", 1), ("version", 1)],
                unique: true,
            },
            IndexLayout {
                name: "configurations_tenant_system_created",
                keys: &[("system_id", 1), ("created_at", 1)],
                unique: false,
            },
        ],
    }],
};
