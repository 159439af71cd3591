//! user-data-service's data: users, roles and the audit trail in PostgreSQL `system_users`
//! (see `tenancy/migrations/user-data/README.md`).

use crate::layout::{PostgresLayout, ServiceSchema};

/// The PostgreSQL layout of `system_users`: everything the operator needs to provision a
/// tenant there.
pub const POSTGRES: PostgresLayout = PostgresLayout {
    database: "system_users",
    schema: ServiceSchema {
        system: &[migration!(
            1,
            "audit_events",
            "user-data/system/0001_audit_events.sql"
        )],
        tenant: &[migration!(
            1,
            "users_roles",
            "user-data/tenant/0001_users_roles.sql"
        )],
    },
};

/// The database this service owns.
pub const DATABASE: &str = POSTGRES.database;

/// The migrations of its shared tables and of each tenant schema.
pub const SCHEMA: ServiceSchema = POSTGRES.schema;
