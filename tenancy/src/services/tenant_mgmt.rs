//! tenant-mgmt-service's data: per-tenant settings, and the platform-wide registry and API keys
//! in MongoDB `tenant_registry`.

use crate::layout::{CollectionLayout, IndexLayout, MongoLayout};

/// The per-tenant settings collection.
pub const SETTINGS_COLLECTION: &str = "settings";

/// The service's per-tenant MongoDB layout; every index leads with `tenant_id`. The registry
/// and the API keys are platform data and not part of it.
pub const MONGO: MongoLayout = MongoLayout {
    database: "tenant_registry",
    collections: &[CollectionLayout {
        name: SETTINGS_COLLECTION,
        indexes: &[IndexLayout::unique("settings_tenant_key", &[("key", 1)])],
    }],
};

/// The platform-wide registry collection in [`MONGO`]'s database: one document per tenant,
/// `_id` = the tenant's slug, written by the operator and read by every service.
pub const REGISTRY_COLLECTION: &str = "tenants";

/// The platform-wide API-key collection in [`MONGO`]'s database (tenant-mgmt's `keys` module).
pub const API_KEYS_COLLECTION: &str = "api_keys";
