//! management-system-repo's data: management systems in PostgreSQL `management_system_repository`
//! (numbered SQL files under `tenancy/migrations/management-system-repo/`; an applied migration is
//! never edited — add a new one) and their configurations in MongoDB `config_db`.

use crate::layout::{
    CollectionLayout, IndexLayout, Migration, MongoLayout, PostgresLayout, ServiceSchema,
};

/// The PostgreSQL database this service owns.
pub const DATABASE: &str = "management_system_repository";

/// Shared tables: none yet (everything the service keeps is tenant data).
pub const SYSTEM: &[Migration] = &[];

pub const TENANT: &[Migration] = &[Migration {
    version: 1,
    name: "systems",
    sql: include_str!("../../migrations/management-system-repo/tenant/0001_systems.sql"),
}];

/// Everything the operator needs to provision a tenant in `management_system_repository`.
pub const SCHEMA: ServiceSchema = ServiceSchema {
    system: SYSTEM,
    tenant: TENANT,
};

/// The PostgreSQL layout of `management_system_repository`.
pub const POSTGRES: PostgresLayout = PostgresLayout {
    database: DATABASE,
    schema: SCHEMA,
};

/// The collection holding configuration versions.
pub const CONFIGURATIONS: &str = "configurations";

/// The service's MongoDB layout; every index leads with `tenant_id`.
pub const MONGO: MongoLayout = MongoLayout {
    database: "config_db",
    collections: &[CollectionLayout {
        name: CONFIGURATIONS,
        indexes: &[
            // Unique, gapless version numbers per system; serves the latest version
            // (sort version desc, limit 1), one version by number, the history (newest first,
            // keyset on version) and deleting a system's configurations.
            IndexLayout {
                name: "configurations_tenant_system_version",
                keys: &[("system_id", 1), ("version", 1)],
                unique: true,
            },
        ],
    }],
};
