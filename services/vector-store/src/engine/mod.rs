//! The vector engine: per-(tenant, collection) approximate indexes, durable on disk.
//!
//! SKELETON: the types and the API are the contract between the engine and the HTTP service;
//! the bodies are being written (each `todo!` goes before this lands).
//!
//! Layout on disk, under the data directory: `shared/<tenant_id>/<collection_id>/` for
//! `standard` tenants and `dedicated/<tenant_id>/<collection_id>/` for `dedicated` ones. No path
//! and no key is ever shared between two tenants, and no query walks another collection's index.

pub mod filter;
pub mod payload_index;

use std::path::PathBuf;

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
    /// Payload fields with an index (equality and range filters on them skip the payload scan).
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

/// The engine: every tenant's collections of one service instance.
#[derive(Debug)]
pub struct Engine {
    _config: EngineConfig,
}

impl Engine {
    pub fn open(_config: EngineConfig) -> Result<Engine, EngineError> {
        todo!("engine")
    }
    pub fn create_collection(
        &self,
        _key: &CollectionKey,
        _spec: &CollectionSpec,
        _quota: &Quota,
    ) -> Result<(), EngineError> {
        todo!("engine")
    }
    pub fn drop_collection(&self, _key: &CollectionKey) -> Result<(), EngineError> {
        todo!("engine")
    }
    /// Removes every collection of a tenant in a scope.
    pub fn drop_tenant(&self, _scope: Scope, _tenant: Uuid) -> Result<(), EngineError> {
        todo!("engine")
    }
    /// Moves a tenant's collections to `to` when they are in the other scope (a tier move).
    pub fn ensure_scope(&self, _tenant: Uuid, _to: Scope) -> Result<(), EngineError> {
        todo!("engine")
    }
    /// The tenant collections present on disk.
    pub fn collections_of(&self, _scope: Scope, _tenant: Uuid) -> Result<Vec<Uuid>, EngineError> {
        todo!("engine")
    }
    /// Inserts or replaces points by id; durable when it returns. All or nothing.
    pub fn upsert(
        &self,
        _key: &CollectionKey,
        _points: Vec<Point>,
        _quota: &Quota,
    ) -> Result<u64, EngineError> {
        todo!("engine")
    }
    pub fn delete_ids(&self, _key: &CollectionKey, _ids: &[String]) -> Result<u64, EngineError> {
        todo!("engine")
    }
    pub fn delete_filter(
        &self,
        _key: &CollectionKey,
        _filter: &Filter,
    ) -> Result<u64, EngineError> {
        todo!("engine")
    }
    pub fn get(
        &self,
        _key: &CollectionKey,
        _ids: &[String],
        _with_vector: bool,
    ) -> Result<Vec<Record>, EngineError> {
        todo!("engine")
    }
    pub fn count(
        &self,
        _key: &CollectionKey,
        _filter: Option<&Filter>,
    ) -> Result<u64, EngineError> {
        todo!("engine")
    }
    /// Points in id order after `after`, and the cursor of the next page when more remain.
    pub fn scroll(
        &self,
        _key: &CollectionKey,
        _after: Option<&str>,
        _limit: usize,
        _filter: Option<&Filter>,
        _with_vector: bool,
    ) -> Result<(Vec<Record>, Option<String>), EngineError> {
        todo!("engine")
    }
    pub fn query(
        &self,
        _key: &CollectionKey,
        _query: &Query,
    ) -> Result<(Vec<Hit>, Plan), EngineError> {
        todo!("engine")
    }
    pub fn stats(&self, _key: &CollectionKey) -> Result<CollectionStats, EngineError> {
        todo!("engine")
    }
    pub fn usage(&self, _scope: Scope, _tenant: Uuid) -> Result<Usage, EngineError> {
        todo!("engine")
    }
    /// Rebuilds a collection's index without its deleted points.
    pub fn compact(&self, _key: &CollectionKey) -> Result<(), EngineError> {
        todo!("engine")
    }
    pub fn resident(&self) -> Resident {
        todo!("engine")
    }
}
