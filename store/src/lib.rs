//! The PrismicX store layer: how the services and the operator reach tenant data, with no HTTP
//! in it.
//!
//! - [`pg`]: tenant-scoped PostgreSQL access ([`pg::TenantDb::begin`] opens a transaction that
//!   sets `app.tenant_id` and `search_path` transaction-locally), the migration runner that
//!   applies a service's declared schema ([`pg::migrate`]), PgBouncer's pool configuration
//!   ([`pg::pgbouncer`]), SCRAM verifiers and the catalog lint.
//! - [`mongo`]: tenant-scoped MongoDB access ([`mongo::TenantCollection`] adds the tenant filter
//!   to every query and write; [`mongo::MongoStore`] picks the database of a tenant's tier).
//! - [`retry`]: the one policy for transient database errors.
//! - [`events`]: tenant lifecycle events published on Redis.
//! - [`Secret`], [`process`], [`telemetry`], [`tls`]: what every binary shares at start-up.
//!
//! Data flows from the contract in prismicx-tenancy (slugs, names, layouts) through this crate
//! to the servers. Errors are the stores' own ([`error`]); the services' HTTP layer
//! (prismicx-service-common) maps them to responses, the operator to reconcile errors.

pub mod error;
pub mod events;
pub mod mongo;
pub mod pg;
pub mod process;
pub mod retry;
pub mod secret;
pub mod telemetry;
pub mod tls;

pub use error::StoreError;
pub use secret::Secret;
