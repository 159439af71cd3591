//! The service's schema, as the operator and the service apply it (see `migrations/README.md`).

use prismicx_service_common::pg::migrate::{Migration, ServiceSchema};

/// The database this service owns.
pub const DATABASE: &str = "system_users";

pub const SYSTEM: &[Migration] = &[Migration {
    version: 1,
    name: "audit_events",
    sql: include_str!("../migrations/system/0001_audit_events.sql"),
}];

pub const TENANT: &[Migration] = &[Migration {
    version: 1,
    name: "users_roles",
    sql: include_str!("../migrations/tenant/0001_users_roles.sql"),
}];

/// Everything the operator needs to provision a tenant in `system_users`.
pub const SCHEMA: ServiceSchema = ServiceSchema {
    system: SYSTEM,
    tenant: TENANT,
};
