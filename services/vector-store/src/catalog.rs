//! Collection metadata: one document per collection in the `collections` collection of the
//! tenant's database (the shared `vector_store_system` for `standard` tenants, the tenant's own
//! `vector_store_system__<slug>` for `dedicated` ones), reached only through a tenant-scoped
//! [`TenantCollection`], and a small in-process cache name → [`CollectionMeta`] per tenant for
//! the query path.
//!
//! The service is the only writer of its data directory and of these documents, so the cache is
//! exact as long as every change goes through [`Catalog`]: an insert fills it, a delete drops the
//! entry, and a tenant lifecycle event (or a tier change seen on a request) drops the tenant's
//! whole map. Misses are not cached.

use std::collections::HashMap;
use std::sync::RwLock;

use chrono::{DateTime, Utc};
use mongodb::bson::{self, doc};
use mongodb::options::FindOptions;
use prismicx_service_common::mongo::{
    bson_time, bson_uuid, chrono_time, is_duplicate_key, MongoStore, TenantCollection,
    TenantMongoError,
};
use prismicx_service_common::tenancy::TenantPlacement;
use prismicx_service_common::ApiError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{self, Collection};
use crate::engine::{CollectionSpec, IndexParams, Metric};
use crate::COLLECTIONS;

/// A collection's document in `collections`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CollectionDoc {
    /// The collection's id (a UUIDv7: its timestamp is the creation time).
    #[serde(rename = "_id")]
    pub id: bson::Uuid,
    /// Added by [`TenantCollection`] on insert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<bson::Uuid>,
    pub name: String,
    pub dimension: i64,
    pub metric: Metric,
    pub index: IndexDoc,
    pub indexed_fields: Vec<String>,
    pub created_at: bson::DateTime,
}

/// The HNSW parameters as stored.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct IndexDoc {
    pub m: i64,
    pub ef_construction: i64,
    pub ef_search: i64,
}

fn uuid_of(id: bson::Uuid) -> Uuid {
    Uuid::from_bytes(id.bytes())
}

fn count(n: i64) -> usize {
    usize::try_from(n).unwrap_or_default()
}

/// What the query path needs of a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionMeta {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub spec: CollectionSpec,
    pub created_at: DateTime<Utc>,
}

impl CollectionMeta {
    pub fn to_api(&self) -> Collection {
        Collection {
            id: self.id,
            tenant_id: self.tenant_id,
            name: self.name.clone(),
            dimension: self.spec.dimension,
            metric: self.spec.metric,
            index: self.spec.index.into(),
            indexed_fields: self.spec.indexed_fields.clone(),
            created_at: self.created_at,
        }
    }

    fn of(d: CollectionDoc, tenant: Uuid) -> Self {
        CollectionMeta {
            id: uuid_of(d.id),
            tenant_id: d.tenant_id.map(uuid_of).unwrap_or(tenant),
            name: d.name,
            spec: CollectionSpec {
                dimension: count(d.dimension),
                metric: d.metric,
                index: IndexParams {
                    m: count(d.index.m),
                    ef_construction: count(d.index.ef_construction),
                    ef_search: count(d.index.ef_search),
                },
                indexed_fields: d.indexed_fields,
            },
            created_at: chrono_time(d.created_at),
        }
    }

    fn to_doc(&self) -> CollectionDoc {
        let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        CollectionDoc {
            id: bson_uuid(self.id),
            tenant_id: None,
            name: self.name.clone(),
            dimension: n(self.spec.dimension),
            metric: self.spec.metric,
            index: IndexDoc {
                m: n(self.spec.index.m),
                ef_construction: n(self.spec.index.ef_construction),
                ef_search: n(self.spec.index.ef_search),
            },
            indexed_fields: self.spec.indexed_fields.clone(),
            created_at: bson_time(self.created_at),
        }
    }
}

/// The 404 of a collection name the tenant does not have (whoever else has it).
pub fn not_found(name: &str) -> ApiError {
    ApiError::not_found("collection", name)
}

/// Collection metadata with its per-tenant cache.
#[derive(Debug, Default)]
pub struct Catalog {
    cache: RwLock<HashMap<Uuid, HashMap<String, CollectionMeta>>>,
}

impl Catalog {
    fn docs(store: &MongoStore, tenant: &TenantPlacement) -> TenantCollection<CollectionDoc> {
        store.collection(tenant, COLLECTIONS)
    }

    fn cached(&self, tenant: Uuid, name: &str) -> Option<CollectionMeta> {
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        cache.get(&tenant).and_then(|m| m.get(name)).cloned()
    }

    fn remember(&self, meta: &CollectionMeta) {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        cache
            .entry(meta.tenant_id)
            .or_default()
            .insert(meta.name.clone(), meta.clone());
    }

    /// Forgets collection `name` of `tenant`.
    pub fn forget(&self, tenant: Uuid, name: &str) {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = cache.get_mut(&tenant) {
            m.remove(name);
        }
    }

    /// Forgets everything cached of `tenant`.
    pub fn forget_tenant(&self, tenant: Uuid) {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        cache.remove(&tenant);
    }

    /// Stores a new collection's document: 409 naming `name` when the tenant has one of that
    /// name.
    pub async fn insert(
        &self,
        store: &MongoStore,
        tenant: &TenantPlacement,
        name: String,
        spec: CollectionSpec,
    ) -> Result<CollectionMeta, ApiError> {
        let meta = CollectionMeta {
            id: Uuid::now_v7(),
            tenant_id: tenant.id,
            name,
            spec,
            // Millisecond precision, as stored.
            created_at: chrono_time(bson_time(Utc::now())),
        };
        match Self::docs(store, tenant).insert_one(&meta.to_doc()).await {
            Ok(_) => {}
            Err(TenantMongoError::Mongo(e)) if is_duplicate_key(&e) => {
                return Err(ApiError::conflict(
                    "name",
                    format!("a collection named {} already exists", meta.name),
                ))
            }
            Err(e) => return Err(e.into()),
        }
        self.remember(&meta);
        Ok(meta)
    }

    /// Collection `name` of `tenant` (cached), or 404.
    pub async fn get(
        &self,
        store: &MongoStore,
        tenant: &TenantPlacement,
        name: &str,
    ) -> Result<CollectionMeta, ApiError> {
        if let Some(m) = self.cached(tenant.id, name) {
            return Ok(m);
        }
        if domain::check_name(name).is_err() {
            return Err(not_found(name));
        }
        let doc = Self::docs(store, tenant)
            .find_one(doc! { "name": name })
            .await?
            .ok_or_else(|| not_found(name))?;
        let meta = CollectionMeta::of(doc, tenant.id);
        self.remember(&meta);
        Ok(meta)
    }

    /// Deletes collection `id`'s document; whether there was one.
    pub async fn delete(
        &self,
        store: &MongoStore,
        tenant: &TenantPlacement,
        meta: &CollectionMeta,
    ) -> Result<bool, ApiError> {
        self.forget(tenant.id, &meta.name);
        let n = Self::docs(store, tenant)
            .delete_one(doc! { "_id": bson_uuid(meta.id) })
            .await?;
        Ok(n > 0)
    }

    /// Up to `limit + 1` collections of `tenant` by name, after `after`.
    pub async fn list(
        &self,
        store: &MongoStore,
        tenant: &TenantPlacement,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CollectionMeta>, ApiError> {
        let filter = match after {
            Some(a) => doc! { "name": { "$gt": a } },
            None => doc! {},
        };
        let mut opts = FindOptions::default();
        opts.sort = Some(doc! { "name": 1 });
        opts.limit = Some(i64::from(limit) + 1);
        let docs = Self::docs(store, tenant).find(filter, Some(opts)).await?;
        Ok(docs
            .into_iter()
            .map(|d| CollectionMeta::of(d, tenant.id))
            .collect())
    }

    /// The ids of every collection document `tenant` has (for the garbage rule).
    pub async fn ids(
        store: &MongoStore,
        tenant: &TenantPlacement,
    ) -> Result<std::collections::HashSet<Uuid>, TenantMongoError> {
        let docs = Self::docs(store, tenant).find(doc! {}, None).await?;
        Ok(docs.into_iter().map(|d| uuid_of(d.id)).collect())
    }
}
