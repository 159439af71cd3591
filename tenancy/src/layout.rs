//! What a service keeps per tenant, as declarations: the numbered SQL migrations of a PostgreSQL
//! service database ([`ServiceSchema`]) and the collections and indexes of a MongoDB one
//! ([`MongoLayout`]). The services' declarations are in [`crate::services`]; the store layer
//! (prismicx-store) applies them — migrations with its runner, indexes on the driver — and the
//! operator provisions them for every tenant.

use sha2::{Digest, Sha256};

use crate::tenant::{TenantSlug, TENANT_FIELD};

/// One numbered migration. Applied migrations are never edited; add a new one instead.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// The SHA-256 of the SQL, hex; recorded with every applied migration.
    pub fn checksum(&self) -> String {
        Sha256::digest(self.sql.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A service's migrations: shared tables, and the tables of each tenant schema.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSchema {
    pub system: &'static [Migration],
    pub tenant: &'static [Migration],
}

impl ServiceSchema {
    /// The newest tenant-schema version this build knows.
    pub fn tenant_version(&self) -> i32 {
        self.tenant.iter().map(|m| m.version).max().unwrap_or(0)
    }
}

/// A PostgreSQL service database and the migrations of its schemas.
#[derive(Debug, Clone, Copy)]
pub struct PostgresLayout {
    pub database: &'static str,
    pub schema: ServiceSchema,
}

/// One index of a tenant-owned collection. Its keys exclude `tenant_id`: every index the
/// operator creates leads with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexLayout {
    pub name: &'static str,
    /// Key paths and directions (1 or -1) after `tenant_id`.
    pub keys: &'static [(&'static str, i32)],
    pub unique: bool,
}

impl IndexLayout {
    /// An index on `keys` (after `tenant_id`) that may hold the same keys more than once.
    pub const fn on(name: &'static str, keys: &'static [(&'static str, i32)]) -> Self {
        IndexLayout {
            name,
            keys,
            unique: false,
        }
    }

    /// An index on `keys` (after `tenant_id`) that refuses a second document with the same
    /// keys: within a tenant, the keys are unique.
    pub const fn unique(name: &'static str, keys: &'static [(&'static str, i32)]) -> Self {
        IndexLayout {
            name,
            keys,
            unique: true,
        }
    }

    /// The full key list, `tenant_id` first (a `tenant_id` among [`keys`](Self::keys) is
    /// dropped, so it is never listed twice).
    pub fn key_paths(&self) -> Vec<(&'static str, i32)> {
        let mut keys = vec![(TENANT_FIELD, 1)];
        keys.extend(
            self.keys
                .iter()
                .copied()
                .filter(|(k, _)| *k != TENANT_FIELD),
        );
        keys
    }
}

/// A tenant-owned collection and its indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectionLayout {
    pub name: &'static str,
    pub indexes: &'static [IndexLayout],
}

/// What a MongoDB service keeps per tenant: its system database (shared collections of the
/// standard tier) and the collections a dedicated tenant's own database gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MongoLayout {
    /// The service's database on mongodb-system (e.g. `task_repository`).
    pub database: &'static str,
    pub collections: &'static [CollectionLayout],
}

impl MongoLayout {
    /// The database of a dedicated tenant on mongodb-tenant: `<database>__<slug ident>`
    /// (mirrors the PgBouncer pool alias; at most 19 + 2 + 40 characters, under MongoDB's 63).
    pub fn dedicated_database(&self, slug: &TenantSlug) -> String {
        crate::names::dedicated_mongo_database(self.database, slug)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_lead_with_tenant_id_once() {
        let i = IndexLayout {
            name: "x",
            keys: &[("a", 1), (TENANT_FIELD, 1), ("b", -1)],
            unique: false,
        };
        assert_eq!(i.key_paths(), vec![(TENANT_FIELD, 1), ("a", 1), ("b", -1)]);
    }
}
