//! management-system-repo's data: management systems in PostgreSQL `management_system_repository`
//! (numbered SQL files under `tenancy/migrations/management-system-repo/`; an applied migration is
//! never edited — add a new one) and their configurations in MongoDB `config_db`.

use crate::layout::{CollectionLayout, IndexLayout, MongoLayout, PostgresLayout, ServiceSchema};

/// The PostgreSQL layout of `management_system_repository`: everything the operator needs to
/// provision a tenant there. No shared tables yet (everything the service keeps is tenant data).
pub const POSTGRES: PostgresLayout = PostgresLayout {
    database: "management_system_repository",
    schema: ServiceSchema {
        system: &[],
        tenant: &[migration!(
            1,
            "systems",
            "management-system-repo/tenant/0001_systems.sql"
        )],
    },
};

/// The PostgreSQL database this service owns.
pub const DATABASE: &str = POSTGRES.database;

/// The migrations of each tenant schema.
pub const SCHEMA: ServiceSchema = POSTGRES.schema;

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
            IndexLayout::unique(
                "configurations_tenant_system_version",
                &[("system_id", 1), ("version", 1)],
            ),
        ],
    }],
};
