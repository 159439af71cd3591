//! The usearch HNSW index of one collection, behind a small safe wrapper.
//!
//! Keys are the collection's internal slot numbers (see `points.rs`); the index holds only live
//! points (a delete removes the key at once). usearch keeps one search context per reserved
//! thread and changes `expansion_search` globally, so searches pass through an [`EfGate`]:
//! queries with the same `ef` run side by side (up to the reserved thread count); a query
//! wanting another `ef` waits until the index is idle, sets it, then runs. Writes run under the
//! collection's exclusive lock and need no gate.
//!
//! A large snapshot's index can be opened as a read-only *view* ([`VectorIndex::view`]): usearch
//! maps the file instead of copying it to the heap, so its pages live in the page cache and
//! can be reclaimed. A view answers searches only; the collection loads the index for writing
//! ([`VectorIndex::load`]) before its first write (`collection.rs`), and a write that reaches a
//! view anyway is refused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use super::{CollectionSpec, EngineError, Metric};

/// Capacity is reserved in chunks of at least this many points.
const MIN_RESERVE: usize = 1024;

/// The search contexts reserved per index (bounds concurrent searches of one collection).
fn search_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .max(4)
}

fn index_error(context: &str, err: impl std::fmt::Display) -> EngineError {
    EngineError::Index(format!("{context}: {err}"))
}

/// Which `ef` the index is set to and how many searches are using it.
#[derive(Debug)]
struct EfState {
    ef: usize,
    active: usize,
}

/// Serialises changes of `expansion_search` against running searches.
#[derive(Debug)]
struct EfGate {
    state: Mutex<EfState>,
    idle: Condvar,
    slots: usize,
}

/// A collection's HNSW index.
pub(crate) struct VectorIndex {
    index: Index,
    gate: EfGate,
    /// The index maps its file read-only (see the module doc).
    viewed: bool,
    /// usearch's `memory_usage` as last measured: measuring walks every node, so it is done
    /// when the index is opened, when its capacity grows and every [`MEMORY_REMEASURE`] adds,
    /// never on a search.
    memory: AtomicUsize,
}

/// Adds between two measurements of an index's memory.
const MEMORY_REMEASURE: usize = 1024;

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndex")
            .field("size", &self.index.size())
            .field("viewed", &self.viewed)
            .finish()
    }
}

fn options(spec: &CollectionSpec) -> IndexOptions {
    IndexOptions {
        dimensions: spec.dimension,
        metric: match spec.metric {
            Metric::Cosine => MetricKind::Cos,
            Metric::L2 => MetricKind::L2sq,
            Metric::Dot => MetricKind::IP,
        },
        quantization: ScalarKind::F32,
        connectivity: spec.index.m,
        expansion_add: spec.index.ef_construction,
        expansion_search: spec.index.ef_search,
        multi: false,
    }
}

/// Turns a usearch distance into the engine's score for a metric.
pub(crate) fn score_of(metric: Metric, distance: f32) -> f32 {
    match metric {
        Metric::Cosine | Metric::Dot => 1.0 - distance,
        Metric::L2 => distance.max(0.0).sqrt(),
    }
}

impl VectorIndex {
    /// An empty index for a collection.
    pub(crate) fn new(spec: &CollectionSpec) -> Result<VectorIndex, EngineError> {
        let index = Index::new(&options(spec)).map_err(|e| index_error("create", e))?;
        Ok(VectorIndex::wrap(index, spec))
    }

    /// Loads an index saved by [`VectorIndex::save`] into memory, for reading and writing.
    pub(crate) fn load(spec: &CollectionSpec, path: &str) -> Result<VectorIndex, EngineError> {
        VectorIndex::open(spec, path, false)
    }

    /// Maps an index saved by [`VectorIndex::save`] read-only: searches only.
    pub(crate) fn view(spec: &CollectionSpec, path: &str) -> Result<VectorIndex, EngineError> {
        VectorIndex::open(spec, path, true)
    }

    fn open(spec: &CollectionSpec, path: &str, viewed: bool) -> Result<VectorIndex, EngineError> {
        let index = Index::new(&options(spec)).map_err(|e| index_error("create", e))?;
        if viewed {
            index.view(path).map_err(|e| index_error("view", e))?;
        } else {
            index.load(path).map_err(|e| index_error("load", e))?;
        }
        if index.dimensions() != spec.dimension {
            return Err(EngineError::Corrupt(
                "index file dimension differs from the collection's".into(),
            ));
        }
        let mut index = VectorIndex::wrap(index, spec);
        index.viewed = viewed;
        index.measure_memory();
        Ok(index)
    }

    /// Whether this is a read-only view of its file.
    pub(crate) fn is_view(&self) -> bool {
        self.viewed
    }

    fn writable(&self) -> Result<(), EngineError> {
        if self.viewed {
            return Err(EngineError::Index(
                "a read-only view of the index cannot be written".into(),
            ));
        }
        Ok(())
    }

    fn wrap(index: Index, spec: &CollectionSpec) -> VectorIndex {
        index.change_expansion_add(spec.index.ef_construction);
        index.change_expansion_search(spec.index.ef_search);
        VectorIndex {
            index,
            gate: EfGate {
                state: Mutex::new(EfState {
                    ef: spec.index.ef_search,
                    active: 0,
                }),
                idle: Condvar::new(),
                slots: search_threads(),
            },
            viewed: false,
            memory: AtomicUsize::new(0),
        }
        .measured()
    }

    fn measured(self) -> VectorIndex {
        self.measure_memory();
        self
    }

    fn measure_memory(&self) {
        self.memory
            .store(self.index.memory_usage(), Ordering::Relaxed);
    }

    pub(crate) fn save(&self, path: &str) -> Result<(), EngineError> {
        self.index.save(path).map_err(|e| index_error("save", e))
    }

    /// Makes room for `additional` more points, growing in chunks.
    pub(crate) fn reserve_for(&self, additional: usize) -> Result<(), EngineError> {
        self.writable()?;
        let needed = self.index.size() + additional;
        let capacity = self.index.capacity();
        if needed <= capacity {
            return Ok(());
        }
        let target = needed.max(capacity * 2).max(MIN_RESERVE);
        self.index
            .reserve_capacity_and_threads(target, search_threads())
            .map_err(|e| index_error("reserve", e))?;
        self.measure_memory();
        Ok(())
    }

    /// Adds a key (replacing it when present).
    pub(crate) fn insert(&self, key: u64, vector: &[f32]) -> Result<(), EngineError> {
        self.writable()?;
        if self.index.contains(key) {
            self.remove(key)?;
        }
        self.reserve_for(1)?;
        self.index
            .add(key, vector)
            .map_err(|e| index_error("add", e))?;
        if self.index.size() % MEMORY_REMEASURE == 0 {
            self.measure_memory();
        }
        Ok(())
    }

    pub(crate) fn remove(&self, key: u64) -> Result<(), EngineError> {
        self.writable()?;
        self.index
            .remove(key)
            .map(|_| ())
            .map_err(|e| index_error("remove", e))
    }

    pub(crate) fn size(&self) -> usize {
        self.index.size()
    }

    /// The index's bytes in memory, as last measured (see [`VectorIndex::memory`]).
    pub(crate) fn memory_usage(&self) -> usize {
        self.memory.load(Ordering::Relaxed)
    }

    /// Approximate search; `allow` restricts the keys (a filtered search). Results are
    /// `(key, distance)`, closest first.
    pub(crate) fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        allow: Option<&dyn Fn(u64) -> bool>,
    ) -> Result<Vec<(u64, f32)>, EngineError> {
        let ef = ef.max(k).max(1);
        self.enter(ef);
        let result = match allow {
            None => self.index.search(query, k),
            Some(allow) => self.index.filtered_search(query, k, allow),
        };
        self.leave();
        let matches = result.map_err(|e| index_error("search", e))?;
        Ok(matches.keys.into_iter().zip(matches.distances).collect())
    }

    fn enter(&self, ef: usize) {
        let mut state = self.gate.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if state.active == 0 {
                if state.ef != ef {
                    self.index.change_expansion_search(ef);
                    state.ef = ef;
                }
                break;
            }
            if state.ef == ef && state.active < self.gate.slots {
                break;
            }
            state = self
                .gate
                .idle
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
        state.active += 1;
    }

    fn leave(&self) {
        let mut state = self.gate.state.lock().unwrap_or_else(|p| p.into_inner());
        state.active -= 1;
        drop(state);
        self.gate.idle.notify_all();
    }
}
