//! Configuration versions in MongoDB (`config_db.configurations`), always through the tenant's
//! [`TenantCollection`]: every filter carries the tenant, every insert gets its `tenant_id`.
//!
//! One document per version:
//! `{tenant_id: UUID, system_id: UUID, version: Int64, config: {...}, comment, rolled_back_from?:
//! Int64, created_by, write_id: UUID, created_at, updated_at}`. Documents are never updated.
//!
//! Appending a version reads the latest number `n` and inserts `n + 1`; the unique index on
//! `(tenant_id, system_id, version)` lets exactly one of several concurrent writers have `n + 1`.
//! A writer that named the version it expected (`If-Match`) and lost gets 412; one that did not
//! re-reads and takes the next number. `write_id` tells a retried insert whose first attempt
//! did land (its reply lost) from a competitor's write.

use mongodb::bson::{self, doc, Bson, Document};
use mongodb::options::FindOptions;
use prismicx_service_common::mongo::{
    chrono_time, is_duplicate_key, retry_transient, MongoStore, TenantCollection, TenantMongoError,
};
use prismicx_service_common::tenancy::TenantPlacement;
use prismicx_service_common::ApiError;
use serde_json::{Map, Number, Value};
use uuid::Uuid;

use crate::domain::{Configuration, ConfigurationSummary};
use crate::CONFIGURATIONS;

/// Rounds of read-latest-then-insert before a writer without `If-Match` gives up (409).
const APPEND_ROUNDS: u32 = 16;

/// A UUID as stored in documents (BSON binary subtype 4).
pub fn uuid_bson(id: Uuid) -> Bson {
    Bson::Binary(bson::Binary::from_uuid(bson::Uuid::from_bytes(
        *id.as_bytes(),
    )))
}

/// JSON → BSON, exactly: integers as Int64, other numbers as Double, objects keep key order.
pub fn to_bson(v: &Value) -> Bson {
    match v {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Bson::Int64(i),
            None => Bson::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Bson::String(s.clone()),
        Value::Array(a) => Bson::Array(a.iter().map(to_bson).collect()),
        Value::Object(m) => Bson::Document(to_document(m)),
    }
}

fn to_document(m: &Map<String, Value>) -> Document {
    m.iter().map(|(k, v)| (k.clone(), to_bson(v))).collect()
}

/// BSON → JSON, the inverse of [`to_bson`] (other BSON types, never written here, become their
/// relaxed extended JSON).
pub fn to_json(b: &Bson) -> Value {
    match b {
        Bson::Null => Value::Null,
        Bson::Boolean(x) => Value::Bool(*x),
        Bson::Int32(i) => Value::from(*i),
        Bson::Int64(i) => Value::from(*i),
        Bson::Double(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Bson::String(s) => Value::String(s.clone()),
        Bson::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Bson::Document(d) => {
            Value::Object(d.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
        other => other.clone().into_relaxed_extjson(),
    }
}

fn int_of(d: &Document, key: &str) -> Option<i64> {
    match d.get(key) {
        Some(Bson::Int64(i)) => Some(*i),
        Some(Bson::Int32(i)) => Some(i64::from(*i)),
        _ => None,
    }
}

fn corrupt(what: &str) -> ApiError {
    ApiError::internal(anyhow::anyhow!("stored configuration lacks {what}"))
}

/// The configurations of one system of one tenant.
#[derive(Debug, Clone)]
pub struct Configs {
    coll: TenantCollection<Document>,
    tenant_id: Uuid,
    system_id: Uuid,
}

/// What a new version holds.
#[derive(Debug, Clone)]
pub struct NewConfig {
    pub config: Document,
    pub comment: String,
    pub rolled_back_from: Option<i64>,
    pub created_by: &'static str,
}

impl Configs {
    pub fn new(store: &MongoStore, tenant: &TenantPlacement, system_id: Uuid) -> Self {
        Configs {
            coll: store.collection(tenant, CONFIGURATIONS),
            tenant_id: tenant.id,
            system_id,
        }
    }

    fn of_system(&self) -> Document {
        doc! { "system_id": uuid_bson(self.system_id) }
    }

    fn at(&self, version: i64) -> Document {
        doc! { "system_id": uuid_bson(self.system_id), "version": version }
    }

    async fn find(
        &self,
        filter: Document,
        options: FindOptions,
    ) -> Result<Vec<Document>, ApiError> {
        Ok(retry_transient(|| self.coll.find(filter.clone(), Some(options.clone()))).await?)
    }

    /// The latest version number, 0 when the system has no configuration.
    pub async fn latest_version(&self) -> Result<i64, ApiError> {
        let found = self
            .find(
                self.of_system(),
                FindOptions::builder()
                    .sort(doc! { "version": -1 })
                    .limit(1)
                    .projection(doc! { "version": 1 })
                    .build(),
            )
            .await?;
        Ok(found
            .first()
            .and_then(|d| int_of(d, "version"))
            .unwrap_or(0))
    }

    /// The latest version's document.
    pub async fn latest(&self) -> Result<Option<Document>, ApiError> {
        let found = self
            .find(
                self.of_system(),
                FindOptions::builder()
                    .sort(doc! { "version": -1 })
                    .limit(1)
                    .build(),
            )
            .await?;
        Ok(found.into_iter().next())
    }

    /// Version `n`'s document.
    pub async fn get(&self, n: i64) -> Result<Option<Document>, ApiError> {
        let filter = self.at(n);
        Ok(retry_transient(|| self.coll.find_one(filter.clone())).await?)
    }

    /// Up to `limit + 1` versions older than `before` (all when `None`), newest first, without
    /// their documents.
    pub async fn history(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Document>, ApiError> {
        let mut filter = self.of_system();
        if let Some(b) = before {
            filter.insert("version", doc! { "$lt": b });
        }
        self.find(
            filter,
            FindOptions::builder()
                .sort(doc! { "version": -1 })
                .limit(i64::from(limit) + 1)
                .projection(doc! { "config": 0 })
                .build(),
        )
        .await
    }

    /// Appends `new` as the next version. With `expected` (`If-Match`), the latest version must
    /// be exactly that (0: no configuration yet), else 412.
    pub async fn append(
        &self,
        expected: Option<i64>,
        new: NewConfig,
    ) -> Result<Document, ApiError> {
        let write_id = Uuid::new_v4();
        for _ in 0..APPEND_ROUNDS {
            let current = self.latest_version().await?;
            if let Some(e) = expected {
                if e != current {
                    return Err(stale(e, current));
                }
            }
            let next = current + 1;
            let now = bson::DateTime::now();
            let mut d = doc! {
                "system_id": uuid_bson(self.system_id),
                "version": next,
                "config": new.config.clone(),
                "comment": new.comment.clone(),
                "created_by": new.created_by,
                "write_id": uuid_bson(write_id),
                "created_at": now,
                "updated_at": now,
            };
            if let Some(from) = new.rolled_back_from {
                d.insert("rolled_back_from", from);
            }
            match retry_transient(|| self.coll.insert_one(&d)).await {
                Ok(_) => return Ok(d),
                Err(TenantMongoError::Mongo(e)) if is_duplicate_key(&e) => {
                    // Ours after all (a retried insert whose first attempt landed)?
                    if let Some(existing) = self.get(next).await? {
                        if existing.get("write_id") == Some(&uuid_bson(write_id)) {
                            return Ok(existing);
                        }
                    }
                    if let Some(e) = expected {
                        return Err(stale(e, next));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::Conflict {
            detail: "too many concurrent configuration writes; retry".into(),
            field: None,
        })
    }

    /// Deletes every version (idempotent); returns how many were deleted.
    pub async fn delete_all(&self) -> Result<u64, ApiError> {
        let filter = self.of_system();
        Ok(retry_transient(|| self.coll.delete_many(filter.clone())).await?)
    }

    /// The API view of a stored version.
    pub fn configuration(&self, d: &Document) -> Result<Configuration, ApiError> {
        let config = match d.get("config") {
            Some(b @ Bson::Document(_)) => to_json(b),
            _ => return Err(corrupt("config")),
        };
        let created_at = d
            .get_datetime("created_at")
            .map(|t| chrono_time(*t))
            .map_err(|_| corrupt("created_at"))?;
        Ok(Configuration {
            tenant_id: self.tenant_id,
            system_id: self.system_id,
            version: int_of(d, "version").ok_or_else(|| corrupt("version"))?,
            config,
            comment: d.get_str("comment").unwrap_or_default().to_string(),
            rolled_back_from: int_of(d, "rolled_back_from"),
            created_by: d.get_str("created_by").unwrap_or_default().to_string(),
            created_at,
            updated_at: d
                .get_datetime("updated_at")
                .map(|t| chrono_time(*t))
                .unwrap_or(created_at),
        })
    }

    /// The history view of a stored version.
    pub fn summary(&self, d: &Document) -> Result<ConfigurationSummary, ApiError> {
        Ok(ConfigurationSummary {
            system_id: self.system_id,
            version: int_of(d, "version").ok_or_else(|| corrupt("version"))?,
            comment: d.get_str("comment").unwrap_or_default().to_string(),
            rolled_back_from: int_of(d, "rolled_back_from"),
            created_by: d.get_str("created_by").unwrap_or_default().to_string(),
            created_at: d
                .get_datetime("created_at")
                .map(|t| chrono_time(*t))
                .map_err(|_| corrupt("created_at"))?,
        })
    }
}

fn stale(expected: i64, current: i64) -> ApiError {
    ApiError::PreconditionFailed(format!(
        "If-Match names configuration version {expected}, but the latest is {current}; read it and retry"
    ))
}

/// The `config` of `value` (a JSON object, checked by the caller) as a BSON document.
pub fn document_of(value: &Value) -> Document {
    match value {
        Value::Object(m) => to_document(m),
        _ => Document::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trips_through_bson_exactly() {
        let v = json!({
            "i": 5, "neg": -7, "big": i64::MAX, "small": i64::MIN, "f": 1.0, "g": 2.5e-300,
            "s": "text", "b": true, "n": null, "a": [1, [2, {"x": []}], {}], "o": {"z": {"y": 0.1}},
            "dotted.key": 1, "": "empty key"
        });
        let back = to_json(&to_bson(&v));
        assert_eq!(back, v);
        assert_eq!(back.to_string(), v.to_string());
        assert!(back["f"].is_f64());
        assert!(back["i"].is_i64());
    }
}
