//! vector-store-service's data: the metadata of embedding collections in MongoDB
//! `vector_store_system` (the vectors and their indexes are files of the service's data
//! directory, not documents).

use crate::layout::{CollectionLayout, IndexLayout, MongoLayout};

/// One document per collection of a tenant: its name, id, dimension, metric, index parameters
/// and indexed payload fields.
pub const COLLECTIONS: &str = "collections";

/// The service's MongoDB layout; every index leads with `tenant_id`.
pub const MONGO: MongoLayout = MongoLayout {
    database: "vector_store_system",
    collections: &[CollectionLayout {
        name: COLLECTIONS,
        // A collection's name is unique in its tenant; listing pages by name.
        indexes: &[IndexLayout {
            name: "collections_tenant_name",
            keys: &[("name", 1)],
            unique: true,
        }],
    }],
};
