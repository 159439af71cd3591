//! The service's PostgreSQL schema, applied by the operator to every tenant: declared with the
//! tenancy contract (numbered SQL files under `tenancy/migrations/management-system-repo/`; an
//! applied migration is never edited — add a new one).

pub use prismicx_tenancy::services::management_system_repo::{DATABASE, SCHEMA};
