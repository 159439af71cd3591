//! user-data-service's data: users, roles and the audit trail in PostgreSQL `system_users`
//! (see `tenancy/migrations/user-data/README.md`).

use crate::layout::{Migration, PostgresLayout, ServiceSchema};

/// The database this service owns.
pub const DATABASE: &str = "system_users";

pub const SYSTEM: &[Migration] = &[Migration {
    version: 1,
    name: "audit_events",
    sql: include_str!("../../migrations/user-data/system/0001_audit_events.sql"),
}];

pub const TENANT: &[Migration] = &[Migration {
    version: 1,
    name: "users_roles",
    sql: include_str!("../../migrations/user-data/tenant/0001_users_roles.sql"),
}];

/// Everything the operator needs to provision a tenant in `system_users`.
pub const SCHEMA: ServiceSchema = ServiceSchema {
    system: SYSTEM,
    tenant: TENANT,
};

/// The PostgreSQL layout of `system_users`.
pub const POSTGRES: PostgresLayout = PostgresLayout {
    database: DATABASE,
    schema: SCHEMA,
};
