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
//! a tenant's plan gives it; the property tests below check both rules over arbitrary slugs.

use prismicx_operator_api::ServiceKind;
use prismicx_store::pg::migrate::DatabaseRoles;
use prismicx_store::pg::SYSTEM_SCHEMA;

use crate::catalog::Catalog;
use crate::database_service::build::{operator_secret_name, service_user};
use crate::tenant::plan::TenantPlan;

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

/// Every name the platform itself uses, for the services in `catalog`.
pub fn platform_names(catalog: &Catalog) -> Vec<(Space, String)> {
    let mut out = Vec::new();
    for p in catalog.all_postgres() {
        let roles = DatabaseRoles::for_database(p.database);
        out.push((Space::PgRole, roles.owner));
        out.push((Space::PgRole, roles.app));
        out.push((Space::PgRole, service_user(p.database)));
        out.push((Space::PoolAlias, p.database.to_string()));
    }
    for m in catalog.all_mongo() {
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
    for kind in ServiceKind::ALL {
        out.push((Space::Secret, operator_secret_name(kind)));
    }
    out
}

/// Every name `plan` gives its tenant (for a dedicated tenant using every service: all of them).
pub fn tenant_names(plan: &TenantPlan) -> Vec<(Space, String)> {
    let mut out = vec![
        (Space::MongoUser, plan.mongo_user.clone()),
        (Space::Secret, plan.secret_name.clone()),
    ];
    for p in &plan.postgres {
        for role in [&p.owner_role, &p.login_role] {
            if !out.contains(&(Space::PgRole, role.clone())) {
                out.push((Space::PgRole, role.clone()));
            }
        }
        if !out.contains(&(Space::PgSchema, p.schema.clone())) {
            out.push((Space::PgSchema, p.schema.clone()));
        }
        out.push((Space::PoolAlias, p.dedicated_alias.clone()));
    }
    for m in &plan.mongo {
        out.push((Space::MongoDatabase, m.dedicated_database.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use prismicx_operator_api::{Tenant, TenantSpec};
    use prismicx_tenancy::TenantSlug;
    use proptest::prelude::*;

    use super::*;

    /// The names of a dedicated tenant of `slug` using every service.
    fn names_of(slug: &TenantSlug) -> Vec<(Space, String)> {
        let spec: TenantSpec =
            serde_json::from_value(serde_json::json!({"tier": "dedicated"})).expect("spec");
        let t = Tenant::new(slug.as_str(), spec);
        let plan = crate::tenant::plan::plan(&t, uuid::Uuid::nil(), &Catalog::platform(), 5)
            .expect("plan");
        tenant_names(&plan)
    }

    fn slug_strategy() -> impl Strategy<Value = TenantSlug> {
        "[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?"
            .prop_filter_map("a valid slug", |s| TenantSlug::parse(&s).ok())
    }

    fn assert_disjoint_from_platform(slug: &TenantSlug) {
        let catalog = Catalog::platform();
        let platform: BTreeSet<(Space, String)> = platform_names(&catalog).into_iter().collect();
        for name in names_of(slug) {
            assert!(
                !platform.contains(&name),
                "slug {slug} yields the platform name {name:?}"
            );
        }
    }

    #[test]
    fn slugs_aimed_at_platform_names_get_names_of_their_own() {
        for s in [
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
        ] {
            assert_disjoint_from_platform(&TenantSlug::parse(s).unwrap());
        }
    }

    #[test]
    fn platform_names_are_unique_per_space() {
        let names = platform_names(&Catalog::platform());
        let set: BTreeSet<_> = names.iter().collect();
        assert_eq!(set.len(), names.len());
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
