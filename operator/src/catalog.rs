//! What each service keeps per tenant, as the tenancy contract declares it (prismicx-tenancy's
//! `services`): the PostgreSQL database and its migrations, the MongoDB database and its
//! collections.
//!
//! The tenant planner ([`crate::tenant::plan`]) reads it to decide which schemas, pools,
//! databases and indexes a tenant needs; tests may build a smaller catalog.

use std::collections::BTreeMap;

use prismicx_operator_api::ServiceKind;
use prismicx_tenancy::layout::MongoLayout;
pub use prismicx_tenancy::layout::PostgresLayout;
use prismicx_tenancy::services::{
    category_repository, management_system_repo, task_repo, tenant_mgmt, user_data, vector_store,
};

/// What one service needs per tenant.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServiceData {
    pub postgres: Option<PostgresLayout>,
    pub mongo: Option<MongoLayout>,
}

/// The platform's own MongoDB collections (database, collection): one document per tenant or per
/// key, written by the operator or tenant-mgmt and never by a tenant. No service layout declares
/// them (checked below), so no tier move ever reads or writes them.
pub const PLATFORM_COLLECTIONS: &[(&str, &str)] = &[
    (
        tenant_mgmt::MONGO.database,
        tenant_mgmt::REGISTRY_COLLECTION,
    ),
    (
        tenant_mgmt::MONGO.database,
        tenant_mgmt::API_KEYS_COLLECTION,
    ),
    (
        tenant_mgmt::MONGO.database,
        crate::tenant::registry::RETAINED_COLLECTION,
    ),
];

/// The data layout of every service the operator provisions.
#[derive(Debug, Clone)]
pub struct Catalog {
    services: BTreeMap<ServiceKind, ServiceData>,
}

impl Catalog {
    /// The platform's six services, as their crates declare them.
    pub fn platform() -> Self {
        let mut services = BTreeMap::new();
        services.insert(
            ServiceKind::TenantMgmt,
            ServiceData {
                postgres: None,
                mongo: Some(tenant_mgmt::MONGO),
            },
        );
        services.insert(
            ServiceKind::UserData,
            ServiceData {
                postgres: Some(user_data::POSTGRES),
                mongo: None,
            },
        );
        services.insert(
            ServiceKind::TaskRepo,
            ServiceData {
                postgres: None,
                mongo: Some(task_repo::MONGO),
            },
        );
        services.insert(
            ServiceKind::CategoryRepository,
            ServiceData {
                postgres: None,
                mongo: Some(category_repository::MONGO),
            },
        );
        services.insert(
            ServiceKind::ManagementSystemRepo,
            ServiceData {
                postgres: Some(management_system_repo::POSTGRES),
                mongo: Some(management_system_repo::MONGO),
            },
        );
        services.insert(
            ServiceKind::VectorStore,
            ServiceData {
                postgres: None,
                mongo: Some(vector_store::MONGO),
            },
        );
        Catalog { services }
    }

    /// What `service` needs (nothing, for a service this catalog does not hold).
    pub fn service(&self, service: ServiceKind) -> ServiceData {
        self.services.get(&service).copied().unwrap_or_default()
    }

    /// Every PostgreSQL layout in the catalog (deduplicated by database).
    pub fn all_postgres(&self) -> Vec<PostgresLayout> {
        let mut out: Vec<PostgresLayout> = Vec::new();
        for p in self.services.values().filter_map(|s| s.postgres) {
            if !out.iter().any(|o| o.database == p.database) {
                out.push(p);
            }
        }
        out
    }

    /// Every MongoDB layout in the catalog (deduplicated by database).
    pub fn all_mongo(&self) -> Vec<MongoLayout> {
        let mut out: Vec<MongoLayout> = Vec::new();
        for m in self.services.values().filter_map(|s| s.mongo) {
            if !out.iter().any(|o| o.database == m.database) {
                out.push(m);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use prismicx_store::mongo::IndexKeys;

    use super::*;

    #[test]
    fn databases_match_the_platform_documentation() {
        let catalog = Catalog::platform();
        for kind in ServiceKind::ALL {
            let data = catalog.service(kind);
            assert_eq!(
                data.postgres.map(|p| p.database),
                kind.postgres_database(),
                "{kind:?}"
            );
            assert_eq!(
                data.mongo.map(|m| m.database),
                kind.mongo_database(),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn no_layout_declares_a_platform_collection() {
        for layout in Catalog::platform().all_mongo() {
            for c in layout.collections {
                assert!(
                    !PLATFORM_COLLECTIONS.contains(&(layout.database, c.name)),
                    "{}.{} is platform-owned but declared as tenant data",
                    layout.database,
                    c.name
                );
            }
        }
    }

    #[test]
    fn every_mongo_index_leads_with_tenant_id_and_names_are_unique() {
        for layout in Catalog::platform().all_mongo() {
            let mut names = std::collections::BTreeSet::new();
            for c in layout.collections {
                for i in c.indexes {
                    assert!(names.insert(i.name), "duplicate index name {}", i.name);
                    let keys = i.key_document();
                    assert_eq!(keys.keys().next().map(String::as_str), Some("tenant_id"));
                    // Only a unique index may be on tenant_id alone: one document per tenant.
                    assert!(
                        keys.len() > 1 || i.unique,
                        "{} indexes nothing but tenant_id",
                        i.name
                    );
                }
            }
        }
    }
}
