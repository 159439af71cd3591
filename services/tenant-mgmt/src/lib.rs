//! tenant-mgmt-service: the tenant registry, tenant settings and tenant API keys (MongoDB tenant_registry).
//!
//! This crate holds the service's data layout, which the operator provisions for every tenant:
//! the MongoDB collections and indexes in [`MONGO`] (shared collections for `standard` tenants,
//! the same collections in the tenant's own database for `dedicated` ones). The registry itself (collection [`REGISTRY_COLLECTION`], one document per tenant, written by the
//! operator) is platform data, not tenant data, so it is not part of the per-tenant layout.
//! The HTTP service itself is not built yet.

use prismicx_service_common::mongo::{CollectionLayout, IndexLayout, MongoLayout};

/// The service's MongoDB layout; every index leads with `tenant_id`.
pub const MONGO: MongoLayout = MongoLayout {
    database: "tenant_registry",
    collections: &[
        CollectionLayout {
            name: "settings",
            indexes: &[IndexLayout {
                name: "settings_tenant_key",
                keys: &[("key", 1)],
                unique: true,
            }],
        },
        CollectionLayout {
            name: "api_keys",
            indexes: &[
                IndexLayout {
                    name: "api_keys_tenant_prefix",
                    keys: &[("prefix", 1)],
                    unique: false,
                },
                IndexLayout {
                    name: "api_keys_tenant_created",
                    keys: &[("created_at", 1), ("_id", 1)],
                    unique: false,
                },
            ],
        },
    ],
};

/// The platform-wide registry collection in [`MONGO`]'s database: one document per tenant,
/// `_id` = the tenant's slug, written by the operator and read by every service.
pub const REGISTRY_COLLECTION: &str = "tenants";
