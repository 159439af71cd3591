//! vector-store-service's data: embedding collections in MongoDB `vector_store_system`.

use crate::layout::{CollectionLayout, IndexLayout, MongoLayout};

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
