//! vector-store-service: per-tenant collections of embeddings (MongoDB vector_store_system + vectors and indexes on the filesystem).
//!
//! This crate holds the service's data layout, which the operator provisions for every tenant:
//! the MongoDB collections and indexes in [`MONGO`] (shared collections for `standard` tenants,
//! the same collections in the tenant's own database for `dedicated` ones). //! The HTTP service itself is not built yet.

use prismicx_service_common::mongo::{CollectionLayout, IndexLayout, MongoLayout};

/// The service's MongoDB layout; every index leads with `tenant_id`.
pub const MONGO: MongoLayout = MongoLayout {
    database: "vector_store_system",
    collections: &[
        CollectionLayout {
            name: "collections",
            indexes: &[IndexLayout {
                name: "collections_tenant_name",
                keys: &[("name", 1)],
                unique: true,
            }],
        },
        CollectionLayout {
            name: "vectors",
            indexes: &[IndexLayout {
                name: "vectors_tenant_collection_vector",
                keys: &[("collection_id", 1), ("vector_id", 1)],
                unique: true,
            }],
        },
    ],
};
