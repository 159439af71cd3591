//! Planning: a pure function from a `Tenant` (and its assigned id) to everything the tenant
//! needs on the data servers — names of schemas, roles, pools, databases and users — and the
//! operator rules the CRD's CEL cannot express. No I/O: unit-tested below.

use prismicx_operator_api::tenant::{
    VectorStoreLimitsSpec, MAX_VECTOR_BYTES, MAX_VECTOR_COLLECTIONS, MAX_VECTOR_POINTS,
};
use prismicx_operator_api::{DeletionPolicy, ServiceKind, Tenant, Tier};
use prismicx_store::mongo::MongoLayout;
use prismicx_store::pg::dedicated_pool_alias;
use prismicx_store::pg::migrate::{tenant_login_role, ServiceSchema};
use prismicx_tenancy::{self as tenancy, TenantSlug};
use uuid::Uuid;

use crate::catalog::Catalog;
use crate::error::Error;

/// The tenant in one PostgreSQL service database.
#[derive(Debug, Clone)]
pub struct PgPlan {
    pub database: &'static str,
    pub migrations: ServiceSchema,
    /// `tenant_<slug>`.
    pub schema: String,
    /// `tenant_<slug>_owner` (NOLOGIN, owns the schema).
    pub owner_role: String,
    /// `tenant_<slug>_login` (the Secret's credentials).
    pub login_role: String,
    /// Dedicated tenants: their PgBouncer pool alias and its size.
    pub pool: Option<PoolPlan>,
    /// The alias a dedicated tenant would have (removed when standard).
    pub dedicated_alias: String,
}

/// A dedicated tenant's pool in PgBouncer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolPlan {
    pub alias: String,
    pub size: u32,
}

/// The tenant in one MongoDB service database.
#[derive(Debug, Clone)]
pub struct MongoPlan {
    pub layout: MongoLayout,
    /// The tenant's own database on mongodb-tenant (used when dedicated; checked and emptied
    /// back into the shared collections when standard).
    pub dedicated_database: String,
}

/// Everything the tenant needs, named.
#[derive(Debug, Clone)]
pub struct TenantPlan {
    pub slug: TenantSlug,
    /// The namespace of the Tenant object. Slugs are platform-wide, so the registry records
    /// which namespace owns each one.
    pub namespace: String,
    /// The id the registry holds for the slug (nil while validating, before it is resolved).
    pub tenant_id: Uuid,
    pub tier: Tier,
    /// `spec.suspended`: the login is disabled, the data kept.
    pub suspended: bool,
    /// What deleting the Tenant does to its data (`Retain` / `Delete`).
    pub deletion_policy: DeletionPolicy,
    /// `spec.displayName`, for the registry entry.
    pub display_name: Option<String>,
    /// The tenant's request budget (requests per second, burst); `None`: the platform default.
    pub rate_limit: Option<(u32, u32)>,
    /// `spec.limits.vectorStore`: the tenant's vector-store quota; `None`: the service's
    /// defaults (so are its unset fields).
    pub vector_quota: Option<tenancy::VectorQuota>,
    pub services: Vec<ServiceKind>,
    pub postgres: Vec<PgPlan>,
    pub mongo: Vec<MongoPlan>,
    /// The tenant's MongoDB user on mongodb-tenant, in database `admin`: the same name as its
    /// PostgreSQL login (`tenant_<slug>_login`), so one `username` in the Secret names both, and
    /// no slug can yield a platform user's name (see [`crate::names`]).
    pub mongo_user: String,
    /// Name of the credentials Secret.
    pub secret_name: String,
}

impl TenantPlan {
    pub fn dedicated(&self) -> bool {
        self.tier == Tier::Dedicated
    }

    /// The registry's view of the tier.
    pub fn registry_tier(&self) -> tenancy::Tier {
        match self.tier {
            Tier::Standard => tenancy::Tier::Standard,
            Tier::Dedicated => tenancy::Tier::Dedicated,
        }
    }

    /// The tenant's login role (the same name in every PostgreSQL database).
    pub fn login_role(&self) -> String {
        tenant_login_role(&self.slug)
    }
}

/// The name of a tenant's credentials Secret.
pub fn secret_name(slug: &str) -> String {
    format!("{slug}-db-credentials")
}

/// Plans `tenant` with the id it was assigned. Fails with [`Error::InvalidSpec`] (and nothing
/// is touched) when the spec breaks a rule.
pub fn plan(
    tenant: &Tenant,
    tenant_id: Uuid,
    catalog: &Catalog,
    default_pool_size: u32,
) -> Result<TenantPlan, Error> {
    let name = tenant.metadata.name.as_deref().unwrap_or_default();
    let slug =
        TenantSlug::parse(name).map_err(|e| Error::InvalidSpec(format!("metadata.name: {e}")))?;
    let spec = &tenant.spec;
    if spec.services.is_empty() {
        return Err(Error::InvalidSpec(
            "spec.services: a tenant uses at least one service".into(),
        ));
    }
    let mut services = spec.services.clone();
    services.sort();
    services.dedup();
    if services.len() != spec.services.len() {
        return Err(Error::InvalidSpec(
            "spec.services: a service is listed twice".into(),
        ));
    }
    let pool_size = match (&spec.pool, spec.tier) {
        (Some(_), Tier::Standard) => {
            return Err(Error::InvalidSpec(
                "spec.pool: applies only to dedicated tenants".into(),
            ))
        }
        (Some(p), Tier::Dedicated) if !(1..=200).contains(&p.size) => {
            return Err(Error::InvalidSpec(format!(
                "spec.pool.size: {} is outside 1..=200",
                p.size
            )))
        }
        (Some(p), Tier::Dedicated) => p.size.unsigned_abs(),
        (None, _) => default_pool_size,
    };
    let rate_limit = match &spec.rate_limit {
        None => None,
        Some(r) if !(1..=100_000).contains(&r.requests_per_second) => {
            return Err(Error::InvalidSpec(format!(
                "spec.rateLimit.requestsPerSecond: {} is outside 1..=100000",
                r.requests_per_second
            )))
        }
        Some(r) if !(1..=1_000_000).contains(&r.burst) => {
            return Err(Error::InvalidSpec(format!(
                "spec.rateLimit.burst: {} is outside 1..=1000000",
                r.burst
            )))
        }
        Some(r) => Some((r.requests_per_second.unsigned_abs(), r.burst.unsigned_abs())),
    };
    let vector_quota = match spec.limits.as_ref().and_then(|l| l.vector_store.as_ref()) {
        None => None,
        Some(limits) => Some(vector_quota(limits)?),
    };
    if let Some(d) = &spec.display_name {
        if d.chars().count() > 200 {
            return Err(Error::InvalidSpec(
                "spec.displayName: at most 200 characters".into(),
            ));
        }
    }

    let mut postgres: Vec<PgPlan> = Vec::new();
    let mut mongo: Vec<MongoPlan> = Vec::new();
    for service in &services {
        let data = catalog.service(*service);
        if let Some(p) = data.postgres {
            if !postgres.iter().any(|x| x.database == p.database) {
                let alias = dedicated_pool_alias(p.database, &slug);
                postgres.push(PgPlan {
                    database: p.database,
                    migrations: p.schema,
                    schema: slug.pg_schema(),
                    owner_role: slug.pg_owner_role(),
                    login_role: tenant_login_role(&slug),
                    pool: (spec.tier == Tier::Dedicated).then(|| PoolPlan {
                        alias: alias.clone(),
                        size: pool_size,
                    }),
                    dedicated_alias: alias,
                });
            }
        }
        if let Some(m) = data.mongo {
            if !mongo.iter().any(|x| x.layout.database == m.database) {
                mongo.push(MongoPlan {
                    layout: m,
                    dedicated_database: m.dedicated_database(&slug),
                });
            }
        }
    }
    Ok(TenantPlan {
        mongo_user: tenant_login_role(&slug),
        secret_name: secret_name(slug.as_str()),
        namespace: tenant
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        slug,
        tenant_id,
        tier: spec.tier,
        suspended: spec.suspended,
        deletion_policy: spec.deletion_policy,
        display_name: spec.display_name.clone(),
        rate_limit,
        vector_quota,
        services,
        postgres,
        mongo,
    })
}

/// `spec.limits.vectorStore` as the registry's quota, each field checked against the CRD's bounds.
fn vector_quota(limits: &VectorStoreLimitsSpec) -> Result<tenancy::VectorQuota, Error> {
    let bounded = |field: &str, value: Option<i64>, max: i64| match value {
        None => Ok(None),
        Some(v) => u64::try_from(v)
            .ok()
            .filter(|_| v <= max)
            .map(Some)
            .ok_or_else(|| {
                Error::InvalidSpec(format!(
                    "spec.limits.vectorStore.{field}: {v} is outside 0..={max}"
                ))
            }),
    };
    Ok(tenancy::VectorQuota {
        max_collections: bounded(
            "maxCollections",
            limits.max_collections,
            MAX_VECTOR_COLLECTIONS,
        )?,
        max_points: bounded("maxPoints", limits.max_points, MAX_VECTOR_POINTS)?,
        max_bytes: bounded("maxBytes", limits.max_bytes, MAX_VECTOR_BYTES)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prismicx_operator_api::tenant::PoolSpec;
    use prismicx_operator_api::TenantSpec;

    fn tenant(name: &str, spec: serde_json::Value) -> Tenant {
        let spec: TenantSpec = serde_json::from_value(spec).unwrap();
        let mut t = Tenant::new(name, spec);
        t.metadata.namespace = Some("default".into());
        t
    }

    fn id() -> Uuid {
        Uuid::from_u128(7)
    }

    #[test]
    fn a_standard_tenant_uses_every_service_and_no_pool() {
        let p = plan(
            &tenant("acme-corp", serde_json::json!({})),
            id(),
            &Catalog::platform(),
            10,
        )
        .unwrap();
        assert_eq!(p.services.len(), 6);
        let dbs: Vec<&str> = p.postgres.iter().map(|x| x.database).collect();
        assert_eq!(dbs, ["system_users", "management_system_repository"]);
        assert!(p.postgres.iter().all(|x| x.pool.is_none()));
        assert_eq!(p.postgres[0].schema, "tenant_acme_corp");
        assert_eq!(p.postgres[0].owner_role, "tenant_acme_corp_owner");
        assert_eq!(p.postgres[0].login_role, "tenant_acme_corp_login");
        assert_eq!(p.postgres[0].dedicated_alias, "system_users__acme_corp");
        assert_eq!(p.mongo.len(), 5);
        assert_eq!(p.mongo[0].dedicated_database, "tenant_registry__acme_corp");
        assert_eq!(p.mongo_user, "tenant_acme_corp_login");
        assert_eq!(p.secret_name, "acme-corp-db-credentials");
        assert_eq!(p.tenant_id, id());
    }

    #[test]
    fn a_dedicated_tenant_gets_a_pool_per_postgres_database() {
        let p = plan(
            &tenant(
                "vip",
                serde_json::json!({"tier": "dedicated", "pool": {"size": 7}, "services": ["user-data", "task-repo"]}),
            ),
            id(),
            &Catalog::platform(),
            10,
        )
        .unwrap();
        assert_eq!(
            p.postgres[0].pool,
            Some(PoolPlan {
                alias: "system_users__vip".into(),
                size: 7
            })
        );
        assert_eq!(p.postgres.len(), 1);
        assert_eq!(p.mongo.len(), 1);
        assert_eq!(p.mongo[0].layout.database, "task_repository");
        let default_size = plan(
            &tenant("vip", serde_json::json!({"tier": "dedicated"})),
            id(),
            &Catalog::platform(),
            12,
        )
        .unwrap();
        assert_eq!(
            default_size.postgres[0].pool.as_ref().map(|p| p.size),
            Some(12)
        );
    }

    #[test]
    fn invalid_specs_are_refused_with_the_field() {
        let cat = Catalog::platform();
        let cases = [
            (tenant("Bad_Name", serde_json::json!({})), "metadata.name"),
            (
                tenant("a", serde_json::json!({"services": []})),
                "spec.services",
            ),
            (
                tenant(
                    "a",
                    serde_json::json!({"services": ["user-data", "user-data"]}),
                ),
                "spec.services",
            ),
            (
                tenant("a", serde_json::json!({"pool": {"size": 3}})),
                "spec.pool",
            ),
            (
                tenant(
                    "a",
                    serde_json::json!({"tier": "dedicated", "pool": {"size": 0}}),
                ),
                "spec.pool.size",
            ),
            (
                tenant("a", serde_json::json!({"displayName": "x".repeat(201)})),
                "spec.displayName",
            ),
            (
                tenant(
                    "a",
                    serde_json::json!({"rateLimit": {"requestsPerSecond": 0, "burst": 5}}),
                ),
                "spec.rateLimit.requestsPerSecond",
            ),
            (
                tenant(
                    "a",
                    serde_json::json!({"rateLimit": {"requestsPerSecond": 5, "burst": 2000000}}),
                ),
                "spec.rateLimit.burst",
            ),
            (
                tenant(
                    "a",
                    serde_json::json!({"limits": {"vectorStore": {"maxCollections": -1}}}),
                ),
                "spec.limits.vectorStore.maxCollections",
            ),
            (
                tenant(
                    "a",
                    serde_json::json!({"limits": {"vectorStore": {"maxBytes": MAX_VECTOR_BYTES + 1}}}),
                ),
                "spec.limits.vectorStore.maxBytes",
            ),
        ];
        for (t, field) in cases {
            match plan(&t, id(), &cat, 10) {
                Err(Error::InvalidSpec(msg)) => assert!(msg.starts_with(field), "{msg}"),
                other => panic!("{field}: expected InvalidSpec, got {other:?}"),
            }
        }
        let mut t = tenant("a", serde_json::json!({"tier": "dedicated"}));
        t.spec.pool = Some(PoolSpec { size: 201 });
        assert!(plan(&t, id(), &cat, 10).is_err());
    }

    #[test]
    fn the_vector_store_quota_is_carried_with_unset_fields_left_to_the_service() {
        let cat = Catalog::platform();
        let none = plan(&tenant("a", serde_json::json!({})), id(), &cat, 10).unwrap();
        assert_eq!(none.vector_quota, None);
        let empty_limits = plan(
            &tenant("a", serde_json::json!({"limits": {}})),
            id(),
            &cat,
            10,
        )
        .unwrap();
        assert_eq!(empty_limits.vector_quota, None);
        let some = plan(
            &tenant(
                "a",
                serde_json::json!({"limits": {"vectorStore": {"maxCollections": 3, "maxPoints": 0}}}),
            ),
            id(),
            &cat,
            10,
        )
        .unwrap();
        assert_eq!(
            some.vector_quota,
            Some(tenancy::VectorQuota {
                max_collections: Some(3),
                max_points: Some(0),
                max_bytes: None,
            })
        );
    }
}
