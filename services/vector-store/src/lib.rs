//! vector-store-service: per-tenant collections of embeddings (MongoDB vector_store_system + vectors and indexes on the filesystem).
//!
//! This crate holds the service's data layout, which the operator provisions for every tenant:
//! the MongoDB collections and indexes in [`MONGO`] (shared collections for `standard` tenants,
//! the same collections in the tenant's own database for `dedicated` ones), declared with the
//! tenancy contract. The HTTP service itself is not built yet.

pub use prismicx_tenancy::services::vector_store::MONGO;
