//! MongoDB access for tenant data in shared collections.
//!
//! [`TenantCollection`] is the only handle services get on a shared collection. It cannot run a
//! query or a write without the tenant filter: every filter is wrapped as
//! `{$and: [{tenant_id: <tenant>}, <filter>]}`, every inserted document gets the tenant's
//! `tenant_id` (a different one is refused), updates may not touch `tenant_id`, aggregations
//! start with the tenant `$match` and may not use stages that read or write other collections,
//! and every index it creates leads with `tenant_id`. Every read it sends (find, count,
//! aggregate) carries `maxTimeMS` ([`QUERY_TIME_LIMIT`] unless the service sets another), so the
//! server stops a query a tenant made expensive (a huge collection, a filter that cannot use an
//! index) instead of letting it hold a connection and a core.
//!
//! `tenant_id` is stored as a BSON UUID (binary subtype 4).

use futures::TryStreamExt;
use mongodb::bson::{self, doc, Bson, Document};
use mongodb::options::{FindOptions, IndexOptions};
use mongodb::{ClientSession, Collection, IndexModel};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

pub use prismicx_tenancy::layout::{CollectionLayout, IndexLayout, MongoLayout};
pub use prismicx_tenancy::TENANT_FIELD;

/// Server-side time limit (`maxTimeMS`) of every read through a [`TenantCollection`].
pub const QUERY_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Stages an aggregation through [`TenantCollection`] may not use: they read or write other
/// collections, where the tenant filter would not apply.
const FORBIDDEN_STAGES: &[&str] = &["$lookup", "$graphLookup", "$unionWith", "$out", "$merge"];

/// Errors of the tenant-scoped repository.
#[derive(Debug, thiserror::Error)]
pub enum TenantMongoError {
    #[error("document carries tenant_id of another tenant")]
    ForeignTenant,
    #[error("updates may not change tenant_id")]
    TenantFieldUpdate,
    #[error("aggregation stage {0} is not allowed on tenant data")]
    ForbiddenStage(String),
    #[error("document could not be encoded: {0}")]
    Encode(#[from] bson::ser::Error),
    #[error("document could not be decoded: {0}")]
    Decode(#[from] bson::de::Error),
    #[error(transparent)]
    Mongo(#[from] mongodb::error::Error),
}

/// The tenant id as stored in documents.
pub fn tenant_bson(id: Uuid) -> Bson {
    Bson::Binary(bson::Binary::from_uuid(bson::Uuid::from_bytes(
        *id.as_bytes(),
    )))
}

mod store;

pub use crate::retry::{is_transient_mongo as is_transient, retry_transient, TransientError};
pub use store::{MongoStore, TransactionBody};

/// A time as BSON stores it (millisecond precision).
pub fn bson_time(t: chrono::DateTime<chrono::Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(t.timestamp_millis())
}

/// A stored BSON time as a `chrono` time.
pub fn chrono_time(t: bson::DateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or_default()
}

/// A UUID as documents store it (BSON binary subtype 4).
pub fn bson_uuid(id: Uuid) -> bson::Uuid {
    bson::Uuid::from_bytes(*id.as_bytes())
}

/// A shared collection seen through one tenant.
#[derive(Debug, Clone)]
pub struct TenantCollection<T: Send + Sync> {
    inner: Collection<Document>,
    tenant: Bson,
    max_time: std::time::Duration,
    /// On mongodb-tenant: the server's client holder and the generation `inner` came from, to
    /// run once more on a fresh client after an `Unauthorized` refusal ([`MongoStore`]).
    tenant_server: Option<(std::sync::Arc<store::TenantServer>, u64)>,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T> TenantCollection<T>
where
    T: Serialize + DeserializeOwned + Send + Sync,
{
    pub fn new(db: &mongodb::Database, collection: &str, tenant_id: Uuid) -> Self {
        TenantCollection {
            inner: db.collection(collection),
            tenant: tenant_bson(tenant_id),
            max_time: QUERY_TIME_LIMIT,
            tenant_server: None,
            _t: std::marker::PhantomData,
        }
    }

    pub(crate) fn on_tenant_server(
        mut self,
        server: std::sync::Arc<store::TenantServer>,
        generation: u64,
    ) -> Self {
        self.tenant_server = Some((server, generation));
        self
    }

    /// The collection on the client that started `session` (after a reconnect, a transaction
    /// runs on the fresh client; its operations must too).
    fn in_session(&self, session: &ClientSession) -> Collection<Document> {
        let ns = self.inner.namespace();
        session.client().database(&ns.db).collection(&ns.coll)
    }

    /// Runs `op` on the collection; on mongodb-tenant, once more on a fresh client when the
    /// server refused it as unauthorized (see [`MongoStore`]).
    async fn run<R, F, Fut>(&self, op: F) -> mongodb::error::Result<R>
    where
        F: Fn(Collection<Document>) -> Fut,
        Fut: std::future::Future<Output = mongodb::error::Result<R>>,
    {
        match op(self.inner.clone()).await {
            Err(e) if store::is_unauthorized(&e) => {
                let fresh = self
                    .tenant_server
                    .as_ref()
                    .and_then(|(server, seen)| server.after_refusal(*seen));
                match fresh {
                    Some(client) => {
                        let ns = self.inner.namespace();
                        op(client.database(&ns.db).collection(&ns.coll)).await
                    }
                    None => Err(e),
                }
            }
            other => other,
        }
    }

    /// The same collection with another server-side time limit for reads.
    pub fn with_max_time(mut self, limit: std::time::Duration) -> Self {
        self.max_time = limit;
        self
    }

    /// `options` with the time limit, unless they set one.
    fn limited(&self, options: Option<FindOptions>) -> FindOptions {
        let mut o = options.unwrap_or_default();
        o.max_time.get_or_insert(self.max_time);
        o
    }

    /// `filter` restricted to the tenant.
    pub fn scoped(&self, filter: Document) -> Document {
        if filter.is_empty() {
            doc! { TENANT_FIELD: self.tenant.clone() }
        } else {
            doc! { "$and": [ { TENANT_FIELD: self.tenant.clone() }, filter ] }
        }
    }

    fn decode(d: Document) -> Result<T, TenantMongoError> {
        Ok(bson::from_document(d)?)
    }

    pub async fn find_one(&self, filter: Document) -> Result<Option<T>, TenantMongoError> {
        self.find_one_opt(None, filter).await
    }

    /// [`find_one`](Self::find_one) inside `session`'s transaction.
    pub async fn find_one_in(
        &self,
        session: &mut ClientSession,
        filter: Document,
    ) -> Result<Option<T>, TenantMongoError> {
        self.find_one_opt(Some(session), filter).await
    }

    async fn find_one_opt(
        &self,
        session: Option<&mut ClientSession>,
        filter: Document,
    ) -> Result<Option<T>, TenantMongoError> {
        let (filter, limit) = (self.scoped(filter), self.max_time);
        let found = match session {
            Some(s) => {
                self.in_session(s)
                    .find_one(filter)
                    .max_time(limit)
                    .session(s)
                    .await?
            }
            None => {
                self.run(|c| {
                    let f = filter.clone();
                    async move { c.find_one(f).max_time(limit).await }
                })
                .await?
            }
        };
        found.map(Self::decode).transpose()
    }

    pub async fn find(
        &self,
        filter: Document,
        options: Option<FindOptions>,
    ) -> Result<Vec<T>, TenantMongoError> {
        let (filter, options) = (self.scoped(filter), self.limited(options));
        let docs: Vec<Document> = self
            .run(|c| {
                let (f, o) = (filter.clone(), options.clone());
                async move { c.find(f).with_options(o).await?.try_collect().await }
            })
            .await?;
        docs.into_iter().map(Self::decode).collect()
    }

    /// [`find`](Self::find) inside `session`'s transaction.
    pub async fn find_in(
        &self,
        session: &mut ClientSession,
        filter: Document,
        options: Option<FindOptions>,
    ) -> Result<Vec<T>, TenantMongoError> {
        let mut cursor = self
            .in_session(session)
            .find(self.scoped(filter))
            .with_options(self.limited(options))
            .session(&mut *session)
            .await?;
        let docs: Vec<Document> = cursor.stream(session).try_collect().await?;
        docs.into_iter().map(Self::decode).collect()
    }

    pub async fn count(&self, filter: Document) -> Result<u64, TenantMongoError> {
        let (filter, limit) = (self.scoped(filter), self.max_time);
        Ok(self
            .run(|c| {
                let f = filter.clone();
                async move { c.count_documents(f).max_time(limit).await }
            })
            .await?)
    }

    /// Inserts `value` with the tenant's `tenant_id`; a document naming another tenant is refused.
    pub async fn insert_one(&self, value: &T) -> Result<Bson, TenantMongoError> {
        self.insert_one_opt(None, value).await
    }

    /// [`insert_one`](Self::insert_one) inside `session`'s transaction.
    pub async fn insert_one_in(
        &self,
        session: &mut ClientSession,
        value: &T,
    ) -> Result<Bson, TenantMongoError> {
        self.insert_one_opt(Some(session), value).await
    }

    async fn insert_one_opt(
        &self,
        session: Option<&mut ClientSession>,
        value: &T,
    ) -> Result<Bson, TenantMongoError> {
        let mut d = bson::to_document(value)?;
        match d.get(TENANT_FIELD) {
            None => {
                d.insert(TENANT_FIELD, self.tenant.clone());
            }
            Some(v) if *v == self.tenant => {}
            Some(_) => return Err(TenantMongoError::ForeignTenant),
        }
        let inserted = match session {
            Some(s) => self.in_session(s).insert_one(d).session(s).await?,
            None => {
                self.run(|c| {
                    let d = d.clone();
                    async move { c.insert_one(d).await }
                })
                .await?
            }
        };
        Ok(inserted.inserted_id)
    }

    fn check_update(update: &Document) -> Result<(), TenantMongoError> {
        for (op, body) in update {
            if !op.starts_with('$') {
                // A replacement document: allowed only if it keeps tenant_id out of it.
                if op == TENANT_FIELD {
                    return Err(TenantMongoError::TenantFieldUpdate);
                }
                continue;
            }
            if let Bson::Document(fields) = body {
                if fields
                    .keys()
                    .any(|k| k == TENANT_FIELD || k.starts_with("tenant_id."))
                {
                    return Err(TenantMongoError::TenantFieldUpdate);
                }
                if op == "$rename"
                    && fields
                        .values()
                        .any(|v| v.as_str().is_some_and(|s| s == TENANT_FIELD))
                {
                    return Err(TenantMongoError::TenantFieldUpdate);
                }
            }
        }
        Ok(())
    }

    /// Updates one of the tenant's documents; returns how many matched.
    pub async fn update_one(
        &self,
        filter: Document,
        update: Document,
    ) -> Result<u64, TenantMongoError> {
        self.update_opt(None, filter, update, false).await
    }

    /// [`update_one`](Self::update_one) inside `session`'s transaction.
    pub async fn update_one_in(
        &self,
        session: &mut ClientSession,
        filter: Document,
        update: Document,
    ) -> Result<u64, TenantMongoError> {
        self.update_opt(Some(session), filter, update, false).await
    }

    /// Updates the tenant's documents matching `filter`; returns how many matched.
    pub async fn update_many(
        &self,
        filter: Document,
        update: Document,
    ) -> Result<u64, TenantMongoError> {
        self.update_opt(None, filter, update, true).await
    }

    /// [`update_many`](Self::update_many) inside `session`'s transaction.
    pub async fn update_many_in(
        &self,
        session: &mut ClientSession,
        filter: Document,
        update: Document,
    ) -> Result<u64, TenantMongoError> {
        self.update_opt(Some(session), filter, update, true).await
    }

    async fn update_opt(
        &self,
        session: Option<&mut ClientSession>,
        filter: Document,
        update: Document,
        many: bool,
    ) -> Result<u64, TenantMongoError> {
        Self::check_update(&update)?;
        let filter = self.scoped(filter);
        let result = match session {
            Some(s) if many => {
                self.in_session(s)
                    .update_many(filter, update)
                    .session(s)
                    .await?
            }
            Some(s) => {
                self.in_session(s)
                    .update_one(filter, update)
                    .session(s)
                    .await?
            }
            None => {
                self.run(|c| {
                    let (f, u) = (filter.clone(), update.clone());
                    async move {
                        if many {
                            c.update_many(f, u).await
                        } else {
                            c.update_one(f, u).await
                        }
                    }
                })
                .await?
            }
        };
        Ok(result.matched_count)
    }

    /// Deletes one of the tenant's documents; returns how many were deleted.
    pub async fn delete_one(&self, filter: Document) -> Result<u64, TenantMongoError> {
        self.delete_opt(None, filter, false).await
    }

    /// [`delete_one`](Self::delete_one) inside `session`'s transaction.
    pub async fn delete_one_in(
        &self,
        session: &mut ClientSession,
        filter: Document,
    ) -> Result<u64, TenantMongoError> {
        self.delete_opt(Some(session), filter, false).await
    }

    pub async fn delete_many(&self, filter: Document) -> Result<u64, TenantMongoError> {
        self.delete_opt(None, filter, true).await
    }

    /// [`delete_many`](Self::delete_many) inside `session`'s transaction.
    pub async fn delete_many_in(
        &self,
        session: &mut ClientSession,
        filter: Document,
    ) -> Result<u64, TenantMongoError> {
        self.delete_opt(Some(session), filter, true).await
    }

    async fn delete_opt(
        &self,
        session: Option<&mut ClientSession>,
        filter: Document,
        many: bool,
    ) -> Result<u64, TenantMongoError> {
        let filter = self.scoped(filter);
        let result = match session {
            Some(s) if many => self.in_session(s).delete_many(filter).session(s).await?,
            Some(s) => self.in_session(s).delete_one(filter).session(s).await?,
            None => {
                self.run(|c| {
                    let f = filter.clone();
                    async move {
                        if many {
                            c.delete_many(f).await
                        } else {
                            c.delete_one(f).await
                        }
                    }
                })
                .await?
            }
        };
        Ok(result.deleted_count)
    }

    /// Runs `pipeline` on the tenant's documents only.
    pub async fn aggregate(
        &self,
        pipeline: Vec<Document>,
    ) -> Result<Vec<Document>, TenantMongoError> {
        for stage in &pipeline {
            if let Some(op) = forbidden_stage(stage) {
                return Err(TenantMongoError::ForbiddenStage(op));
            }
        }
        let mut full = vec![doc! { "$match": { TENANT_FIELD: self.tenant.clone() } }];
        full.extend(pipeline);
        let limit = self.max_time;
        Ok(self
            .run(|c| {
                let p = full.clone();
                async move { c.aggregate(p).max_time(limit).await?.try_collect().await }
            })
            .await?)
    }

    /// Ensures an index on `tenant_id` followed by `keys`.
    pub async fn ensure_index(
        &self,
        name: &str,
        keys: Document,
        unique: bool,
    ) -> Result<(), TenantMongoError> {
        let mut full = doc! { TENANT_FIELD: 1 };
        for (k, v) in keys {
            if k != TENANT_FIELD {
                full.insert(k, v);
            }
        }
        let model = IndexModel::builder()
            .keys(full)
            .options(
                IndexOptions::builder()
                    .name(name.to_string())
                    .unique(unique)
                    .build(),
            )
            .build();
        self.inner.create_index(model).await?;
        Ok(())
    }
}

/// A layout's indexes on the driver: [`IndexLayout`] and [`MongoLayout`] are declarations
/// (prismicx-tenancy); this turns them into key documents and creates them.
pub trait LayoutIndexes {
    /// Creates the layout's indexes in `db` (idempotent; every key leads with `tenant_id`).
    fn ensure_indexes(
        &self,
        db: &mongodb::Database,
    ) -> impl std::future::Future<Output = mongodb::error::Result<()>> + Send;
}

/// An index declaration on the driver.
pub trait IndexKeys {
    /// The full key document, `tenant_id` first.
    fn key_document(&self) -> Document;

    /// The index to create: the key document, the declared name and uniqueness.
    fn index_model(&self) -> IndexModel;
}

impl IndexKeys for IndexLayout {
    fn key_document(&self) -> Document {
        let mut keys = Document::new();
        for (k, dir) in self.key_paths() {
            keys.insert(k, dir);
        }
        keys
    }

    fn index_model(&self) -> IndexModel {
        IndexModel::builder()
            .keys(self.key_document())
            .options(
                IndexOptions::builder()
                    .name(self.name.to_string())
                    .unique(self.unique)
                    .build(),
            )
            .build()
    }
}

impl LayoutIndexes for MongoLayout {
    async fn ensure_indexes(&self, db: &mongodb::Database) -> mongodb::error::Result<()> {
        for c in self.collections {
            let models: Vec<IndexModel> = c.indexes.iter().map(IndexKeys::index_model).collect();
            if !models.is_empty() {
                db.collection::<Document>(c.name)
                    .create_indexes(models)
                    .await?;
            }
        }
        Ok(())
    }
}

/// The first forbidden stage name anywhere in `doc`, including sub-pipelines (`$facet`,
/// `$lookup.pipeline`, …), where a top-level check would not look.
fn forbidden_stage(doc: &Document) -> Option<String> {
    fn in_bson(v: &Bson) -> Option<String> {
        match v {
            Bson::Document(d) => forbidden_stage(d),
            Bson::Array(a) => a.iter().find_map(in_bson),
            _ => None,
        }
    }
    doc.iter().find_map(|(k, v)| {
        if FORBIDDEN_STAGES.contains(&k.as_str()) {
            Some(k.clone())
        } else {
            in_bson(v)
        }
    })
}

/// Whether `e` is a duplicate-key error (E11000).
pub fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(we)) => we.code == 11000,
        ErrorKind::Command(ce) => ce.code == 11000,
        ErrorKind::InsertMany(im) => im
            .write_errors
            .as_ref()
            .is_some_and(|errs| errs.iter().any(|we| we.code == 11000)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_touching_tenant_id_are_refused() {
        type C = TenantCollection<Document>;
        assert!(C::check_update(&doc! {"$set": {"name": "x"}}).is_ok());
        assert!(C::check_update(&doc! {"$set": {"tenant_id": "x"}}).is_err());
        assert!(C::check_update(&doc! {"$unset": {"tenant_id": ""}}).is_err());
        assert!(C::check_update(&doc! {"$rename": {"other": "tenant_id"}}).is_err());
        assert!(C::check_update(&doc! {"tenant_id": "x", "a": 1}).is_err());
    }

    #[test]
    fn forbidden_stages_are_found_at_any_depth() {
        assert_eq!(forbidden_stage(&doc! {"$match": {"a": 1}}), None);
        assert_eq!(
            forbidden_stage(&doc! {"$lookup": {"from": "x"}}).as_deref(),
            Some("$lookup")
        );
        let nested = doc! {"$facet": {"leak": [{"$unionWith": {"coll": "x"}}]}};
        assert_eq!(forbidden_stage(&nested).as_deref(), Some("$unionWith"));
    }
}
