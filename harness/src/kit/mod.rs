//! The fixture kit for testing a service's application against the real servers.
//!
//! Data flow: a test picks its tenants ([`tenants_with`]: unique slugs, keys, tiers, states),
//! provisions what its service stores them in ([`PgService::provision`] for a PostgreSQL
//! service's database and tenant schemas, [`mongo_store`] for a MongoDB layout on the two
//! MongoDB servers), builds the service's own state and router from those (with
//! [`tenancy_of`] to authenticate the tenants' keys and [`PLATFORM_KEY`]), and wraps them in a
//! [`ServiceApp`], which calls the router in process as tenant `i` and answers [`Reply`]s.
//! Raw reads ([`PgService::admin`], [`raw_database`], [`raw_find`]) check what really is stored.
//!
//! The kit knows no service crate: each service's `tests/support` builds its `AppState` and
//! keeps its own seeds (creating a user, a system, a task).
//!
//! Tenants get unique slugs and every PostgreSQL fixture its own database, so tests share the
//! harness servers and still run in parallel.

mod app;
mod http;
mod mongo;
mod pg;
mod tenant;

pub use app::ServiceApp;
pub use http::{field_strs, ApiClient, Call, Reply};
pub use mongo::{
    mongo_for, mongo_store, mongo_system, mongo_tenant, raw_count, raw_database, raw_find,
};
pub use pg::{expect_no_rows_touched, expect_sqlstate, sqlstate, PgOptions, PgService};
pub use tenant::{registry_of, tenancy_of, tenants_with, test_tenants, TestTenant, PLATFORM_KEY};
