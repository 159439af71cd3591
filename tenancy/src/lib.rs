//! The PrismicX tenancy contract: the values and names every crate of the platform must agree
//! on, with no I/O and no database driver or HTTP stack.
//!
//! - [`tenant`]: who a tenant is ([`TenantSlug`]), its [`Tier`] and [`TenantState`], and the
//!   [`TenantPlacement`] a service resolves it to; the [`TENANT_HEADER`] and [`TENANT_FIELD`]
//!   that carry it.
//! - [`names`]: the naming rule of every object the platform generates for a tenant or for
//!   itself (schemas, roles, pool aliases, MongoDB users and databases, Secrets), and the proof
//!   that no slug yields a platform name or another tenant's.
//! - [`limits`]: per-tenant quotas a tenant's spec may set ([`VectorQuota`]).
//! - [`layout`]: how a service declares what it keeps per tenant (SQL migrations, MongoDB
//!   collections and indexes), and [`services`]: each service's declaration.
//!
//! Data flows one way: the operator reads the layouts and names to provision a tenant and writes
//! its placement into the registry; the services read the same names and placement to reach the
//! tenant's data. prismicx-store (the database layer) and prismicx-service-common (the HTTP
//! layer) build on this crate; it depends on neither.

pub mod layout;
pub mod limits;
pub mod names;
pub mod services;
pub mod tenant;

pub use layout::{
    CollectionLayout, IndexLayout, Migration, MongoLayout, PostgresLayout, ServiceSchema,
};
pub use limits::VectorQuota;
pub use names::{dedicated_pool_alias, tenant_login_role, DatabaseRoles, SYSTEM_SCHEMA};
pub use tenant::{TenantPlacement, TenantSlug, TenantState, Tier, TENANT_FIELD, TENANT_HEADER};
