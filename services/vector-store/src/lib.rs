//! vector-store-service: per-tenant collections of embeddings (MongoDB vector_store_system + vectors and indexes on the filesystem).
//!
//! SKELETON: [`engine`] is the vector engine; the HTTP service is being written.

pub mod engine;

pub use prismicx_tenancy::services::vector_store::MONGO;
