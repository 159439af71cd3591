//! Tenant settings: tenant data, so they live where the tenant's tier puts them (the shared
//! `settings` collection for `standard` tenants, the tenant's own database for `dedicated`
//! ones), always through the tenant filter.
//!
//! A value is stored as its JSON text (`value_json`), so it comes back exactly as sent — key
//! names with `.` or `$`, large integers and all — at the cost of not being queryable inside
//! MongoDB, which no endpoint needs. Each change increments `revision` (the `ETag`).

use mongodb::bson::{self, doc, Document};
use mongodb::options::FindOptions;
use prismicx_service_common::mongo::chrono_time;
use prismicx_service_common::mongo::{
    is_duplicate_key, retry_transient, MongoStore, TenantCollection, TenantMongoError,
};
use prismicx_service_common::tenancy::TenantPlacement;
use prismicx_service_common::ApiError;
use serde::{Deserialize, Serialize};

use crate::domain::Setting;
use prismicx_service_common::mongo::bson_uuid;

pub use prismicx_tenancy::services::tenant_mgmt::SETTINGS_COLLECTION as COLLECTION;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SettingDoc {
    #[serde(rename = "_id")]
    id: bson::Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant_id: Option<bson::Uuid>,
    key: String,
    value_json: String,
    revision: i64,
    created_at: bson::DateTime,
    updated_at: bson::DateTime,
}

impl SettingDoc {
    fn view(self) -> Result<Setting, ApiError> {
        Ok(Setting {
            value: serde_json::from_str(&self.value_json).map_err(ApiError::internal)?,
            key: self.key,
            revision: self.revision,
            created_at: chrono_time(self.created_at),
            updated_at: chrono_time(self.updated_at),
        })
    }
}

fn coll(store: &MongoStore, t: &TenantPlacement) -> TenantCollection<SettingDoc> {
    store.collection(t, COLLECTION)
}

pub async fn get(
    store: &MongoStore,
    t: &TenantPlacement,
    key: &str,
) -> Result<Option<Setting>, ApiError> {
    let c = coll(store, t);
    let found = retry_transient(|| c.find_one(doc! { "key": key })).await?;
    found.map(SettingDoc::view).transpose()
}

/// Whether [`put`] created the setting or changed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Created,
    Updated,
}

/// Sets `key` to `value_json`. With `expected`, only if the setting exists at that revision
/// (else 412, nothing written).
pub async fn put(
    store: &MongoStore,
    t: &TenantPlacement,
    key: &str,
    value_json: String,
    expected: Option<i64>,
) -> Result<(Put, Setting), ApiError> {
    let c = coll(store, t);
    let now = bson::DateTime::now();
    let update = doc! {
        "$set": { "value_json": &value_json, "updated_at": now },
        "$inc": { "revision": 1 },
    };
    let outcome = match expected {
        Some(rev) => {
            let matched = retry_transient(|| {
                c.update_one(doc! { "key": key, "revision": rev }, update.clone())
            })
            .await?;
            if matched == 0 {
                return Err(ApiError::PreconditionFailed(format!(
                    "setting {key} is not at revision {rev}; read it again and retry"
                )));
            }
            Put::Updated
        }
        None => loop {
            let matched =
                retry_transient(|| c.update_one(doc! { "key": key }, update.clone())).await?;
            if matched > 0 {
                break Put::Updated;
            }
            let new = SettingDoc {
                id: bson_uuid(uuid::Uuid::new_v4()),
                tenant_id: None,
                key: key.to_string(),
                value_json: value_json.clone(),
                revision: 1,
                created_at: now,
                updated_at: now,
            };
            match retry_transient(|| c.insert_one(&new)).await {
                Ok(_) => break Put::Created,
                // Created concurrently: update that one instead.
                Err(TenantMongoError::Mongo(e)) if is_duplicate_key(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        },
    };
    let stored = get(store, t, key)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("setting vanished after writing")))?;
    Ok((outcome, stored))
}

/// Deletes `key`; with `expected`, only at that revision. `false` when there is no such setting.
pub async fn delete(
    store: &MongoStore,
    t: &TenantPlacement,
    key: &str,
    expected: Option<i64>,
) -> Result<bool, ApiError> {
    let c = coll(store, t);
    let mut filter = doc! { "key": key };
    if let Some(rev) = expected {
        filter.insert("revision", rev);
    }
    let deleted = retry_transient(|| c.delete_one(filter.clone())).await?;
    if deleted == 0 && expected.is_some() && get(store, t, key).await?.is_some() {
        return Err(ApiError::PreconditionFailed(format!(
            "setting {key} has changed; read it again and retry"
        )));
    }
    Ok(deleted > 0)
}

/// Settings in key order, after `after`.
pub async fn list(
    store: &MongoStore,
    t: &TenantPlacement,
    after: Option<String>,
    limit: u32,
) -> Result<Vec<Setting>, ApiError> {
    let c = coll(store, t);
    let filter = match after {
        Some(k) => doc! { "key": { "$gt": k } },
        None => Document::new(),
    };
    let options = FindOptions::builder()
        .sort(doc! { "key": 1 })
        .limit(i64::from(limit) + 1)
        .build();
    let docs = retry_transient(|| c.find(filter.clone(), Some(options.clone()))).await?;
    docs.into_iter().map(SettingDoc::view).collect()
}
