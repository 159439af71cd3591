//! The vector engine: per-(tenant, collection) approximate indexes, durable on disk.
//!
//! # Layout
//! Under the data directory, `shared/<tenant_id>/<collection_id>/` for `standard` tenants and
//! `dedicated/<tenant_id>/<collection_id>/` for `dedicated` ones (see `layout.rs`). No path and
//! no key is ever shared between two tenants, and no query walks another collection's index.
//! A collection directory holds `manifest.json` (spec, snapshot generation, LSN, counts), the
//! snapshot's `data-<gen>.bin` (ids, payloads, vectors) and `index-<gen>.usearch` (the HNSW
//! graph), and `wal.log`. Collections are created under a hidden name and renamed into place;
//! removals rename to a hidden trash name first.
//!
//! # Writes and the log
//! `upsert` validates the whole batch (dimension, finite values, payload an object, id of 1 to
//! 256 bytes; duplicate ids in one batch: the last one wins) and the tenant's quota before
//! anything is written, then appends one log record (length, CRC32, LSN, the points, and the
//! collection's counts after the write), fsyncs it under [`Durability::Fsync`], and applies it
//! in memory: the id → slot map, the contiguous vectors and the usearch index (`wal.rs`,
//! `collection.rs`). Deleted points leave the index and the maps at once; their slots stay as
//! holes (`deleted_pending`) until `compact` renumbers the live points and rebuilds the index
//! (a delete runs it once the holes pass [`AUTO_COMPACT_MIN_HOLES`] and a quarter of the slots).
//!
//! # Snapshots and recovery
//! Past `checkpoint_bytes` of log (and before an eviction) the collection is written as a new
//! snapshot generation: files under temporary names, fsynced, renamed, the manifest last (the
//! commit), the directory fsynced, then the log emptied (`snapshot.rs`). Loading a collection
//! (on first use) reads the snapshot and replays the log records with an LSN above the
//! snapshot's. A torn or corrupt last record is truncated (it was never acknowledged); a bad
//! record followed by more data fails the load with [`EngineError::Corrupt`]. A snapshot index
//! file of 64 MiB or more, with no log to replay, is mapped read-only (a usearch view) rather
//! than copied to the heap; the collection's first write, or a checkpoint, loads it for writing
//! first (`collection.rs`, `index.rs`).
//!
//! # Queries
//! `planner.rs`: no filter → HNSW at the query's `ef` (exact scan when asked or below 256
//! points); a filter → the matching points are found through the payload index of the
//! collection's `indexed_fields` when it answers the filter (`payload_index.rs`; its
//! candidates are checked with the filter), else by scanning payloads (`count` and
//! `delete_filter` find their points the same way); up to
//! `max(1000, 4·k, 2 % of the points)` matches are scanned exactly, more go through usearch's
//! filtered search, falling back to the exact scan when it returns fewer than `min(k, matches)`.
//! Scores: cosine similarity and inner product (higher first), Euclidean distance (lower first).
//!
//! # Memory budget
//! `budget.rs`: collections load on first use; after each call, least recently used ones (never
//! the one just used, never one busy in another call) are checkpointed if needed and dropped
//! from memory while the resident total (usearch's `memory_usage` plus vectors, payloads, maps
//! and the payload index) is above `memory_budget_bytes`. A viewed index's mapped pages are page
//! cache, not counted.
//!
//! # Quota and usage
//! `usage.rs`: a point counts for its vector bytes (4 a dimension) + its payload as compact
//! JSON + its id. `max_points`/`max_bytes` cover a tenant's collections in one scope,
//! `max_collections` is checked at creation. A per-tenant ledger (counts per collection, read
//! from the last log record or the manifest, so no index is loaded) is locked from the check
//! to the log append, so concurrent batches cannot both pass.
//!
//! # Concurrency
//! [`Engine`] is `Send + Sync`. Each collection is behind a `RwLock` (queries share it, writes
//! and eviction take it exclusively); the map of collections is locked only to look one up;
//! lock order is collection, then tenant ledger.

mod budget;
mod codec;
mod collection;
pub mod filter;
mod index;
mod layout;
pub mod payload_index;
mod planner;
mod points;
mod snapshot;
mod usage;
mod wal;

use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use filter::{Filter, FilterError};

/// Which part of the data directory a tenant's collections live in (its tier).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Shared,
    Dedicated,
}

/// One collection of one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CollectionKey {
    pub scope: Scope,
    pub tenant: Uuid,
    pub collection: Uuid,
}

/// How two vectors are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Score: cosine similarity (higher is closer).
    Cosine,
    /// Score: Euclidean distance (lower is closer).
    L2,
    /// Score: inner product (higher is closer).
    Dot,
}

/// HNSW parameters of a collection's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexParams {
    /// Graph degree (connectivity).
    pub m: usize,
    pub ef_construction: usize,
    /// The default `ef` of a query that names none.
    pub ef_search: usize,
}

impl Default for IndexParams {
    fn default() -> Self {
        IndexParams {
            m: 16,
            ef_construction: 200,
            ef_search: 64,
        }
    }
}

/// What a collection is, fixed at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionSpec {
    pub dimension: usize,
    pub metric: Metric,
    pub index: IndexParams,
    /// Payload fields with an index (equality and range filters on them skip the payload scan):
    /// dotted paths as in filters, at most 64, each of 1 to 256 bytes, none listed twice.
    pub indexed_fields: Vec<String>,
}

/// A point to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The caller's id (a string or a UUID's text), unique in the collection.
    pub id: String,
    pub vector: Vec<f32>,
    /// A JSON object (`{}` when the caller sent none).
    pub payload: serde_json::Value,
}

/// A stored point as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: String,
    pub payload: serde_json::Value,
    pub vector: Option<Vec<f32>>,
}

/// A nearest-neighbour query.
#[derive(Debug, Clone)]
pub struct Query {
    pub vector: Vec<f32>,
    /// k, at most [`MAX_LIMIT`].
    pub limit: usize,
    pub filter: Option<Filter>,
    pub with_payload: bool,
    pub with_vector: bool,
    /// Search breadth; `None`: the collection's `ef_search`.
    pub ef: Option<usize>,
    /// Exact scan instead of the index.
    pub exact: bool,
}

/// Deletes compact a collection on their own once it has this many holes and they are a
/// quarter of its slots.
pub const AUTO_COMPACT_MIN_HOLES: u64 = 1024;

/// The largest k of a query.
pub const MAX_LIMIT: usize = 1000;

/// One result of a query, closest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    pub score: f32,
    pub payload: Option<serde_json::Value>,
    pub vector: Option<Vec<f32>>,
}

/// How a query was answered (for metrics and the benchmark).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Index,
    FilteredIndex,
    ExactScan,
}

/// Whether a collection's index is in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexState {
    Resident,
    OnDisk,
}

/// A collection's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectionStats {
    pub points: u64,
    pub bytes_on_disk: u64,
    pub bytes_in_memory: u64,
    pub index_state: IndexState,
    /// Deleted points whose space compaction has not reclaimed yet.
    pub deleted_pending: u64,
}

/// What one tenant uses across its collections of one scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub collections: u64,
    pub points: u64,
    pub bytes: u64,
}

/// Limits a write is checked against, for the tenant of its collection; `None`: unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    pub max_collections: Option<u64>,
    pub max_points: Option<u64>,
    pub max_bytes: Option<u64>,
}

/// Whether an answered write has reached the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// The log is fsynced before a write returns (the default).
    Fsync,
    /// The log is written but not fsynced: a crash of the machine may lose the last writes.
    Relaxed,
}

/// The engine's settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    /// Resident indexes are evicted, least recently used first, above this many bytes.
    pub memory_budget_bytes: u64,
    pub durability: Durability,
    /// A collection's log is folded into a new snapshot past this size.
    pub checkpoint_bytes: u64,
}

/// What is resident, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resident {
    pub collections: u64,
    pub bytes: u64,
}

/// Why an engine call failed. Messages name no path outside the data directory's layout and no
/// secret.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("collection not found")]
    NotFound,
    #[error("collection already exists")]
    Exists,
    #[error("vector has dimension {got}, the collection's is {expected}")]
    Dimension { expected: usize, got: usize },
    #[error("vector holds a value that is not finite")]
    NotFinite,
    #[error("quota exceeded: {what} would be {would_be}, the limit is {limit}")]
    Quota {
        what: &'static str,
        would_be: u64,
        limit: u64,
    },
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("index: {0}")]
    Index(String),
    #[error("damaged data: {0}")]
    Corrupt(String),
}

/// Upper bound of a query's `ef`.
pub const MAX_EF: usize = 10_000;

/// The engine: every tenant's collections of one service instance.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    registry: budget::Registry,
    ledgers: usage::Ledgers,
}

fn read_lock<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write_lock<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

fn other_scope(scope: Scope) -> Scope {
    match scope {
        Scope::Shared => Scope::Dedicated,
        Scope::Dedicated => Scope::Shared,
    }
}

impl Engine {
    /// Opens the data directory (creating its scope directories); collections load on first
    /// use. Leftovers of tenant removals interrupted by a crash are swept.
    pub fn open(config: EngineConfig) -> Result<Engine, EngineError> {
        for scope in [Scope::Shared, Scope::Dedicated] {
            let dir = layout::scope_dir(&config.data_dir, scope);
            std::fs::create_dir_all(&dir)?;
            layout::sweep_hidden(&dir)?;
        }
        layout::fsync_dir(&config.data_dir)?;
        Ok(Engine {
            config,
            registry: budget::Registry::default(),
            ledgers: usage::Ledgers::default(),
        })
    }

    fn dir(&self, key: &CollectionKey) -> PathBuf {
        layout::collection_dir(&self.config.data_dir, key)
    }

    fn tenant_dir(&self, scope: Scope, tenant: Uuid) -> PathBuf {
        layout::tenant_dir(&self.config.data_dir, scope, tenant)
    }

    /// Loads a collection into `state` when it is on disk only.
    fn load_into(
        &self,
        key: &CollectionKey,
        state: &mut Option<collection::Collection>,
    ) -> Result<(), EngineError> {
        if state.is_none() {
            let dir = self.dir(key);
            if !dir.join(layout::MANIFEST).is_file() {
                return Err(EngineError::NotFound);
            }
            *state = Some(collection::Collection::open(&dir, self.config.durability)?);
        }
        Ok(())
    }

    /// The collection's exclusive lock, with the collection loaded. A collection that is not
    /// on disk is [`EngineError::NotFound`] and its handle is forgotten.
    fn loaded<'h>(
        &self,
        key: &CollectionKey,
        handle: &'h std::sync::Arc<budget::Handle>,
    ) -> Result<RwLockWriteGuard<'h, Option<collection::Collection>>, EngineError> {
        let mut state = write_lock(&handle.state);
        if let Err(e) = self.load_into(key, &mut state) {
            drop(state);
            if matches!(e, EngineError::NotFound) {
                self.registry.forget(key, handle);
            }
            return Err(e);
        }
        Ok(state)
    }

    /// Runs a read under the collection's shared lock, loading it first when needed.
    fn read<R>(
        &self,
        key: &CollectionKey,
        f: impl FnOnce(&collection::Collection) -> Result<R, EngineError>,
    ) -> Result<R, EngineError> {
        let handle = self.registry.handle(key);
        let shared = read_lock(&handle.state);
        if let Some(collection) = shared.as_ref() {
            let result = f(collection);
            self.registry
                .note(&handle, Some(collection), self.registry.tick());
            drop(shared);
            self.enforce_budget(key);
            return result;
        }
        drop(shared);
        // Not resident: load it, and answer under the lock that loaded it.
        let state = self.loaded(key, &handle)?;
        let result = match state.as_ref() {
            Some(collection) => f(collection),
            None => Err(EngineError::NotFound),
        };
        self.registry
            .note(&handle, state.as_ref(), self.registry.tick());
        drop(state);
        self.enforce_budget(key);
        result
    }

    /// Runs a write under the collection's exclusive lock, loading it first when needed.
    fn write<R>(
        &self,
        key: &CollectionKey,
        f: impl FnOnce(&mut collection::Collection) -> Result<R, EngineError>,
    ) -> Result<R, EngineError> {
        let handle = self.registry.handle(key);
        let mut state = self.loaded(key, &handle)?;
        let result = match state.as_mut() {
            Some(collection) => f(collection),
            None => Err(EngineError::NotFound),
        };
        if state.as_ref().is_some_and(|c| c.broken) {
            *state = None; // reloaded from disk on next use
        }
        self.registry
            .note(&handle, state.as_ref(), self.registry.tick());
        drop(state);
        self.enforce_budget(key);
        result
    }

    fn enforce_budget(&self, keep: &CollectionKey) {
        self.registry
            .enforce(self.config.memory_budget_bytes, keep, |key, state| {
                let Some(collection) = state.as_mut() else {
                    return true;
                };
                if collection.wal_bytes() == 0 {
                    return true;
                }
                let ledger = self.ledgers.of(key.scope, key.tenant);
                let _ledger = ledger.lock();
                collection.checkpoint().is_ok()
            });
    }

    /// Folds the log into a snapshot once it is past `checkpoint_bytes`. The caller holds the
    /// tenant's ledger lock. A failed checkpoint leaves the previous snapshot and the whole log
    /// in force, so the write that triggered it stays acknowledged; the next write retries.
    /// Compacts a collection whose holes passed [`AUTO_COMPACT_MIN_HOLES`] and a quarter of its
    /// slots: deleted points' space comes back without anyone asking. A failure leaves the
    /// collection as it was (the log still holds every write).
    fn maybe_compact(&self, collection: &mut collection::Collection) {
        let counts = collection.store.counts();
        let holes = counts.slots.saturating_sub(counts.points);
        if holes >= AUTO_COMPACT_MIN_HOLES && holes * 4 >= counts.slots {
            if let Err(e) = collection.compact() {
                tracing::warn!(error = %e, "compaction failed; the holes stay until the next one");
            }
        }
    }

    fn maybe_checkpoint(&self, collection: &mut collection::Collection) {
        if collection.wal_bytes() > self.config.checkpoint_bytes {
            let _ = collection.checkpoint();
        }
    }

    pub fn create_collection(
        &self,
        key: &CollectionKey,
        spec: &CollectionSpec,
        quota: &Quota,
    ) -> Result<(), EngineError> {
        collection::validate_spec(spec)?;
        let tenant_dir = self.tenant_dir(key.scope, key.tenant);
        let ledger = self.ledgers.of(key.scope, key.tenant);
        let mut ledger = ledger.lock();
        ledger.ensure_loaded(&tenant_dir)?;
        let dir = self.dir(key);
        if dir.exists() {
            return Err(EngineError::Exists);
        }
        ledger.check_new_collection(quota)?;
        if !tenant_dir.exists() {
            std::fs::create_dir_all(&tenant_dir)?;
            layout::fsync_dir(&layout::scope_dir(&self.config.data_dir, key.scope))?;
        }
        let building = layout::creating_name(&dir);
        std::fs::create_dir(&building)?;
        let built = collection::Collection::create(&building, spec, self.config.durability)
            .map(|c| c.store.counts())
            .and_then(|counts| {
                layout::rename_durably(&building, &dir)?;
                Ok(counts)
            });
        match built {
            Ok(counts) => {
                ledger.set(key.collection, counts);
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&building);
                Err(e)
            }
        }
    }

    /// Takes a collection out of memory without a checkpoint (it is being removed or moved).
    fn unload(&self, key: &CollectionKey) {
        let handle = self.registry.handle(key);
        let mut state = write_lock(&handle.state);
        *state = None;
        self.registry.note(&handle, None, 0);
        drop(state);
        self.registry.forget(key, &handle);
    }

    fn unload_tenant(&self, scope: Scope, tenant: Uuid) {
        for (key, _) in self
            .registry
            .select(|k| k.scope == scope && k.tenant == tenant)
        {
            self.unload(&key);
        }
    }

    pub fn drop_collection(&self, key: &CollectionKey) -> Result<(), EngineError> {
        self.unload(key);
        let ledger = self.ledgers.of(key.scope, key.tenant);
        let mut ledger = ledger.lock();
        let removed = layout::remove_tree(&self.dir(key))?;
        ledger.remove(key.collection);
        if removed {
            Ok(())
        } else {
            Err(EngineError::NotFound)
        }
    }

    /// Removes every collection of a tenant in a scope.
    pub fn drop_tenant(&self, scope: Scope, tenant: Uuid) -> Result<(), EngineError> {
        self.unload_tenant(scope, tenant);
        let ledger = self.ledgers.of(scope, tenant);
        let mut ledger = ledger.lock();
        layout::remove_tree(&self.tenant_dir(scope, tenant))?;
        ledger.invalidate();
        Ok(())
    }

    /// Moves a tenant's collections to `to` when they are in the other scope (a tier move).
    /// When the tenant has directories in both scopes, each collection of the other scope is
    /// moved; one present in both is [`EngineError::Exists`].
    pub fn ensure_scope(&self, tenant: Uuid, to: Scope) -> Result<(), EngineError> {
        let from = other_scope(to);
        let source = self.tenant_dir(from, tenant);
        if !source.exists() {
            return Ok(());
        }
        self.unload_tenant(from, tenant);
        // Both ledgers, always Shared first, so opposite moves cannot deadlock.
        let shared = self.ledgers.of(Scope::Shared, tenant);
        let dedicated = self.ledgers.of(Scope::Dedicated, tenant);
        let mut shared = shared.lock();
        let mut dedicated = dedicated.lock();
        let target = self.tenant_dir(to, tenant);
        let moved = if !target.exists() {
            layout::rename_durably(&source, &target).map_err(EngineError::from)
        } else {
            self.move_collections(&source, &target)
        };
        shared.invalidate();
        dedicated.invalidate();
        moved
    }

    fn move_collections(&self, source: &Path, target: &Path) -> Result<(), EngineError> {
        for collection in layout::list_collections(source)? {
            let name = collection.to_string();
            if target.join(&name).exists() {
                return Err(EngineError::Exists);
            }
            layout::rename_durably(&source.join(&name), &target.join(&name))?;
        }
        if layout::list_collections(source)?.is_empty() {
            layout::remove_tree(source)?;
        }
        Ok(())
    }

    /// The tenant collections present on disk.
    pub fn collections_of(&self, scope: Scope, tenant: Uuid) -> Result<Vec<Uuid>, EngineError> {
        let ledger = self.ledgers.of(scope, tenant);
        let _ledger = ledger.lock();
        Ok(layout::list_collections(&self.tenant_dir(scope, tenant))?)
    }

    /// Inserts or replaces points by id; durable when it returns. All or nothing. Duplicate ids
    /// in one batch: the last one wins. Returns the points written (distinct ids).
    pub fn upsert(
        &self,
        key: &CollectionKey,
        points: Vec<Point>,
        quota: &Quota,
    ) -> Result<u64, EngineError> {
        let tenant_dir = self.tenant_dir(key.scope, key.tenant);
        self.write(key, |collection| {
            let prepared = collection.prepare_upsert(points)?;
            let after = prepared.counts_after;
            let ledger = self.ledgers.of(key.scope, key.tenant);
            let mut ledger = ledger.lock();
            ledger.ensure_loaded(&tenant_dir)?;
            ledger.check_write(quota, key.collection, after)?;
            let written = collection.commit_upsert(prepared);
            if written.is_ok() || collection.broken {
                ledger.set(key.collection, after);
            }
            let written = written?;
            self.maybe_checkpoint(collection);
            Ok(written)
        })
    }

    fn delete_where(
        &self,
        key: &CollectionKey,
        select: impl FnOnce(&collection::Collection) -> Vec<String>,
    ) -> Result<u64, EngineError> {
        self.write(key, |collection| {
            let ids = select(collection);
            let (present, after) = collection.prepare_delete(&ids);
            if present.is_empty() {
                return Ok(0);
            }
            let ledger = self.ledgers.of(key.scope, key.tenant);
            let mut ledger = ledger.lock();
            let deleted = collection.commit_delete(present, after);
            if deleted.is_ok() || collection.broken {
                ledger.set(key.collection, after);
            }
            let deleted = deleted?;
            self.maybe_compact(collection);
            self.maybe_checkpoint(collection);
            Ok(deleted)
        })
    }

    /// Deletes points by id (absent ids are ignored); returns how many were deleted.
    pub fn delete_ids(&self, key: &CollectionKey, ids: &[String]) -> Result<u64, EngineError> {
        self.delete_where(key, |_| ids.to_vec())
    }

    /// Deletes the points whose payload matches; returns how many were deleted.
    pub fn delete_filter(&self, key: &CollectionKey, filter: &Filter) -> Result<u64, EngineError> {
        self.delete_where(key, |collection| {
            let store = &collection.store;
            store
                .matching(filter)
                .into_iter()
                .filter_map(|slot| store.slot(slot).map(|point| point.id.clone()))
                .collect()
        })
    }

    /// The points with these ids, in the order asked (absent ids are left out).
    pub fn get(
        &self,
        key: &CollectionKey,
        ids: &[String],
        with_vector: bool,
    ) -> Result<Vec<Record>, EngineError> {
        self.read(key, |collection| {
            let store = &collection.store;
            Ok(ids
                .iter()
                .filter_map(|id| store.slot_of(id))
                .filter_map(|slot| record(collection, slot, with_vector))
                .collect())
        })
    }

    pub fn count(&self, key: &CollectionKey, filter: Option<&Filter>) -> Result<u64, EngineError> {
        self.read(key, |collection| {
            let store = &collection.store;
            Ok(match filter {
                None => store.len() as u64,
                Some(filter) => store.matching(filter).len() as u64,
            })
        })
    }

    /// Points in id order after `after`, and the cursor of the next page when more remain.
    pub fn scroll(
        &self,
        key: &CollectionKey,
        after: Option<&str>,
        limit: usize,
        filter: Option<&Filter>,
        with_vector: bool,
    ) -> Result<(Vec<Record>, Option<String>), EngineError> {
        if limit == 0 {
            return Err(EngineError::Invalid("limit must be at least 1".into()));
        }
        self.read(key, |collection| {
            let store = &collection.store;
            let mut page = Vec::with_capacity(limit.min(1024));
            let mut more = false;
            for (_, slot) in store.ids_after(after) {
                let Some(point) = store.slot(slot) else {
                    continue;
                };
                if filter.is_some_and(|f| !f.matches(&point.payload)) {
                    continue;
                }
                if page.len() == limit {
                    more = true;
                    break;
                }
                page.extend(record(collection, slot, with_vector));
            }
            let cursor = if more {
                page.last().map(|r: &Record| r.id.clone())
            } else {
                None
            };
            Ok((page, cursor))
        })
    }

    /// The `limit` nearest points, best first, and how they were found.
    pub fn query(
        &self,
        key: &CollectionKey,
        query: &Query,
    ) -> Result<(Vec<Hit>, Plan), EngineError> {
        if query.limit == 0 || query.limit > MAX_LIMIT {
            return Err(EngineError::Invalid(format!(
                "limit must be between 1 and {MAX_LIMIT}"
            )));
        }
        if query.ef.is_some_and(|ef| ef == 0 || ef > MAX_EF) {
            return Err(EngineError::Invalid(format!(
                "ef must be between 1 and {MAX_EF}"
            )));
        }
        self.read(key, |collection| {
            collection::validate_vector(&collection.spec, &query.vector)?;
            let search = planner::Search {
                vector: &query.vector,
                k: query.limit,
                ef: query.ef.unwrap_or(collection.spec.index.ef_search),
                exact: query.exact,
                filter: query.filter.as_ref(),
            };
            let (scored, plan) = planner::run(collection, &search)?;
            let store = &collection.store;
            let hits = scored
                .into_iter()
                .filter_map(|(slot, score)| {
                    let point = store.slot(slot)?;
                    Some(Hit {
                        id: point.id.clone(),
                        score,
                        payload: query.with_payload.then(|| point.payload.clone()),
                        vector: query.with_vector.then(|| store.vector(slot).to_vec()),
                    })
                })
                .collect();
            Ok((hits, plan))
        })
    }

    /// A collection's size; a collection on disk is not loaded for it.
    pub fn stats(&self, key: &CollectionKey) -> Result<CollectionStats, EngineError> {
        let handle = self.registry.handle(key);
        let state = read_lock(&handle.state);
        if let Some(collection) = state.as_ref() {
            let counts = collection.store.counts();
            return Ok(CollectionStats {
                points: counts.points,
                bytes_on_disk: collection.disk_bytes()?,
                bytes_in_memory: collection.memory_bytes(),
                index_state: IndexState::Resident,
                deleted_pending: counts.slots - counts.points,
            });
        }
        drop(state);
        let dir = self.dir(key);
        if !dir.join(layout::MANIFEST).is_file() {
            self.registry.forget(key, &handle);
            return Err(EngineError::NotFound);
        }
        let counts = collection::counts_on_disk(&dir)?;
        Ok(CollectionStats {
            points: counts.points,
            bytes_on_disk: layout::dir_bytes(&dir)?,
            bytes_in_memory: 0,
            index_state: IndexState::OnDisk,
            deleted_pending: counts.slots.saturating_sub(counts.points),
        })
    }

    /// What a tenant uses in a scope, from the ledger (no collection is loaded for it).
    pub fn usage(&self, scope: Scope, tenant: Uuid) -> Result<Usage, EngineError> {
        let ledger = self.ledgers.of(scope, tenant);
        let mut ledger = ledger.lock();
        ledger.ensure_loaded(&self.tenant_dir(scope, tenant))?;
        Ok(ledger.usage())
    }

    /// Rebuilds a collection's index without its deleted points.
    pub fn compact(&self, key: &CollectionKey) -> Result<(), EngineError> {
        self.write(key, |collection| {
            let ledger = self.ledgers.of(key.scope, key.tenant);
            let mut ledger = ledger.lock();
            collection.compact()?;
            ledger.set(key.collection, collection.store.counts());
            Ok(())
        })
    }

    pub fn resident(&self) -> Resident {
        self.registry.resident()
    }
}

fn record(collection: &collection::Collection, slot: u64, with_vector: bool) -> Option<Record> {
    let point = collection.store.slot(slot)?;
    Some(Record {
        id: point.id.clone(),
        payload: point.payload.clone(),
        vector: with_vector.then(|| collection.store.vector(slot).to_vec()),
    })
}
