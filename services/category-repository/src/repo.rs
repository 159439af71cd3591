//! The tenant's forest in MongoDB: the stored documents and the tree operations.
//!
//! Every change runs in one transaction ([`MongoStore::transaction`]) that reads what it decides
//! on inside the transaction and may run again after a write conflict. The invariants every
//! committed state keeps:
//!
//! - a node's `ancestors` is its parent's `ancestors` plus the parent's id, `depth` its length;
//! - the positions of a sibling set are exactly `0..n` (no gaps, no duplicates);
//! - no node is its own ancestor, and `depth < MAX_DEPTH`;
//! - names are unique among siblings by `name_key` (also enforced by a unique index).
//!
//! Conflict detection: a transaction that changes a sibling set bumps `children_version` on the
//! parent (for the roots: on the tenant's document in `category_forests`), and a move rewrites
//! (and bumps the revision of) every node of the moved subtree. Two transactions whose
//! decisions depend on each other therefore always write a common document, so MongoDB's
//! snapshot isolation aborts one of them with a write conflict and it runs again on the
//! committed state (see docs/services/category-repository-service.md for the argument). The
//! writes to the moved node and the parents also carry the revision (and children version)
//! they read as a filter, and a write that matches nothing runs the transaction again, so the
//! guarantees do not rest on the server's conflict detection alone.

use futures::future::BoxFuture;
use mongodb::bson::{self, doc, Bson, Document};
use mongodb::error::ErrorKind;
use mongodb::options::FindOptions;
use mongodb::ClientSession;
use prismicx_service_common::mongo::{
    chrono_time, is_duplicate_key, tenant_bson, MongoStore, TenantCollection, TenantMongoError,
    TransientError,
};
use prismicx_service_common::tenancy::TenantPlacement;
use prismicx_service_common::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::{self, Category, CategoryChanges, NewCategory, MAX_DEPTH};
use crate::{CATEGORIES, FORESTS};

/// A category as stored in `categories`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CategoryDoc {
    #[serde(rename = "_id")]
    pub id: bson::Uuid,
    /// Added by [`TenantCollection`] on insert; read back for responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<bson::Uuid>,
    pub name: String,
    /// `name` lowercased: what sibling uniqueness compares.
    pub name_key: String,
    #[serde(default)]
    pub description: Option<String>,
    pub parent_id: Option<bson::Uuid>,
    /// Root first.
    pub ancestors: Vec<bson::Uuid>,
    pub depth: i64,
    pub position: i64,
    #[serde(default)]
    pub attributes: Map<String, Value>,
    pub revision: i64,
    /// Bumped whenever the set of children changes; never shown to clients.
    #[serde(default)]
    pub children_version: i64,
    pub created_at: bson::DateTime,
    pub updated_at: bson::DateTime,
}

use prismicx_service_common::mongo::bson_uuid;

pub fn uuid(id: bson::Uuid) -> Uuid {
    Uuid::from_bytes(id.bytes())
}

fn parent_key(parent: Option<bson::Uuid>) -> Bson {
    parent.map_or(Bson::Null, Bson::from)
}

impl CategoryDoc {
    pub fn to_api(&self) -> Category {
        Category {
            id: uuid(self.id),
            tenant_id: self.tenant_id.map(uuid).unwrap_or_default(),
            name: self.name.clone(),
            description: self.description.clone(),
            parent_id: self.parent_id.map(uuid),
            ancestors: self.ancestors.iter().copied().map(uuid).collect(),
            depth: u32::try_from(self.depth).unwrap_or_default(),
            position: u32::try_from(self.position).unwrap_or_default(),
            attributes: self.attributes.clone(),
            revision: self.revision,
            created_at: chrono_time(self.created_at),
            updated_at: chrono_time(self.updated_at),
        }
    }
}

/// Why a transaction body stopped.
#[derive(Debug)]
pub enum TxError {
    /// An answer for the client (or a database error, possibly transient).
    Api(ApiError),
    /// A guarded write matched nothing: what the body read changed under it; run it again.
    Stale,
}

impl From<ApiError> for TxError {
    fn from(e: ApiError) -> Self {
        TxError::Api(e)
    }
}

impl From<mongodb::error::Error> for TxError {
    fn from(e: mongodb::error::Error) -> Self {
        TxError::Api(e.into())
    }
}

impl From<TenantMongoError> for TxError {
    fn from(e: TenantMongoError) -> Self {
        TxError::Api(e.into())
    }
}

impl TransientError for TxError {
    fn is_transient(&self) -> bool {
        match self {
            TxError::Api(e) => e.is_transient(),
            TxError::Stale => true,
        }
    }
}

type TxResult<T> = Result<T, TxError>;

/// A guarded write of one document: done when it matched `1`, [`TxError::Stale`] otherwise.
fn guarded_one(matched: u64) -> TxResult<()> {
    if matched == 1 {
        Ok(())
    } else {
        Err(TxError::Stale)
    }
}

fn concurrent_change() -> ApiError {
    ApiError::Conflict {
        detail: "a concurrent change of the tree conflicted with this one; retry".into(),
        field: None,
    }
}

fn is_write_conflict(e: &ApiError) -> bool {
    let ApiError::Internal(inner) = e else {
        return false;
    };
    inner
        .downcast_ref::<mongodb::error::Error>()
        .is_some_and(|m| match m.kind.as_ref() {
            ErrorKind::Command(c) => c.code == 112,
            ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) => w.code == 112,
            _ => false,
        })
}

/// A duplicate-key error (the sibling-name index) as a 409 naming `field`.
fn duplicate_as(field: &'static str) -> impl Fn(TenantMongoError) -> TxError {
    move |e| match &e {
        TenantMongoError::Mongo(m) if is_duplicate_key(m) => TxError::Api(ApiError::conflict(
            field,
            "a sibling with the same name (compared case-insensitively) already exists",
        )),
        _ => e.into(),
    }
}

pub fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("category {id} does not exist"))
}

fn parent_not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("parentId: category {id} does not exist"))
}

fn position_out_of_range(max: i64) -> ApiError {
    ApiError::invalid("position", format!("must be between 0 and {max}"))
}

fn check_if_match(expected: Option<i64>, current: i64) -> Result<(), ApiError> {
    match expected {
        Some(e) if e != current => Err(ApiError::PreconditionFailed(format!(
            "the category is at revision {current}, not {e}; read it again"
        ))),
        _ => Ok(()),
    }
}

/// `(k1, k2, …) > (v1, v2, …)` in the sort order of the keys (all ascending).
fn after(keys: &[(&str, Bson)]) -> Document {
    let mut or = Vec::new();
    for i in 0..keys.len() {
        let mut d = Document::new();
        for (k, v) in &keys[..i] {
            d.insert(*k, v.clone());
        }
        d.insert(keys[i].0, doc! { "$gt": keys[i].1.clone() });
        or.push(d);
    }
    doc! { "$or": or }
}

fn sorted(sort: Document, limit: u32) -> FindOptions {
    let mut o = FindOptions::default();
    o.sort = Some(sort);
    o.limit = Some(i64::from(limit) + 1);
    o
}

/// Sort key of children and roots lists: `(position, id)`.
pub type ChildCursor = (i64, Uuid);
/// Sort key of the descendants list: `(depth, parentId, position, id)`.
pub type DescendantCursor = (i64, Uuid, i64, Uuid);

/// Where a move puts the category.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// Under `parent` (`None`: a root).
    Parent(Option<Uuid>),
    /// Under its current parent (a reorder).
    SameParent,
}

/// One tenant's forest.
#[derive(Debug, Clone)]
pub struct Tree {
    store: MongoStore,
    placement: TenantPlacement,
    cats: TenantCollection<CategoryDoc>,
    forests: TenantCollection<Document>,
}

impl Tree {
    pub fn new(store: &MongoStore, placement: &TenantPlacement) -> Self {
        Tree {
            store: store.clone(),
            placement: placement.clone(),
            cats: store.collection(placement, CATEGORIES),
            forests: store.collection(placement, FORESTS),
        }
    }

    /// Runs `body` in a transaction; conflicts that outlast the retries become 409 (write
    /// conflicts) or 503 (other transient failures).
    async fn run<R, F>(&self, body: F) -> Result<R, ApiError>
    where
        F: for<'s> FnMut(&'s mut ClientSession) -> BoxFuture<'s, TxResult<R>>,
    {
        match self.store.transaction(&self.placement, body).await {
            Ok(r) => Ok(r),
            Err(TxError::Stale) => Err(concurrent_change()),
            Err(TxError::Api(e)) if is_write_conflict(&e) => Err(concurrent_change()),
            Err(TxError::Api(e)) if e.is_transient() => Err(ApiError::Unavailable(
                "the database did not complete the change; retry".into(),
            )),
            Err(TxError::Api(e)) => Err(e),
        }
    }

    /// Creates the tenant's `category_forests` document if it is missing (outside any
    /// transaction; a concurrent creation is fine).
    async fn ensure_forest(&self) -> Result<(), ApiError> {
        if self.forests.find_one(doc! {}).await?.is_some() {
            return Ok(());
        }
        let now = bson::DateTime::now();
        let forest = doc! {
            "_id": tenant_bson(self.placement.id),
            "children_version": 0_i64,
            "created_at": now,
            "updated_at": now,
        };
        match self.forests.insert_one(&forest).await {
            Ok(_) => Ok(()),
            Err(TenantMongoError::Mongo(e)) if is_duplicate_key(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn get_in(&self, s: &mut ClientSession, id: bson::Uuid) -> TxResult<Option<CategoryDoc>> {
        Ok(self.cats.find_one_in(s, doc! { "_id": id }).await?)
    }

    async fn parent_in(&self, s: &mut ClientSession, id: Uuid) -> TxResult<CategoryDoc> {
        self.get_in(s, bson_uuid(id))
            .await?
            .ok_or_else(|| parent_not_found(id).into())
    }

    /// The number of children of `parent` (positions are `0..n`, so the last one's plus one).
    async fn sibling_count(&self, s: &mut ClientSession, parent: &Bson) -> TxResult<i64> {
        let mut o = FindOptions::default();
        o.sort = Some(doc! { "position": -1, "_id": -1 });
        o.limit = Some(1);
        let last = self
            .cats
            .find_in(s, doc! { "parent_id": parent.clone() }, Some(o))
            .await?;
        Ok(last.first().map_or(0, |c| c.position + 1))
    }

    /// The height of `x`'s subtree below it (0 for a leaf).
    async fn subtree_height(&self, s: &mut ClientSession, x: &CategoryDoc) -> TxResult<i64> {
        let mut o = FindOptions::default();
        o.sort = Some(doc! { "depth": -1 });
        o.limit = Some(1);
        let deepest = self
            .cats
            .find_in(s, doc! { "ancestors": x.id }, Some(o))
            .await?;
        Ok(deepest.first().map_or(0, |d| d.depth - x.depth))
    }

    async fn check_name_free(
        &self,
        s: &mut ClientSession,
        parent: &Bson,
        name_key: &str,
        except: Option<bson::Uuid>,
        field: &'static str,
    ) -> TxResult<()> {
        let mut filter = doc! { "parent_id": parent.clone(), "name_key": name_key };
        if let Some(id) = except {
            filter.insert("_id", doc! { "$ne": id });
        }
        match self.cats.find_one_in(s, filter).await? {
            Some(other) => Err(ApiError::conflict(
                field,
                format!(
                    "a sibling named {:?} already exists there (names are compared case-insensitively)",
                    other.name
                ),
            )
            .into()),
            None => Ok(()),
        }
    }

    /// Marks a change of `parent`'s children (the roots when `None`), so that concurrent
    /// changes of the same sibling set conflict; guarded by what was read of the parent.
    async fn lock_siblings(
        &self,
        s: &mut ClientSession,
        parent: Option<&CategoryDoc>,
    ) -> TxResult<()> {
        let matched = match parent {
            Some(p) => {
                self.cats
                    .update_one_in(
                        s,
                        doc! {
                            "_id": p.id,
                            "revision": p.revision,
                            "children_version": p.children_version,
                        },
                        doc! { "$inc": { "children_version": 1_i64 } },
                    )
                    .await?
            }
            None => {
                let forest = self.forests.find_one_in(s, doc! {}).await?.ok_or_else(|| {
                    ApiError::internal(anyhow::anyhow!(
                        "the tenant's category_forests document is missing"
                    ))
                })?;
                let version = forest
                    .get("children_version")
                    .cloned()
                    .unwrap_or(Bson::Null);
                self.forests
                    .update_one_in(
                        s,
                        doc! { "children_version": version },
                        doc! {
                            "$inc": { "children_version": 1_i64 },
                            "$set": { "updated_at": bson::DateTime::now() },
                        },
                    )
                    .await?
            }
        };
        guarded_one(matched)
    }

    /// Updates `x` if it is still at the revision read; bumps the revision.
    async fn update_read(
        &self,
        s: &mut ClientSession,
        x: &CategoryDoc,
        mut update: Document,
        duplicate_field: &'static str,
    ) -> TxResult<()> {
        update.insert("$inc", doc! { "revision": 1_i64 });
        let matched = self
            .cats
            .update_one_in(s, doc! { "_id": x.id, "revision": x.revision }, update)
            .await
            .map_err(duplicate_as(duplicate_field))?;
        guarded_one(matched)
    }

    async fn shift(
        &self,
        s: &mut ClientSession,
        parent: &Bson,
        range: Document,
        by: i64,
    ) -> TxResult<()> {
        self.cats
            .update_many_in(
                s,
                doc! { "parent_id": parent.clone(), "position": range },
                doc! { "$inc": { "position": by } },
            )
            .await?;
        Ok(())
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<CategoryDoc>, ApiError> {
        Ok(self.cats.find_one(doc! { "_id": bson_uuid(id) }).await?)
    }

    pub async fn create(&self, new: NewCategory) -> Result<CategoryDoc, ApiError> {
        self.ensure_forest().await?;
        self.run(|s| {
            let (t, new) = (self.clone(), new.clone());
            Box::pin(async move { t.create_in(s, &new).await })
        })
        .await
    }

    async fn create_in(&self, s: &mut ClientSession, new: &NewCategory) -> TxResult<CategoryDoc> {
        let parent = match new.parent_id {
            Some(pid) => Some(self.parent_in(s, pid).await?),
            None => None,
        };
        let depth = parent.as_ref().map_or(0, |p| p.depth + 1);
        if depth >= MAX_DEPTH {
            return Err(ApiError::invalid(
                "parentId",
                format!("a category may be at most {MAX_DEPTH} levels deep"),
            )
            .into());
        }
        let key = parent_key(parent.as_ref().map(|p| p.id));
        let n = self.sibling_count(s, &key).await?;
        let position = match new.position {
            Some(p) if p > n => return Err(position_out_of_range(n).into()),
            Some(p) => p,
            None => n,
        };
        self.check_name_free(s, &key, &new.name_key, None, "name")
            .await?;
        self.lock_siblings(s, parent.as_ref()).await?;
        if position < n {
            self.shift(s, &key, doc! { "$gte": position }, 1).await?;
        }
        let ancestors = parent
            .as_ref()
            .map(|p| {
                let mut a = p.ancestors.clone();
                a.push(p.id);
                a
            })
            .unwrap_or_default();
        let now = bson::DateTime::now();
        let d = CategoryDoc {
            id: bson_uuid(Uuid::new_v4()),
            tenant_id: None,
            name: new.name.clone(),
            name_key: new.name_key.clone(),
            description: new.description.clone(),
            parent_id: parent.as_ref().map(|p| p.id),
            ancestors,
            depth,
            position,
            attributes: new.attributes.clone(),
            revision: 1,
            children_version: 0,
            created_at: now,
            updated_at: now,
        };
        self.cats
            .insert_one_in(s, &d)
            .await
            .map_err(duplicate_as("name"))?;
        Ok(CategoryDoc {
            tenant_id: Some(bson_uuid(self.placement.id)),
            ..d
        })
    }

    pub async fn update(
        &self,
        id: Uuid,
        changes: CategoryChanges,
        if_match: Option<i64>,
    ) -> Result<CategoryDoc, ApiError> {
        self.run(|s| {
            let (t, changes) = (self.clone(), changes.clone());
            Box::pin(async move { t.update_in(s, id, &changes, if_match).await })
        })
        .await
    }

    async fn update_in(
        &self,
        s: &mut ClientSession,
        id: Uuid,
        changes: &CategoryChanges,
        if_match: Option<i64>,
    ) -> TxResult<CategoryDoc> {
        let x = self
            .get_in(s, bson_uuid(id))
            .await?
            .ok_or_else(|| not_found(id))?;
        check_if_match(if_match, x.revision)?;
        let mut set = Document::new();
        if let Some((name, key)) = &changes.name {
            if *key != x.name_key {
                self.check_name_free(s, &parent_key(x.parent_id), key, Some(x.id), "name")
                    .await?;
            }
            if *name != x.name {
                set.insert("name", name.as_str());
                set.insert("name_key", key.as_str());
            }
        }
        if let Some(d) = &changes.description {
            if *d != x.description {
                set.insert("description", d.clone());
            }
        }
        if let Some(patch) = &changes.attributes {
            let merged = domain::patched_attributes(&x.attributes, patch)?;
            if merged != x.attributes {
                set.insert(
                    "attributes",
                    bson::to_bson(&merged).map_err(ApiError::internal)?,
                );
            }
        }
        if set.is_empty() {
            return Ok(x);
        }
        set.insert("updated_at", bson::DateTime::now());
        self.update_read(s, &x, doc! { "$set": set }, "name")
            .await?;
        self.get_in(s, x.id).await?.ok_or_else(|| TxError::Stale)
    }

    /// Moves `id` (and its subtree) to `target` at `position` (default: last).
    pub async fn move_to(
        &self,
        id: Uuid,
        target: Target,
        position: Option<i64>,
        if_match: Option<i64>,
    ) -> Result<CategoryDoc, ApiError> {
        self.ensure_forest().await?;
        self.run(|s| {
            let t = self.clone();
            Box::pin(async move { t.move_in(s, id, target, position, if_match).await })
        })
        .await
    }

    async fn move_in(
        &self,
        s: &mut ClientSession,
        id: Uuid,
        target: Target,
        position: Option<i64>,
        if_match: Option<i64>,
    ) -> TxResult<CategoryDoc> {
        let x = self
            .get_in(s, bson_uuid(id))
            .await?
            .ok_or_else(|| not_found(id))?;
        check_if_match(if_match, x.revision)?;
        let target = match target {
            Target::Parent(p) => p,
            Target::SameParent => x.parent_id.map(uuid),
        };
        if target == Some(id) {
            return Err(
                ApiError::conflict("parentId", "a category cannot be moved under itself").into(),
            );
        }
        // Read inside the transaction: the cycle check sees the same snapshot the writes
        // below are checked against.
        let new_parent = match target {
            Some(pid) => Some(self.parent_in(s, pid).await?),
            None => None,
        };
        if let Some(p) = &new_parent {
            if p.ancestors.contains(&x.id) {
                return Err(ApiError::conflict(
                    "parentId",
                    "is a descendant of the category: the move would create a cycle",
                )
                .into());
            }
        }
        let now = bson::DateTime::now();
        let new_key = parent_key(target.map(bson_uuid));
        if target.map(bson_uuid) == x.parent_id {
            // Same parent: only the order of the siblings changes.
            let last = self.sibling_count(s, &new_key).await? - 1;
            let to = match position {
                Some(p) if p > last => return Err(position_out_of_range(last).into()),
                Some(p) => p,
                None => last,
            };
            self.lock_siblings(s, new_parent.as_ref()).await?;
            if to < x.position {
                self.shift(s, &new_key, doc! { "$gte": to, "$lt": x.position }, 1)
                    .await?;
            } else if to > x.position {
                self.shift(s, &new_key, doc! { "$gt": x.position, "$lte": to }, -1)
                    .await?;
            }
            self.update_read(
                s,
                &x,
                doc! { "$set": { "position": to, "updated_at": now } },
                "parentId",
            )
            .await?;
        } else {
            let new_depth = new_parent.as_ref().map_or(0, |p| p.depth + 1);
            let height = self.subtree_height(s, &x).await?;
            if new_depth + height >= MAX_DEPTH {
                return Err(ApiError::invalid(
                    "parentId",
                    format!(
                        "the subtree is {} levels high: under this parent it would be deeper than {MAX_DEPTH} levels",
                        height + 1
                    ),
                )
                .into());
            }
            self.check_name_free(s, &new_key, &x.name_key, Some(x.id), "parentId")
                .await?;
            let n = self.sibling_count(s, &new_key).await?;
            let to = match position {
                Some(p) if p > n => return Err(position_out_of_range(n).into()),
                Some(p) => p,
                None => n,
            };
            let old_parent = match x.parent_id {
                Some(pid) => Some(self.get_in(s, pid).await?.ok_or(TxError::Stale)?),
                None => None,
            };
            // Both sibling sets change: bump both counters (the new parent's is the write
            // a racing move of the new parent under this subtree also makes).
            self.lock_siblings(s, old_parent.as_ref()).await?;
            self.lock_siblings(s, new_parent.as_ref()).await?;
            let old_key = parent_key(x.parent_id);
            self.shift(s, &old_key, doc! { "$gt": x.position }, -1)
                .await?;
            self.shift(s, &new_key, doc! { "$gte": to }, 1).await?;
            let new_ancestors: Vec<bson::Uuid> = new_parent
                .as_ref()
                .map(|p| {
                    let mut a = p.ancestors.clone();
                    a.push(p.id);
                    a
                })
                .unwrap_or_default();
            self.update_read(
                s,
                &x,
                doc! { "$set": {
                    "parent_id": new_key.clone(),
                    "ancestors": new_ancestors.clone(),
                    "depth": new_depth,
                    "position": to,
                    "updated_at": now,
                } },
                "parentId",
            )
            .await?;
            // The subtree: replace the old path prefix (x's old ancestors) by the new one, in
            // two updates since one update may not both pull from and push to an array.
            let mut rewrite = doc! {
                "$inc": { "depth": new_depth - x.depth, "revision": 1_i64 },
                "$set": { "updated_at": now },
            };
            if !x.ancestors.is_empty() {
                rewrite.insert(
                    "$pull",
                    doc! { "ancestors": { "$in": x.ancestors.clone() } },
                );
            }
            self.cats
                .update_many_in(s, doc! { "ancestors": x.id }, rewrite)
                .await?;
            if !new_ancestors.is_empty() {
                self.cats
                    .update_many_in(
                        s,
                        doc! { "ancestors": x.id },
                        doc! { "$push": { "ancestors": { "$each": new_ancestors, "$position": 0 } } },
                    )
                    .await?;
            }
        }
        self.get_in(s, x.id).await?.ok_or(TxError::Stale)
    }

    /// Deletes `id`; with `cascade` its whole subtree, else only when it has no children.
    /// Returns how many categories were deleted.
    pub async fn delete(
        &self,
        id: Uuid,
        cascade: bool,
        if_match: Option<i64>,
    ) -> Result<u64, ApiError> {
        self.ensure_forest().await?;
        self.run(|s| {
            let t = self.clone();
            Box::pin(async move { t.delete_in(s, id, cascade, if_match).await })
        })
        .await
    }

    async fn delete_in(
        &self,
        s: &mut ClientSession,
        id: Uuid,
        cascade: bool,
        if_match: Option<i64>,
    ) -> TxResult<u64> {
        let x = self
            .get_in(s, bson_uuid(id))
            .await?
            .ok_or_else(|| not_found(id))?;
        check_if_match(if_match, x.revision)?;
        if !cascade
            && self
                .cats
                .find_one_in(s, doc! { "parent_id": x.id })
                .await?
                .is_some()
        {
            return Err(ApiError::conflict(
                "cascade",
                "the category has children: delete or move them first, or pass cascade=true",
            )
            .into());
        }
        let parent = match x.parent_id {
            Some(pid) => Some(self.get_in(s, pid).await?.ok_or(TxError::Stale)?),
            None => None,
        };
        self.lock_siblings(s, parent.as_ref()).await?;
        let own = self
            .cats
            .delete_one_in(s, doc! { "_id": x.id, "revision": x.revision })
            .await?;
        guarded_one(own)?;
        let below = if cascade {
            self.cats
                .delete_many_in(s, doc! { "ancestors": x.id })
                .await?
        } else {
            0
        };
        self.shift(s, &parent_key(x.parent_id), doc! { "$gt": x.position }, -1)
            .await?;
        Ok(own + below)
    }

    /// Children of `parent` (the roots when `None`) in sibling order.
    pub async fn children(
        &self,
        parent: Option<Uuid>,
        cursor: Option<ChildCursor>,
        limit: u32,
    ) -> Result<Vec<CategoryDoc>, ApiError> {
        let mut filter = doc! { "parent_id": parent_key(parent.map(bson_uuid)) };
        if let Some((pos, id)) = cursor {
            filter = doc! { "$and": [filter, after(&[("position", Bson::Int64(pos)), ("_id", bson_uuid(id).into())])] };
        }
        Ok(self
            .cats
            .find(
                filter,
                Some(sorted(doc! { "position": 1, "_id": 1 }, limit)),
            )
            .await?)
    }

    /// Descendants of `x`, level by level: by depth, then parent, then sibling order.
    pub async fn descendants(
        &self,
        x: &CategoryDoc,
        max_depth: Option<u32>,
        cursor: Option<DescendantCursor>,
        limit: u32,
    ) -> Result<Vec<CategoryDoc>, ApiError> {
        let mut clauses = vec![Bson::Document(doc! { "ancestors": x.id })];
        if let Some(m) = max_depth {
            clauses.push(Bson::Document(
                doc! { "depth": { "$lte": x.depth + i64::from(m) } },
            ));
        }
        if let Some((depth, parent, pos, id)) = cursor {
            clauses.push(Bson::Document(after(&[
                ("depth", Bson::Int64(depth)),
                ("parent_id", bson_uuid(parent).into()),
                ("position", Bson::Int64(pos)),
                ("_id", bson_uuid(id).into()),
            ])));
        }
        Ok(self
            .cats
            .find(
                doc! { "$and": clauses },
                Some(sorted(
                    doc! { "depth": 1, "parent_id": 1, "position": 1, "_id": 1 },
                    limit,
                )),
            )
            .await?)
    }

    /// The path to `id`, root first (without `id`), read from one snapshot.
    pub async fn ancestors(&self, id: Uuid) -> Result<Vec<CategoryDoc>, ApiError> {
        self.run(|s| {
            let t = self.clone();
            Box::pin(async move {
                let x = t
                    .get_in(s, bson_uuid(id))
                    .await?
                    .ok_or_else(|| not_found(id))?;
                let found = t
                    .cats
                    .find_in(s, doc! { "_id": { "$in": x.ancestors.clone() } }, None)
                    .await?;
                let mut path = Vec::with_capacity(x.ancestors.len());
                for a in &x.ancestors {
                    let node = found.iter().find(|c| c.id == *a).cloned().ok_or_else(|| {
                        ApiError::internal(anyhow::anyhow!("ancestor {a} of {id} is missing"))
                    })?;
                    path.push(node);
                }
                Ok(path)
            })
        })
        .await
    }
}
