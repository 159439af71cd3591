//! Every name the platform generates, by the space it lives in, and the rule that keeps tenant
//! names and platform names apart.
//!
//! A slug is chosen by whoever creates a Tenant, so a slug must never yield the name of a
//! platform object (a service's MongoDB user, a service database, a PgBouncer pool) or another
//! tenant's. The rule, per space:
//!
//! | space | tenant names | platform names |
//! |---|---|---|
//! | PostgreSQL roles | `tenant_<slug>_owner`, `tenant_<slug>_login` | `<db>_owner`, `<db>_app`, `<db>_svc` |
//! | PostgreSQL schemas | `tenant_<slug>` | `prismicx`, `public`, the catalogs |
//! | MongoDB users (mongodb-tenant `admin`) | `tenant_<slug>_login` | `<db>_svc` |
//! | MongoDB databases | `<db>__<slug>` | `<db>`, `admin`, `local`, `config` |
//! | PgBouncer pools | `<db>__<slug>` (cut + hashed past 63) | `<db>`, `pgbouncer` |
//! | Secrets | `<slug>-db-credentials` | `<service>-db` |
//!
//! (`<slug>` in an identifier has `-` as `_`; slugs never contain `_`, so that is injective.)
//! Tenant roles and users end in `_owner`/`_login`, platform ones in `_owner`/`_app`/`_svc`
//! after a database name that never starts with `tenant_`; tenant databases and pools hold `__`,
//! platform ones never do. [`platform_names`] lists what the platform uses, [`tenant_names`] what
//! a dedicated tenant using every service gets; the property tests below check both rules over
//! arbitrary slugs (the operator checks its tenant plans against [`platform_names`] too).

use crate::layout::{MongoLayout, PostgresLayout};
use crate::tenant::TenantSlug;

/// The schema holding a service database's shared tables.
pub const SYSTEM_SCHEMA: &str = "prismicx";

/// The platform's private schema in every service database: owned by the administrative role,
/// no privilege for PUBLIC. It maps each tenant schema to its tenant id and owning namespace,
/// so no object other roles can read (schema comments, constraint definitions) has to carry
/// them.
pub const PLATFORM_SCHEMA: &str = "prismicx_tenancy";

/// `schema_name` → `tenant_id`, `namespace` (the Kubernetes namespace owning the tenant; `NULL`
/// until the operator records it).
pub const TENANT_SCHEMAS_TABLE: &str = "prismicx_tenancy.tenant_schemas";

/// `row_is_schema_tenant(tableoid, tenant_id)`: whether the registered tenant of the table's
/// schema is `tenant_id`. SECURITY DEFINER, so the CHECK that calls it works for every role
/// that may write the table, while the mapping stays private; the schema has no USAGE for
/// PUBLIC, so nobody but the administrator can call it by name (a stored CHECK refers to it
/// by OID and needs EXECUTE only).
pub const PIN_FUNCTION: &str = "prismicx_tenancy.row_is_schema_tenant";

/// Name of the CHECK constraint that pins a tenant table's `tenant_id` to its tenant.
pub const TENANT_ID_CHECK: &str = "tenant_id_is_this_tenant";

/// Name of the policy every tenant table carries.
pub const TENANT_POLICY: &str = "tenant_isolation";

/// Longest pool alias: PostgreSQL's identifier limit, which PgBouncer's database names share.
pub const MAX_ALIAS_LEN: usize = 63;

/// The PgBouncer pool alias of a dedicated tenant in a service database: `<database>__<slug>`.
/// When that is longer than [`MAX_ALIAS_LEN`] (a long database name and a long slug), the slug
/// part is cut and followed by 8 hex digits of the full name's SHA-256, so distinct tenants
/// still get distinct aliases and the operator and the services compute the same one.
pub fn dedicated_pool_alias(database: &str, slug: &TenantSlug) -> String {
    let full = format!("{database}__{}", slug.ident());
    if full.len() <= MAX_ALIAS_LEN {
        return full;
    }
    use sha2::{Digest, Sha256};
    let digest: String = Sha256::digest(full.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut cut = full;
    cut.truncate(MAX_ALIAS_LEN - 9);
    format!("{cut}_{digest}")
}

/// The database of a dedicated tenant on mongodb-tenant: `<database>__<slug ident>`.
pub fn dedicated_mongo_database(database: &str, slug: &TenantSlug) -> String {
    format!("{database}__{}", slug.ident())
}

/// The login role (PostgreSQL) and MongoDB user of a tenant's own credentials:
/// `tenant_<slug>_login`.
pub fn tenant_login_role(slug: &TenantSlug) -> String {
    format!("tenant_{}_login", slug.ident())
}

/// The Secret holding a tenant's own credentials: `<slug>-db-credentials`.
pub fn tenant_secret_name(slug: &TenantSlug) -> String {
    format!("{slug}-db-credentials")
}

/// The login role (PostgreSQL) or user (MongoDB) of a service in `database`: `<db>_svc`.
pub fn service_user(database: &str) -> String {
    format!("{database}_svc")
}

/// The Secret holding a service's database credentials, by the service's Kubernetes name:
/// `<service>-db`.
pub fn service_secret_name(service: &str) -> String {
    format!("{service}-db")
}

/// The group roles of a service database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseRoles {
    pub database: String,
    pub owner: String,
    pub app: String,
}

impl DatabaseRoles {
    pub fn for_database(database: &str) -> Self {
        DatabaseRoles {
            database: database.to_string(),
            owner: format!("{database}_owner"),
            app: format!("{database}_app"),
        }
    }
}

/// Slugs chosen to hit platform names (a service user, a group role, the pooler, a MongoDB
/// system database, the system schema, a service's name): what every check of the rule runs
/// besides arbitrary slugs.
pub const SLUGS_AIMED_AT_PLATFORM_NAMES: &[&str] = &[
    "registry-svc",
    "tenant-registry-svc",
    "system-users-svc",
    "users-app",
    "x-owner",
    "x-login",
    "pgbouncer",
    "admin",
    "user-data-service",
    "prismicx",
];

/// Where a name must be unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Space {
    PgRole,
    PgSchema,
    MongoUser,
    MongoDatabase,
    PoolAlias,
    Secret,
}

/// Every name the platform itself uses, for service databases `postgres` and `mongo` and the
/// services named `services` (Kubernetes names).
pub fn platform_names(
    postgres: &[PostgresLayout],
    mongo: &[MongoLayout],
    services: &[&str],
) -> Vec<(Space, String)> {
    let mut out = Vec::new();
    for p in postgres {
        let roles = DatabaseRoles::for_database(p.database);
        out.push((Space::PgRole, roles.owner));
        out.push((Space::PgRole, roles.app));
        out.push((Space::PgRole, service_user(p.database)));
        out.push((Space::PoolAlias, p.database.to_string()));
    }
    for m in mongo {
        out.push((Space::MongoUser, service_user(m.database)));
        out.push((Space::MongoDatabase, m.database.to_string()));
    }
    for db in ["admin", "local", "config"] {
        out.push((Space::MongoDatabase, db.to_string()));
    }
    for schema in [
        SYSTEM_SCHEMA,
        "public",
        "pg_catalog",
        "information_schema",
        "pg_toast",
    ] {
        out.push((Space::PgSchema, schema.to_string()));
    }
    out.push((Space::PoolAlias, "pgbouncer".to_string()));
    for service in services {
        out.push((Space::Secret, service_secret_name(service)));
    }
    out
}

/// Every name the rules give a dedicated tenant `slug` using the service databases `postgres`
/// and `mongo` (each name once).
pub fn tenant_names(
    slug: &TenantSlug,
    postgres: &[PostgresLayout],
    mongo: &[MongoLayout],
) -> Vec<(Space, String)> {
    let mut out = vec![
        (Space::MongoUser, tenant_login_role(slug)),
        (Space::Secret, tenant_secret_name(slug)),
    ];
    if !postgres.is_empty() {
        out.push((Space::PgRole, slug.pg_owner_role()));
        out.push((Space::PgRole, tenant_login_role(slug)));
        out.push((Space::PgSchema, slug.pg_schema()));
    }
    for p in postgres {
        out.push((Space::PoolAlias, dedicated_pool_alias(p.database, slug)));
    }
    for m in mongo {
        out.push((Space::MongoDatabase, m.dedicated_database(slug)));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::services::{ALL_MONGO, ALL_POSTGRES};

    /// The Kubernetes names of the platform's services.
    const SERVICES: &[&str] = &[
        "tenant-mgmt-service",
        "user-data-service",
        "task-repo-service",
        "category-repository-service",
        "management-system-repo",
        "vector-store-service",
    ];

    fn platform() -> Vec<(Space, String)> {
        platform_names(ALL_POSTGRES, ALL_MONGO, SERVICES)
    }

    fn names_of(slug: &TenantSlug) -> Vec<(Space, String)> {
        tenant_names(slug, ALL_POSTGRES, ALL_MONGO)
    }

    fn slug_strategy() -> impl Strategy<Value = TenantSlug> {
        "[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?"
            .prop_filter_map("a valid slug", |s| TenantSlug::parse(&s).ok())
    }

    fn assert_disjoint_from_platform(slug: &TenantSlug) {
        let platform: BTreeSet<(Space, String)> = platform().into_iter().collect();
        for name in names_of(slug) {
            assert!(
                !platform.contains(&name),
                "slug {slug} yields the platform name {name:?}"
            );
        }
    }

    #[test]
    fn slugs_aimed_at_platform_names_get_names_of_their_own() {
        for s in SLUGS_AIMED_AT_PLATFORM_NAMES {
            assert_disjoint_from_platform(&TenantSlug::parse(s).unwrap());
        }
    }

    #[test]
    fn platform_names_are_unique_per_space() {
        let names = platform();
        let set: BTreeSet<_> = names.iter().collect();
        assert_eq!(set.len(), names.len());
    }

    #[test]
    fn pool_aliases_fit_and_stay_distinct() {
        let short = TenantSlug::parse("acme").unwrap();
        assert_eq!(
            dedicated_pool_alias("system_users", &short),
            "system_users__acme"
        );
        let a = TenantSlug::parse(&format!("{}a", "x".repeat(39))).unwrap();
        let b = TenantSlug::parse(&format!("{}b", "x".repeat(39))).unwrap();
        let (aa, ab) = (
            dedicated_pool_alias("management_system_repository", &a),
            dedicated_pool_alias("management_system_repository", &b),
        );
        assert_eq!(aa.len(), MAX_ALIAS_LEN);
        assert_ne!(aa, ab);
        assert!(aa.starts_with("management_system_repository__xxx"));
        assert_eq!(aa, dedicated_pool_alias("management_system_repository", &a));
    }

    proptest! {
        #[test]
        fn no_slug_yields_a_platform_name(slug in slug_strategy()) {
            assert_disjoint_from_platform(&slug);
        }

        #[test]
        fn distinct_slugs_share_no_name(a in slug_strategy(), b in slug_strategy()) {
            prop_assume!(a != b);
            let theirs: BTreeSet<(Space, String)> = names_of(&b).into_iter().collect();
            for name in names_of(&a) {
                prop_assert!(!theirs.contains(&name), "{a} and {b} share {name:?}");
            }
        }

        #[test]
        fn a_tenants_own_names_do_not_collide(slug in slug_strategy()) {
            let names = names_of(&slug);
            let set: BTreeSet<_> = names.iter().collect();
            prop_assert_eq!(set.len(), names.len());
        }
    }
}
