//! The service's PostgreSQL schema, applied by the operator to every tenant (numbered SQL files
//! under `migrations/`; an applied migration is never edited — add a new one).

use prismicx_service_common::pg::migrate::{Migration, ServiceSchema};

/// The PostgreSQL database this service owns.
pub const DATABASE: &str = "management_system_repository";

/// Shared tables: none yet (everything the service keeps is tenant data).
pub const SYSTEM: &[Migration] = &[];

pub const TENANT: &[Migration] = &[Migration {
    version: 1,
    name: "systems",
    sql: include_str!("../migrations/tenant/0001_systems.sql"),
}];

/// Everything the operator needs to provision a tenant in `management_system_repository`.
pub const SCHEMA: ServiceSchema = ServiceSchema {
    system: SYSTEM,
    tenant: TENANT,
};
