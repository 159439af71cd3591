//! The tenant registry (`tenant_registry.tenants` on mongodb-system) as tenant-mgmt reads it, and
//! [`RegistryDirectory`]: the shared library's [`KeyStore`] and [`TenantResolver`] implemented on
//! the registry and the API-key collection.
//!
//! The operator owns the registry documents (one per tenant, `_id` = slug, fields in snake_case:
//! `tenant_id` as a BSON UUID, `tier`, `state`, `namespace`, `display_name`, `services`,
//! `placement`, `created_at`, `updated_at`, and optionally `rate_limit: {rps, burst}`, the
//! tenant's own request budget, and `vector_quota: {max_collections, max_points, max_bytes}`,
//! its vector-store quota, any field optional); tenant-mgmt only reads them. A document it
//! cannot read (a missing or malformed `tenant_id`, an unknown tier or state) resolves to no
//! tenant and is logged, so a damaged entry fails closed; a malformed `rate_limit` or
//! `vector_quota` is logged and ignored (the platform default applies).

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::FindOptions;
use mongodb::{Collection, Database};
use prismicx_service_common::auth::{KeyStore, PresentedKey, VerifiedKey};
use prismicx_service_common::mongo::chrono_time;
use prismicx_service_common::mongo::retry_transient;
use prismicx_service_common::ratelimit::RateLimit;
use prismicx_service_common::tenancy::{
    DirectoryError, TenantPlacement, TenantRecord, TenantResolver, TenantSlug, TenantState, Tier,
};

use crate::domain::TenantView;
use crate::keys::ApiKeys;
use crate::REGISTRY_COLLECTION;

/// Read access to the registry.
#[derive(Debug, Clone)]
pub struct Registry {
    tenants: Collection<Document>,
}

/// A filter of the registry listing.
#[derive(Debug, Clone, Default)]
pub struct RegistryFilter {
    pub state: Option<TenantState>,
    pub tier: Option<Tier>,
    /// Slugs after this one (the cursor).
    pub after: Option<String>,
    pub limit: u32,
}

fn parse_enum<T: serde::de::DeserializeOwned>(d: &Document, key: &str) -> Option<T> {
    let s = d.get_str(key).ok()?;
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}

fn enum_str<T: serde::Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn uuid_of(d: &Document, key: &str) -> Option<uuid::Uuid> {
    match d.get(key) {
        Some(Bson::Binary(b)) => uuid::Uuid::from_slice(&b.bytes).ok(),
        _ => None,
    }
}

fn time_of(d: &Document, key: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    match d.get(key) {
        Some(Bson::DateTime(t)) => Some(chrono_time(*t)),
        _ => None,
    }
}

/// The placement a registry document describes, when it is well-formed.
pub fn placement_of(d: &Document) -> Option<TenantPlacement> {
    let slug = d
        .get_str("_id")
        .ok()
        .and_then(|s| TenantSlug::parse(s).ok());
    let placement = (|| {
        Some(TenantPlacement {
            id: uuid_of(d, "tenant_id")?,
            slug: slug.clone()?,
            tier: parse_enum(d, "tier")?,
            state: parse_enum(d, "state")?,
        })
    })();
    if placement.is_none() {
        tracing::warn!(
            slug = slug.as_ref().map(|s| s.as_str()).unwrap_or("?"),
            "registry entry is malformed; treating the tenant as unknown"
        );
    }
    placement
}

/// The tenant's own request budget, when its document has a well-formed `rate_limit`.
pub fn rate_limit_of(d: &Document) -> Option<RateLimit> {
    let r = d.get_document("rate_limit").ok()?;
    let number = |k: &str| match r.get(k) {
        Some(Bson::Double(v)) => Some(*v),
        Some(Bson::Int32(v)) => Some(f64::from(*v)),
        Some(Bson::Int64(v)) => Some(*v as f64),
        _ => None,
    };
    let limit = (|| {
        let rps = number("rps").filter(|v| v.is_finite() && *v >= 0.0)?;
        let burst = number("burst").filter(|v| (0.0..=f64::from(u32::MAX)).contains(v))?;
        Some(RateLimit {
            rps,
            burst: burst as u32,
        })
    })();
    if limit.is_none() {
        tracing::warn!(
            slug = d.get_str("_id").unwrap_or("?"),
            "registry entry has a malformed rate_limit; the platform default applies"
        );
    }
    limit
}

/// The tenant's own vector-store quota, when its document has a well-formed `vector_quota`: a
/// document whose fields present are non-negative integers (an absent field takes the service's
/// default). Anything else is logged and ignored, so the service's defaults apply.
pub fn vector_quota_of(d: &Document) -> Option<prismicx_tenancy::VectorQuota> {
    let value = d.get("vector_quota").filter(|v| !matches!(v, Bson::Null))?;
    let quota = (|| {
        let q = value.as_document()?;
        let count = |k: &str| match q.get(k) {
            None | Some(Bson::Null) => Some(None),
            Some(Bson::Int32(v)) => u64::try_from(*v).ok().map(Some),
            Some(Bson::Int64(v)) => u64::try_from(*v).ok().map(Some),
            _ => None,
        };
        Some(prismicx_tenancy::VectorQuota {
            max_collections: count("max_collections")?,
            max_points: count("max_points")?,
            max_bytes: count("max_bytes")?,
        })
    })();
    if quota.is_none() {
        tracing::warn!(
            slug = d.get_str("_id").unwrap_or("?"),
            "registry entry has a malformed vector_quota; the service defaults apply"
        );
    }
    quota
}

/// The placement, rate limit and vector-store quota a registry document describes, when it is
/// well-formed.
pub fn record_of(d: &Document) -> Option<TenantRecord> {
    Some(TenantRecord {
        placement: placement_of(d)?,
        rate_limit: rate_limit_of(d),
        vector_quota: vector_quota_of(d),
    })
}

/// The API view of a registry document.
pub fn view_of(d: &Document) -> Option<TenantView> {
    let p = placement_of(d)?;
    let placement = d
        .get_document("placement")
        .ok()
        .map(|p| serde_json::to_value(Bson::Document(p.clone()).into_relaxed_extjson()))
        .and_then(Result::ok)
        .unwrap_or(serde_json::Value::Null);
    Some(TenantView {
        id: p.id,
        slug: p.slug,
        tier: p.tier,
        state: p.state,
        display_name: d.get_str("display_name").ok().map(String::from),
        namespace: d.get_str("namespace").ok().map(String::from),
        services: d
            .get_array("services")
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        placement,
        created_at: time_of(d, "created_at"),
        updated_at: time_of(d, "updated_at"),
    })
}

impl Registry {
    pub fn new(db: &Database) -> Self {
        Registry {
            tenants: db.collection(REGISTRY_COLLECTION),
        }
    }

    /// The registry document of `slug`.
    pub async fn get(&self, slug: &TenantSlug) -> mongodb::error::Result<Option<Document>> {
        retry_transient(|| async { self.tenants.find_one(doc! { "_id": slug.as_str() }).await })
            .await
    }

    /// Registry documents in slug order.
    pub async fn list(&self, f: &RegistryFilter) -> mongodb::error::Result<Vec<Document>> {
        let mut filter = Document::new();
        if let Some(s) = f.state {
            filter.insert("state", enum_str(s));
        }
        if let Some(t) = f.tier {
            filter.insert("tier", enum_str(t));
        }
        if let Some(after) = &f.after {
            filter.insert("_id", doc! { "$gt": after.as_str() });
        }
        let options = FindOptions::builder()
            .sort(doc! { "_id": 1 })
            .limit(i64::from(f.limit) + 1)
            .build();
        retry_transient(|| async {
            let cursor = self
                .tenants
                .find(filter.clone())
                .with_options(options.clone())
                .await?;
            cursor.try_collect::<Vec<Document>>().await
        })
        .await
    }
}

/// The shared library's tenant and key directory, answered from MongoDB.
#[derive(Debug, Clone)]
pub struct RegistryDirectory {
    pub registry: Registry,
    pub keys: ApiKeys,
}

#[async_trait]
impl TenantResolver for RegistryDirectory {
    async fn resolve(&self, slug: &TenantSlug) -> Result<Option<TenantPlacement>, DirectoryError> {
        Ok(self.resolve_record(slug).await?.map(|r| r.placement))
    }

    async fn resolve_record(
        &self,
        slug: &TenantSlug,
    ) -> Result<Option<TenantRecord>, DirectoryError> {
        Ok(self.registry.get(slug).await?.as_ref().and_then(record_of))
    }
}

#[async_trait]
impl KeyStore for RegistryDirectory {
    async fn verify(&self, key: &PresentedKey) -> Result<Option<TenantSlug>, DirectoryError> {
        Ok(self.verify_key(key).await?.map(|v| v.tenant))
    }

    async fn verify_key(&self, key: &PresentedKey) -> Result<Option<VerifiedKey>, DirectoryError> {
        self.verify_digest(&key.digest().to_string()).await
    }
}

impl RegistryDirectory {
    /// The tenant a live key with this digest acts for, and when the key expires. The key must
    /// belong to the tenant registered under the slug now, in its current life:
    /// - a tenant deleted and created again under the same name gets a new id, so the old
    ///   tenant's keys do not match it;
    /// - a tenant deleted with `Retain` comes back with the same id but a new registry entry
    ///   (`created_at` is set when the entry is inserted), so a key issued before that entry
    ///   was created is an old life's key and is refused, even if the `deleted` event that
    ///   revokes such keys was missed.
    pub async fn verify_digest(&self, digest: &str) -> Result<Option<VerifiedKey>, DirectoryError> {
        let Some(key) = self.keys.live_owner(digest).await? else {
            return Ok(None);
        };
        let Some(current) = self.registry.get(&key.slug).await? else {
            return Ok(None);
        };
        let Some(placement) = placement_of(&current).filter(|p| p.id == key.tenant_id) else {
            return Ok(None);
        };
        if time_of(&current, "created_at").is_some_and(|entry| key.created_at < entry) {
            tracing::info!(tenant = %key.slug, "refusing a key issued before the tenant's registry entry was created");
            return Ok(None);
        }
        Ok(Some(VerifiedKey {
            tenant: placement.slug,
            expires_at: key.expires_at,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limit_is_read_when_well_formed_and_ignored_otherwise() {
        let with = |r: Bson| doc! { "_id": "acme", "rate_limit": r };
        assert_eq!(
            rate_limit_of(&with(Bson::Document(doc! { "rps": 2.5, "burst": 10 }))),
            Some(RateLimit {
                rps: 2.5,
                burst: 10
            })
        );
        assert_eq!(
            rate_limit_of(&with(Bson::Document(doc! { "rps": 3_i64, "burst": 4_i32 }))),
            Some(RateLimit { rps: 3.0, burst: 4 })
        );
        for bad in [
            Bson::Document(doc! { "rps": -1, "burst": 10 }),
            Bson::Document(doc! { "rps": 1 }),
            Bson::Document(doc! { "rps": "fast", "burst": 1 }),
            Bson::Document(doc! { "rps": 1, "burst": -5 }),
            Bson::String("100/s".into()),
        ] {
            assert_eq!(rate_limit_of(&with(bad.clone())), None, "{bad}");
        }
        assert_eq!(rate_limit_of(&doc! { "_id": "acme" }), None);
    }

    #[test]
    fn a_vector_quota_is_read_when_well_formed_and_ignored_otherwise() {
        let with = |q: Bson| doc! { "_id": "acme", "vector_quota": q };
        assert_eq!(
            vector_quota_of(&with(Bson::Document(
                doc! { "max_collections": 3_i32, "max_points": 1000_i64 }
            ))),
            Some(prismicx_tenancy::VectorQuota {
                max_collections: Some(3),
                max_points: Some(1000),
                max_bytes: None,
            })
        );
        assert_eq!(
            vector_quota_of(&with(Bson::Document(doc! {}))),
            Some(prismicx_tenancy::VectorQuota::default())
        );
        for bad in [
            Bson::Document(doc! { "max_points": -1_i64 }),
            Bson::Document(doc! { "max_bytes": "1GiB" }),
            Bson::Document(doc! { "max_collections": 2.5 }),
            Bson::String("10 collections".into()),
        ] {
            assert_eq!(vector_quota_of(&with(bad.clone())), None, "{bad}");
        }
        assert_eq!(vector_quota_of(&with(Bson::Null)), None);
        assert_eq!(vector_quota_of(&doc! { "_id": "acme" }), None);
    }
}
