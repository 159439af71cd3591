//! Tenant API keys: issued once in clear, stored as SHA-256 digests, listed by prefix, revoked.
//!
//! Keys are platform data, not tenant data: a key is verified before anyone knows which tenant it
//! belongs to, so every tier's keys live in the shared `tenant_registry.api_keys` collection on
//! mongodb-system, each document carrying its `tenant_id`. Verification looks a key up by its
//! digest (unique index `api_keys_digest`); everything a tenant does with its keys goes through a
//! [`TenantCollection`] (the tenant filter) and the index `api_keys_tenant_created`.
//!
//! A key is `pxk_` followed by 40 characters from `[A-Za-z0-9]` drawn from the operating
//! system's random source (about 238 bits), so a plain SHA-256 digest is enough: there is no
//! dictionary to try against it. Its first 12 characters are its `prefix`, shown in listings so a
//! user can tell keys apart; the full key is shown once, in the answer that created it.
//!
//! A key dies with its tenant: when the tenant is deleted ([`ApiKeys::revoke_all`] on the
//! `deleted` lifecycle event) and, should that event be missed, because a key is valid only when
//! it was issued after the tenant's current registry entry was created (see
//! [`RegistryDirectory::verify_digest`](crate::registry::RegistryDirectory::verify_digest)).

use chrono::{DateTime, Utc};
use mongodb::bson::{self, doc, Bson, Document};
use mongodb::options::{FindOptions, IndexOptions};
use mongodb::{Collection, Database, IndexModel};
use prismicx_service_common::auth::KeyDigest;
use prismicx_service_common::mongo::{bson_time, bson_uuid, chrono_time};
use prismicx_service_common::mongo::{retry_transient, tenant_bson, TenantCollection};
use prismicx_service_common::tenancy::{TenantPlacement, TenantSlug};
use rand::distributions::{Alphanumeric, DistString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{ApiKeyStatus, ApiKeyView};
use crate::API_KEYS_COLLECTION;

/// What every key starts with (so secret scanners can recognise leaked keys).
pub const KEY_PREFIX: &str = "pxk_";
/// Random characters after [`KEY_PREFIX`].
const KEY_RANDOM_LEN: usize = 40;
/// Characters of a key shown in listings.
pub const SHOWN_PREFIX_LEN: usize = 12;
/// Live (neither revoked nor expired) keys a tenant may hold.
pub const MAX_LIVE_KEYS: u64 = 100;

/// A new key in clear; shown once.
pub fn generate() -> String {
    let random = Alphanumeric.sample_string(&mut rand::rngs::OsRng, KEY_RANDOM_LEN);
    format!("{KEY_PREFIX}{random}")
}

/// An API key as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyDoc {
    #[serde(rename = "_id")]
    pub id: bson::Uuid,
    /// Set by the tenant filter on insert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<bson::Uuid>,
    pub slug: String,
    pub name: String,
    pub prefix: String,
    /// `sha256:<hex>` of the key.
    pub digest: String,
    pub created_at: bson::DateTime,
    pub created_by: String,
    #[serde(default)]
    pub expires_at: Option<bson::DateTime>,
    #[serde(default)]
    pub revoked_at: Option<bson::DateTime>,
}

impl KeyDoc {
    pub fn view(&self, now: DateTime<Utc>) -> ApiKeyView {
        let expires_at = self.expires_at.map(chrono_time);
        let revoked_at = self.revoked_at.map(chrono_time);
        let status = if revoked_at.is_some() {
            ApiKeyStatus::Revoked
        } else if expires_at.is_some_and(|e| e <= now) {
            ApiKeyStatus::Expired
        } else {
            ApiKeyStatus::Active
        };
        ApiKeyView {
            id: Uuid::from_bytes(self.id.bytes()),
            name: self.name.clone(),
            prefix: self.prefix.clone(),
            status,
            created_at: chrono_time(self.created_at),
            created_by: self.created_by.clone(),
            expires_at,
            revoked_at,
        }
    }
}

/// A key that is neither revoked nor expired, as verification needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveKey {
    pub slug: TenantSlug,
    pub tenant_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The API-key collection.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    raw: Collection<Document>,
    db: Database,
}

/// The cursor of the key listing: creation time and id of the last key shown.
pub type KeyCursor = (DateTime<Utc>, Uuid);

impl ApiKeys {
    pub fn new(db: &Database) -> Self {
        ApiKeys {
            raw: db.collection(API_KEYS_COLLECTION),
            db: db.clone(),
        }
    }

    fn of(&self, tenant: &TenantPlacement) -> TenantCollection<KeyDoc> {
        TenantCollection::new(&self.db, API_KEYS_COLLECTION, tenant.id)
    }

    /// The collection's indexes (created at start-up; idempotent).
    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        let models = vec![
            IndexModel::builder()
                .keys(doc! { "digest": 1 })
                .options(
                    IndexOptions::builder()
                        .name("api_keys_digest".to_string())
                        .unique(true)
                        .build(),
                )
                .build(),
            IndexModel::builder()
                .keys(doc! { "tenant_id": 1, "created_at": 1, "_id": 1 })
                .options(
                    IndexOptions::builder()
                        .name("api_keys_tenant_created".to_string())
                        .build(),
                )
                .build(),
        ];
        retry_transient(|| async { self.raw.create_indexes(models.clone()).await }).await?;
        Ok(())
    }

    /// The live key with `digest`: its owner, issuance and expiry.
    pub async fn live_owner(&self, digest: &str) -> mongodb::error::Result<Option<LiveKey>> {
        let now = bson::DateTime::now();
        let filter = doc! {
            "digest": digest,
            "revoked_at": Bson::Null,
            "$or": [ { "expires_at": Bson::Null }, { "expires_at": { "$gt": now } } ],
        };
        let found = retry_transient(|| async { self.raw.find_one(filter.clone()).await }).await?;
        Ok(found.and_then(|d| {
            let slug = TenantSlug::parse(d.get_str("slug").ok()?).ok()?;
            let tenant_id = match d.get("tenant_id") {
                Some(Bson::Binary(b)) => Uuid::from_slice(&b.bytes).ok()?,
                _ => return None,
            };
            let created_at = chrono_time(*d.get_datetime("created_at").ok()?);
            let expires_at = d.get_datetime("expires_at").ok().map(|t| chrono_time(*t));
            Some(LiveKey {
                slug,
                tenant_id,
                created_at,
                expires_at,
            })
        }))
    }

    /// Revokes every live key of the tenant `tenant_id` issued up to `issued_up_to` (a key
    /// issued later belongs to a tenant created again since); returns how many.
    pub async fn revoke_all(
        &self,
        tenant_id: Uuid,
        issued_up_to: DateTime<Utc>,
    ) -> Result<u64, prismicx_service_common::mongo::TenantMongoError> {
        let coll: TenantCollection<KeyDoc> =
            TenantCollection::new(&self.db, API_KEYS_COLLECTION, tenant_id);
        let now = bson::DateTime::now();
        let filter = doc! {
            "revoked_at": Bson::Null,
            "created_at": { "$lte": bson_time(issued_up_to) },
        };
        retry_transient(|| async {
            coll.update_many(filter.clone(), doc! { "$set": { "revoked_at": now } })
                .await
        })
        .await
    }

    /// Live keys of `tenant`.
    pub async fn live_count(&self, tenant: &TenantPlacement) -> mongodb::error::Result<u64> {
        let now = bson::DateTime::now();
        let filter = doc! {
            "tenant_id": tenant_bson(tenant.id),
            "revoked_at": Bson::Null,
            "$or": [ { "expires_at": Bson::Null }, { "expires_at": { "$gt": now } } ],
        };
        retry_transient(|| async { self.raw.count_documents(filter.clone()).await }).await
    }

    pub async fn insert(
        &self,
        tenant: &TenantPlacement,
        doc: &KeyDoc,
    ) -> Result<(), prismicx_service_common::mongo::TenantMongoError> {
        retry_transient(|| async { self.of(tenant).insert_one(doc).await.map(|_| ()) }).await
    }

    pub async fn get(
        &self,
        tenant: &TenantPlacement,
        id: Uuid,
    ) -> Result<Option<KeyDoc>, prismicx_service_common::mongo::TenantMongoError> {
        let filter = doc! { "_id": bson_uuid(id) };
        retry_transient(|| async { self.of(tenant).find_one(filter.clone()).await }).await
    }

    /// Revokes a key; `false` when `tenant` has no key `id`. Revoking twice keeps the first time.
    pub async fn revoke(
        &self,
        tenant: &TenantPlacement,
        id: Uuid,
    ) -> Result<bool, prismicx_service_common::mongo::TenantMongoError> {
        let now = bson::DateTime::now();
        let coll = self.of(tenant);
        retry_transient(|| async {
            coll.update_one(
                doc! { "_id": bson_uuid(id), "revoked_at": Bson::Null },
                doc! { "$set": { "revoked_at": now } },
            )
            .await
        })
        .await?;
        Ok(self.get(tenant, id).await?.is_some())
    }

    /// `tenant`'s keys, oldest first.
    pub async fn list(
        &self,
        tenant: &TenantPlacement,
        after: Option<KeyCursor>,
        limit: u32,
    ) -> Result<Vec<KeyDoc>, prismicx_service_common::mongo::TenantMongoError> {
        let filter = match after {
            None => Document::new(),
            Some((at, id)) => {
                let at = bson_time(at);
                doc! { "$or": [
                    { "created_at": { "$gt": at } },
                    { "created_at": at, "_id": { "$gt": bson_uuid(id) } },
                ] }
            }
        };
        let options = FindOptions::builder()
            .sort(doc! { "created_at": 1, "_id": 1 })
            .limit(i64::from(limit) + 1)
            .build();
        let coll = self.of(tenant);
        retry_transient(|| async { coll.find(filter.clone(), Some(options.clone())).await }).await
    }
}

/// The digest stored for `key`.
pub fn digest_of(key: &str) -> String {
    KeyDigest::of(key).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_recognisable() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), KEY_PREFIX.len() + KEY_RANDOM_LEN);
        assert!(a[KEY_PREFIX.len()..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric()));
        assert!(digest_of(&a).starts_with("sha256:"));
        assert_ne!(digest_of(&a), digest_of(&b));
    }
}
