//! The `Tenant` resource: `metadata.name` is the tenant's slug; the operator assigns the tenant's
//! UUID once, provisions it in every service it uses, and reports what it did in the status.

// `printcolumn(name = …, type_ = …)` repeats keys by design; clippy reads them as duplicates.
#![allow(clippy::duplicated_attributes)]
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ServiceKind;

/// A tenant of the PrismicX platform. Its name is the tenant's slug: a DNS label of at most 40
/// characters, used in schema, role, pool and database names.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "prismicx.io",
    version = "v1alpha1",
    kind = "Tenant",
    plural = "tenants",
    shortname = "tn",
    category = "prismicx",
    namespaced,
    cel,
    status = "TenantStatus",
    derive = "Default",
    doc = "A tenant of the PrismicX platform, provisioned in every service it uses.",
    validation = Rule::new("self.metadata.name.size() <= 40 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name is the tenant slug: a DNS label (lowercase letters, digits, '-') of at most 40 characters"),
    printcolumn(name = "Tier", type_ = "string", json_path = ".spec.tier"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Suspended", type_ = "boolean", json_path = ".spec.suspended"),
    printcolumn(name = "Tenant ID", type_ = "string", json_path = ".status.tenantId", priority = "1"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("!has(self.pool) || self.tier == 'dedicated'").message("spec.pool applies only to dedicated tenants"))]
#[serde(rename_all = "camelCase")]
pub struct TenantSpec {
    /// `standard` tenants share the service databases' PgBouncer pools and MongoDB collections;
    /// `dedicated` tenants get their own PgBouncer pool and MongoDB database. Changing it moves
    /// the tenant's data; nothing is lost.
    #[serde(default)]
    pub tier: Tier,

    /// The services the tenant uses (default: all six). Services can be added; removing one
    /// would strand its data, so it is refused — delete the tenant instead.
    #[serde(default = "all_services")]
    #[x_kube(validation = Rule::new("oldSelf.all(s, s in self)").message("services can be added but not removed"))]
    #[x_kube(validation = Rule::new("self.size() > 0").message("a tenant uses at least one service"))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub services: Vec<ServiceKind>,

    /// What deleting the Tenant does to its data: `Retain` (default) keeps schemas, rows,
    /// databases, documents and users, but revokes the tenant's logins and removes its pools,
    /// registry entry and credentials Secret (a new Tenant of the same name gets the data back);
    /// `Delete` revokes access, ends its connections and drops everything it owns.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// `true` blocks the tenant's access (keys refused, database logins disabled) without
    /// touching its data; `false` restores it.
    #[serde(default)]
    pub suspended: bool,

    /// Connection pooling of a dedicated tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolSpec>,

    /// The tenant's request budget in every service (a token bucket per service replica);
    /// unset: the platform's default (`TENANT_RATE_LIMIT_RPS` / `_BURST` of the services).
    /// A tenant over it gets `429 Too Many Requests` with `Retry-After`; other tenants are
    /// unaffected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,

    /// Per-service limits of the tenant; unset: the platform defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsSpec>,

    /// A human-readable name shown in the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.size() <= 200").message("displayName is at most 200 characters"))]
    pub display_name: Option<String>,
}

impl Default for TenantSpec {
    /// The spec of `spec: {}`: standard tier, every service, `Retain`, not suspended.
    fn default() -> Self {
        TenantSpec {
            tier: Tier::default(),
            services: all_services(),
            deletion_policy: DeletionPolicy::default(),
            suspended: false,
            pool: None,
            rate_limit: None,
            limits: None,
            display_name: None,
        }
    }
}

fn all_services() -> Vec<ServiceKind> {
    ServiceKind::ALL.to_vec()
}

/// Service tier.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Pooled: shared PgBouncer pools and shared MongoDB collections.
    #[default]
    Standard,
    /// The platform's high-value customers: own PgBouncer pool and MongoDB database.
    Dedicated,
}

/// What happens to the data when the Tenant is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep the data; access is revoked and the registry entry, pools and Secret go.
    #[default]
    Retain,
    /// Drop the tenant's schemas, roles, databases, users and pools.
    Delete,
}

/// PgBouncer pool of a dedicated tenant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolSpec {
    /// Server connections of the tenant's own pool in each PostgreSQL service database.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 200").message("pool.size must be between 1 and 200"))]
    pub size: i32,
}

/// A tenant's request budget.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSpec {
    /// Sustained requests per second.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100000").message("rateLimit.requestsPerSecond must be between 1 and 100000"))]
    pub requests_per_second: i32,
    /// Requests allowed at once above the sustained rate (the bucket's size).
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1000000").message("rateLimit.burst must be between 1 and 1000000"))]
    pub burst: i32,
}

/// Per-service limits of a tenant.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitsSpec {
    /// The tenant's quota in vector-store-service; a field left out takes the service's
    /// default (`VECTOR_STORE_MAX_COLLECTIONS` / `_MAX_POINTS` / `_MAX_BYTES`). A write that
    /// would exceed it is refused with `429` and the tenant's existing data is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_store: Option<VectorStoreLimitsSpec>,
}

/// Largest `limits.vectorStore.maxCollections`.
pub const MAX_VECTOR_COLLECTIONS: i64 = 10_000;
/// Largest `limits.vectorStore.maxPoints` (ten billion).
pub const MAX_VECTOR_POINTS: i64 = 10_000_000_000;
/// Largest `limits.vectorStore.maxBytes` (16 TiB).
pub const MAX_VECTOR_BYTES: i64 = 1 << 44;

/// A vector-store quota: a Tenant's own (`spec.limits.vectorStore`) or the service's default
/// (a DatabaseService's `spec.vectorStore.defaultQuota`). `0` allows nothing of that kind (the
/// tenant keeps what it has but cannot add more).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct VectorStoreLimitsSpec {
    /// Collections the tenant may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 10000").message("maxCollections must be between 0 and 10000"))]
    pub max_collections: Option<i64>,
    /// Points (vectors) the tenant may store across its collections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 10000000000").message("maxPoints must be between 0 and 10000000000"))]
    pub max_points: Option<i64>,
    /// Bytes of vectors and payloads the tenant may store (at most 16 TiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 17592186044416").message("maxBytes must be between 0 and 17592186044416 (16 TiB)"))]
    pub max_bytes: Option<i64>,
}

/// What the operator observed and did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(oldSelf.tenantId) || (has(self.tenantId) && self.tenantId == oldSelf.tenantId)").message("status.tenantId is assigned once and never changes"))]
pub struct TenantStatus {
    /// The tenant's UUID, assigned once; every row and document of the tenant carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,

    /// The generation of the spec the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, PostgresReady, MongoReady, PoolReady, Registered, IsolationVerified, Drifted.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The Secret holding the tenant's credentials (keys: host, port, dbname, username,
    /// password, uri, pooler-uri, mongodb-uri).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,

    /// Applied tenant-schema migration version per PostgreSQL service database.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub schema_versions: BTreeMap<String, i32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::ObjectMeta;

    fn tenant(name: &str, spec: TenantSpec) -> Tenant {
        Tenant {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec,
            status: None,
        }
    }

    fn spec() -> TenantSpec {
        serde_json::from_value(serde_json::json!({})).unwrap()
    }

    #[test]
    fn the_default_spec_is_the_empty_spec() {
        assert_eq!(TenantSpec::default(), spec());
    }

    #[test]
    fn defaults_are_standard_all_services_retain() {
        let s = spec();
        assert_eq!(s.tier, Tier::Standard);
        assert_eq!(s.services, ServiceKind::ALL.to_vec());
        assert_eq!(s.deletion_policy, DeletionPolicy::Retain);
        assert!(!s.suspended);
    }

    #[test]
    fn the_name_must_be_a_slug() {
        assert!(tenant("acme-corp", spec()).validate_cel().is_ok());
        for bad in ["Acme", "acme_corp", "-acme", &"a".repeat(41)] {
            assert!(tenant(bad, spec()).validate_cel().is_err(), "{bad}");
        }
    }

    #[test]
    fn pool_settings_need_the_dedicated_tier() {
        let mut s = spec();
        s.pool = Some(PoolSpec { size: 5 });
        assert!(tenant("a", s.clone()).validate_cel().is_err());
        s.tier = Tier::Dedicated;
        assert!(tenant("a", s.clone()).validate_cel().is_ok());
        s.pool = Some(PoolSpec { size: 0 });
        assert!(tenant("a", s).validate_cel().is_err());
    }

    #[test]
    fn vector_store_limits_are_bounded() {
        let with = |limits: serde_json::Value| {
            let spec: TenantSpec =
                serde_json::from_value(serde_json::json!({"limits": {"vectorStore": limits}}))
                    .unwrap();
            tenant("a", spec)
        };
        let ok = with(
            serde_json::json!({"maxCollections": 0, "maxPoints": MAX_VECTOR_POINTS, "maxBytes": MAX_VECTOR_BYTES}),
        );
        assert!(ok.validate_cel().is_ok());
        assert_eq!(
            ok.spec
                .limits
                .and_then(|l| l.vector_store)
                .and_then(|v| v.max_points),
            Some(MAX_VECTOR_POINTS)
        );
        assert!(with(serde_json::json!({})).validate_cel().is_ok());
        for bad in [
            serde_json::json!({"maxCollections": -1}),
            serde_json::json!({"maxCollections": MAX_VECTOR_COLLECTIONS + 1}),
            serde_json::json!({"maxPoints": MAX_VECTOR_POINTS + 1}),
            serde_json::json!({"maxBytes": MAX_VECTOR_BYTES + 1}),
        ] {
            assert!(with(bad.clone()).validate_cel().is_err(), "{bad}");
        }
    }

    #[test]
    fn services_can_grow_but_not_shrink() {
        let mut old = spec();
        old.services = vec![ServiceKind::UserData];
        let mut grown = old.clone();
        grown.services.push(ServiceKind::TaskRepo);
        assert!(tenant("a", grown.clone())
            .validate_cel_update(&tenant("a", old.clone()))
            .is_ok());
        assert!(tenant("a", old)
            .validate_cel_update(&tenant("a", grown))
            .is_err());
        let mut none = spec();
        none.services.clear();
        assert!(tenant("a", none).validate_cel().is_err());
    }

    #[test]
    fn the_tenant_id_never_changes_once_assigned() {
        let mut old = tenant("a", spec());
        old.status = Some(TenantStatus {
            tenant_id: Some("11111111-1111-4111-8111-111111111111".into()),
            ..Default::default()
        });
        let mut changed = old.clone();
        changed.status = Some(TenantStatus {
            tenant_id: Some("22222222-2222-4222-8222-222222222222".into()),
            ..Default::default()
        });
        assert!(changed.validate_cel_update(&old).is_err());
        let mut cleared = old.clone();
        cleared.status = Some(TenantStatus::default());
        assert!(cleared.validate_cel_update(&old).is_err());
        assert!(old.validate_cel_update(&old).is_ok());
    }
}
