//! The operator's tenant plans checked against the platform's naming rule.
//!
//! The rule itself — which name each generated object gets, per space, and why tenant names and
//! platform names never meet — is part of the tenancy contract ([`prismicx_tenancy::names`],
//! with its own property tests over the rule). This module lists the names the operator really
//! uses: [`platform_names`] for the services in a [`Catalog`], [`tenant_names`] for what a
//! tenant's plan gives it. The tests below check that the catalog's platform names are the
//! rule's, that every plan (over arbitrary slugs) names exactly what the rule names, each once —
//! so the rule's own properties (no platform name, no other tenant's) hold for plans — and that
//! the operator's own name builders follow the rule.

use prismicx_operator_api::ServiceKind;
pub use prismicx_tenancy::names::Space;

use crate::catalog::Catalog;
use crate::tenant::plan::TenantPlan;

/// Every name the platform itself uses, for the services in `catalog`.
pub fn platform_names(catalog: &Catalog) -> Vec<(Space, String)> {
    let services: Vec<&str> = ServiceKind::ALL.iter().map(|k| k.k8s_name()).collect();
    prismicx_tenancy::names::platform_names(
        &catalog.all_postgres(),
        &catalog.all_mongo(),
        &services,
    )
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
    use prismicx_tenancy::names;
    use prismicx_tenancy::services::{ALL_MONGO, ALL_POSTGRES};
    use prismicx_tenancy::TenantSlug;
    use proptest::prelude::*;

    use super::*;

    /// The plan of a dedicated tenant of `slug` using every service.
    fn plan_of(slug: &TenantSlug) -> TenantPlan {
        let spec: TenantSpec =
            serde_json::from_value(serde_json::json!({"tier": "dedicated"})).expect("spec");
        let t = Tenant::new(slug.as_str(), spec);
        crate::tenant::plan::plan(&t, uuid::Uuid::nil(), &Catalog::platform(), 5).expect("plan")
    }

    fn slug_strategy() -> impl Strategy<Value = TenantSlug> {
        "[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?"
            .prop_filter_map("a valid slug", |s| TenantSlug::parse(&s).ok())
    }

    /// A plan names exactly what the rule names, each name once. The rule's own property tests
    /// (prismicx_tenancy::names) show those names never meet a platform name or another
    /// tenant's, so neither do the plan's.
    fn assert_plan_follows_the_rule(slug: &TenantSlug) {
        let planned = tenant_names(&plan_of(slug));
        let unique: BTreeSet<_> = planned.iter().cloned().collect();
        assert_eq!(
            unique.len(),
            planned.len(),
            "{slug}: a name twice in {planned:?}"
        );
        let ruled: BTreeSet<_> = names::tenant_names(slug, ALL_POSTGRES, ALL_MONGO)
            .into_iter()
            .collect();
        assert_eq!(unique, ruled, "{slug}");
        let platform: BTreeSet<_> = platform_names(&Catalog::platform()).into_iter().collect();
        assert!(
            unique.is_disjoint(&platform),
            "{slug} yields a platform name"
        );
    }

    #[test]
    fn the_catalog_holds_the_contracts_layouts_and_platform_names() {
        let catalog = Catalog::platform();
        let services: Vec<&str> = ServiceKind::ALL.iter().map(|k| k.k8s_name()).collect();
        let names = platform_names(&catalog);
        assert_eq!(
            names,
            names::platform_names(ALL_POSTGRES, ALL_MONGO, &services)
        );
        let set: BTreeSet<_> = names.iter().collect();
        assert_eq!(set.len(), names.len());
    }

    #[test]
    fn slugs_aimed_at_platform_names_get_names_of_their_own() {
        for s in names::SLUGS_AIMED_AT_PLATFORM_NAMES {
            assert_plan_follows_the_rule(&TenantSlug::parse(s).unwrap());
        }
    }

    #[test]
    fn the_operators_name_builders_follow_the_rule() {
        use crate::database_service::build::{operator_secret_name, service_user};
        use prismicx_tenancy::names;
        for kind in ServiceKind::ALL {
            assert_eq!(
                operator_secret_name(kind),
                names::service_secret_name(kind.k8s_name())
            );
        }
        let catalog = Catalog::platform();
        for db in catalog
            .all_postgres()
            .iter()
            .map(|p| p.database)
            .chain(catalog.all_mongo().iter().map(|m| m.database))
        {
            assert_eq!(service_user(db), names::service_user(db));
        }
        for s in ["acme", "acme-corp", "a"] {
            let slug = TenantSlug::parse(s).unwrap();
            let spec: TenantSpec =
                serde_json::from_value(serde_json::json!({"tier": "dedicated"})).expect("spec");
            let plan = crate::tenant::plan::plan(
                &Tenant::new(slug.as_str(), spec),
                uuid::Uuid::nil(),
                &catalog,
                5,
            )
            .expect("plan");
            assert_eq!(plan.secret_name, names::tenant_secret_name(&slug));
            assert_eq!(plan.mongo_user, names::tenant_login_role(&slug));
        }
    }

    proptest! {
        #[test]
        fn every_plan_follows_the_rule(slug in slug_strategy()) {
            assert_plan_follows_the_rule(&slug);
        }
    }
}
