//! The tenant registry (`tenant_registry.tenants` on mongodb-system) as tenant-mgmt reads it, and
//! [`RegistryDirectory`]: the shared library's [`KeyStore`] and [`TenantResolver`] implemented on
//! the registry and the API-key collection.
//!
//! The operator owns the registry documents (one per tenant, `_id` = slug, fields in snake_case:
//! `tenant_id` as a BSON UUID, `tier`, `state`, `namespace`, `display_name`, `services`,
//! `placement`, `created_at`, `updated_at`); tenant-mgmt only reads them. A document it cannot
//! read (a missing or malformed `tenant_id`, an unknown tier or state) resolves to no tenant and
//! is logged, so a damaged entry fails closed.

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::FindOptions;
use mongodb::{Collection, Database};
use prismicx_service_common::auth::{KeyStore, PresentedKey};
use prismicx_service_common::mongo::chrono_time;
use prismicx_service_common::mongo::retry_transient;
use prismicx_service_common::tenancy::{
    DirectoryError, TenantPlacement, TenantResolver, TenantSlug, TenantState, Tier,
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
        Ok(self
            .registry
            .get(slug)
            .await?
            .as_ref()
            .and_then(placement_of))
    }
}

#[async_trait]
impl KeyStore for RegistryDirectory {
    async fn verify(&self, key: &PresentedKey) -> Result<Option<TenantSlug>, DirectoryError> {
        self.verify_digest(&key.digest().to_string()).await
    }
}

impl RegistryDirectory {
    /// The tenant a live key with this digest acts for. The key's tenant must still be the
    /// registered owner of the slug: a tenant deleted and created again under the same name
    /// gets a new id, and the old tenant's keys stop working.
    pub async fn verify_digest(&self, digest: &str) -> Result<Option<TenantSlug>, DirectoryError> {
        let Some((slug, tenant_id)) = self.keys.live_owner(digest).await? else {
            return Ok(None);
        };
        let current = self.registry.get(&slug).await?;
        Ok(current
            .as_ref()
            .and_then(placement_of)
            .filter(|p| p.id == tenant_id)
            .map(|p| p.slug))
    }
}
